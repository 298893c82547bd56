"""``bootstrap(settings)``: medaug's use cases, wired once from one ``Settings``.

This is what the CLI and any other backend call. Each method is one use case: it builds the
adapters it needs through ``factories`` (lazily, so nothing heavy loads until it runs) and hands
them to the application service that carries it out. No logic of its own beyond that wiring.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from medaug.application.ports import GeneratorTrainingResult, NullProgress, ProgressSink
from medaug.application.services.augment import AugmentCommand, AugmentOutcome, run_augmentation
from medaug.application.services.experiment_job import ExperimentOutcome, run_experiment_job
from medaug.application.services.quality import assess_all
from medaug.application.services.train_classifier import train_classifier
from medaug.application.services.train_generator import train_generator
from medaug.composition import factories, jobs
from medaug.composition.experiment_config import ExperimentConfig
from medaug.composition.settings import Settings
from medaug.domain.experiment import CellResult
from medaug.domain.quality import QualityReport


@dataclass(frozen=True)
class QualityOutcome:
    """Quality reports per augmentation set, and the files written (quality.json, plots)."""

    reports: Mapping[str, QualityReport]
    written: tuple[Path, ...]


@dataclass(frozen=True)
class Services:
    """The use cases of medaug over the adapters ``settings`` choose.

    Attributes:
        settings: what every adapter is built from.
        progress: where long work reports progress.
    """

    settings: Settings
    progress: ProgressSink = field(default_factory=NullProgress)

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

    def rebuild_report(self, run_dir: Path) -> list[str]:
        """Re-render the report of a finished run from its ``results.json``."""
        return jobs.rebuild_report(run_dir, self.settings)

    def augment(
        self,
        command: AugmentCommand,
        *,
        store: str | None = None,
        min_confidence: float | None = None,
        drop_near_copies: bool | None = None,
    ) -> AugmentOutcome:
        """Grow a store's training split with one generator (or estimate it, ``command.dry_run``)."""
        image_store = factories.build_store(self.settings, store)
        generator = factories.build_generator(command.generator, self.settings, image_store)
        screen = None
        if not command.dry_run:
            screen = factories.build_synthetic_screen(
                self.settings,
                image_store,
                min_confidence=min_confidence,
                drop_near_copies=drop_near_copies,
                progress=self.progress,
            )
        return run_augmentation(
            command,
            image_store,
            generator,
            size=factories.working_image_size(self.settings, image_store),
            screen=screen,
            max_attempts=self.settings.quality.filter.max_attempts,
            progress=self.progress,
        )

    def contact_sheet(
        self, out: Path, *, store: str | None = None, per_cell: int = 4, augmentation: str | None = None
    ) -> Path:
        """A PNG contact sheet of a store's images per grade and origin."""
        image_store = factories.build_store(self.settings, store)
        return factories.write_contact_sheet(image_store, out, per_cell=per_cell, augmentation=augmentation)

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
        seed: int = 0,
        checkpoint: Path | None = None,
    ) -> CellResult:
        """Train one classifier on a store (real images, plus one augmentation set) and score it."""
        image_store = factories.build_store(self.settings, store)
        return train_classifier(
            image_store,
            factories.build_trainer(classifier, self.settings),
            factories.build_evaluator(),
            augmentation=augmentation,
            seed=seed,
            checkpoint_path=str(checkpoint) if checkpoint else None,
            progress=self.progress,
        )


def bootstrap(settings: Settings, *, progress: ProgressSink | None = None) -> Services:
    """medaug's services over the adapters ``settings`` choose; nothing connects or loads yet."""
    return Services(settings=settings, progress=progress or NullProgress())
