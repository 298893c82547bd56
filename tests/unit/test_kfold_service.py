"""The k-fold protocol through fakes: folds over every real image, per-fold augmentation sets,
resumable cells, pooled out-of-fold statistics, duplicates kept together, external sets."""

from __future__ import annotations

import pytest

from medaug.adapters.evaluation.folds import StratifiedGroupFolds
from medaug.application.services.experiment_job import DatasetStep, ExperimentJob
from medaug.application.services.kfold import fold_groups, kfold_images
from medaug.domain import Origin, PlanPolicy, Split
from medaug.domain.experiment import Arm, CellKey, ExperimentSpec
from medaug.domain.kfold import DuplicateGroup
from tests.conftest import real_record
from tests.fakes import (
    EchoGenerator,
    GradeOracleTrainer,
    InMemoryImageStore,
    MemoryRuns,
    fake_job,
    populate,
    populated,
    run_with,
    tiny_png,
)

TRAIN = {0: 30, 1: 6, 2: 20, 3: 10, 4: 8}


def kfold_spec(**changes: object) -> ExperimentSpec:
    base = dict(
        arms=(Arm(name="none"), Arm(name="classic", generators=("echo",))),
        classifiers=("oracle",), seeds=(0, 1), policy=PlanPolicy.balance_largest(),
        baseline="none", protocol="kfold", folds=3, repeats=2,
    )
    return ExperimentSpec(**{**base, **changes})


def context(store, trainer, runs, **changes) -> ExperimentJob:  # type: ignore[no-untyped-def]
    return fake_job(kfold_spec(), store, trainer, runs, **{"folds": StratifiedGroupFolds(), **changes})


run = run_with


@pytest.fixture
def store() -> InMemoryImageStore:
    return populated(TRAIN)


def test_holdout_slugs_are_unchanged_and_fold_slugs_carry_fold_and_repeat() -> None:
    assert CellKey(arm="classic", classifier="cnn", seed=0).slug == "classic__cnn__s0"
    assert CellKey(arm="classic", classifier="cnn", seed=0, fold=2, repeat=1).slug == "classic__cnn__s0__f2r1"


def test_every_real_image_is_tested_once_per_repeat_and_never_trained_on_in_its_fold(store) -> None:  # type: ignore[no-untyped-def]
    runs, trainer = MemoryRuns(), GradeOracleTrainer()
    result = run(kfold_spec(), context(store, trainer, runs))
    real = {i.id for i in store.list(origin=Origin.REAL)}
    assert len(result.cells) == 2 * 3 * 2 * 2
    assert result.test_images == len(real) == 94
    for repeat in (0, 1):
        tested = [i for a in result.folds if a.repeat == repeat for i in a.test_ids]
        assert sorted(tested) == sorted(real)
    for request in trainer.requests:
        assert not {i.id for i in request.test} & {i.id for i in request.train}
    # The store keeps its published split: nothing was moved or relabelled.
    assert len(store.list(split=Split.TEST)) == 20
    assert result.folds[0].test_ids != result.folds[3].test_ids  # repeats draw differently


def test_each_fold_augments_from_its_training_part_into_its_own_set(store) -> None:  # type: ignore[no-untyped-def]
    runs, trainer = MemoryRuns(), GradeOracleTrainer()
    result = run(kfold_spec(repeats=1), context(store, trainer, runs))
    for assignment in result.folds:
        synthetic = store.list(origin=Origin.SYNTHETIC, augmentation=f"classic-{assignment.scope}")
        assert synthetic
        sources = {s for image in synthetic for s in image.provenance.source_ids}
        assert not sources & set(assignment.test_ids)
    classic = [r for r in trainer.requests if any(i.origin is Origin.SYNTHETIC for i in r.train)]
    for request in classic:
        assert len({i.augmentation for i in request.train if i.origin is Origin.SYNTHETIC}) == 1


def test_fold_generators_and_screens_are_scoped_to_the_fold_training_images(store) -> None:  # type: ignore[no-untyped-def]
    named, screened = [], []

    def scoped(name, arm, scope):  # type: ignore[no-untyped-def]
        named.append(scope)
        return EchoGenerator()

    def screen(store, arm, scope):  # type: ignore[no-untyped-def]
        screened.append(scope)
        return None

    job = context(store, GradeOracleTrainer(), MemoryRuns(), generators=scoped, screens=screen)
    result = run(kfold_spec(repeats=1), job)
    assert named == [s.name for s in screened] == ["f0r0", "f1r0", "f2r0"]
    for scope, assignment in zip(screened, result.folds, strict=True):
        assert scope.images and not {i.id for i in scope.images} & set(assignment.test_ids)


def test_cells_resume_one_by_one(store) -> None:  # type: ignore[no-untyped-def]
    runs = MemoryRuns()
    with pytest.raises(KeyboardInterrupt):
        run(kfold_spec(), context(store, GradeOracleTrainer(fail_on_call=5), runs))
    assert len(runs.cells) == 4
    trainer = GradeOracleTrainer()
    result = run(kfold_spec(), context(store, trainer, runs))
    assert len(trainer.requests) == 24 - 4 and len(result.cells) == 24


def test_pooled_statistics_and_corrected_comparison(store) -> None:  # type: ignore[no-untyped-def]
    result = run(kfold_spec(), context(store, GradeOracleTrainer(), MemoryRuns()))
    summary = result.summaries["classic"]["oracle"]["accuracy"]
    assert summary.n == 4  # pooled out-of-fold predictions per (repeat, seed)
    (comparison,) = result.kfold_comparisons
    assert (comparison.arm, comparison.baseline) == ("classic", "none")
    assert len(comparison.differences) == 3 * 2 * 2
    assert comparison.accuracy_test.n == 12
    assert comparison.accuracy_test.n_test == pytest.approx(94 / 3)
    assert comparison.accuracy_test.n_train == pytest.approx(94 * 2 / 3)
    assert comparison.accuracy_test.mean > 0  # the augmented arm trains on more images
    assert result.pooled_intervals["none"]["oracle"]["accuracy"][0] <= summary.mean + 1


def test_duplicates_share_a_fold_and_drop_removes_them(store) -> None:  # type: ignore[no-untyped-def]
    store.put(real_record("te-copy", 4, Split.TEST), tiny_png(7))
    group = DuplicateGroup(image_ids=("te-copy", "tr-0-007"), grades=(4, 0), kind="exact")

    class Finder:
        def find(self, store, images):  # type: ignore[no-untyped-def]
            return [group]

    result = run(kfold_spec(repeats=1), context(store, GradeOracleTrainer(), MemoryRuns(), duplicates=Finder()))
    assert result.duplicates == (group,) and group.conflicting
    (together,) = [a for a in result.folds if "te-copy" in a.test_ids]
    assert "tr-0-007" in together.test_ids
    dropped = run(
        kfold_spec(repeats=1, duplicates="drop"), context(store, GradeOracleTrainer(), MemoryRuns(), duplicates=Finder())
    )
    tested = {i for a in dropped.folds for i in a.test_ids}
    assert "te-copy" not in tested and "tr-0-007" not in tested


def test_groups_join_patients_and_copies() -> None:
    a = real_record("a", 0).model_copy(update={"group": "p1"})
    b = real_record("b", 1).model_copy(update={"group": "p1"})
    c, d = real_record("c", 2), real_record("d", 3)
    groups = fold_groups([a, b, c, d], [DuplicateGroup(image_ids=("b", "c"), grades=(1, 2), kind="near")])
    assert groups["a"] == groups["b"] == groups["c"] != groups["d"]
    agreeing = DuplicateGroup(image_ids=("c", "d"), grades=(2, 2), kind="exact")
    assert [i.id for i in kfold_images([a, b, c, d], [agreeing], "drop")] == ["a", "b", "c"]


def test_external_sets_are_predicted_by_every_cell(store) -> None:  # type: ignore[no-untyped-def]
    other = InMemoryImageStore()
    populate(other, {0: 3, 1: 2, 2: 2, 3: 1, 4: 1}, test_per_grade=1)
    ext = {"eyepacs": DatasetStep(store=other, description="eyepacs sample", seed=0)}
    result = run(kfold_spec(repeats=1), context(store, GradeOracleTrainer(), MemoryRuns(), external=ext))
    assert all(len(c.external["eyepacs"].image_ids) == 14 for c in result.cells)
    table = result.external["eyepacs"]
    assert table.images == 14
    assert table.summaries["classic"]["oracle"]["accuracy"].n == 6
    assert set(table.recall["none"]["oracle"]) == set(range(5))
    (comparison,) = table.comparisons
    assert len(comparison.per_seed_differences) == 6
