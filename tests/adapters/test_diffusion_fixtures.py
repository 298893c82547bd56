"""Shared helpers of the diffusion tests: tiny disc images, tiny recipes, a trained tiny model.

Imported by the other ``test_diffusion_*`` modules; its own tests check the helpers.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from medaug.adapters.generators.diffusion.config import DiffusionConfig, DiffusionRecipe
from medaug.adapters.generators.diffusion.training import DiffusionTrainer
from medaug.application.ports import LabelledImage, NullProgress
from medaug.domain import Grade

SIZE = 16
DISC = (0.85, 0.45, 0.2)
"""The colour of every disc: a trained model's samples must come out this colour, not noise."""


def disc_png(index: int, grade: int, size: int = SIZE) -> bytes:
    """A fundus-like disc on black: orange, with ``grade`` bright spots at seeded places."""
    rng = np.random.default_rng(index)
    image = Image.new("RGB", (size, size), (0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.ellipse([1, 1, size - 2, size - 2], fill=tuple(int(255 * c) for c in DISC))
    for _ in range(grade):
        x, y = (int(v) for v in rng.integers(size // 4, 3 * size // 4, 2))
        draw.point((x, y), fill=(255, 255, 210))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def disc_images(count: int = 20, size: int = SIZE) -> list[LabelledImage]:
    """``count`` disc images, grades 0-4 in turn."""
    return [LabelledImage(image_id=f"d{i:03d}", grade=Grade(i % 5), data=disc_png(i, i % 5, size)) for i in range(count)]


def tiny_config(**overrides: object) -> DiffusionConfig:
    """The ``tiny`` profile (16 px, channels 8/16) with ``overrides``."""
    return DiffusionConfig(profile="tiny", **overrides)  # type: ignore[arg-type]


def tiny_recipe(**overrides: object) -> DiffusionRecipe:
    """The resolved ``tiny`` recipe with ``overrides``."""
    return tiny_config(**overrides).resolve()


TRAINED = dict(train_steps=150, batch_size=16, learning_rate=5e-3, warmup_steps=10, ema_decay=0.95,
               checkpoint_every=150, sheet_per_grade=1, sample_steps=8)
"""A tiny model trained just enough to draw discs (a few seconds on one core)."""


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """Tiny models run fastest on one thread (thread overhead dominates); restore afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def train_tiny(root: Path, **overrides: object) -> DiffusionConfig:
    """Train the tiny disc model into ``root``; returns the config to build a generator with."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        config = tiny_config(**{**TRAINED, **overrides})
        DiffusionTrainer(config.resolve(), root, seed=0).train(disc_images(40), progress=NullProgress())
    finally:
        torch.set_num_threads(before)
    return config


def test_disc_images_are_small_rgb_pngs() -> None:
    image = Image.open(io.BytesIO(disc_png(0, 3)))
    assert image.size == (SIZE, SIZE) and image.mode == "RGB"
    assert [img.grade for img in disc_images(6)] == [Grade(g) for g in (0, 1, 2, 3, 4, 0)]
