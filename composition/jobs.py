"""The main job built from settings and an experiment file: every adapter it runs on, checked
before any work starts. The use case itself is ``medaug.application.services.experiment_job``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from medaug.adapters.experiment_file import DataLocation, DatasetConfig, ExperimentConfig
from medaug.application.errors import ConfigError, validation_problem
from medaug.application.ports import ImageStore, SyntheticScreen
from medaug.application.services.experiment_job import DatasetStep, ExperimentJob, GeneratorScope, QualityStep
from medaug.application.services.experiment_plan import cell_lines, check_names, describe_source
from medaug.adapters import redaction as secrets
from medaug.composition import execution, factories
from medaug.composition.settings import Settings
from medaug.domain.experiment import Arm


def experiment_settings(base: Settings, config: ExperimentConfig) -> Settings:
    """``base`` settings with the experiment file's ``[settings]`` table merged over them."""
    merged = config.settings_over(base.model_dump())
    try:
        return type(base)(**merged)
    except ValidationError as exc:
        raise ConfigError(f"experiment {config.name}: [settings]: {validation_problem(exc)}") from None
    except ValueError as exc:
        raise ConfigError(f"experiment {config.name}: [settings]: {str(exc).splitlines()[0]}") from None


def experiment_job(
    config: ExperimentConfig,
    base_settings: Settings,
    *,
    run_dir: Path | None = None,
    fresh: bool = False,
    executor: str | None = None,
) -> ExperimentJob:
    """The main job for experiment file ``config``: its settings merged over ``base_settings``,
    every adapter built, names checked before any work starts.

    Args:
        executor: ``local`` or ``ray``, overriding ``executor.kind`` of the settings.

    Raises:
        ConfigError: an unknown generator or classifier, a bad setting, a missing data set, or
            a cluster run on paths only this machine sees.
    """
    settings = experiment_settings(base_settings, config)
    if executor is not None:
        settings = _with_executor(settings, executor)
    spec = config.spec()
    check_names(spec, factories.generator_names(), factories.trainer_names())
    secrets.refuse_secrets_in_arms(spec.arms, settings.generators)
    _external_lines(config, settings)  # every external set checked before any work
    runs_root = factories.run_folder_location(settings, config.name, run_dir)
    # Frozen-backbone features live in the run folder (its local scratch when it is on S3): every
    # cell, and a resumed run, shares them.
    local_run = run_dir or settings.work_dir / "runs" / config.name
    trainers = {
        name: factories.build_trainer(name, settings, feature_dir=local_run / "features") for name in spec.classifiers
    }
    dataset = dataset_step(config.dataset, settings)
    store = dataset.store
    # A store already holding images keeps their size: a classifier asking for more is refused now.
    factories.check_store_size(spec.classifiers, settings, factories.store_image_size(store), store.location)
    # an S3 run folder is checked writable here, and pulls this store's generators
    runs = factories.build_run_folder(runs_root, settings, store_identity=store.identity)
    if fresh:
        factories.discard_run_folder(runs, runs_root, within=None if run_dir else settings.work_dir / "runs")
    execution.check_reachable(settings, store.location, runs_root)
    return ExperimentJob(
        spec=spec,
        dataset=dataset,
        runs=runs,
        trainers=trainers,
        evaluator=factories.build_evaluator(settings.seed),
        report_writer=factories.report_writer_for(factories.build_report_writer(settings.seed), runs),
        quality=_quality_step(settings, local_run / "features") if settings.quality.in_experiments else None,
        fingerprint=config.fingerprint(settings.model_dump(mode="json"), store.identity),
        references=config.references(),
        environment=factories.run_environment(settings),
        config_text=secrets.redact_settings_text(config.source_text, settings),
        folds=factories.build_fold_splitter(),
        duplicates=factories.build_duplicate_finder(),
        external={entry.name: dataset_step(entry, settings, use_env=False) for entry in config.dataset.external},
        executor=execution.build_executor(settings, local_run),
        cell_resources=settings.executor.cell_resources(),
        generator_resources=execution.generator_resources(settings),
        tracker=execution.build_tracker(settings, config.name),
        **synthetic_parts(settings, store),
    )


def synthetic_parts(settings: Settings, store: ImageStore) -> dict[str, Any]:
    """The parts of a job that make synthetic images on ``store`` (each arm's generators with its
    options, their trainers, the screen of the arms ``quality`` screens); a task worker builds them too."""

    def arm_settings(name: str, arm: Arm) -> Settings:
        return settings.model_copy(update={"generators": settings.generators.with_options(name, arm.options)})

    def screen(ready: ImageStore, arm: Arm, scope: GeneratorScope | None = None) -> SyntheticScreen | None:
        if not settings.quality.screens(arm.generators):
            return None
        real = scope.images if scope is not None else None  # within a fold: its training images only
        return factories.build_screen(settings, ready, settings.quality.experiment_screen, real=real)

    return dict(
        generators=lambda name, arm, scope=None: factories.build_generator(name, arm_settings(name, arm), store, scope),
        generator_trainers=lambda name, arm, scope=None: factories.build_generator_trainer(
            name, arm_settings(name, arm), store, scope=scope
        ) if name in factories.GENERATOR_TRAINERS else None,
        image_size=lambda ready: factories.working_image_size(settings, ready),
        screens=screen,
        max_attempts=settings.quality.experiment_screen.max_attempts,
    )


def _with_executor(settings: Settings, kind: str) -> Settings:
    if kind not in execution.EXECUTORS:
        raise ConfigError(f"--executor {kind!r}: choose one of {', '.join(execution.EXECUTORS)}")
    return settings.model_copy(update={"executor": settings.executor.model_copy(update={"kind": kind})})


def _quality_step(settings: Settings, feature_dir: Path) -> QualityStep:
    """The quality step; its probe shares the run folder's feature cache with the classifiers."""
    return QualityStep(
        analyzer=lambda store: factories.build_quality_analyzer(settings, store, feature_dir=feature_dir),
        is_current=settings.quality.is_current,
    )


def dataset_step(dataset: DataLocation, settings: Settings, *, use_env: bool = True) -> DatasetStep:
    """A data set's store and the data set to ingest into it (``kind = "store"``: none); the
    main one or an external test set (``use_env=False``: MEDAUG_DATA names the main one only)."""
    if dataset.kind == "store":
        store = factories.build_store(settings, dataset.store)
        return DatasetStep(store=store, description=f"store {store.location}", seed=settings.seed)
    source, description, slug = _source(dataset, settings, use_env=use_env)
    pseudonymise = factories.build_pseudonymiser(settings) if _private(dataset, settings) else None
    location = dataset.store if dataset.store is not None else settings.store.location_for(slug, settings.work_dir)
    return DatasetStep(
        store=factories.build_store(settings, location),
        description=description,
        source=source,
        preprocessor=factories.build_preprocessor(settings),
        limit=dataset.limit,
        seed=settings.seed,
        pseudonymise=pseudonymise,
    )


def _source(dataset: DataLocation, settings: Settings, *, use_env: bool = True):  # type: ignore[no-untyped-def]
    """The source, its description and its store's folder name; the folder must exist.

    Raises:
        ConfigError: no path, or the path is not a folder (one line naming it).
    """
    size, names = settings.image_size, {"seed": settings.seed, "pseudonymised": _private(dataset, settings)}
    if isinstance(dataset, DatasetConfig) and dataset.kind == "phantom":
        source = factories.build_source("phantom", None, n=dataset.n, seed=dataset.seed, size=size)
        return (source, *dataset.names(None, size, **names))
    path = dataset.path
    if path is None and use_env and os.environ.get("MEDAUG_DATA"):
        path = Path(os.environ["MEDAUG_DATA"]).expanduser()
    if path is None:
        raise ConfigError(f"dataset kind {dataset.kind!r} needs a path: pass --data PATH or set MEDAUG_DATA")
    if not Path(path).is_dir():
        raise ConfigError(f"{path}: data set folder not found")
    source = factories.build_source(
        dataset.kind, Path(path), csv=dataset.csv, image_column=dataset.image_column,
        label_column=dataset.label_column, split_column=dataset.split_column, size=size,
        seed=settings.seed,
    )  # fmt: skip
    return (source, *dataset.names(Path(path), size, **names))


def _private(dataset: DataLocation, settings: Settings) -> bool:
    """Whether ``dataset`` is ingested under pseudonyms: ``pseudonymise`` is on and its names may identify patients."""
    return settings.pseudonymise and dataset.has_patients


def plan_experiment_job(config: ExperimentConfig, base_settings: Settings, *, run_dir: Path | None = None) -> list[str]:
    """What the experiment job would do, checked without training or writing anything.

    Every data set (the main one and each external one) is found and its labels scanned; names
    of generators and classifiers are checked.

    Returns:
        One line per data set, then the cells and the run folder.

    Raises:
        ConfigError: a data-set folder is missing (one line naming it), or a name is unknown.
        InputError: a data set's labels have a problem (the first one, as ingest would stop).
    """
    settings = experiment_settings(base_settings, config)
    spec = config.spec()
    check_names(spec, factories.generator_names(), factories.trainer_names())
    lines = [f"dataset: {_describe(config.dataset, settings, 'dataset', use_env=True)}"]
    return lines + _external_lines(config, settings) + cell_lines(spec, factories.run_folder_location(settings, config.name, run_dir))


def _external_lines(config: ExperimentConfig, settings: Settings) -> list[str]:
    """Each external set described after checking it is there."""
    return [
        f"external {entry.name}: {_describe(entry, settings, f'dataset.external {entry.name}', use_env=False)}"
        for entry in config.dataset.external
    ]


def _describe(dataset: DataLocation, settings: Settings, what: str, *, use_env: bool) -> str:
    if dataset.kind == "store":
        return f"store {dataset.store}"
    try:
        source, description, _ = _source(dataset, settings, use_env=use_env)
    except ConfigError as exc:
        raise ConfigError(f"{what}: {exc}") from None
    return describe_source(what, description, source, dataset.limit)
