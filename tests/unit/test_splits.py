"""Validation carving keeps patient groups whole; stratified subsets are exact and seeded."""

from __future__ import annotations

from collections import Counter

import pytest

from medaug.application.ports import SourceItem
from medaug.application.services.splits import carve_validation, stratified_subset
from medaug.domain import FundusImage, Grade, Provenance, Split
from medaug.domain.images import storage_key
from tests.fakes import InMemoryImageStore, tiny_png


def _record(image_id: str, grade: int, group: str | None) -> FundusImage:
    return FundusImage(id=image_id, key=storage_key(Split.TRAIN, Grade(grade), image_id), grade=Grade(grade),
                       split=Split.TRAIN, provenance=Provenance(generator="eyepacs"), group=group)


def _two_eyed_store(patients: int) -> InMemoryImageStore:
    store = InMemoryImageStore()
    for p in range(patients):
        left, right = p % 5, (p * 3 + 1) % 5  # the two eyes often differ in grade
        store.put(_record(f"p{p:02d}_left", left, f"p{p:02d}"), tiny_png(2 * p))
        store.put(_record(f"p{p:02d}_right", right, f"p{p:02d}"), tiny_png(2 * p + 1))
    return store


@pytest.mark.parametrize("seed", range(6))
def test_validation_carving_moves_both_eyes_of_a_patient_together(seed: int) -> None:
    store = _two_eyed_store(30)
    moved = carve_validation(store, 0.3, seed)
    assert moved > 0 and moved % 2 == 0
    splits: dict[str | None, set[Split]] = {}
    for record in store.list():
        splits.setdefault(record.group, set()).add(record.split)
    assert all(len(s) == 1 for s in splits.values())
    assert all(store.list(split=Split.TRAIN, grade=Grade(g)) for g in range(5))


def test_ungrouped_images_are_carved_per_grade_as_before() -> None:
    store = InMemoryImageStore()
    for i in range(50):
        store.put(_record(f"img{i:02d}", i % 5, None), tiny_png(i))
    assert carve_validation(store, 0.2, 0) == 10
    assert Counter(int(r.grade) for r in store.list(split=Split.VAL)) == {g: 2 for g in range(5)}


def _items(counts: dict[tuple[Split, int], int]) -> list[SourceItem]:
    return [
        SourceItem(id=f"{split.value}-{grade}-{i}", grade=Grade(grade), split=split, locator="", original_name="")
        for (split, grade), n in counts.items() for i in range(n)
    ]


def test_stratified_subset_keeps_proportions_and_is_seeded() -> None:
    items = _items({(Split.TRAIN, 0): 600, (Split.TRAIN, 2): 200, (Split.TRAIN, 4): 50, (Split.TEST, 0): 150})
    subset = stratified_subset(items, 100, seed=1)
    assert len(subset) == 100
    assert Counter((i.split, int(i.grade)) for i in subset) == {
        (Split.TRAIN, 0): 60, (Split.TRAIN, 2): 20, (Split.TRAIN, 4): 5, (Split.TEST, 0): 15}
    assert stratified_subset(items, 100, seed=1) == subset
    assert stratified_subset(items, 100, seed=2) != subset
    assert stratified_subset(items, 5000, seed=1) == items
