"""Patch Diffusion: training on crops with coordinate channels, sampling the whole canvas."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from medaug.adapters.generators.diffusion.checkpoint import latest_checkpoint, load_sampling_model
from medaug.adapters.generators.diffusion.config import DiffusionConfig, recipe_from
from medaug.adapters.generators.diffusion.generator import DiffusionGenerator
from medaug.adapters.generators.diffusion.model import build_unet, coordinate_maps, uses_coordinates
from medaug.adapters.generators.diffusion.sampling import sample, vary
from medaug.adapters.generators.diffusion.training import DiffusionTrainer
from medaug.adapters.png import decode_png
from medaug.application.errors import ConfigError
from medaug.application.ports import GenerationRequest, NullProgress
from medaug.domain import Grade
from tests.adapters.test_diffusion_fixtures import disc_images, disc_png, one_torch_thread, tiny_recipe  # noqa: F401

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PATCH = {
    "resolution": 32,
    "patch_size": 16,
    "coordinate_channels": True,
    "train_steps": 4,
    "checkpoint_every": 2,
    "batch_size": 4,
    "sheet_per_grade": 1,
    "sample_steps": 2,
}


def _trainer(root: Path, **overrides: Any) -> DiffusionTrainer:
    return DiffusionTrainer(tiny_recipe(**{**PATCH, **overrides}), root, seed=0)


def test_coordinate_maps_place_a_crop_in_the_full_image() -> None:
    maps = coordinate_maps(8, torch.tensor([0, 4]), torch.tensor([4, 0]), 4)
    assert maps.shape == (2, 2, 4, 4)
    full = coordinate_maps(8, torch.tensor([0]), torch.tensor([0]), 8)[0]
    assert full[0, 0, 0] == -1 and full[0, 0, -1] == 1 and full[1, -1, 0] == 1  # x across, y down
    assert torch.equal(maps[0], full[:, 0:4, 4:8]) and torch.equal(maps[1], full[:, 4:8, 0:4])


def test_a_patch_recipe_builds_a_unet_with_two_coordinate_inputs_on_the_full_canvas() -> None:
    recipe = tiny_recipe(**PATCH)
    unet = build_unet(recipe)
    assert uses_coordinates(unet) and unet.config.in_channels == 5 and unet.config.out_channels == 3
    assert unet.config.sample_size == 32 and recipe.training_size == 16
    assert not uses_coordinates(build_unet(tiny_recipe()))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [({"patch_size": 64}, "patch_size 64 exceeds resolution 32"), ({"patch_size": 9}, "patch_size 9 is too small")],
)
def test_impossible_patch_sizes_are_one_line_errors(overrides: dict[str, Any], message: str) -> None:
    values = {**tiny_recipe().model_dump(), **PATCH, **overrides}
    with pytest.raises(ConfigError, match=message):
        recipe_from(values, where="test")


def test_training_on_patches_checkpoints_and_samples_the_whole_canvas(tmp_path: Path) -> None:
    images = [img.model_copy(update={"data": disc_png(i, img.grade, 32)}) for i, img in enumerate(disc_images(8))]
    result = _trainer(tmp_path).train(images, progress=NullProgress())
    assert result.steps == 4 and result.metrics["patch_size"] == 16 and result.final_loss is not None
    config = json.loads((Path(result.checkpoint) / "config.json").read_text())
    assert config["recipe"]["patch_size"] == 16 and config["unet"]["in_channels"] == 5
    sheet = decode_png((tmp_path / "samples-step-000004.png").read_bytes())
    assert sheet.shape[1] >= 128  # one 32 px canvas per cell (zoomed), not a 16 px patch
    model = load_sampling_model(latest_checkpoint(tmp_path), torch.device("cpu"))  # type: ignore[arg-type]
    drawn = sample(model.network, model.meta.schedule, [0, 4], [1, 2], steps=2, batch_size=2).images
    assert drawn.shape == (2, 3, 32, 32) and torch.isfinite(drawn).all()
    sources = torch.rand(2, 3, 32, 32)
    varied = vary(model.network, model.meta.schedule, sources, [0, 4], [1, 2], strength=0.5, steps=2, batch_size=2)
    assert varied.images.shape == (2, 3, 32, 32) and not torch.equal(varied.images, sources)


def test_the_generator_varies_whole_sources_with_a_patch_model(tmp_path: Path) -> None:
    images = [img.model_copy(update={"data": disc_png(i, img.grade, 32)}) for i, img in enumerate(disc_images(6))]
    _trainer(tmp_path, sheet_per_grade=0).train(images, progress=NullProgress())
    config = tiny_recipe(**PATCH)
    settings = DiffusionConfig(profile="tiny", mode="variation", strength=0.3, **PATCH)  # type: ignore[arg-type]
    generator = DiffusionGenerator(settings, tmp_path, device="cpu")
    request = GenerationRequest(
        image_id="syn-1", grade=Grade(3), seed=5, size=48, source_id="d003", source=disc_png(3, 3, 32)
    )
    [result] = generator.generate([request])
    assert decode_png(result.data).shape == (48, 48, 3) and result.parameters["patch_size"] == config.patch_size


def test_a_patch_run_resumes_after_a_kill_exactly(tmp_path: Path) -> None:
    images = [img.model_copy(update={"data": disc_png(i, img.grade, 32)}) for i, img in enumerate(disc_images(8))]
    _trainer(tmp_path / "straight", sheet_per_grade=0).train(images, progress=NullProgress())
    _trainer(tmp_path / "split", sheet_per_grade=0, train_steps=2).train(images, progress=NullProgress())
    resumed = _trainer(tmp_path / "split", sheet_per_grade=0).train(images, progress=NullProgress())
    assert resumed.steps == 4
    from safetensors.torch import load_file

    straight = load_file(str(latest_checkpoint(tmp_path / "straight") / "model.safetensors"))  # type: ignore[operator]
    split = load_file(str(latest_checkpoint(tmp_path / "split") / "model.safetensors"))  # type: ignore[operator]
    assert all(torch.equal(straight[k], split[k]) for k in straight)


@pytest.mark.parametrize(
    ("change", "field"),
    [({"patch_size": None}, "patch_size"), ({"coordinate_channels": False}, "coordinate_channels")],
)
def test_a_checkpoint_of_another_patch_architecture_needs_fresh(tmp_path: Path, change: dict, field: str) -> None:
    images = [img.model_copy(update={"data": disc_png(i, img.grade, 32)}) for i, img in enumerate(disc_images(4))]
    _trainer(tmp_path, train_steps=1, sheet_per_grade=0).train(images, progress=NullProgress())
    with pytest.raises(ConfigError, match=rf"checkpoint has {field} = .*--fresh"):
        _trainer(tmp_path, **change).train(images, progress=NullProgress())
