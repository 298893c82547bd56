"""The experiment service, through fakes: arms built once, cells resumable, paired comparisons."""

from __future__ import annotations

import dataclasses

import pytest

from medaug.application.errors import ConfigError
from medaug.application.services.experiment_job import ExperimentJob
from medaug.domain import DomainError, Origin, PlanPolicy, Split
from medaug.domain.experiment import Arm, ExperimentSpec, Summary
from tests.fakes import (
    EchoGenerator,
    GradeOracleTrainer,
    InMemoryImageStore,
    MemoryRuns,
    SimpleEvaluator,
    fake_job,
    populated,
    run_with,
)

TRAIN = {0: 30, 1: 5, 2: 30, 3: 15, 4: 10}


def spec(**changes: object) -> ExperimentSpec:
    base = dict(
        arms=(Arm(name="none"), Arm(name="classic", generators=("echo",)), Arm(name="more", generators=("echo",))),
        classifiers=("oracle",), seeds=(0, 1), policy=PlanPolicy.balance_largest(), val_fraction=0.2,
        baseline="classic",
    )
    return ExperimentSpec(**{**base, **changes})


def context(store, trainer, runs, generator=None) -> ExperimentJob:  # type: ignore[no-untyped-def]
    return fake_job(spec(), store, trainer, runs, generator=generator)


run = run_with


@pytest.fixture
def store() -> InMemoryImageStore:
    return populated(TRAIN)


def test_runs_every_cell_and_compares_with_classic(store: InMemoryImageStore) -> None:
    runs, trainer = MemoryRuns(), GradeOracleTrainer()
    result = run(spec(), context(store, trainer, runs))
    assert [c.key.slug for c in result.cells] == [
        "none__oracle__s0", "none__oracle__s1", "classic__oracle__s0", "classic__oracle__s1",
        "more__oracle__s0", "more__oracle__s1"]
    assert {(c.arm, c.baseline) for c in result.comparisons} == {("none", "classic"), ("more", "classic")}
    assert result.summaries["classic"]["oracle"]["accuracy"].n == 2
    assert runs.result == result
    # The real-only arm trains on fewer images than the augmented arms.
    sizes = [len(r.train) for r in trainer.requests]
    assert sizes[0] < sizes[2] and sizes[2] == sizes[4]


def test_validation_is_carved_before_augmenting_and_never_a_source(store: InMemoryImageStore) -> None:
    trainer = GradeOracleTrainer()
    run(spec(), context(store, trainer, MemoryRuns()))
    val_ids = {r.id for r in store.list(split=Split.VAL)}
    assert val_ids and all(r.origin is Origin.REAL for r in store.list(split=Split.VAL))
    sources = {s for r in store.list(origin=Origin.SYNTHETIC) for s in r.provenance.source_ids}
    assert not sources & val_ids
    request = trainer.requests[0]
    assert {i.id for i in request.val} == val_ids
    assert not {i.id for i in request.train} & val_ids
    assert all(i.split is Split.TEST for i in request.test)


def test_a_killed_experiment_resumes_from_finished_cells(store: InMemoryImageStore) -> None:
    runs = MemoryRuns()
    with pytest.raises(KeyboardInterrupt):
        run(spec(), context(store, GradeOracleTrainer(fail_on_call=4), runs))
    assert len(runs.cells) == 3
    trainer = GradeOracleTrainer()
    generator = EchoGenerator()
    result = run(spec(), context(store, trainer, runs, generator))
    assert len(trainer.requests) == 3  # only the unfinished cells were trained
    assert generator.calls == []  # and no image was generated twice
    assert len(result.cells) == 6


def test_each_arm_is_augmented_once_and_balanced(store: InMemoryImageStore) -> None:
    generator = EchoGenerator()
    run(spec(), context(store, GradeOracleTrainer(), MemoryRuns(), generator))
    for arm in ("classic", "more"):
        train = store.list(split=Split.TRAIN, origin=Origin.REAL) + store.list(augmentation=arm)
        counts = {g: sum(1 for i in train if int(i.grade) == g) for g in range(5)}
        assert len(set(counts.values())) == 1
    assert len(generator.calls) == len(set(generator.calls))


def test_run_folder_of_another_experiment_is_refused(store: InMemoryImageStore) -> None:
    runs = MemoryRuns()
    run(spec(), context(store, GradeOracleTrainer(), runs))
    other = context(store, GradeOracleTrainer(), runs)
    object.__setattr__(other, "fingerprint", "f2")
    with pytest.raises(ConfigError, match="different experiment"):
        run(spec(), other)


def test_bad_definitions_fail_before_any_work(store: InMemoryImageStore) -> None:
    trainer, generator = GradeOracleTrainer(), EchoGenerator()
    with pytest.raises(ConfigError, match="unknown classifier"):
        run(spec(classifiers=("svm",)), context(store, trainer, MemoryRuns(), generator))
    with pytest.raises(DomainError, match="cannot balance"):
        run(spec(policy=PlanPolicy.balance_total(20)), context(store, trainer, MemoryRuns(), generator))
    assert trainer.requests == [] and generator.calls == []
    assert store.list(origin=Origin.SYNTHETIC) == []


def test_empty_store_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="no real training images"):
        run(spec(), context(InMemoryImageStore(), GradeOracleTrainer(), MemoryRuns()))


def test_no_baseline_means_no_comparisons(store: InMemoryImageStore) -> None:
    result = run(spec(baseline=None), context(store, GradeOracleTrainer(), MemoryRuns()))
    assert result.comparisons == ()


class _WideIntervalEvaluator(SimpleEvaluator):
    """Intervals wider than any metric's range, as a t-interval over two seeds can be."""

    def summarise(self, values):  # type: ignore[no-untyped-def]
        mean = sum(values) / len(values)
        return Summary(n=len(values), mean=mean, std=0.5, ci_low=mean - 3, ci_high=mean + 3)


def test_intervals_are_clipped_to_what_each_metric_can_take(store: InMemoryImageStore) -> None:
    ctx = context(store, GradeOracleTrainer(), MemoryRuns())
    ctx = dataclasses.replace(ctx, evaluator=_WideIntervalEvaluator())
    summaries = run(spec(), ctx).summaries["classic"]["oracle"]
    assert (summaries["accuracy"].ci_low, summaries["accuracy"].ci_high) == (0.0, 1.0)
    assert (summaries["quadratic_kappa"].ci_low, summaries["quadratic_kappa"].ci_high) == (-1.0, 1.0)
    assert summaries["loss"].ci_low == 0.0 and summaries["loss"].ci_high > 1.0


class _OddSeedScreen:
    """Rejects images with an odd seed (a deterministic stand-in for an off-label image)."""

    name = "odd-seed"

    def screen(self, requests, results):  # type: ignore[no-untyped-def]
        from medaug.application.ports import ScreenVerdict

        return [ScreenVerdict(accepted=q.seed % 2 == 0, scores={"threshold": 0.5}) for q in requests]


def test_screened_arms_record_their_acceptance_per_grade_and_others_none(store: InMemoryImageStore) -> None:
    runs, trainer = MemoryRuns(), GradeOracleTrainer()
    screen = _OddSeedScreen()
    ctx = dataclasses.replace(
        context(store, trainer, runs), screens=lambda _store, arm: screen if arm.name == "more" else None, max_attempts=20
    )
    result = run(spec(), ctx)
    assert set(result.acceptance) == {"more"}
    rows = result.acceptance["more"]
    synthetic = store.list(origin=Origin.SYNTHETIC, augmentation="more")
    assert sum(r.accepted for r in rows) == len(synthetic) and all(r.threshold == 0.5 for r in rows)
    assert all(r.provenance.seed % 2 == 0 for r in synthetic)
    assert sum(r.judged for r in rows) > len(synthetic)  # odd seeds were rejected and made again
    unscreened = store.list(origin=Origin.SYNTHETIC, augmentation="classic")
    assert any(r.provenance.seed % 2 for r in unscreened)
