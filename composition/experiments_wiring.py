"""Wiring of the experiment job: data set -> store, adapters, run folder, report."""

from __future__ import annotations

import os
import platform
import shutil
from importlib import metadata
from pathlib import Path
from typing import Any

import structlog
from pydantic import ValidationError

from medaug.application.errors import ConfigError, MedaugError
from medaug.application.ports import ImageGenerator, ImageStore, ProgressSink, RunRepository
from medaug.application.services.experiment import ExperimentContext, run_experiment
from medaug.application.services.ingest import ingest
from medaug.application.services.quality import assess_all
from medaug.application.services.train_generator import train_generator
from medaug.composition import bootstrap
from medaug.composition.experiment_config import DatasetConfig, ExperimentConfig
from medaug.composition.settings import Settings, first_error
from medaug.domain import DomainError
from medaug.domain.experiment import THESIS_REFERENCES, Arm, ExperimentResult
from medaug.domain.quality import QualityReport

_log = structlog.get_logger(__name__)

_VERSIONED = ("medaug", "torch", "torchvision", "diffusers", "numpy", "scikit-learn", "pydantic")


def experiment_settings(base: Settings, config: ExperimentConfig) -> Settings:
    """``base`` settings with the experiment file's ``[settings]`` table merged over them."""
    merged = _deep_merge(base.model_dump(), config.settings)
    try:
        return type(base)(**merged)
    except ValidationError as exc:
        raise ConfigError(f"experiment {config.name}: [settings]: {first_error(exc)}") from None
    except ValueError as exc:
        raise ConfigError(f"experiment {config.name}: [settings]: {str(exc).splitlines()[0]}") from None


def run_experiment_job(
    config: ExperimentConfig,
    base_settings: Settings,
    *,
    run_dir: Path | None = None,
    fresh: bool = False,
    progress: ProgressSink,
) -> tuple[ExperimentResult, list[str]]:
    """Run (or resume) the experiment ``config`` end to end and write its report.

    Returns:
        The result and the report files written.
    """
    settings = experiment_settings(base_settings, config)
    spec = config.spec()
    _check_names(spec.arms, spec.classifiers)
    runs_root = run_dir or settings.work_dir / "runs" / config.name
    # Frozen-backbone features live in the run folder: every cell, and a resumed run, shares them.
    trainers = {
        name: bootstrap.build_trainer(name, settings, feature_dir=runs_root / "features") for name in spec.classifiers
    }
    if fresh and runs_root.exists():
        shutil.rmtree(runs_root)
    store, dataset = prepare_dataset(config.dataset, settings, progress)
    from medaug.adapters.runs import LocalRunFolder

    runs = LocalRunFolder(runs_root)
    ctx = ExperimentContext(
        store=store,
        dataset=dataset,
        image_size=settings.image_size,
        generators=lambda name, arm: _ready_generator(name, arm, settings, store, progress),
        trainers=trainers,
        evaluator=bootstrap.build_evaluator(),
        runs=runs,
        fingerprint=config.fingerprint(_fingerprint_settings(settings)),
        references=THESIS_REFERENCES if config.dataset.kind == "idrid" else (),
        environment={**environment(settings), "store": store.location},
        config_text=config.source_text,
    )
    earlier = saved_quality(runs)
    result = run_experiment(spec, ctx, progress=progress)
    result = with_quality(result, settings, store, runs, progress, earlier=earlier)
    written = bootstrap.build_report_writer().write(result, str(runs_root), store)
    return result, [runs.location + "/results.json", *written]


def with_quality(
    result: ExperimentResult,
    settings: Settings,
    store: ImageStore,
    runs: RunRepository,
    progress: ProgressSink,
    *,
    earlier: dict[str, QualityReport] | None = None,
) -> ExperimentResult:
    """``result`` with the quality of every augmenting arm's synthetic images (``settings.quality``),
    saved to the run folder; ``earlier`` reports (of a run of the same experiment) are reused.

    A failed assessment is logged and leaves the result without it: the classifiers' results stand.
    """
    arms = [arm.name for arm in result.spec.arms if arm.augments]
    if not settings.quality.in_experiments or not arms:
        return result
    config = settings.quality
    reports = {
        arm: report
        for arm, report in (earlier or {}).items()
        if arm in arms and report.thresholds == config.thresholds and report.feature_space == config.features
    }
    missing = [arm for arm in arms if arm not in reports]
    if missing:
        try:
            # The run folder's feature cache: the frozen classifiers' features serve the probe too.
            analyzer = bootstrap.build_quality_analyzer(settings, store, feature_dir=Path(runs.location) / "features")
            reports |= assess_all(store, analyzer, augmentations=missing, progress=progress)
        except (MedaugError, DomainError) as exc:
            _log.warning("quality_unavailable", arms=missing, error=str(exc))
    result = result.model_copy(update={"quality": {arm: reports[arm] for arm in arms if arm in reports}})
    runs.save_result(result)
    return result


def saved_quality(runs: RunRepository) -> dict[str, QualityReport]:
    """The quality reports a run folder's ``results.json`` holds (none when there is no result yet)."""
    try:
        return dict(runs.load_result().quality)
    except (MedaugError, ValueError):
        return {}


def rebuild_report(run_dir: Path, settings: Settings) -> list[str]:
    """Re-render the report of a finished run from its ``results.json``."""
    from medaug.adapters.runs import LocalRunFolder

    result = LocalRunFolder(run_dir).load_result()
    store = bootstrap.build_store(settings, result.environment.get("store"))
    return bootstrap.build_report_writer().write(result, str(run_dir), store)


def prepare_dataset(dataset: DatasetConfig, settings: Settings, progress: ProgressSink) -> tuple[ImageStore, str]:
    """Ingest the experiment's data set into its store (resumable) and describe it."""
    if dataset.kind == "store":
        store = bootstrap.build_store(settings, dataset.store)
        return store, f"store {store.location}"
    source, description, slug = _source(dataset, settings)
    location = dataset.store
    if location is None and settings.store.kind == "s3":
        s3 = settings.store.s3
        location = f"s3://{s3.bucket}/{s3.prefix.strip('/') + '/' if s3.prefix.strip('/') else ''}{slug}"
    elif location is None:
        location = str(settings.work_dir / "stores" / slug)
    store = bootstrap.build_store(settings, location)
    ingest(source, bootstrap.build_preprocessor(settings), store, progress=progress)
    return store, description


def _source(dataset: DatasetConfig, settings: Settings):  # type: ignore[no-untyped-def]
    size = settings.image_size
    if dataset.kind == "phantom":
        source = bootstrap.build_phantom_source(dataset.n, seed=dataset.seed, size=size)
        return source, f"phantom (n={dataset.n}, seed={dataset.seed}, {size} px)", f"phantom-n{dataset.n}-s{dataset.seed}-{size}px"
    path = dataset.path or (Path(os.environ["MEDAUG_DATA"]) if os.environ.get("MEDAUG_DATA") else None)
    if path is None:
        raise ConfigError(f"dataset kind {dataset.kind!r} needs a path: pass --data PATH or set MEDAUG_DATA")
    if not Path(path).exists():
        raise ConfigError(f"{path}: data set folder not found")
    if dataset.kind == "idrid":
        return bootstrap.build_idrid_source(Path(path)), f"IDRiD grading ({size} px)", f"idrid-{size}px"
    if dataset.csv is None:
        raise ConfigError("dataset kind 'folder' needs dataset.csv")
    source = bootstrap.build_folder_source(
        Path(path), dataset.csv, image_column=dataset.image_column, label_column=dataset.label_column,
        split_column=dataset.split_column, name="folder",
    )
    return source, f"folder {path} ({size} px)", f"folder-{Path(path).name}-{size}px"


def _ready_generator(name: str, arm: Arm, settings: Settings, store: ImageStore, progress: ProgressSink) -> ImageGenerator:
    arm_settings = _with_generator_options(settings, name, arm.options)
    if name in bootstrap.GENERATOR_TRAINERS:
        trainer = bootstrap.build_generator_trainer(name, arm_settings, store)
        train_generator(store, trainer, resume=True, progress=progress)
    return bootstrap.build_generator(name, arm_settings, store)


def _with_generator_options(settings: Settings, name: str, options: dict[str, Any]) -> Settings:
    if not options:
        return settings
    current = getattr(settings.generators, name, None)
    if current is None:
        raise ConfigError(f"generator {name!r} takes no options")
    try:
        updated = type(current).model_validate({**current.model_dump(), **options})
    except ValueError as exc:
        raise ConfigError(f"arm options for {name}: {str(exc).splitlines()[0]}") from None
    generators = settings.generators.model_copy(update={name: updated})
    return settings.model_copy(update={"generators": generators})


def _check_names(arms: tuple[Arm, ...], classifiers: tuple[str, ...]) -> None:
    unknown = sorted({g for arm in arms for g in arm.generators} - set(bootstrap.generator_names()))
    if unknown:
        raise ConfigError(
            f"unknown generator(s) {', '.join(unknown)} in arms; available: {', '.join(bootstrap.generator_names())}"
        )
    bad = [c for c in classifiers if c not in bootstrap.trainer_names()]
    if bad:
        raise ConfigError(f"unknown classifier(s) {', '.join(bad)}; available: {', '.join(bootstrap.trainer_names())}")


def _fingerprint_settings(settings: Settings) -> dict[str, Any]:
    return {
        "image_size": settings.image_size,
        "trainers": settings.trainers.model_dump(mode="json"),
        "generators": {k: v for k, v in settings.generators.model_dump(mode="json").items() if k != "openai"},
    }


def environment(settings: Settings) -> dict[str, str]:
    """Versions and machine facts for the report's reproducibility section."""
    env = {"python": platform.python_version(), "platform": platform.platform(), "cpus": str(os.cpu_count())}
    for package in _VERSIONED:
        try:
            env[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    env["device"] = bootstrap.describe_device(settings.device)
    return env


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out
