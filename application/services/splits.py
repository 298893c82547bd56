"""Splitting real images: a stratified validation split (patient groups kept whole) and subsets."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from typing import Protocol, TypeVar

import structlog

from medaug.application.ports import ImageStore
from medaug.domain import FundusImage, Grade, Origin, Split
from medaug.domain.images import storage_key
from medaug.domain.splits import split_validation

_log = structlog.get_logger(__name__)


def carve_validation(store: ImageStore, fraction: float, seed: int) -> int:
    """Move a stratified ``fraction`` of the real training images to the validation split.

    Done once per store: if it already has validation images nothing moves. It must happen
    before augmenting, so that no synthetic image is derived from a validation image (plans
    only take real training images as sources). Test images are never touched. Each grade
    keeps at least one training image. Images of one group (a patient's two eyes) move
    together: a group counts once, under its most severe grade.

    Returns:
        The number of images moved.
    """
    if fraction <= 0 or store.list(split=Split.VAL):
        return 0
    _, validation = split_validation(store.list(split=Split.TRAIN, origin=Origin.REAL), fraction, seed)
    for image in validation:
        _move(store, image, Split.VAL)
    moved = len(validation)
    _log.info("validation_carved", images=moved, fraction=fraction, seed=seed)
    return moved


class _Stratifiable(Protocol):
    @property
    def grade(self) -> Grade: ...

    @property
    def split(self) -> Split: ...


_T = TypeVar("_T", bound=_Stratifiable)


def stratified_subset(items: Sequence[_T], n: int, seed: int) -> list[_T]:
    """``n`` of ``items`` drawn with ``seed``, each (split, grade) stratum in proportion to its size.

    Shares are rounded by largest remainder, so exactly ``min(n, len(items))`` come back, in
    their original order. The same items, ``n`` and ``seed`` always give the same subset.
    """
    if n >= len(items):
        return list(items)
    strata: dict[tuple[str, int], list[int]] = defaultdict(list)
    for index, item in enumerate(items):
        strata[(item.split.value, int(item.grade))].append(index)
    keys = sorted(strata)
    exact = {key: n * len(strata[key]) / len(items) for key in keys}
    shares = {key: int(exact[key]) for key in keys}
    by_remainder = sorted(keys, key=lambda key: (-(exact[key] - shares[key]), -len(strata[key]), key))
    for key in by_remainder[: n - sum(shares.values())]:
        shares[key] += 1
    rng = random.Random(seed)
    chosen = sorted(index for key in keys for index in rng.sample(strata[key], shares[key]))
    return [items[index] for index in chosen]


def _move(store: ImageStore, image: FundusImage, split: Split) -> None:
    data = store.get(image.id)
    moved = image.model_copy(update={"split": split, "key": storage_key(split, image.grade, image.id)})
    store.put(moved, data, overwrite=True)
