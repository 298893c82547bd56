"""The diffusion ImageGenerator on a tiny trained model: contract, image quality, variations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as TF

from medaug.adapters.generators.diffusion.generator import DiffusionGenerator
from medaug.adapters.generators.diffusion.sampling import keep_source_detail
from medaug.adapters.png import decode_png
from medaug.application.errors import ConfigError, GeneratorError, InputError
from medaug.application.ports import GenerationRequest, ImageGenerator
from medaug.domain import Grade
from tests.adapters.test_diffusion_fixtures import DISC, SIZE, disc_png, one_torch_thread, train_tiny  # noqa: F401
from tests.contracts.image_generator import ImageGeneratorContract

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    """A tiny model trained on orange discs (once for the whole module)."""
    root = tmp_path_factory.mktemp("diffusion")
    return root, train_tiny(root)


def _generator(trained, **overrides) -> DiffusionGenerator:  # type: ignore[no-untyped-def]
    root, config = trained
    return DiffusionGenerator(config.model_copy(update=overrides), root, device="cpu")


def _request(seed: int, grade: int = 2, size: int = SIZE, source: bytes | None = None) -> GenerationRequest:
    return GenerationRequest(
        image_id=f"syn-{seed}", grade=Grade(grade), seed=seed, size=size,
        source_id="src-1" if source else None, source=source,
    )


class TestDiffusionSampleMode(ImageGeneratorContract):
    @pytest.fixture
    def generator(self, trained) -> DiffusionGenerator:  # type: ignore[no-untyped-def]
        return _generator(trained)


class TestDiffusionVariationMode(ImageGeneratorContract):
    @pytest.fixture
    def generator(self, trained) -> DiffusionGenerator:  # type: ignore[no-untyped-def]
        return _generator(trained, mode="variation", strength=0.6)


def _disc_error(images: list[np.ndarray]) -> tuple[float, float]:
    """Mean colour error inside the disc and mean brightness of the corners, in [0, 1]."""
    pixels = np.stack(images).astype(np.float32) / 255.0
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] + 0.5
    radius = np.hypot(yy - SIZE / 2, xx - SIZE / 2)
    inside = pixels[:, radius < SIZE * 0.33]
    corners = pixels[:, radius > SIZE * 0.5]
    return float(np.abs(inside.mean(axis=(0, 1)) - np.array(DISC)).max()), float(corners.mean())


@pytest.mark.parametrize("sampler", ["dpmsolver++", "unipc", "ddim", "ddpm"])
def test_every_sampler_draws_the_learned_discs_not_noise(trained, sampler: str) -> None:
    generator = _generator(trained, sampler=sampler, sample_steps=10)
    results = generator.generate([_request(seed, grade=seed % 5) for seed in range(10)])
    colour_error, corners = _disc_error([decode_png(r.data) for r in results])
    assert colour_error < 0.12, f"{sampler}: disc colour off by {colour_error:.2f}"
    assert corners < 0.2, f"{sampler}: corners at {corners:.2f}, should be black"
    assert results[0].parameters["scheduler"] == sampler


def test_uniform_noise_fails_the_disc_check() -> None:
    noise = np.random.default_rng(0).integers(0, 256, (10, SIZE, SIZE, 3), dtype=np.uint8)
    colour_error, corners = _disc_error(list(noise))
    assert colour_error > 0.12 or corners > 0.2


def test_images_are_upscaled_to_the_requested_size(trained) -> None:
    result = _generator(trained).generate([_request(1, size=48)])[0]
    assert decode_png(result.data).shape == (48, 48, 3)
    assert result.parameters["resolution"] == SIZE


def test_sample_parameters_name_the_model_sampler_and_seed(trained) -> None:
    parameters = _generator(trained, guidance_scale=3.0).generate([_request(5, grade=4)])[0].parameters
    precision = "fp32"
    assert parameters | {"weights_sha256": "x"} == {
        "mode": "sample", "scheduler": "dpmsolver++", "steps": 8, "guidance": 3.0, "batch_size": 4,
        "precision": precision, "resolution": SIZE, "checkpoint": "step-000150", "checkpoint_step": 150, "weights_sha256": "x",
        "seed": 5, "grade": 4,
    }


def test_variation_parameters_record_source_and_strength(trained) -> None:
    generator = _generator(trained, mode="variation", strength=0.5)
    assert generator.needs_source
    parameters = generator.generate([_request(5, source=disc_png(3, 2))])[0].parameters
    assert (parameters["mode"], parameters["source"], parameters["strength"]) == ("variation", "src-1", 0.5)
    assert parameters["denoising_steps"] == 4 and parameters["seed"] == 5


def test_low_strength_stays_closer_to_the_source_than_high_strength(trained) -> None:
    source = disc_png(9, 4)
    original = decode_png(source).astype(np.float32)

    def distance(strength: float) -> float:
        generator = _generator(trained, mode="variation", strength=strength)
        results = generator.generate([_request(seed, grade=4, source=source) for seed in range(4)])
        return float(np.mean([np.abs(decode_png(r.data) - original).mean() for r in results]))

    assert distance(0.0) == 0.0
    assert distance(0.25) < distance(1.0)


def _highpass(image: np.ndarray, sigma: float = 1.0) -> np.ndarray:
    tensor = torch.from_numpy(image.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
    return (tensor - TF.gaussian_blur(tensor, [7, 7], [sigma, sigma]))[0].numpy()


def test_keeping_the_source_detail_keeps_its_fine_structure_and_records_it(trained) -> None:
    source = disc_png(9, 4)
    fine = _highpass(decode_png(source))
    requests = [_request(seed, grade=4, source=source) for seed in range(3)]
    whole = _generator(trained, mode="variation", strength=0.6).generate(requests)
    kept = _generator(trained, mode="variation", strength=0.6, source_detail_sigma=1.0).generate(requests)
    error = [float(np.abs(_highpass(decode_png(r.data)) - fine).mean()) for r in (*whole, *kept)]
    assert max(error[3:]) < 0.5 * min(error[:3])
    assert kept[0].parameters["source_detail_sigma"] == 1.0 and "source_detail_sigma" not in whole[0].parameters
    assert decode_png(kept[0].data).tolist() != decode_png(source).tolist()  # the coarse part is the model's


def test_source_detail_needs_variation_mode(trained) -> None:  # type: ignore[no-untyped-def]
    _, config = trained
    with pytest.raises(ValueError, match="source_detail_sigma .* needs mode = 'variation'"):
        type(config).model_validate({**config.model_dump(), "mode": "sample", "source_detail_sigma": 2.0})


def test_keep_source_detail_puts_a_source_dot_on_the_variation() -> None:
    variation, source = torch.full((1, 3, 32, 32), 0.4), torch.full((1, 3, 32, 32), 0.6)
    source[0, :, 16, 16] = 1.0  # a bright one-pixel lesion on a brighter background
    blended = keep_source_detail(variation, source, 2.0)
    assert blended[0, 0, 16, 16] > blended[0, 0, 16, 10] + 0.3  # the dot is there
    assert abs(float(blended[0, 0, 2, 2]) - 0.4) < 1e-4  # the background's level is the variation's
    with pytest.raises(ConfigError, match="differ in shape"):
        keep_source_detail(variation, source[:, :, :16], 2.0)


def test_the_model_is_loaded_lazily_and_a_missing_one_says_how_to_train(tmp_path: Path, trained) -> None:
    generator = DiffusionGenerator(trained[1], tmp_path / "nothing-here")
    assert isinstance(generator, ImageGenerator) and generator.batch_size == 4
    with pytest.raises(GeneratorError, match="no trained diffusion model in .*medaug generator train diffusion"):
        generator.generate([_request(1)])


def test_variation_without_a_source_or_with_a_broken_one_is_a_clear_error(trained) -> None:
    generator = _generator(trained, mode="variation")
    with pytest.raises(GeneratorError, match="request syn-1: diffusion variation mode needs a source image"):
        generator.generate([_request(1)])
    with pytest.raises(InputError, match="source image src-1 of syn-1: cannot decode"):
        generator.generate([_request(1, source=b"not an image")])


def test_an_empty_request_list_needs_no_model(tmp_path: Path, trained) -> None:
    assert DiffusionGenerator(trained[1], tmp_path).generate([]) == []


def test_generation_does_not_touch_the_global_torch_seed(trained) -> None:
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    _generator(trained, sampler="ddpm").generate([_request(1)])
    assert torch.equal(torch.rand(1), expected)
