"""The experiment use case: data set -> store -> protocol (arms x classifiers x seeds) -> quality -> report.

``run_experiment_job`` runs an ``ExperimentJob`` end to end; ``run_experiment`` runs its protocol
(holdout or k-fold, two strategies over the shared cell machinery of ``experiment_cells``) and
saves ``results.json``. Every step is resumable: ingest skips stored images, generators resume
from their checkpoints, augmentation skips images already in the store, finished cells and
quality reports are read back from the run folder.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from medaug.application.errors import ConfigError, MedaugError
from medaug.application.ports import ImageStore, NullProgress, ProgressSink, ReportWriter, RunRepository
from medaug.application.services.experiment_cells import ProtocolRun, external_results, screens_once
from medaug.application.services.experiment_job import DatasetStep, ExperimentJob
from medaug.application.services.holdout import run_holdout
from medaug.application.services.ingest import ingest
from medaug.application.services.kfold import run_kfold
from medaug.application.services.quality import assess_all
from medaug.application.services.tracking import track_experiment
from medaug.domain import DomainError, Origin, Split
from medaug.domain.experiment import ExperimentResult
from medaug.domain.kfold import DuplicateGroup
from medaug.domain.quality import QualityReport

_log = structlog.get_logger(__name__)

Protocol = Callable[[ExperimentJob, Sequence[DuplicateGroup], ProgressSink], ProtocolRun]

PROTOCOLS: Mapping[str, Protocol] = {"holdout": run_holdout, "kfold": run_kfold}
"""The protocols by the name ``ExperimentSpec.protocol`` gives."""


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
    for step in (job.dataset, *job.external.values()):
        ingest_step(step, progress)
    earlier = saved_quality(job.runs)
    try:
        result = run_experiment(job, progress=progress)
    finally:
        if job.executor is not None:
            job.executor.close()
    result = with_quality(result, job, progress, earlier=earlier)
    written = job.report_writer.write(result, job.runs.location, job.store) if job.report_writer else []
    return ExperimentOutcome(result=result, written=(f"{job.runs.location}/results.json", *written))


def validate_experiment(job: ExperimentJob) -> None:
    """Check everything that can be checked before any work starts.

    Raises:
        ConfigError: an unknown classifier, or a store without training or test images.
    """
    spec, store = job.spec, job.store
    unknown = [c for c in spec.classifiers if c not in job.trainers]
    if unknown:
        raise ConfigError(f"unknown classifier(s) {', '.join(unknown)}; available: {', '.join(sorted(job.trainers))}")
    if spec.protocol == "kfold":
        if job.folds is None:
            raise ConfigError("a k-fold experiment needs a fold splitter")
        if len(store.list(origin=Origin.REAL)) < spec.folds:
            raise ConfigError(f"{store.location}: fewer real images than {spec.folds} folds")
        return
    if not store.list(split=Split.TRAIN, origin=Origin.REAL):
        raise ConfigError(f"{store.location}: no real training images; ingest a data set first")
    if not store.list(split=Split.TEST):
        raise ConfigError(f"{store.location}: no test images to evaluate on")
    for name, external in job.external.items():
        if not external.store.list(origin=Origin.REAL):
            raise ConfigError(f"external set {name}: {external.store.location} holds no images")


def run_experiment(job: ExperimentJob, *, progress: ProgressSink | None = None) -> ExperimentResult:
    """Run (or resume) the job's protocol and save its ``results.json`` (its data sets already in).

    Raises:
        ConfigError: the definition is invalid or the run folder holds another experiment.
        DomainError: the plan policy cannot be met.
    """
    progress = progress or NullProgress()
    spec = job.spec
    started, clock = datetime.now(UTC), time.monotonic()
    validate_experiment(job)
    job.runs.claim(job.fingerprint, {arm.name: arm.model_dump_json() for arm in spec.arms})
    duplicates = find_duplicates(job)
    run = PROTOCOLS[spec.protocol](dataclasses.replace(job, screens=screens_once(job.screens)), duplicates, progress)
    result = ExperimentResult(
        spec=spec,
        dataset=job.dataset.description,
        cells=run.cells,
        references=job.references if spec.protocol == "holdout" else (),
        environment={**job.environment, "store": job.store.location},
        config_text=job.config_text,
        started=started.isoformat(timespec="seconds"),
        finished=datetime.now(UTC).isoformat(timespec="seconds"),
        seconds=time.monotonic() - clock,
        duplicates=tuple(duplicates),
        external=external_results(job, run.cells),
        **run.fields,
    )
    job.runs.save_result(result)
    if job.tracker is not None:
        track_experiment(job.tracker, result, job.store, job.runs.location, job.fingerprint)
    return result


def find_duplicates(job: ExperimentJob) -> list[DuplicateGroup]:
    """Copies among the store's real images (none when no finder is configured)."""
    if job.duplicates is None:
        return []
    groups = job.duplicates.find(job.store, job.store.list(origin=Origin.REAL))
    for group in groups:
        _log.warning(
            "duplicate_images", images=list(group.image_ids), grades=[int(g) for g in group.grades],
            kind=group.kind, conflicting=group.conflicting,
        )
    return groups


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
                job.store, job.quality.analyzer(job.store), augmentations=missing, progress=progress
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
