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

from medaug.application.errors import ConfigError
from medaug.application.ports import (
    ClassifierTrainer,
    Evaluator,
    ImageGenerator,
    ImageStore,
    NullProgress,
    ProgressSink,
    RunRepository,
    SyntheticScreen,
    TrainingRequest,
)
from medaug.application.services.augment import augment, plan_augmentation, training_set
from medaug.application.services.quality import screen_acceptance
from medaug.application.services.splits import carve_validation
from medaug.application.services.train_classifier import train_cell
from medaug.domain import Origin, Split
from medaug.domain.experiment import (
    METRIC_RANGES,
    Arm,
    CellKey,
    CellResult,
    Comparison,
    ExperimentResult,
    ExperimentSpec,
    ReferenceResult,
    Summary,
)

_log = structlog.get_logger(__name__)

SUMMARY_METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "quadratic_kappa", "loss")

GeneratorProvider = Callable[[str, Arm], ImageGenerator]
"""Builds a ready generator for an arm (training it first if it needs training)."""

ScreenProvider = Callable[[Arm], SyntheticScreen | None]
"""The screen an arm's generated images must pass, or None to keep them all."""


def _no_screen(arm: Arm) -> SyntheticScreen | None:
    return None


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
        screens: the screen of each arm's generated images (likelihood filtering), or none.
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
    screens: ScreenProvider = _no_screen
    max_attempts: int = 5


def validate_experiment(spec: ExperimentSpec, ctx: ExperimentContext) -> None:
    """Check everything that can be checked before any work starts.

    Raises:
        ConfigError: an unknown classifier, or a store without training or test images.
    """
    unknown = [c for c in spec.classifiers if c not in ctx.trainers]
    if unknown:
        raise ConfigError(f"unknown classifier(s) {', '.join(unknown)}; available: {', '.join(sorted(ctx.trainers))}")
    if not ctx.store.list(split=Split.TRAIN, origin=Origin.REAL):
        raise ConfigError(f"{ctx.store.location}: no real training images; ingest a data set first")
    if not ctx.store.list(split=Split.TEST):
        raise ConfigError(f"{ctx.store.location}: no test images to evaluate on")


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
    cells = [_run_cell(spec, key, ctx, progress) for key in spec.cells()]
    result = ExperimentResult(
        spec=spec,
        dataset=ctx.dataset,
        cells=tuple(cells),
        summaries=_summaries(spec, cells, ctx.evaluator),
        comparisons=tuple(_comparisons(spec, cells, ctx.evaluator)),
        references=ctx.references,
        test_images=len(ctx.store.list(split=Split.TEST)),
        environment=dict(ctx.environment),
        config_text=ctx.config_text,
        acceptance={arm: rows for arm, rows in acceptance.items() if rows},
        started=started.isoformat(timespec="seconds"),
        finished=datetime.now(UTC).isoformat(timespec="seconds"),
        seconds=time.monotonic() - clock,
    )
    ctx.runs.save_result(result)
    return result


def _run_cell(spec: ExperimentSpec, key: CellKey, ctx: ExperimentContext, progress: ProgressSink) -> CellResult:
    done = ctx.runs.load_cell(key)
    if done is not None:
        _log.info("cell_resumed", cell=key.slug)
        return done
    arm = next(a for a in spec.arms if a.name == key.arm)
    train = training_set(ctx.store, arm.name if arm.augments else None)
    request = TrainingRequest(
        train=tuple(train),
        val=tuple(ctx.store.list(split=Split.VAL)),
        test=tuple(ctx.store.list(split=Split.TEST)),
        seed=key.seed,
        checkpoint_path=ctx.runs.checkpoint_path(key.slug),
    )
    cell = train_cell(key, request, ctx.store, ctx.trainers[key.classifier], ctx.evaluator, progress=progress)
    ctx.runs.save_cell(cell)
    metrics = cell.metrics
    _log.info("cell_done", cell=key.slug, accuracy=round(metrics.accuracy, 4), kappa=round(metrics.quadratic_kappa, 4))
    return cell


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
    by_seed = {c.key.seed: c for c in cells if c.key.arm == baseline and c.key.classifier == classifier}
    return [
        (c, by_seed[c.key.seed])
        for c in sorted(cells, key=lambda c: c.key.seed)
        if c.key.arm == arm and c.key.classifier == classifier and c.key.seed in by_seed
    ]
