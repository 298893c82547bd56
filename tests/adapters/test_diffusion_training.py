"""Training the diffusion model: loss, checkpoints, exact resume after a kill, determinism."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from medaug.adapters.generators.diffusion.checkpoint import (
    flatten_optimizer,
    latest_checkpoint,
    list_checkpoints,
    load_sampling_model,
    unflatten_optimizer,
)
from medaug.adapters.generators.diffusion.model import build_unet, noise_scheduler
from medaug.adapters.generators.diffusion.sampling import sample
from medaug.adapters.generators.diffusion.training import (
    DiffusionTrainer,
    diffusion_loss,
    epoch_indices,
    training_tensors,
)
from medaug.adapters.png import decode_png
from medaug.application.errors import ConfigError, InputError
from medaug.application.ports import GeneratorTrainer, LabelledImage, NullProgress
from medaug.domain import Grade
from tests.adapters.test_diffusion_fixtures import disc_images, one_torch_thread, tiny_recipe  # noqa: F401
from tests.fakes import KillAfter

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SHORT = dict(train_steps=6, checkpoint_every=3, batch_size=4, sheet_per_grade=1, sample_steps=2)


def _trainer(root: Path, seed: int = 0, **overrides: Any) -> DiffusionTrainer:
    return DiffusionTrainer(tiny_recipe(**{**SHORT, **overrides}), root, seed=seed)


def _weights(root: Path, name: str = "ema") -> dict[str, torch.Tensor]:
    path = latest_checkpoint(root)
    assert path is not None
    return load_file(str(path / f"{name}.safetensors"))


def test_a_few_optimizer_steps_lower_the_loss_on_a_fixed_batch() -> None:
    recipe = tiny_recipe()
    clean, labels = training_tensors(disc_images(8), recipe.resolution)
    generator = torch.Generator().manual_seed(0)
    noise, timesteps = torch.randn(clean.shape, generator=generator), torch.randint(0, 1000, (8,), generator=generator)
    torch.manual_seed(0)
    unet, scheduler = build_unet(recipe), noise_scheduler(recipe)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=2e-3)
    losses = []
    for _ in range(8):
        loss = diffusion_loss(unet, scheduler, clean, noise, timesteps, labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]


def test_training_writes_safetensors_checkpoints_a_config_and_contact_sheets(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path)
    assert isinstance(trainer, GeneratorTrainer) and trainer.name == "diffusion"
    result = trainer.train(disc_images(10), progress=NullProgress())
    assert result.steps == 6 and result.generator == "diffusion" and result.final_loss is not None
    assert result.metrics["images_per_second"] > 0 and result.metrics["parameters"] > 0
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-000003", "step-000006"]
    checkpoint = Path(result.checkpoint)
    assert {p.name for p in checkpoint.iterdir()} == {
        "config.json", "state.json", "ema.safetensors", "model.safetensors", "optimizer.safetensors"
    }
    config = json.loads((checkpoint / "config.json").read_text())
    assert config["step"] == 6 and config["recipe"]["resolution"] == 16 and config["unet"]["num_class_embeds"] == 6
    sheet = decode_png((tmp_path / "samples-step-000006.png").read_bytes())
    assert sheet.shape[0] > sheet.shape[1]  # one row per grade, one column per sample


def test_only_the_newest_checkpoints_are_kept(tmp_path: Path) -> None:
    _trainer(tmp_path, train_steps=4, checkpoint_every=1, keep_checkpoints=2, sheet_per_grade=0).train(
        disc_images(5), progress=NullProgress()
    )
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-000003", "step-000004"]
    assert not list(tmp_path.glob(".*"))


def test_a_killed_run_resumes_from_its_checkpoint_and_ends_where_an_unbroken_run_ends(tmp_path: Path) -> None:
    images = disc_images(10)
    _trainer(tmp_path / "straight").train(images, progress=NullProgress())
    with pytest.raises(KeyboardInterrupt):
        _trainer(tmp_path / "killed").train(images, progress=KillAfter(4))  # type: ignore[arg-type]
    assert [p.name for p in list_checkpoints(tmp_path / "killed")] == ["step-000003"]
    resumed = _trainer(tmp_path / "killed").train(images, progress=NullProgress())
    assert resumed.steps == 6 and resumed.metrics["images_per_second"] > 0
    for name in ("ema", "model"):
        straight, killed = _weights(tmp_path / "straight", name), _weights(tmp_path / "killed", name)
        assert all(torch.equal(straight[k], killed[k]) for k in straight), name
    state = json.loads((Path(resumed.checkpoint) / "state.json").read_text())
    assert state["ema"]["optimization_step"] == 6 and state["lr_scheduler"]["last_epoch"] == 6


def test_gradient_accumulation_trains_and_resumes_exactly(tmp_path: Path) -> None:
    images = disc_images(10)
    settings = dict(grad_accumulation=2, batch_size=2, sheet_per_grade=0)
    straight = _trainer(tmp_path / "straight", **settings).train(images, progress=NullProgress())
    assert straight.steps == 6 and straight.metrics["images_per_second"] > 0
    with pytest.raises(KeyboardInterrupt):
        _trainer(tmp_path / "killed", **settings).train(images, progress=KillAfter(5))  # type: ignore[arg-type]
    _trainer(tmp_path / "killed", **settings).train(images, progress=NullProgress())
    a, b = _weights(tmp_path / "straight", "model"), _weights(tmp_path / "killed", "model")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_resumed_run_keeps_the_seed_it_started_with(tmp_path: Path) -> None:
    images = disc_images(10)
    _trainer(tmp_path / "straight", seed=4).train(images, progress=NullProgress())
    with pytest.raises(KeyboardInterrupt):
        _trainer(tmp_path / "killed", seed=4).train(images, progress=KillAfter(4))  # type: ignore[arg-type]
    _trainer(tmp_path / "killed", seed=9).train(images, progress=NullProgress())
    a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "killed")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_finished_run_returns_at_once_and_fresh_starts_over(tmp_path: Path) -> None:
    first = _trainer(tmp_path).train(disc_images(5), progress=NullProgress())
    again = _trainer(tmp_path).train(disc_images(5), progress=KillAfter(1))  # type: ignore[arg-type]
    assert again.steps == 6 and again.metrics == {"already_trained": True} and again.checkpoint == first.checkpoint
    fresh = _trainer(tmp_path, train_steps=2, checkpoint_every=2).train(
        disc_images(5), progress=NullProgress(), resume=False
    )
    assert fresh.steps == 2 and [p.name for p in list_checkpoints(tmp_path)] == ["step-000002"]


def test_same_seed_same_model_other_seed_other_model(tmp_path: Path) -> None:
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        _trainer(tmp_path / name, seed=seed, train_steps=3, sheet_per_grade=0).train(
            disc_images(6), progress=NullProgress()
        )
    a, b, c = (_weights(tmp_path / n) for n in "abc")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_save_and_load_give_identical_samples(tmp_path: Path) -> None:
    _trainer(tmp_path, train_steps=3, sheet_per_grade=0).train(disc_images(6), progress=NullProgress())
    path = latest_checkpoint(tmp_path)
    assert path is not None
    loaded = load_sampling_model(path, torch.device("cpu"))
    in_memory = build_unet(tiny_recipe())
    in_memory.load_state_dict(_weights(tmp_path))
    kwargs = dict(steps=3, batch_size=2, guidance_scale=2.0)
    first = sample(loaded.network, loaded.meta.schedule, [1, 4], [3, 4], **kwargs).images  # type: ignore[arg-type]
    second = sample(in_memory.eval(), loaded.meta.schedule, [1, 4], [3, 4], **kwargs).images  # type: ignore[arg-type]
    assert torch.equal(first, second)
    assert loaded.meta.recipe.prediction_type == tiny_recipe().prediction_type and len(loaded.digest) == 16


def test_a_checkpoint_of_another_architecture_needs_fresh(tmp_path: Path) -> None:
    _trainer(tmp_path, train_steps=1, sheet_per_grade=0).train(disc_images(3), progress=NullProgress())
    with pytest.raises(ConfigError, match=r"checkpoint has resolution = 16 but the configuration asks for 32; .*--fresh"):
        _trainer(tmp_path, resolution=32).train(disc_images(3), progress=NullProgress())


def test_no_images_and_undecodable_images_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no training images"):
        _trainer(tmp_path).train([], progress=NullProgress())
    broken = [*disc_images(2), LabelledImage(image_id="bad-7", grade=Grade(1), data=b"not a png")]
    with pytest.raises(InputError, match="training image bad-7: cannot decode"):
        _trainer(tmp_path).train(broken, progress=NullProgress())
    assert list_checkpoints(tmp_path) == []


def test_epochs_visit_every_image_once_and_any_batch_can_be_recomputed() -> None:
    stream = epoch_indices(5, 7, 0, 21)
    for epoch in range(3):
        assert sorted(stream[epoch * 7 : (epoch + 1) * 7].tolist()) == list(range(7))
    assert torch.equal(epoch_indices(5, 7, 9, 4), stream[9:13])
    assert not torch.equal(stream[:7], stream[7:14])


def test_optimizer_state_survives_flattening() -> None:
    unet = build_unet(tiny_recipe())
    optimizer = torch.optim.AdamW(unet.parameters(), lr=1e-3)
    unet(torch.zeros(1, 3, 16, 16), 10, torch.tensor([1])).sample.sum().backward()
    optimizer.step()
    tensors, rest = flatten_optimizer(optimizer.state_dict())
    json.dumps(rest)
    restored = torch.optim.AdamW(build_unet(tiny_recipe()).parameters(), lr=1e-3)
    restored.load_state_dict(unflatten_optimizer(tensors, json.loads(json.dumps(rest))))
    original, again = optimizer.state_dict(), restored.state_dict()
    assert all(torch.equal(original["state"][0][k], again["state"][0][k]) for k in ("exp_avg", "exp_avg_sq", "step"))


@pytest.mark.parametrize("prediction", ["v_prediction", "epsilon"])
def test_min_snr_weighting_weighs_each_image_error_by_its_capped_snr(prediction: str) -> None:
    from diffusers.training_utils import compute_snr

    recipe = tiny_recipe(prediction_type=prediction)
    clean, labels = training_tensors(disc_images(6), recipe.resolution)
    generator = torch.Generator().manual_seed(1)
    noise = torch.randn(clean.shape, generator=generator)
    timesteps = torch.tensor([0, 20, 200, 500, 800, 999])
    torch.manual_seed(0)
    unet, scheduler = build_unet(recipe), noise_scheduler(recipe)
    with torch.no_grad():
        plain = diffusion_loss(unet, scheduler, clean, noise, timesteps, labels)
        weighted = diffusion_loss(unet, scheduler, clean, noise, timesteps, labels, snr_gamma=5.0)
        per_image = torch.stack([
            diffusion_loss(unet, scheduler, clean[i : i + 1], noise[i : i + 1], timesteps[i : i + 1], labels[i : i + 1])
            for i in range(6)
        ])
    snr = compute_snr(scheduler, timesteps)
    weights = snr.clamp(max=5.0) / (snr + 1 if prediction == "v_prediction" else snr)
    assert torch.allclose(plain, per_image.mean(), rtol=1e-4)
    assert torch.allclose(weighted, (per_image * weights).mean(), rtol=1e-4)
    assert weights[0] < 0.01 and weighted < plain  # the nearly clean timesteps barely count
