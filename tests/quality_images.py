"""Tiny fundus-like images with a known answer, for the quality tests.

Every image is a bright round field on black whose colour encodes its grade (so a small CNN learns
the grades in a few epochs) with a random fine texture of its own (so two different images share
no fine structure, while a copy shares all of it).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medaug.adapters.png import encode_png
from medaug.adapters.quality.config import QualityCNNConfig, QualityConfig
from medaug.application.ports import GenerationRequest, GenerationResult, ImageStore
from medaug.domain import FundusImage, Grade, Origin, Provenance, Split
from medaug.domain.images import storage_key
from tests.conftest import real_record

SIZE = 32


def fundus_like(seed: int, grade: int, size: int = SIZE) -> np.ndarray:
    """An HxWx3 uint8 fundus-like image of ``grade``; the seed draws its texture."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1) - 0.5
    field = (np.hypot(xx, yy) < 0.45).astype(np.float64)[..., None]
    colour = np.array([0.75, 0.3 + 0.1 * grade, 0.1 + 0.12 * grade])
    texture = rng.normal(0.0, 1.0, (size, size, 1)) * np.array([0.12, 0.1, 0.06])
    return (np.clip(field * (colour + texture), 0, 1) * 255 + 0.5).astype(np.uint8)


def noise_image(seed: int, size: int = SIZE) -> np.ndarray:
    """Uniform random pixels: what a generator that learned nothing makes."""
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def perturbed(pixels: np.ndarray, seed: int, brightness: float = 1.08, noise: float = 3.0) -> np.ndarray:
    """A lightly perturbed copy: brighter, with a little pixel noise."""
    rng = np.random.default_rng(seed)
    values = pixels.astype(np.float64) * brightness + rng.normal(0.0, noise, pixels.shape)
    return np.clip(values + 0.5, 0, 255).astype(np.uint8)


def synthetic(image_id: str, grade: int, augmentation: str, generator: str = "test", source: str | None = None) -> FundusImage:
    """A synthetic training image record."""
    g = Grade(grade)
    return FundusImage(
        id=image_id, key=storage_key(Split.TRAIN, g, image_id), grade=g, split=Split.TRAIN, origin=Origin.SYNTHETIC,
        augmentation=augmentation,
        provenance=Provenance(source_ids=(source,) if source else (), generator=generator, seed=0),
    )  # fmt: skip


def fill_real(store: ImageStore, train_per_grade: int = 12, test_per_grade: int = 6, size: int = SIZE) -> None:
    """Real training and test images, ``train-g<grade>-<i>`` and ``test-g<grade>-<i>``."""
    for split, per_grade, offset in ((Split.TRAIN, train_per_grade, 0), (Split.TEST, test_per_grade, 10_000)):
        for grade in range(5):
            for index in range(per_grade):
                image_id = f"{split.value}-g{grade}-{index}"
                pixels = fundus_like(offset + 100 * grade + index, grade, size)
                store.put(real_record(image_id, grade, split), encode_png(pixels))


def tiny_config(**updates: object) -> QualityConfig:
    """A quality configuration small enough for a test (a tiny CNN at 32 px)."""
    cnn = QualityCNNConfig(
        epochs=12, input_size=SIZE, batch_size=16, channels=(8, 16, 32), fc=(32, 32, 16), dropout=0.1,
        online_augmentation=False, class_weighted=True, lr=3e-3, num_threads=1,
    )  # fmt: skip
    base = QualityConfig(cnn=cnn, similarity_size=SIZE, kid_subsets=20, num_threads=1, worst_pairs=4,
                         features="fundus-cnn", classifier="fundus-cnn")
    return base.model_copy(update=updates)


def quality_analyzer(config: QualityConfig, cache_dir: Path, *, feature_dir: Path | None = None, seed: int = 0):  # type: ignore[no-untyped-def]
    """The analyzer with the judges ``config`` names, as the composition root builds it (on CPU)."""
    from medaug.adapters.quality.analyzer import FundusQualityAnalyzer
    from medaug.composition.factories import build_quality_judges

    judges = build_quality_judges(config, models_dir=cache_dir, feature_dir=feature_dir, device="cpu")
    return FundusQualityAnalyzer(config, judges=judges, cache_dir=cache_dir, seed=seed, device="cpu")


class PixelsGenerator:
    """An ImageGenerator whose image for a request is ``draw(request)``."""

    name = "pixels"
    needs_source = False
    batch_size = 4

    def __init__(self, draw) -> None:  # type: ignore[no-untyped-def]
        self._draw = draw
        self.requests: list[GenerationRequest] = []

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        self.requests.extend(requests)
        return [
            GenerationResult(image_id=r.image_id, data=encode_png(self._draw(r)), parameters={"seed": r.seed})
            for r in requests
        ]
