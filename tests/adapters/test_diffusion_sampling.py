"""The class-conditional sampling loop on a tiny untrained UNet: determinism, guidance, SDEdit."""

from __future__ import annotations

import pytest
import torch
from diffusers import UNet2DModel

from medaug.adapters.generators.diffusion.model import build_unet, noise_scheduler
from medaug.adapters.generators.diffusion.sampling import make_scheduler, sample, vary
from medaug.application.errors import ConfigError
from tests.adapters.test_diffusion_fixtures import one_torch_thread, tiny_recipe  # noqa: F401

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SAMPLERS = ("dpmsolver++", "unipc", "ddim", "ddpm")


@pytest.fixture(scope="module")
def unet() -> UNet2DModel:
    torch.manual_seed(0)
    return build_unet(tiny_recipe()).eval()


@pytest.fixture(scope="module")
def schedule() -> dict:
    return dict(noise_scheduler(tiny_recipe()).config)


def _sample(unet, schedule, labels, seeds, **kwargs):  # type: ignore[no-untyped-def]
    kwargs = {"steps": 3, "batch_size": 4, **kwargs}
    return sample(unet, schedule, labels, seeds, **kwargs).images


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_same_seed_same_image_other_seed_other_image(unet, schedule, sampler: str) -> None:
    first = _sample(unet, schedule, [2, 2], [7, 8], sampler=sampler)
    again = _sample(unet, schedule, [2, 2], [7, 8], sampler=sampler)
    assert first.shape == (2, 3, 16, 16)
    assert torch.equal(first, again)
    assert not torch.equal(first[0], first[1])
    assert 0.0 <= first.min() and first.max() <= 1.0


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_an_image_does_not_depend_on_the_other_images_of_its_batch(unet, schedule, sampler: str) -> None:
    together = _sample(unet, schedule, [1, 3, 4], [5, 6, 9], sampler=sampler)
    alone = _sample(unet, schedule, [3], [6], sampler=sampler)
    reordered = _sample(unet, schedule, [4, 3], [9, 6], sampler=sampler)
    assert torch.equal(together[1], alone[0])
    assert torch.equal(together[1], reordered[1])


def test_more_requests_than_a_batch_are_made_in_several_batches(unet, schedule) -> None:
    many = _sample(unet, schedule, [0, 1, 2, 3, 4, 0], list(range(6)), batch_size=4)
    assert many.shape[0] == 6
    assert torch.equal(many[5], _sample(unet, schedule, [0], [5], batch_size=4)[0])


def test_guidance_and_grade_change_the_image(unet, schedule) -> None:
    plain = _sample(unet, schedule, [2], [1], guidance_scale=1.0)
    guided = _sample(unet, schedule, [2], [1], guidance_scale=4.0)
    other_grade = _sample(unet, schedule, [4], [1], guidance_scale=1.0)
    assert (plain - guided).abs().max() > 1e-3
    assert (plain - other_grade).abs().max() > 1e-3


def test_the_timesteps_run_from_the_last_training_step(unet, schedule) -> None:
    output = sample(unet, schedule, [0], [0], steps=4, batch_size=1)
    assert output.timesteps[0] == 999 and len(output.timesteps) == 4
    assert output.timesteps == sorted(output.timesteps, reverse=True)


def test_strength_zero_returns_the_source_and_full_strength_does_not(unet, schedule) -> None:
    source = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    kept = vary(unet, schedule, source, [1, 2], [4, 5], strength=0.0, steps=4, batch_size=2)
    assert torch.equal(kept.images, source) and kept.timesteps == []
    changed = vary(unet, schedule, source, [1, 2], [4, 5], strength=1.0, steps=4, batch_size=2)
    assert (changed.images - source).abs().mean() > 0.05


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_strength_runs_only_the_last_part_of_the_schedule(unet, schedule, sampler: str) -> None:
    source = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    half = vary(unet, schedule, source, [1], [4], strength=0.5, steps=8, batch_size=1, sampler=sampler)
    full = sample(unet, schedule, [1], [4], steps=8, batch_size=1, sampler=sampler)
    assert len(half.timesteps) == 4 * make_scheduler(sampler, schedule).order
    assert half.timesteps == full.timesteps[-len(half.timesteps) :]
    again = vary(unet, schedule, source, [1], [4], strength=0.5, steps=8, batch_size=1, sampler=sampler)
    assert torch.equal(half.images, again.images)


@pytest.mark.parametrize("strength", [-0.5, 1.01])
def test_invalid_strength_is_a_clear_error(unet, schedule, strength: float) -> None:
    with pytest.raises(ConfigError, match=f"variation strength {strength} must be between 0 and 1"):
        vary(unet, schedule, torch.zeros(1, 3, 16, 16), [0], [0], strength=strength)


def test_sources_of_the_wrong_resolution_are_a_clear_error(unet, schedule) -> None:
    with pytest.raises(ConfigError, match=r"expected 1x3x16x16"):
        vary(unet, schedule, torch.zeros(1, 3, 32, 32), [0], [0], strength=0.5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"steps": 0}, "sampling steps 0 must be between 1 and 1000"),
        ({"guidance_scale": -1.0}, "guidance scale -1.0 must not be negative"),
        ({"sampler": "euler"}, "unknown sampler 'euler'"),
    ],
)
def test_invalid_sampling_settings_are_clear_errors(unet, schedule, kwargs, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        sample(unet, schedule, [0], [0], **kwargs)


def test_labels_must_be_grades_or_the_null_class_and_match_seeds(unet, schedule) -> None:
    with pytest.raises(ConfigError, match="class label 6 is outside 0-5"):
        sample(unet, schedule, [6], [0])
    with pytest.raises(ConfigError, match="2 labels but 1 seeds"):
        sample(unet, schedule, [0, 1], [0])


def test_dpm_solver_clips_its_clean_image_estimate() -> None:
    scheduler = make_scheduler("dpmsolver++", {"num_train_timesteps": 1000, "prediction_type": "v_prediction"})
    assert scheduler.config.thresholding and scheduler.config.sample_max_value == 1.0
    assert scheduler.config.timestep_spacing == "trailing"
    assert scheduler.config.prediction_type == "v_prediction"


def test_bf16_sampling_stays_close_to_fp32_and_auto_follows_the_hardware(unet, schedule) -> None:
    from medaug.adapters.generators.diffusion.sampling import uses_bf16

    exact = sample(unet, schedule, [1, 3], [4, 5], steps=4, batch_size=2, precision="fp32").images
    rounded = sample(unet, schedule, [1, 3], [4, 5], steps=4, batch_size=2, precision="bf16").images
    assert not torch.equal(exact, rounded) and (exact - rounded).abs().mean() < 0.05
    assert uses_bf16("fp32", torch.device("cpu")) is False and uses_bf16("bf16", torch.device("cpu")) is True
    native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    assert uses_bf16("auto", torch.device("cpu")) is native
