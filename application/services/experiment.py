"""The experiment: build each arm's training set once, train every classifier x seed, compare.

Every step is resumable: augmentation skips images already in the store, and finished cells are
read back from the run repository instead of being trained again.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import structlog

from medaug.application.errors import ConfigError, StoreError
from medaug.application.ports import (
    ClassifierTrainer,
    DuplicateFinder,
    Evaluator,
    Executor,
    FoldSplitter,
    ImageGenerator,
    ImageStore,
    NullProgress,
    ProgressSink,
    Resources,
    RunRepository,
    SyntheticScreen,
    Tracker,
)
from medaug.application.services.augment import augment, plan_augmentation, training_set
from medaug.application.services.cells import CellAdapters, CellTask, external_images, run_cell_task, run_cells
from medaug.application.services.quality import screen_acceptance
from medaug.application.services.splits import carve_validation
from medaug.application.services.tracking import track_experiment
from medaug.domain import FundusImage, Origin, Split
from medaug.domain.experiment import (
    METRIC_RANGES,
    Arm,
    CellKey,
    CellResult,
    Comparison,
    ExperimentResult,
    ExperimentSpec,
    ExternalResult,
    ReferenceResult,
    Summary,
)
from medaug.domain.kfold import DuplicateGroup
from medaug.domain.quality import ScreenAcceptance

_log = structlog.get_logger(__name__)

SUMMARY_METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "quadratic_kappa", "loss")

GeneratorProvider = Callable[[str, Arm], ImageGenerator]
"""Builds a ready generator for an arm (training it first if it needs training)."""

ScreenProvider = Callable[[Arm], SyntheticScreen | None]
"""The screen an arm's generated images must pass, or None to keep them all."""


def _no_screen(arm: Arm) -> SyntheticScreen | None:
    return None


@dataclass(frozen=True)
class GeneratorScope:
    """The part of the data set a generator may learn from: one fold's training images.

    Attributes:
        name: the fold's short name (``f0r0``), part of the generator's checkpoint identity.
        images: the real images it trains on (never the fold's test images).
    """

    name: str
    images: tuple[FundusImage, ...]


ScopedGeneratorProvider = Callable[[str, Arm, GeneratorScope], ImageGenerator]
"""Builds a ready generator for an arm within one fold (trained on that fold's images only)."""


@dataclass(frozen=True)
class ExternalSet:
    """An external test set: a data set no classifier trains on, in its own store."""

    store: ImageStore
    description: str


@dataclass(frozen=True)
class ExperimentContext:
    """What an experiment runs against: the store, the adapters and where results go.

    Attributes:
        store: the image store holding the data set (real train/test images).
        dataset: a short description of the data set (shown in reports).
        image_size: the working size synthetic images are made at.
        generators: provides each arm's generators by name.
        trainers: classifier trainers by name.
        evaluator: metrics and paired statistics.
        runs: where cells and results are kept.
        fingerprint: identity of the full definition (spec + settings), for safe resuming.
        references: published figures shown beside the results.
        environment: versions and machine, for reproducibility.
        config_text: the exact configuration, for reproducibility.
        scoped_generators: builds each arm's generators within a fold (k-fold); None uses
            ``generators`` (only right for generators that do not learn from the images).
        folds: assigns images to folds (needed by a k-fold experiment).
        duplicates: finds copies among the real images (None: none are looked for).
        external: external test sets by name; every cell predicts each of them.
        executor: runs the classifier cells (None: one after another in this process).
        cell_resources: what each classifier cell needs (CPUs, GPUs) on a scheduler.
        tracker: records the experiment in a tracking tool (None: not tracked).
        screens: the screen of each arm's generated images (the likelihood screen), or none.
        max_attempts: images tried per planned image when a screen rejects them.
    """

    store: ImageStore
    dataset: str
    image_size: int
    generators: GeneratorProvider
    trainers: Mapping[str, ClassifierTrainer]
    evaluator: Evaluator
    runs: RunRepository
    fingerprint: str
    references: tuple[ReferenceResult, ...] = ()
    environment: Mapping[str, str] = field(default_factory=dict)
    config_text: str = ""
    scoped_generators: ScopedGeneratorProvider | None = None
    folds: FoldSplitter | None = None
    duplicates: DuplicateFinder | None = None
    external: Mapping[str, ExternalSet] = field(default_factory=dict)
    executor: Executor | None = None
    cell_resources: Resources = field(default_factory=Resources)
    tracker: Tracker | None = None
    screens: ScreenProvider = _no_screen
    max_attempts: int = 5


@dataclass(frozen=True)
class CellData:
    """The images one cell trains on, selects on and is tested on."""

    train: tuple[FundusImage, ...]
    val: tuple[FundusImage, ...]
    test: tuple[FundusImage, ...]


def validate_experiment(spec: ExperimentSpec, ctx: ExperimentContext) -> None:
    """Check everything that can be checked before any work starts.

    Raises:
        ConfigError: an unknown classifier, or a store without training or test images.
    """
    unknown = [c for c in spec.classifiers if c not in ctx.trainers]
    if unknown:
        raise ConfigError(f"unknown classifier(s) {', '.join(unknown)}; available: {', '.join(sorted(ctx.trainers))}")
    if spec.protocol == "kfold":
        if ctx.folds is None:
            raise ConfigError("a k-fold experiment needs a fold splitter")
        if len(ctx.store.list(origin=Origin.REAL)) < spec.folds:
            raise ConfigError(f"{ctx.store.location}: fewer real images than {spec.folds} folds")
        return
    if not ctx.store.list(split=Split.TRAIN, origin=Origin.REAL):
        raise ConfigError(f"{ctx.store.location}: no real training images; ingest a data set first")
    if not ctx.store.list(split=Split.TEST):
        raise ConfigError(f"{ctx.store.location}: no test images to evaluate on")
    for name, external in ctx.external.items():
        if not external.store.list(origin=Origin.REAL):
            raise ConfigError(f"external set {name}: {external.store.location} holds no images")


def run_experiment(
    spec: ExperimentSpec, ctx: ExperimentContext, *, progress: ProgressSink | None = None
) -> ExperimentResult:
    """Run (or resume) an experiment and save its ``results.json``.

    Raises:
        ConfigError: the definition is invalid or the run folder holds another experiment.
        DomainError: the plan policy cannot be met.
    """
    progress = progress or NullProgress()
    started, clock = datetime.now(UTC), time.monotonic()
    validate_experiment(spec, ctx)
    ctx.runs.claim(ctx.fingerprint, {arm.name: arm.model_dump_json() for arm in spec.arms})
    duplicates = find_duplicates(ctx)
    if spec.protocol == "kfold":
        from medaug.application.services.kfold import kfold_statistics, run_folds

        assignments, cells = run_folds(spec, ctx, duplicates, progress)
        stats = kfold_statistics(spec, cells, assignments, ctx.evaluator)
        update = {
            "summaries": stats.summaries,
            "comparisons": stats.comparisons,
            "kfold_comparisons": stats.kfold_comparisons,
            "pooled_intervals": stats.intervals,
            "folds": tuple(assignments),
            "test_images": stats.images,
        }
    else:
        cells, acceptance = _run_holdout(spec, ctx, progress)
        update = {
            "acceptance": acceptance,
            "summaries": _summaries(spec, cells, ctx.evaluator),
            "comparisons": tuple(_comparisons(spec, cells, ctx.evaluator)),
            "test_images": len(ctx.store.list(split=Split.TEST)),
        }
    result = ExperimentResult(
        spec=spec,
        dataset=ctx.dataset,
        cells=tuple(cells),
        references=ctx.references if spec.protocol == "holdout" else (),
        environment=dict(ctx.environment),
        config_text=ctx.config_text,
        started=started.isoformat(timespec="seconds"),
        finished=datetime.now(UTC).isoformat(timespec="seconds"),
        seconds=time.monotonic() - clock,
        duplicates=tuple(duplicates),
        external=external_results(spec, cells, ctx),
        **update,
    )
    ctx.runs.save_result(result)
    if ctx.tracker is not None:
        track_experiment(ctx.tracker, result, ctx.store, ctx.runs.location, ctx.fingerprint)
    return result


def find_duplicates(ctx: ExperimentContext) -> list[DuplicateGroup]:
    """Copies among the store's real images (none when no finder is configured)."""
    if ctx.duplicates is None:
        return []
    groups = ctx.duplicates.find(ctx.store, ctx.store.list(origin=Origin.REAL))
    for group in groups:
        _log.warning(
            "duplicate_images", images=list(group.image_ids), grades=[int(g) for g in group.grades],
            kind=group.kind, conflicting=group.conflicting,
        )
    return groups


def _run_holdout(
    spec: ExperimentSpec, ctx: ExperimentContext, progress: ProgressSink
) -> tuple[list[CellResult], dict[str, tuple[ScreenAcceptance, ...]]]:
    """Augment every arm (screened where its screen says so), then run the cells; returns them
    with each screened arm's acceptance per grade."""
    carve_validation(ctx.store, spec.val_fraction, spec.plan_seed)
    plans = {
        arm.name: plan_augmentation(
            ctx.store, spec.policy, seed=spec.plan_seed, augmentation=arm.name, generators=arm.generators
        )
        for arm in spec.arms
        if arm.augments
    }
    acceptance = {}
    for arm in spec.arms:
        if arm.augments:
            generators = {name: ctx.generators(name, arm) for name in arm.generators}
            screen = ctx.screens(arm)
            augment(
                ctx.store, plans[arm.name], generators, size=ctx.image_size, progress=progress, screen=screen,
                max_attempts=ctx.max_attempts,
            )  # fmt: skip
            if screen is not None:
                acceptance[arm.name] = screen_acceptance(ctx.store, plans[arm.name], max_attempts=ctx.max_attempts)
    val, test = tuple(ctx.store.list(split=Split.VAL)), tuple(ctx.store.list(split=Split.TEST))
    items = []
    for key in spec.cells():
        arm = next(a for a in spec.arms if a.name == key.arm)
        train = tuple(training_set(ctx.store, arm.name if arm.augments else None))
        items.append((key, CellData(train=train, val=val, test=test)))
    return run_cells_of(ctx, items, progress), {arm: rows for arm, rows in acceptance.items() if rows}


def run_cells_of(
    ctx: ExperimentContext, items: Sequence[tuple[CellKey, CellData]], progress: ProgressSink
) -> list[CellResult]:
    """Every given cell: saved ones read back, missing ones handed to the executor (each trains on
    its data, predicts its test images and every external set, and saves itself)."""
    saved = {key: ctx.runs.load_cell(key) for key, _ in items}
    for key, cell in saved.items():
        if cell is not None:
            _log.info("cell_resumed", cell=key.slug)
    missing = [_cell_task(key, data, ctx) for key, data in items if saved[key] is None]
    external_stores = {name: external.store for name, external in ctx.external.items()}

    def in_process(task: CellTask) -> None:
        trainer = ctx.trainers[task.key.classifier]
        run_cell_task(task, CellAdapters(ctx.store, trainer, ctx.evaluator, ctx.runs, external_stores), progress)

    run_cells(
        missing, total=len(items), executor=ctx.executor, in_process=in_process,
        resources=ctx.cell_resources, progress=progress,
    )  # fmt: skip
    return [saved[key] or _read_back(ctx.runs, key) for key, _ in items]


def _cell_task(key: CellKey, data: CellData, ctx: ExperimentContext) -> CellTask:
    return CellTask(
        key=key,
        store=ctx.store.location,
        runs=ctx.runs.location,
        train=tuple(image.id for image in data.train),
        val=tuple(image.id for image in data.val),
        test=tuple(image.id for image in data.test),
        external=tuple((name, external.store.location) for name, external in ctx.external.items()),
    )


def _read_back(runs: RunRepository, key: CellKey) -> CellResult:
    cell = runs.load_cell(key)
    if cell is None:
        raise StoreError(f"{runs.location}: cell {key.slug} finished but its result is not there")
    return cell


def external_results(
    spec: ExperimentSpec, cells: Sequence[CellResult], ctx: ExperimentContext
) -> dict[str, ExternalResult]:
    """Per external set: summaries of every arm x classifier over its runs, mean per-grade recall,
    and each arm against the baseline, paired run by run on the set's images."""
    out = {}
    for name, external in ctx.external.items():
        scored = [c for c in cells if name in c.external]
        summaries: dict[str, dict[str, dict[str, Summary]]] = {}
        recall: dict[str, dict[str, dict]] = {}
        for arm in spec.arms:
            for classifier in spec.classifiers:
                group = [c for c in scored if c.key.arm == arm.name and c.key.classifier == classifier]
                metrics = [c.external_metrics[name] for c in group]
                summaries.setdefault(arm.name, {})[classifier] = {
                    metric: ctx.evaluator.summarise([_finite(getattr(m, metric)) for m in metrics]).within(
                        *METRIC_RANGES[metric]
                    )
                    for metric in SUMMARY_METRICS
                }
                if metrics:
                    recall.setdefault(arm.name, {})[classifier] = {
                        grade: sum(m.recall[grade] for m in metrics) / len(metrics) for grade in metrics[0].recall
                    }
        comparisons = []
        if spec.baseline is not None:
            for arm in spec.arms:
                if arm.name == spec.baseline:
                    continue
                for classifier in spec.classifiers:
                    pairs = _paired(scored, arm.name, spec.baseline, classifier)
                    if pairs:
                        comparisons.append(ctx.evaluator.compare(
                            arm.name, spec.baseline, classifier,
                            [a.external[name] for a, _ in pairs], [b.external[name] for _, b in pairs],
                        ))
        out[name] = ExternalResult(
            name=name,
            description=external.description,
            images=len(external_images(external.store)),
            summaries=summaries,
            recall=recall,
            comparisons=tuple(comparisons),
        )
    return out


def _summaries(
    spec: ExperimentSpec, cells: Sequence[CellResult], evaluator: Evaluator
) -> dict[str, dict[str, dict[str, Summary]]]:
    out: dict[str, dict[str, dict[str, Summary]]] = {}
    for arm in spec.arms:
        for classifier in spec.classifiers:
            group = [c for c in cells if c.key.arm == arm.name and c.key.classifier == classifier]
            out.setdefault(arm.name, {})[classifier] = {
                metric: evaluator.summarise([_finite(getattr(c.metrics, metric)) for c in group]).within(
                    *METRIC_RANGES[metric]
                )
                for metric in SUMMARY_METRICS
            }
    return out


def _finite(value: float) -> float:
    return value if math.isfinite(value) else float("nan")


def _comparisons(spec: ExperimentSpec, cells: Sequence[CellResult], evaluator: Evaluator) -> list[Comparison]:
    baseline = spec.baseline
    if baseline is None:
        return []
    out = []
    for arm in spec.arms:
        if arm.name == baseline:
            continue
        for classifier in spec.classifiers:
            pairs = _paired(cells, arm.name, baseline, classifier)
            if pairs:
                out.append(
                    evaluator.compare(
                        arm.name, baseline, classifier, [a.predictions for a, _ in pairs], [b.predictions for _, b in pairs]
                    )
                )
    return out


def _paired(
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
