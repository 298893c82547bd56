"""plan_augmentation + augment through the real LocalImageStore and ClassicGenerator."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pytest

from medaug.adapters.generators.classic.config import ClassicConfig
from medaug.adapters.generators.classic.generator import ClassicGenerator
from medaug.adapters.png import decode_png
from medaug.adapters.stores.local import LocalImageStore
from medaug.application.errors import ConfigError
from medaug.application.ports import GenerationRequest, GenerationResult
from medaug.application.services.augment import augment, plan_augmentation
from medaug.domain import DomainError, Grade, Origin, PlanPolicy, Split
from tests.conftest import png_bytes, real_record

TRAIN_COUNTS = {0: 7, 1: 2, 2: 5, 3: 4, 4: 2}  # 20 real training images, imbalanced like IDRiD
TEST_COUNTS = {0: 2, 1: 1, 4: 1}
TOTAL = 36  # 8/7/7/7/7 per grade: 16 synthetic images
SIZE = 16


def _fill(store: LocalImageStore) -> None:
    seed = 0
    for split, counts in ((Split.TRAIN, TRAIN_COUNTS), (Split.TEST, TEST_COUNTS)):
        for grade, count in counts.items():
            for index in range(count):
                seed += 1
                store.put(real_record(f"{split.value}-g{grade}-{index}", grade, split), png_bytes(seed, SIZE))


@pytest.fixture
def store(tmp_path: Path) -> LocalImageStore:
    image_store = LocalImageStore(tmp_path / "store")
    _fill(image_store)
    return image_store


@pytest.fixture
def generator() -> ClassicGenerator:
    return ClassicGenerator(ClassicConfig(batch_size=3), device="cpu")


def _plan(store: LocalImageStore, total: int = TOTAL, seed: int = 7):  # type: ignore[no-untyped-def]
    return plan_augmentation(store, PlanPolicy.balance_total(total), seed=seed, augmentation="classic",
                             generators=["classic"])


def _snapshot(store: LocalImageStore, **filters) -> dict[str, tuple[object, bytes]]:  # type: ignore[no-untyped-def]
    return {r.id: (r, store.get(r.id)) for r in store.list(**filters)}


class _KilledAfter:
    """Wraps a generator and dies (like a killed process) once it has made ``batches`` batches."""

    def __init__(self, inner: ClassicGenerator, batches: int) -> None:
        self._inner, self._left = inner, batches
        self.name, self.needs_source, self.batch_size = inner.name, inner.needs_source, inner.batch_size

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        if self._left == 0:
            raise KeyboardInterrupt
        self._left -= 1
        return self._inner.generate(requests)


def test_augment_balances_the_training_split_to_the_target(store, generator) -> None:  # type: ignore[no-untyped-def]
    plan = _plan(store)
    report = augment(store, plan, {"classic": generator}, size=SIZE)
    assert (report.planned, report.added, report.already_present) == (16, 16, 0)
    per_grade = Counter(r.grade for r in store.list(split=Split.TRAIN))
    assert sum(per_grade.values()) == TOTAL
    assert max(per_grade.values()) - min(per_grade.values()) <= 1
    assert per_grade == Counter({Grade(g): n for g, n in plan.targets.items()})


def test_each_synthetic_image_has_provenance(store, generator) -> None:  # type: ignore[no-untyped-def]
    plan = _plan(store)
    augment(store, plan, {"classic": generator}, size=SIZE)
    jobs = {job.image_id: job for job in plan.jobs}
    synthetic = store.list(origin=Origin.SYNTHETIC)
    assert {r.id for r in synthetic} == set(jobs)
    for record in synthetic:
        [source_id] = record.provenance.source_ids
        source = store.record(source_id)
        assert (source.split, source.origin, source.grade) == (Split.TRAIN, Origin.REAL, record.grade)
        assert (record.split, record.augmentation) == (Split.TRAIN, "classic")
        assert record.provenance.generator == "classic"
        assert record.provenance.seed == jobs[record.id].seed
        assert record.provenance.parameters["preset"] == "thesis"
        assert record.provenance.parameters["operations"][-1]["op"] == "brightness"
        assert decode_png(store.get(record.id)).shape == (SIZE, SIZE, 3)
        replayed = generator.replay(store.get(source_id), record.provenance.parameters)
        assert replayed == store.get(record.id)


class _UnconditionalSampler:
    """Draws images from noise by grade: it never reads the plan's source image."""

    name, needs_source, batch_size = "sampler", False, 4

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        assert all(request.source is None for request in requests)
        return [GenerationResult(image_id=r.image_id, data=png_bytes(r.seed, SIZE), parameters={}) for r in requests]


def test_an_unconditional_sample_names_no_source_image(store) -> None:  # type: ignore[no-untyped-def]
    plan = plan_augmentation(store, PlanPolicy.balance_total(TOTAL), seed=7, augmentation="sampled",
                             generators=["sampler"])
    augment(store, plan, {"sampler": _UnconditionalSampler()}, size=SIZE)
    synthetic = store.list(origin=Origin.SYNTHETIC)
    assert len(synthetic) == TOTAL - sum(TRAIN_COUNTS.values())
    assert all(record.provenance.source_ids == () for record in synthetic)
    assert all(record.provenance.generator == "sampler" for record in synthetic)


def test_a_second_run_adds_nothing(store, generator) -> None:  # type: ignore[no-untyped-def]
    augment(store, _plan(store), {"classic": generator}, size=SIZE)
    before = _snapshot(store)
    report = augment(store, _plan(store), {"classic": generator}, size=SIZE)
    assert (report.added, report.already_present, report.removed_stale) == (0, 16, 0)
    assert _snapshot(store) == before


def test_a_run_killed_halfway_completes_on_rerun_without_duplicates(store, generator, tmp_path) -> None:  # type: ignore[no-untyped-def]
    plan = _plan(store)
    with pytest.raises(KeyboardInterrupt):
        augment(store, plan, {"classic": _KilledAfter(generator, batches=2)}, size=SIZE)
    assert len(store.list(origin=Origin.SYNTHETIC)) == 2 * generator.batch_size

    report = augment(store, _plan(store), {"classic": generator}, size=SIZE)
    assert (report.added, report.already_present) == (16 - 6, 6)
    ids = [r.id for r in store.list(origin=Origin.SYNTHETIC)]
    assert len(ids) == len(set(ids)) == 16

    uninterrupted = LocalImageStore(tmp_path / "uninterrupted")
    _fill(uninterrupted)
    augment(uninterrupted, _plan(uninterrupted), {"classic": generator}, size=SIZE)
    assert _snapshot(store, origin=Origin.SYNTHETIC) == _snapshot(uninterrupted, origin=Origin.SYNTHETIC)


def test_test_split_is_untouched(store, generator) -> None:  # type: ignore[no-untyped-def]
    before = _snapshot(store, split=Split.TEST)
    plan = _plan(store)
    augment(store, plan, {"classic": generator}, size=SIZE)
    assert _snapshot(store, split=Split.TEST) == before
    assert not {source for job in plan.jobs for source in job.source_ids} & set(before)


def test_an_impossible_target_is_a_domain_error(store) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DomainError, match="grade 0 .* already has 7 real training images"):
        _plan(store, total=20)


def test_a_changed_seed_replaces_the_old_set(store, generator) -> None:  # type: ignore[no-untyped-def]
    augment(store, _plan(store, seed=1), {"classic": generator}, size=SIZE)
    report = augment(store, _plan(store, seed=2), {"classic": generator}, size=SIZE)
    assert report.added + report.already_present == 16
    assert report.removed_stale == report.added
    assert len(store.list(origin=Origin.SYNTHETIC)) == 16


def test_a_missing_generator_is_a_config_error_before_any_work(store) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match="needs generator"):
        augment(store, _plan(store), {}, size=SIZE)
    assert store.list(origin=Origin.SYNTHETIC) == []
