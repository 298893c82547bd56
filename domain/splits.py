"""A stratified, seeded validation split of real images that keeps patient groups whole (pure)."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence

from medaug.domain.grades import Grade
from medaug.domain.images import FundusImage


def split_validation(
    images: Sequence[FundusImage], fraction: float, seed: int
) -> tuple[list[FundusImage], list[FundusImage]]:
    """``images`` parted into (training, validation): a stratified ``fraction`` of the groups (a
    patient's two eyes move together, under their most severe grade), drawn with ``seed``, each
    grade keeping at least one training image. The same images, fraction and seed always give
    the same parts."""
    if fraction <= 0:
        return list(images), []
    rng = random.Random(seed)
    chosen: set[str] = set()
    for units in _units_by_grade(list(images)):
        count = min(round(len(units) * fraction), max(len(units) - 1, 0))
        for unit in rng.sample(units, count):
            chosen.update(image.id for image in unit)
    return [i for i in images if i.id not in chosen], [i for i in images if i.id in chosen]


def _units_by_grade(images: list[FundusImage]) -> list[list[list[FundusImage]]]:
    """Per grade (0-4), the groups whose most severe grade it is; an ungrouped image is its own group.

    Within a grade, groups keep the order of their first image in ``images`` sorted by grade.
    """
    members: dict[str, list[FundusImage]] = defaultdict(list)
    for image in images:
        if image.group is not None:
            members[image.group].append(image)
    per_grade: dict[Grade, list[list[FundusImage]]] = {grade: [] for grade in Grade}
    seen: set[str] = set()
    for image in sorted(images, key=lambda i: int(i.grade)):
        if image.group is None:
            per_grade[image.grade].append([image])
        elif image.group not in seen:
            seen.add(image.group)
            unit = members[image.group]
            per_grade[max(i.grade for i in unit)].append(unit)
    return [per_grade[grade] for grade in Grade]
