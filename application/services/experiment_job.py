"""The experiment job: one type from the command line to the cells.

The composition root builds an ``ExperimentJob`` (what to run and every adapter it runs on) from
settings and an experiment file; ``medaug.application.services.experiment.run_experiment_job``
runs it, the holdout and k-fold protocols (``holdout``, ``kfold``) read it, and the shared cell
machinery (``experiment_cells``) hands its cells to the executor. This module holds only the
type and its parts, below every module that uses them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

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
    QualityAnalyzer,
    ReportWriter,
    Resources,
    RunRepository,
    SyntheticScreen,
    Tracker,
)
from medaug.domain import FundusImage
from medaug.domain.experiment import ExperimentSpec, ReferenceResult
from medaug.domain.quality import QualityReport


@dataclass(frozen=True)
class DatasetStep:
    """Where a job's real images come from: the main data set or an external test set.

    Attributes:
        store: the store the experiment runs on (or the external set's own store).
        description: the data set in words, for reports.
        source: the data set to ingest into ``store`` first, or None when the store already holds it.
        preprocessor: how ``source`` images are prepared (needed with a source).
        limit: ingest only a stratified subset of this many images (None: all).
        seed: the seed that draws the subset.
        pseudonymise: ingest under these pseudonyms (``settings.pseudonymise``), None: the set's names.
    """

    store: ImageStore
    description: str
    seed: int
    source: DatasetSource | None = None
    preprocessor: Preprocessor | None = None
    limit: int | None = None
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


@dataclass(frozen=True)
class GeneratorScope:
    """The part of the data set a generator (and its screen) may learn from: one fold's training images.

    Attributes:
        name: the fold's short name (``f0r0``), part of the generator's checkpoint identity.
        images: the real images it trains on (never the fold's test images).
    """

    name: str
    images: tuple[FundusImage, ...]


GeneratorFactory = Callable[..., ImageGenerator]
"""Builds generator ``name`` with ``arm``'s options: ``(name, arm)``, or ``(name, arm, scope)``
for the model of one fold of a k-fold experiment (``scope`` names the fold, e.g. ``f0r0``)."""

GeneratorTrainerFactory = Callable[..., GeneratorTrainer | None]
"""Builds the trainer of generator ``name`` with ``arm``'s options, or None if it needs no
training: ``(name, arm)``, or ``(name, arm, scope)`` within one fold (its own checkpoints)."""

ScreenFactory = Callable[..., SyntheticScreen | None]
"""Builds the screen of ``arm``'s generated images on a store, or None when they are kept
unjudged: ``(store, arm)``, or ``(store, arm, scope)`` judging against one fold's training
images only (a ``GeneratorScope``)."""


def _untrained(*args: object) -> GeneratorTrainer | None:
    return None


def _unscreened(*args: object) -> SyntheticScreen | None:
    return None


def _no_image_size(store: ImageStore) -> int:
    raise ValueError("the job names no image size")


@dataclass(frozen=True)
class ExperimentJob:
    """An experiment, fully built: what to run and every adapter it runs on.

    Attributes:
        spec: arms, classifiers, seeds, protocol, plan policy and baseline.
        dataset: the store and the data set to ingest into it.
        runs: the run folder (cells, results, checkpoints).
        trainers: classifier trainers by name (every classifier of ``spec``).
        generators: builds each arm's generators (see ``GeneratorFactory``).
        evaluator: metrics and paired statistics.
        image_size: the side synthetic images are made at, given the store once its data set
            is in (one rule for every flow: the side of the store's real images).
        generator_trainers: trains the generators that need training before they generate.
        report_writer: writes the report into the run folder (None: no report).
        quality: the quality step, or None when experiments skip it.
        fingerprint: identity of the definition, so a run folder never mixes two experiments.
        references: published figures shown beside the results.
        environment: versions and machine, for reproducibility.
        config_text: the experiment file as written.
        folds: assigns images to folds (k-fold experiments).
        duplicates: finds copies among the real images, or None.
        external: external test sets by name, each ingested into its own store first; every
            cell predicts each of them.
        executor: runs the classifier cells (None: one after another in this process); closed
            when the job ends.
        cell_resources: what each classifier cell asks the executor for.
        generator_resources: what each generator training and augmentation task asks for
            (a GPU where the settings put learned generators on CUDA).
        tracker: records the experiment in a tracking tool (None: not tracked).
        screens: the likelihood screen of each arm's generated images (or none), in both protocols.
        max_attempts: images tried per planned image when the screen rejects them.
    """

    spec: ExperimentSpec
    dataset: DatasetStep
    runs: RunRepository
    trainers: Mapping[str, ClassifierTrainer]
    generators: GeneratorFactory
    evaluator: Evaluator
    image_size: Callable[[ImageStore], int] = _no_image_size
    generator_trainers: GeneratorTrainerFactory = _untrained
    report_writer: ReportWriter | None = None
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
    generator_resources: Resources = field(default_factory=Resources)
    tracker: Tracker | None = None
    screens: ScreenFactory = _unscreened
    max_attempts: int = 5

    @property
    def store(self) -> ImageStore:
        """The store the experiment runs on (the main data set's)."""
        return self.dataset.store
