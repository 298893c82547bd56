"""``bootstrap(settings)``: medaug's use cases, wired once from one ``Settings``.

This is what the CLI and any other backend call. Each method is one use case: it builds the
adapters it needs through ``factories`` (lazily, so nothing heavy loads until it runs) and hands
them to the application service that carries it out. No logic of its own beyond that wiring.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medaug.adapters.experiment_file import ExperimentConfig, load_experiment_config
from medaug.adapters.experiment_overrides import apply_overrides, external_option
from medaug.application.ports import DatasetSource, GeneratorTrainingResult, NullProgress, ProgressSink
from medaug.application.services.augment import AugmentCommand, AugmentOutcome, run_augmentation
from medaug.application.services.evaluate import evaluate_saved
from medaug.application.services.experiment import ExperimentOutcome, ingest_step, rebuild_report, run_experiment_job
from medaug.application.services.ingest import ingest
from medaug.application.services.problems import summarise_problems
from medaug.application.services.quality import assess_all
from medaug.application.services.requests import IngestOptions, IngestOutcome, QualityOutcome, SourceSpec
from medaug.application.services.stats import StoreStats, store_stats
from medaug.application.services.sync import (
    StoreDigest,
    SyncReport,
    check_store,
    repair_store,
    store_digest,
    sync_stores,
)
from medaug.application.services.train_classifier import train_classifier
from medaug.application.services.train_generator import train_generator
from medaug.composition import factories, jobs
from medaug.adapters.ingest_problems import write_ingest_problems
from medaug.composition.settings import Settings, seed_of
from medaug.domain.experiment import CellResult, Metrics


@dataclass(frozen=True)
class Services:
    """The use cases of medaug over the adapters ``settings`` choose.

    Attributes:
        settings: what every adapter is built from.
        progress: where long work reports progress.
    """

    settings: Settings
    progress: ProgressSink = field(default_factory=NullProgress)

    def ingest(self, spec: SourceSpec, *, store: str | None = None, options: IngestOptions | None = None) -> IngestOutcome:
        """Preprocess a data set into a store; a re-run adds only what is missing (conflicts reported)."""
        options = options or IngestOptions()
        source = self._source(spec)
        image_store = factories.build_store(self.settings, store)
        private = options.private(default=self.settings.pseudonymise)
        pseudonymiser = factories.build_pseudonymiser(self.settings) if private else None
        if options.mapping is not None:
            factories.check_mapping_file(options.mapping, image_store)
        report = ingest(
            source,
            factories.build_preprocessor(self.settings),
            image_store,
            lenient=options.lenient,
            update=options.update,
            pseudonymise=pseudonymiser,
            progress=self.progress,
            limit=options.limit,
            seed=seed_of(self.settings, options.seed),
            workers=options.workers or factories.cpu_workers(),
        )
        if options.mapping is not None:
            factories.write_mapping(options.mapping, report.mapping)
        problems_file = write_ingest_problems(self.settings.work_dir, image_store, source.name, report.skipped, private=private)
        return IngestOutcome(report=report, location=image_store.location,
                             problem_kinds=tuple(summarise_problems(report.skipped)), problems_file=problems_file)

    def store_stats(self, store: str | None = None) -> StoreStats:
        """Image counts of a store per split, origin and grade."""
        return store_stats(factories.build_store(self.settings, store))

    def sync_stores(self, source: str, destination: str, *, prune: bool = False) -> SyncReport:
        """Copy every image of one store into another, checking each copy's sha256."""
        return sync_stores(
            factories.build_store(self.settings, source),
            factories.build_store(self.settings, destination),
            prune=prune,
            progress=self.progress,
        )

    def store_digest(self, store: str | None = None) -> StoreDigest:
        """A fingerprint of every record and image of a store."""
        return store_digest(factories.build_store(self.settings, store), progress=self.progress)

    def check_store(self, store: str | None = None, *, quick: bool = False) -> tuple[str, list[str]]:
        """The store's location and its problems (damaged index lines, records or images, leftovers)."""
        image_store = factories.build_store(self.settings, store)
        return image_store.location, check_store(image_store, quick=quick)

    def repair_store(self, store: str | None = None) -> tuple[str, list[str]]:
        """The store's location and what repairing it did (index rebuilt, leftovers removed)."""
        image_store = factories.build_store(self.settings, store)
        return image_store.location, repair_store(image_store)

    def _source(self, spec: SourceSpec) -> DatasetSource:
        seed = seed_of(self.settings, spec.seed)
        return factories.build_source(**{**dataclasses.asdict(spec), "seed": seed, "size": self.settings.image_size})

    def run_experiment(
        self,
        config: ExperimentConfig,
        *,
        run_dir: Path | None = None,
        fresh: bool = False,
        executor: str | None = None,
    ) -> ExperimentOutcome:
        """Run (or resume) the experiment file ``config`` end to end and write its report
        (``executor``: ``local`` or ``ray``, overriding the settings)."""
        job = jobs.experiment_job(config, self.settings, run_dir=run_dir, fresh=fresh, executor=executor)
        return run_experiment_job(job, progress=self.progress)

    def plan_experiment(self, config: ExperimentConfig, *, run_dir: Path | None = None) -> list[str]:
        """What ``run_experiment`` would do, every data set checked; nothing trained or written."""
        return jobs.plan_experiment_job(config, self.settings, run_dir=run_dir)

    def evaluate_classifier(
        self, checkpoint: Path, *, store: str | None = None, external: list[str] | None = None
    ) -> dict[str, Metrics]:
        """Score a classifier saved by ``train --checkpoint`` on a store's test images and on
        each external set (``KIND:PATH``, ``store:PATH`` or ``PATH[,CSV]``, ingested into its own store first)."""
        classifier = factories.build_saved_classifier(checkpoint)
        stores = {}
        for value in external or []:
            entry = external_option(value)
            step = jobs.dataset_step(entry, self.settings, use_env=False)
            ingest_step(step, self.progress)
            stores[entry.name] = step.store
        image_store = factories.build_store(self.settings, store)
        return evaluate_saved(classifier, image_store, factories.build_evaluator(self.settings.seed), external=stores)

    def rebuild_report(self, run_dir: Path) -> list[str]:
        """Re-render the report of a finished run from its ``results.json``."""
        runs = factories.build_run_folder(run_dir, self.settings)
        return rebuild_report(
            runs,
            lambda location: factories.build_store(self.settings, location),
            factories.report_writer_for(factories.build_report_writer(self.settings.seed), runs),
        )

    def augment(
        self,
        command: AugmentCommand,
        *,
        store: str | None = None,
        screen_min_confidence: float | None = None,
        screen_drop_near_copies: bool | None = None,
    ) -> AugmentOutcome:
        """Grow a store's training split with one generator (or estimate it, ``command.dry_run``)."""
        image_store = factories.build_store(self.settings, store)
        generator = factories.build_generator(command.generator, self.settings, image_store)
        screen = None
        if not command.dry_run:
            screen = factories.build_synthetic_screen(
                self.settings,
                image_store,
                min_confidence=screen_min_confidence,
                drop_near_copies=screen_drop_near_copies,
                progress=self.progress,
            )
        return run_augmentation(
            command,
            image_store,
            generator,
            size=factories.working_image_size(self.settings, image_store),
            screen=screen,
            max_attempts=self.settings.quality.screen.max_attempts,
            progress=self.progress,
        )

    def contact_sheet(
        self, out: Path, *, store: str | None = None, per_cell: int = 4, augmentation: str | None = None
    ) -> Path:
        """A PNG contact sheet of a store's images per grade and origin."""
        image_store = factories.build_store(self.settings, store)
        return factories.write_contact_sheet(
            image_store, out, seed=self.settings.seed, per_cell=per_cell, augmentation=augmentation
        )

    def train_generator(
        self, name: str, *, store: str | None = None, profile: str | None = None, fresh: bool = False
    ) -> GeneratorTrainingResult:
        """Train generator ``name`` on a store's real training split (resuming unless ``fresh``)."""
        image_store = factories.build_store(self.settings, store)
        trainer = factories.build_generator_trainer(name, self.settings, image_store, profile)
        return train_generator(image_store, trainer, resume=not fresh, progress=self.progress)

    def assess_quality(
        self,
        *,
        store: str | None = None,
        generator: str | None = None,
        augmentation: str | None = None,
        out: Path | None = None,
    ) -> QualityOutcome:
        """Measure a store's augmentation sets against its real images; write quality.json and plots."""
        image_store = factories.build_store(self.settings, store)
        analyzer = factories.build_quality_analyzer(self.settings, image_store)
        reports = assess_all(
            image_store,
            analyzer,
            augmentations=[augmentation] if augmentation else None,
            generator=generator,
            progress=self.progress,
        )
        folder = out or factories.quality_dir(self.settings, image_store)
        written = factories.write_quality_outputs(reports, image_store, folder, worst=self.settings.quality.worst_pairs)
        return QualityOutcome(reports=reports, written=tuple(written))

    def train_classifier(
        self,
        classifier: str,
        *,
        store: str | None = None,
        augmentation: str | None = None,
        seed: int | None = None,
        checkpoint: Path | None = None,
    ) -> CellResult:
        """Train one classifier on a store (real images, plus one augmentation set) and score it
        (``seed``: the training seed, default ``settings.seed``)."""
        if checkpoint is not None:
            factories.check_output_file(checkpoint, "--checkpoint")
        image_store = factories.build_store(self.settings, store)
        return train_classifier(
            image_store,
            factories.build_trainer(classifier, self.settings),
            factories.build_evaluator(self.settings.seed),
            augmentation=augmentation,
            seed=seed_of(self.settings, seed),
            checkpoint_path=str(checkpoint) if checkpoint else None,
            progress=self.progress,
        )


def read_experiment(path: Path | None, **narrowing: Any) -> ExperimentConfig:
    """The experiment file at ``path`` (None: the built-in one), narrowed or redirected as the command
    line asks (``data``, ``arms``, ``classifiers``, ``seeds``, ``external``: see ``apply_overrides``)."""
    return apply_overrides(load_experiment_config(path), **narrowing)


def bootstrap(settings: Settings, *, progress: ProgressSink | None = None) -> Services:
    """medaug's services over the adapters ``settings`` choose; nothing connects or loads yet."""
    return Services(settings=settings, progress=progress or NullProgress())
