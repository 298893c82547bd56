"""Carving a stratified validation split from the real training images."""

from __future__ import annotations

import random

import structlog

from medaug.application.ports import ImageStore
from medaug.domain import FundusImage, Grade, Origin, Split
from medaug.domain.images import storage_key

_log = structlog.get_logger(__name__)


def carve_validation(store: ImageStore, fraction: float, seed: int) -> int:
    """Move a stratified ``fraction`` of the real training images to the validation split.

    Done once per store: if it already has validation images nothing moves. It must happen
    before augmenting, so that no synthetic image is derived from a validation image (plans
    only take real training images as sources). Test images are never touched. Each grade
    keeps at least one training image.

    Returns:
        The number of images moved.
    """
    if fraction <= 0 or store.list(split=Split.VAL):
        return 0
    rng = random.Random(seed)
    moved = 0
    for grade in Grade:
        images = store.list(split=Split.TRAIN, origin=Origin.REAL, grade=grade)
        count = min(round(len(images) * fraction), max(len(images) - 1, 0))
        for image in rng.sample(images, count):
            _move(store, image, Split.VAL)
            moved += 1
    _log.info("validation_carved", images=moved, fraction=fraction, seed=seed)
    return moved


def _move(store: ImageStore, image: FundusImage, split: Split) -> None:
    data = store.get(image.id)
    moved = image.model_copy(update={"split": split, "key": storage_key(split, image.grade, image.id)})
    store.put(moved, data, overwrite=True)
