"""The built-in synthetic fundus data set ("phantom"): known ground truth on a fresh machine.

Image ``i`` of a set is drawn from ``(seed, i)`` and its grade alone, so it does not depend on
how many images the set has; grades and splits are assigned in index order so that the first
``n`` items of a larger set are exactly the items of a set of ``n`` (re-ingesting a bigger set
into the same store only adds images, it never relabels one).
"""

from __future__ import annotations

import math

import numpy as np

from medaug.adapters.datasets.phantom_drawing import draw_phantom
from medaug.adapters.png import encode_png
from medaug.application.errors import ConfigError, InputError
from medaug.application.ports import ScanResult, SourceItem
from medaug.domain import Grade, Split

IDRID_TRAINING_COUNTS = (134, 20, 136, 74, 49)
"""Images per grade 0-4 in the IDRiD grading training set (413 images)."""

MIN_PER_SPLIT = 2
"""Every grade gets at least this many images in each split (when the set has a test split)."""

BLOCK = 100
"""Grades are dealt in shuffled blocks of this many images with IDRiD's proportions."""

_MAX_SIZE = 4096


class PhantomSource:
    """A DatasetSource of ``n`` procedurally drawn fundus photographs with IDRiD-like imbalance.

    Grades follow the International Clinical DR scale through their lesions (see
    ``adapters.datasets.phantom_drawing``). The first ``5 * 2 * MIN_PER_SPLIT`` images hold every
    grade equally often, so every grade has at least ``MIN_PER_SPLIT`` images in each split from
    n = 20 on; later images come in shuffled blocks with IDRiD's training proportions. Each grade is
    split into train and test in index order at ``test_fraction`` (stratified by grade).

    Args:
        n: number of images (train + test), >= 1.
        seed: the seed every random choice flows from.
        size: frame height in pixels, >= 16 (the frame is 4:3, the field about ``size`` wide).
        test_fraction: share of each grade in the test split, 0 <= f < 1.

    Raises:
        ConfigError: an argument is out of range.
    """

    def __init__(self, n: int, *, seed: int, size: int = 256, test_fraction: float = 0.2) -> None:
        _check_int("n", n, 1, None)
        _check_int("size", size, 16, _MAX_SIZE)
        _check_int("seed", seed, None, None)
        if (
            isinstance(test_fraction, bool)
            or not isinstance(test_fraction, int | float)
            or not (0.0 <= test_fraction < 1.0)
        ):
            raise ConfigError(f"phantom: test_fraction must be in [0, 1), got {test_fraction!r}")
        self._n, self._seed, self._size, self._test_fraction = n, seed, size, float(test_fraction)

    @property
    def name(self) -> str:
        """``"phantom"``, the provenance generator of its images."""
        return "phantom"

    def scan(self) -> ScanResult:
        """The ``n`` items, ids ``phantom-00000``..., in index order (no pixels are drawn)."""
        grades = assign_grades(self._n, self._seed)
        splits = assign_splits(grades, self._test_fraction, self._seed)
        items = tuple(
            SourceItem(
                id=_item_id(i),
                grade=Grade(int(grade)),
                split=split,
                locator=str(i),
                original_name=f"{_item_id(i)}.png",
            )
            for i, (grade, split) in enumerate(zip(grades, splits, strict=True))
        )
        return ScanResult(items=items)

    def read(self, item: SourceItem) -> bytes:
        """Draw the item's image (from the set's seed, its index and its grade) as PNG bytes.

        Raises:
            InputError: the item's locator is not an index of this set.
        """
        index = _parse_index(item, self._n)
        return encode_png(draw_phantom(self._seed, index, int(item.grade), self._size).pixels)


def assign_grades(n: int, seed: int) -> list[int]:
    """Grades of images ``0..n-1``; the grades of the first k images do not depend on n.

    A leading block holds every grade ``2 * MIN_PER_SPLIT`` times; then come blocks of
    ``BLOCK`` images with IDRiD's training proportions. Each block is shuffled by a seeded
    generator, so the order is random while the proportions hold closely at every n.
    """
    rng = np.random.default_rng(seed % 2**64)
    blocks = [rng.permutation(np.repeat(np.arange(len(Grade)), 2 * MIN_PER_SPLIT))]
    idrid = np.repeat(np.arange(len(Grade)), _proportional_counts(IDRID_TRAINING_COUNTS, BLOCK))
    while sum(len(b) for b in blocks) < n:
        blocks.append(rng.permutation(idrid))
    return np.concatenate(blocks)[:n].astype(int).tolist()


def _proportional_counts(weights: tuple[int, ...], total: int) -> list[int]:
    """``total`` split in proportion to ``weights`` by largest remainders."""
    exact = np.asarray(weights, dtype=float) * total / sum(weights)
    counts = np.floor(exact).astype(int)
    counts[np.argsort(counts - exact, kind="stable")[: total - counts.sum()]] += 1
    return counts.tolist()


def assign_splits(grades: list[int], test_fraction: float, seed: int) -> list[Split]:
    """Train/test split, stratified by grade, decided in index order (so stable as n grows).

    Within each grade the c-th image goes to test when the target test count for c images
    rises; the target is ``floor(c * f + phase)`` (a seeded phase per grade), but at least
    ``MIN_PER_SPLIT`` test images and at least ``MIN_PER_SPLIT`` training images once a grade
    has ``2 * MIN_PER_SPLIT`` images.
    """
    phases = np.random.default_rng([seed % 2**64, 1]).random(len(Grade)).tolist()
    seen = [0] * len(Grade)
    in_test = [0] * len(Grade)
    splits = []
    for grade in grades:
        seen[grade] += 1
        target = _test_target(seen[grade], test_fraction, phases[grade])
        is_test = target > in_test[grade]
        in_test[grade] += is_test
        splits.append(Split.TEST if is_test else Split.TRAIN)
    return splits


def _test_target(count: int, fraction: float, phase: float) -> int:
    """How many of a grade's first ``count`` images are in the test split (steps of 0 or 1)."""
    if fraction == 0.0:
        return 0
    proportional = math.floor(count * fraction + phase)
    at_least = min(MIN_PER_SPLIT, count // 2)
    at_most = count - min(MIN_PER_SPLIT, (count + 1) // 2)
    return min(max(proportional, at_least), at_most)


def _item_id(index: int) -> str:
    return f"phantom-{index:05d}"


def _parse_index(item: SourceItem, n: int) -> int:
    try:
        index = int(item.locator)
    except ValueError:
        index = -1
    if not 0 <= index < n:
        raise InputError(
            f"{item.original_name}: locator {item.locator!r} is not an image index of this phantom set (0-{n - 1})"
        )
    return index


def _check_int(name: str, value: object, low: int | None, high: int | None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"phantom: {name} must be an integer, got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f">= {low}" if high is None else f"between {low} and {high}"
        raise ConfigError(f"phantom: {name} must be {bounds}, got {value}")
