"""Holdout and k-fold are two strategies over one job and one cell machinery: a learned
generator is trained where the protocol says (the training split, or each fold's training part)
and its images are screened in both, each screened set recording its acceptance per grade."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import pytest

from medaug.adapters.evaluation.folds import StratifiedGroupFolds
from medaug.application.ports import GeneratorTrainingResult, LabelledImage, ProgressSink, ScreenVerdict
from medaug.application.services.experiment import run_experiment
from medaug.application.services.experiment_job import DatasetStep, ExperimentJob, GeneratorScope
from medaug.composition import jobs
from medaug.adapters.experiment_file import load_experiment_config
from medaug.composition.settings import Settings
from medaug.domain import Origin, PlanPolicy
from medaug.domain.experiment import Arm, ExperimentSpec
from tests.fakes import EchoGenerator, GradeOracleTrainer, InMemoryImageStore, MemoryRuns, SimpleEvaluator, populate

TRAIN = {0: 24, 1: 6, 2: 16, 3: 8, 4: 6}


class LearnedTrainer:
    """A generator trainer that remembers the images each training run saw."""

    name = "learned"

    def __init__(self, seen: list[set[str]]) -> None:
        self.seen = seen

    def train(self, images: Sequence[LabelledImage], *, progress: ProgressSink, resume: bool = True):  # type: ignore[no-untyped-def]
        self.seen.append({image.image_id for image in images})
        return GeneratorTrainingResult(generator=self.name, checkpoint="memory", steps=1, seconds=0.0)


class OddSeedScreen:
    """Rejects images made with an odd seed, a deterministic stand-in for off-label images."""

    name = "odd-seed"

    def screen(self, requests, results):  # type: ignore[no-untyped-def]
        return [ScreenVerdict(accepted=q.seed % 2 == 0, scores={"threshold": 0.5}) for q in requests]


def job_for(protocol: str, store: InMemoryImageStore, trained: list[set[str]], scopes: list) -> ExperimentJob:  # type: ignore[type-arg]
    spec = ExperimentSpec(
        arms=(Arm(name="none"), Arm(name="learned", generators=("learned",))), classifiers=("oracle",), seeds=(0,),
        policy=PlanPolicy.balance_largest(), baseline="none", protocol=protocol, folds=3, repeats=1,
    )  # fmt: skip
    screen = OddSeedScreen()

    def screens(_store, arm, scope: GeneratorScope | None = None):  # type: ignore[no-untyped-def]
        scopes.append(scope)
        return screen if "learned" in arm.generators else None

    return ExperimentJob(
        spec=spec, dataset=DatasetStep(store=store, description="test", seed=0), runs=MemoryRuns(),
        trainers={"oracle": GradeOracleTrainer()}, generators=lambda *args: EchoGenerator(),
        generator_trainers=lambda *args: LearnedTrainer(trained), evaluator=SimpleEvaluator(),
        image_size=lambda _: 4, folds=StratifiedGroupFolds(), screens=screens, max_attempts=20,
    )  # fmt: skip


@pytest.mark.parametrize("protocol", ["holdout", "kfold"])
def test_both_protocols_train_and_screen_a_learned_generator(protocol: str) -> None:
    store = InMemoryImageStore()
    populate(store, TRAIN)
    trained: list[set[str]] = []
    scopes: list[GeneratorScope | None] = []
    result = run_experiment(job_for(protocol, store, trained, scopes))

    sets = {"holdout": ["learned"], "kfold": ["learned-f0r0", "learned-f1r0", "learned-f2r0"]}[protocol]
    assert list(result.acceptance) == sets
    for name in sets:
        rows = result.acceptance[name]
        stored = store.list(origin=Origin.SYNTHETIC, augmentation=name)
        assert rows and sum(r.accepted for r in rows) == len(stored) > 0
        assert sum(r.judged for r in rows) > len(stored)  # odd seeds were rejected and made again
        assert all(r.provenance.seed % 2 == 0 for r in stored)
    if protocol == "holdout":
        assert scopes == [None] and len(trained) == 1
    else:
        tested = [set(a.test_ids) for a in result.folds]
        assert [s.name for s in scopes if s] == ["f0r0", "f1r0", "f2r0"] and len(trained) == 3
        for scope, images, test in zip(scopes, trained, tested, strict=True):
            assert scope is not None and not {i.id for i in scope.images} & test and not images & test


def test_a_resumed_kfold_run_reads_its_acceptance_back() -> None:
    store = InMemoryImageStore()
    populate(store, TRAIN)
    job = job_for("kfold", store, [], [])
    first = run_experiment(job)
    again = run_experiment(dataclasses.replace(job, generator_trainers=lambda *args: pytest.fail("trained again")))
    assert again.acceptance == first.acceptance


def test_the_composed_screen_of_a_fold_learns_from_that_fold_only(tmp_path: Path) -> None:
    (tmp_path / "tiny.toml").write_text(
        'name = "tiny"\n[dataset]\nkind = "phantom"\nn = 40\n'
        '[experiment]\nprotocol = "kfold"\nfolds = 2\narms = ["none", "diffusion"]\nbaseline = "none"\n'
        'classifiers = ["cnn"]\nseeds = [0]\n'
    )
    settings = Settings(work_dir=tmp_path / "work")
    job = jobs.experiment_job(load_experiment_config(tmp_path / "tiny.toml"), settings)
    store = InMemoryImageStore()
    populate(store, {0: 3, 1: 3})
    images = tuple(store.list(origin=Origin.REAL))[:4]
    diffusion, none = (arm for arm in reversed(job.spec.arms))
    screen = job.screens(store, diffusion, GeneratorScope(name="f0r0", images=images))
    assert screen is not None and screen._real == images  # noqa: SLF001 - the wiring is what is tested
    assert job.screens(store, diffusion)._real is None  # noqa: SLF001
    assert job.screens(store, none, GeneratorScope(name="f0r0", images=images)) is None
