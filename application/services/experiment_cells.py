"""The cell machinery both experiment protocols share.

Holdout and k-fold are two strategies over it: each decides which images a cell trains, selects
and is tested on (``CellData``) and hands its cells to the task graph (``experiment_graph``); both augment an arm
through ``augment_arm`` (its generators trained first where they learn, its images screened where
its screen says so) and summarise and compare cells with the same functions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import structlog

from medaug.application.errors import StoreError
from medaug.application.ports import Evaluator, ImageGenerator, ImageStore, ProgressSink, RunRepository, SyntheticScreen
from medaug.application.services.augment import augment
from medaug.application.services.cells import external_images
from medaug.application.services.experiment_job import ExperimentJob, GeneratorScope, ScreenFactory
from medaug.application.services.quality import screen_acceptance
from medaug.application.services.train_generator import train_generator
from medaug.domain import AugmentationPlan, FundusImage
from medaug.domain.experiment import (
    METRIC_RANGES,
    Arm,
    CellKey,
    CellResult,
    Comparison,
    ExperimentSpec,
    ExternalResult,
    Summary,
)
from medaug.domain.quality import ScreenAcceptance

_log = structlog.get_logger(__name__)

SUMMARY_METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "quadratic_kappa", "loss")


@dataclass(frozen=True)
class CellData:
    """The images one cell trains on, selects on and is tested on."""

    train: tuple[FundusImage, ...]
    val: tuple[FundusImage, ...]
    test: tuple[FundusImage, ...]


@dataclass(frozen=True)
class ProtocolRun:
    """What a protocol hands back: every cell, and the result fields only that protocol fills
    (statistics, folds, acceptance of screened arms)."""

    cells: tuple[CellResult, ...]
    fields: Mapping[str, object]


def ready_generator(
    job: ExperimentJob, name: str, arm: Arm, progress: ProgressSink, scope: GeneratorScope | None = None
) -> ImageGenerator:
    """The generator, trained first if it learns: on the store's training split, or within a
    fold (``scope``) on that fold's training images only, with checkpoints of its own."""
    if scope is None:
        trainer = job.generator_trainers(name, arm)
        if trainer is not None:
            train_generator(job.store, trainer, resume=True, progress=progress)
        return job.generators(name, arm)
    trainer = job.generator_trainers(name, arm, scope.name)
    if trainer is not None:
        train_generator(job.store, trainer, resume=True, progress=progress, only=scope.images)
    return job.generators(name, arm, scope.name)


def built_generator(job: ExperimentJob, name: str, arm: Arm, scope: GeneratorScope | None = None) -> ImageGenerator:
    """The generator as its (finished) training left it, built without training."""
    return job.generators(name, arm) if scope is None else job.generators(name, arm, scope.name)


def augment_arm(
    job: ExperimentJob,
    arm: Arm,
    plan: AugmentationPlan,
    progress: ProgressSink,
    scope: GeneratorScope | None = None,
    *,
    trained: bool = False,
) -> tuple[ScreenAcceptance, ...] | None:
    """Make an arm's planned images with its (ready) generators, screened where the job's screen
    says so (within a fold, against that fold's training images only). ``trained``: the arm's
    generators were trained already (by tasks of their own), so they are only built here.

    Returns:
        The screen's acceptance per grade, or None when the arm's images are not screened.
    """
    generators = {
        name: built_generator(job, name, arm, scope) if trained else ready_generator(job, name, arm, progress, scope)
        for name in arm.generators
    }
    screen = _screen(job, arm, scope)
    augment(
        job.store, plan, generators, size=job.image_size(job.store), progress=progress, screen=screen,
        max_attempts=job.max_attempts,
    )  # fmt: skip
    if screen is None:
        return None
    return screen_acceptance(job.store, plan, max_attempts=job.max_attempts)


def acceptance_of(
    job: ExperimentJob, arm: Arm, plan: AugmentationPlan, scope: GeneratorScope | None = None
) -> tuple[ScreenAcceptance, ...] | None:
    """The screen's acceptance per grade of a plan made earlier, read from the stored images'
    provenance (None when the arm's images are not screened)."""
    if _screen(job, arm, scope) is None:
        return None
    return screen_acceptance(job.store, plan, max_attempts=job.max_attempts)


def screens_once(factory: ScreenFactory) -> ScreenFactory:
    """``factory``, building each (store, arm, scope)'s screen once: a screen may load a model, and
    a run asks for it both to screen an arm's images and to read their acceptance back."""
    made: dict[tuple[str, str, str | None], SyntheticScreen | None] = {}

    def screens(store: ImageStore, arm: Arm, scope: GeneratorScope | None = None) -> SyntheticScreen | None:
        key = (store.location, arm.name, None if scope is None else scope.name)
        if key not in made:
            made[key] = factory(store, arm) if scope is None else factory(store, arm, scope)
        return made[key]

    return screens


def _screen(job: ExperimentJob, arm: Arm, scope: GeneratorScope | None) -> SyntheticScreen | None:
    return job.screens(job.store, arm) if scope is None else job.screens(job.store, arm, scope)


def read_back_cell(runs: RunRepository, key: CellKey) -> CellResult:
    cell = runs.load_cell(key)
    if cell is None:
        raise StoreError(f"{runs.location}: cell {key.slug} finished but its result is not there")
    return cell


def summarise(evaluator: Evaluator, values: Sequence[float], metric: str) -> Summary:
    """Mean and interval of one metric over runs, clipped to the metric's range (non-finite runs as NaN)."""
    return evaluator.summarise([_finite(v) for v in values]).within(*METRIC_RANGES[metric])


def summaries(
    spec: ExperimentSpec, cells: Sequence[CellResult], evaluator: Evaluator
) -> dict[str, dict[str, dict[str, Summary]]]:
    """``[arm][classifier][metric]``: each metric summarised over the cells of that arm and classifier."""
    out: dict[str, dict[str, dict[str, Summary]]] = {}
    for arm in spec.arms:
        for classifier in spec.classifiers:
            group = [c for c in cells if c.key.arm == arm.name and c.key.classifier == classifier]
            out.setdefault(arm.name, {})[classifier] = {
                metric: summarise(evaluator, [getattr(c.metrics, metric) for c in group], metric)
                for metric in SUMMARY_METRICS
            }
    return out


def _finite(value: float) -> float:
    return value if math.isfinite(value) else float("nan")


def comparisons(spec: ExperimentSpec, cells: Sequence[CellResult], evaluator: Evaluator) -> list[Comparison]:
    """Each arm against the baseline per classifier, paired run by run on the cells' predictions."""
    baseline = spec.baseline
    if baseline is None:
        return []
    out = []
    for arm in spec.arms:
        if arm.name == baseline:
            continue
        for classifier in spec.classifiers:
            pairs = paired(cells, arm.name, baseline, classifier)
            if pairs:
                out.append(
                    evaluator.compare(
                        arm.name, baseline, classifier, [a.predictions for a, _ in pairs], [b.predictions for _, b in pairs]
                    )
                )
    return out


def paired(
    cells: Sequence[CellResult], arm: str, baseline: str, classifier: str
) -> list[tuple[CellResult, CellResult]]:
    """Cells of ``arm`` paired with the baseline's of the same seed (and fold and repeat)."""

    def run(c: CellResult) -> tuple[int, int, int]:
        return (c.key.seed, c.key.repeat or 0, c.key.fold or 0)

    by_run = {run(c): c for c in cells if c.key.arm == baseline and c.key.classifier == classifier}
    return [
        (c, by_run[run(c)])
        for c in sorted(cells, key=run)
        if c.key.arm == arm and c.key.classifier == classifier and run(c) in by_run
    ]


def external_results(job: ExperimentJob, cells: Sequence[CellResult]) -> dict[str, ExternalResult]:
    """Per external set: summaries of every arm x classifier over its runs, mean per-grade recall,
    and each arm against the baseline, paired run by run on the set's images."""
    spec, evaluator = job.spec, job.evaluator
    out = {}
    for name, external in job.external.items():
        scored = [c for c in cells if name in c.external]
        table: dict[str, dict[str, dict[str, Summary]]] = {}
        recall: dict[str, dict[str, dict]] = {}
        for arm in spec.arms:
            for classifier in spec.classifiers:
                group = [c for c in scored if c.key.arm == arm.name and c.key.classifier == classifier]
                metrics = [c.external_metrics[name] for c in group]
                table.setdefault(arm.name, {})[classifier] = {
                    metric: summarise(evaluator, [getattr(m, metric) for m in metrics], metric)
                    for metric in SUMMARY_METRICS
                }
                if metrics:
                    recall.setdefault(arm.name, {})[classifier] = {
                        grade: sum(m.recall[grade] for m in metrics) / len(metrics) for grade in metrics[0].recall
                    }
        compared = []
        if spec.baseline is not None:
            for arm in spec.arms:
                if arm.name == spec.baseline:
                    continue
                for classifier in spec.classifiers:
                    pairs = paired(scored, arm.name, spec.baseline, classifier)
                    if pairs:
                        compared.append(evaluator.compare(
                            arm.name, spec.baseline, classifier,
                            [a.external[name] for a, _ in pairs], [b.external[name] for _, b in pairs],
                        ))  # fmt: skip
        out[name] = ExternalResult(
            name=name,
            description=external.description,
            images=len(external_images(external.store)),
            summaries=table,
            recall=recall,
            comparisons=tuple(compared),
        )
    return out
