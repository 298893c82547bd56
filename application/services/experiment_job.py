"""The main job: data set -> store -> experiment (arms x classifiers x seeds) -> quality -> report.

The composition root builds an ``ExperimentJob`` (what to run and every adapter it runs on) from
settings and an experiment file; ``run_experiment_job`` is the use case, written against ports
only. Each step is resumable: ingest skips stored images, generators resume from their
checkpoints, finished cells and quality reports are read back from the run folder.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import structlog

from medaug.application.errors import MedaugError
from medaug.application.ports import (
    ClassifierTrainer,
    DatasetSource,
    DuplicateFinder,
    Evaluator,
    Executor,
    FoldSplitter,
    GeneratorTrainer,
    ImageGenerator,
    ImageStore,
    Preprocessor,
    ProgressSink,
    QualityAnalyzer,
    ReportWriter,
    Resources,
    RunRepository,
    SyntheticScreen,
    Tracker,
)
from medaug.application.services.experiment import ExperimentContext, ExternalSet, GeneratorScope, run_experiment
from medaug.application.services.ingest import ingest
from medaug.application.services.quality import assess_all
from medaug.application.services.train_generator import train_generator
from medaug.domain import DomainError
from medaug.domain.experiment import Arm, ExperimentResult, ExperimentSpec, ReferenceResult
from medaug.domain.quality import QualityReport

_log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class DatasetStep:
    """Where the job's real images come from.

    Attributes:
        store: the store the experiment runs on.
        description: the data set in words, for reports.
        source: the data set to ingest into ``store`` first, or None when the store already holds it.
        preprocessor: how ``source`` images are prepared (needed with a source).
        limit: ingest only a stratified subset of this many images (None: all).
        seed: the seed that draws the subset.
        pseudonymise: ingest under these pseudonyms (``settings.pseudonymise``), None: the set's names.
    """

    store: ImageStore
    description: str
    source: DatasetSource | None = None
    preprocessor: Preprocessor | None = None
    limit: int | None = None
    seed: int = 0
    pseudonymise: Callable[[str], str] | None = None


@dataclass(frozen=True)
class QualityStep:
    """The quality assessment of each augmenting arm's synthetic images.

    Attributes:
        analyzer: builds the analyzer for a store when one is needed (it may load models).
        is_current: whether a saved report was made with today's thresholds and feature space.
    """

    analyzer: Callable[[ImageStore], QualityAnalyzer]
    is_current: Callable[[QualityReport], bool]


GeneratorFactory = Callable[..., ImageGenerator]
"""Builds generator ``name`` with ``arm``'s options: ``(name, arm)``, or ``(name, arm, scope)``
for the model of one fold of a k-fold experiment (``scope`` names the fold, e.g. ``f0r0``)."""

GeneratorTrainerFactory = Callable[..., GeneratorTrainer | None]
"""Builds the trainer of generator ``name`` with ``arm``'s options, or None if it needs no
training: ``(name, arm)``, or ``(name, arm, scope)`` within one fold (its own checkpoints)."""

ScreenFactory = Callable[[ImageStore, Arm], SyntheticScreen | None]
"""Builds the screen of ``arm``'s generated images on a store, or None when they are kept unjudged."""


def _unscreened(store: ImageStore, arm: Arm) -> SyntheticScreen | None:
    return None


@dataclass(frozen=True)
class ExperimentJob:
    """The main job, fully built: what to run and every adapter it runs on.

    Attributes:
        spec: arms, classifiers, seeds, plan policy and baseline.
        dataset: the store and the data set to ingest into it.
        runs: the run folder (cells, results, checkpoints).
        trainers: classifier trainers by name (every classifier of ``spec``).
        generators: builds each arm's generators.
        generator_trainers: trains the generators that need training before they generate.
        evaluator: metrics and paired statistics.
        report_writer: writes the report into the run folder.
        image_size: the side synthetic images are made at, given the store once its data set
            is in (one rule for every flow: the side of the store's real images).
        quality: the quality step, or None when experiments skip it.
        fingerprint: identity of the definition, so a run folder never mixes two experiments.
        references: published figures shown beside the results.
        environment: versions and machine, for reproducibility.
        config_text: the experiment file as written.
        folds: assigns images to folds (k-fold experiments).
        duplicates: finds copies among the real images, or None.
        external: external test sets by name, each ingested into its own store first.
        executor: runs the classifier cells (None: one after another in this process); closed
            when the job ends.
        cell_resources: what each classifier cell asks the executor for.
        tracker: records the experiment in a tracking tool (None: not tracked).
        screens: the likelihood screen of each arm's generated images (or none).
        max_attempts: images tried per planned image when the screen rejects them.
    """

    spec: ExperimentSpec
    dataset: DatasetStep
    runs: RunRepository
    trainers: Mapping[str, ClassifierTrainer]
    generators: GeneratorFactory
    generator_trainers: GeneratorTrainerFactory
    evaluator: Evaluator
    report_writer: ReportWriter
    image_size: Callable[[ImageStore], int]
    quality: QualityStep | None = None
    fingerprint: str = ""
    references: tuple[ReferenceResult, ...] = ()
    environment: Mapping[str, str] = field(default_factory=dict)
    config_text: str = ""
    folds: FoldSplitter | None = None
    duplicates: DuplicateFinder | None = None
    external: Mapping[str, DatasetStep] = field(default_factory=dict)
    executor: Executor | None = None
    cell_resources: Resources = field(default_factory=Resources)
    tracker: Tracker | None = None
    screens: ScreenFactory = _unscreened
    max_attempts: int = 5


@dataclass(frozen=True)
class ExperimentOutcome:
    """A finished job: its result and the files written (``results.json`` and the report)."""

    result: ExperimentResult
    written: tuple[str, ...]


def run_experiment_job(job: ExperimentJob, *, progress: ProgressSink) -> ExperimentOutcome:
    """Run (or resume) the job end to end and write its report.

    Raises:
        ConfigError: the definition is invalid or the run folder holds another experiment.
        InputError: the data set cannot be ingested.
        DomainError: the plan policy cannot be met.
    """
    store = job.dataset.store
    for step in (job.dataset, *job.external.values()):
        ingest_step(step, progress)
    context = ExperimentContext(
        store=store,
        dataset=job.dataset.description,
        image_size=job.image_size(store),
        generators=lambda name, arm: _ready_generator(job, store, name, arm, progress),
        trainers=job.trainers,
        evaluator=job.evaluator,
        runs=job.runs,
        fingerprint=job.fingerprint,
        references=job.references,
        environment={**job.environment, "store": store.location},
        config_text=job.config_text,
        scoped_generators=lambda name, arm, scope: _ready_generator(job, store, name, arm, progress, scope),
        folds=job.folds,
        duplicates=job.duplicates,
        external={name: ExternalSet(store=step.store, description=step.description) for name, step in job.external.items()},
        executor=job.executor,
        cell_resources=job.cell_resources,
        tracker=job.tracker,
        screens=lambda arm: job.screens(store, arm),
        max_attempts=job.max_attempts,
    )
    earlier = saved_quality(job.runs)
    try:
        result = run_experiment(job.spec, context, progress=progress)
    finally:
        if job.executor is not None:
            job.executor.close()
    result = with_quality(result, job, progress, earlier=earlier)
    written = job.report_writer.write(result, job.runs.location, store)
    return ExperimentOutcome(result=result, written=(f"{job.runs.location}/results.json", *written))


def ingest_step(step: DatasetStep, progress: ProgressSink) -> None:
    """Ingest a data-set step's source into its store (nothing when it names no source)."""
    if step.source is None:
        return
    if step.preprocessor is None:
        raise ValueError("a data set source needs a preprocessor")
    ingest(step.source, step.preprocessor, step.store, progress=progress, limit=step.limit, seed=step.seed,
           pseudonymise=step.pseudonymise)


def rebuild_report(runs: RunRepository, store_for: Callable[[str | None], ImageStore], writer: ReportWriter) -> list[str]:
    """Re-render the report of a finished run from its ``results.json`` (nothing is retrained).

    ``store_for`` opens the store the run recorded (for its contact sheets).
    """
    result = runs.load_result()
    return writer.write(result, runs.location, store_for(result.environment.get("store")))


def with_quality(
    result: ExperimentResult,
    job: ExperimentJob,
    progress: ProgressSink,
    *,
    earlier: Mapping[str, QualityReport] | None = None,
) -> ExperimentResult:
    """``result`` with the quality of every augmenting arm's synthetic images, saved to the run
    folder; current ``earlier`` reports (of a run of the same experiment) are reused.

    A failed assessment is logged and leaves the result without it: the classifiers' results stand.
    """
    arms = [arm.name for arm in result.spec.arms if arm.augments]
    # K-fold arms have one synthetic set per fold, which this step does not assess yet.
    if job.quality is None or not arms or result.spec.protocol != "holdout":
        return result
    reports = {
        arm: report for arm, report in (earlier or {}).items() if arm in arms and job.quality.is_current(report)
    }
    missing = [arm for arm in arms if arm not in reports]
    if missing:
        try:
            reports |= assess_all(
                job.dataset.store, job.quality.analyzer(job.dataset.store), augmentations=missing, progress=progress
            )
        except (MedaugError, DomainError) as exc:
            _log.warning("quality_unavailable", arms=missing, error=str(exc))
    result = result.model_copy(update={"quality": {arm: reports[arm] for arm in arms if arm in reports}})
    job.runs.save_result(result)
    return result


def saved_quality(runs: RunRepository) -> dict[str, QualityReport]:
    """The quality reports a run folder's ``results.json`` holds (none when there is no result yet)."""
    try:
        return dict(runs.load_result().quality)
    except (MedaugError, ValueError):
        return {}


def _ready_generator(
    job: ExperimentJob,
    store: ImageStore,
    name: str,
    arm: Arm,
    progress: ProgressSink,
    scope: GeneratorScope | None = None,
) -> ImageGenerator:
    """The generator, trained first if it learns: on the store's training split, or within a
    fold (``scope``) on that fold's training images only, with checkpoints of its own."""
    if scope is None:
        trainer = job.generator_trainers(name, arm)
        if trainer is not None:
            train_generator(store, trainer, resume=True, progress=progress)
        return job.generators(name, arm)
    trainer = job.generator_trainers(name, arm, scope.name)
    if trainer is not None:
        train_generator(store, trainer, resume=True, progress=progress, only=scope.images)
    return job.generators(name, arm, scope.name)
