"""The main job built from settings and an experiment file: every adapter it runs on, checked
before any work starts. The use case itself is ``medaug.application.services.experiment_job``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from medaug.adapters.experiment_file import DataLocation, DatasetConfig, ExperimentConfig
from medaug.application.errors import ConfigError
from medaug.application.ports import ImageStore, SyntheticScreen
from medaug.application.services.experiment_job import (
    DatasetStep,
    ExperimentJob,
    GeneratorFactory,
    GeneratorScope,
    GeneratorTrainerFactory,
    QualityStep,
)
from medaug.application.services.experiment_plan import cell_lines, describe_source
from medaug.adapters import redaction as secrets
from medaug.composition import execution, factories
from medaug.composition.settings import Settings, first_error
from medaug.domain.experiment import THESIS_REFERENCES, Arm

def experiment_settings(base: Settings, config: ExperimentConfig) -> Settings:
    """``base`` settings with the experiment file's ``[settings]`` table merged over them."""
    merged = config.settings_over(base.model_dump())
    try:
        return type(base)(**merged)
    except ValidationError as exc:
        raise ConfigError(f"experiment {config.name}: [settings]: {first_error(exc)}") from None
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
    _check_names(spec.arms, spec.classifiers)
    secrets.refuse_secrets_in_arms(spec.arms, settings.generators)
    if config.dataset.external:  # checked before any work
        check_external_sets(config, settings)
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
        generators=arm_generators(settings, store),
        generator_trainers=arm_generator_trainers(settings, store),
        evaluator=factories.build_evaluator(),
        report_writer=factories.report_writer_for(factories.build_report_writer(), runs),
        image_size=lambda ready: factories.working_image_size(settings, ready),
        quality=_quality_step(settings, local_run / "features") if settings.quality.in_experiments else None,
        # The store's identity, not its path: a run folder never mixes cells of two stores.
        fingerprint=config.fingerprint({**_fingerprint_settings(settings), "store": store.identity}),
        references=THESIS_REFERENCES if config.dataset.kind == "idrid" else (),
        environment=factories.run_environment(settings),
        config_text=secrets.redact_settings_text(config.source_text, settings),
        folds=factories.build_fold_splitter(),
        duplicates=factories.build_duplicate_finder(),
        external={entry.name: dataset_step(entry, settings, use_env=False) for entry in config.dataset.external},
        executor=execution.build_executor(settings, local_run),
        cell_resources=execution.cell_resources(settings),
        generator_resources=execution.generator_resources(settings),
        tracker=execution.build_tracker(settings, config.name),
        screens=lambda ready, arm, scope=None: arm_screen(settings, ready, arm, scope),
        max_attempts=settings.quality.experiment_screen.max_attempts,
    )


def arm_generators(settings: Settings, store: ImageStore) -> GeneratorFactory:
    """Builds each arm's generators on ``store`` (see ``GeneratorFactory``); a task worker uses it too."""
    return lambda name, arm, scope=None: factories.build_generator(
        name, _with_generator_options(settings, name, arm.options), store, scope
    )


def arm_generator_trainers(settings: Settings, store: ImageStore) -> GeneratorTrainerFactory:
    """Builds the trainer of each arm's learned generators (see ``GeneratorTrainerFactory``)."""
    return lambda name, arm, scope=None: factories.build_generator_trainer(
        name, _with_generator_options(settings, name, arm.options), store, scope=scope
    ) if name in factories.GENERATOR_TRAINERS else None


def arm_screen(
    settings: Settings, store: ImageStore, arm: Arm, scope: GeneratorScope | None = None
) -> SyntheticScreen | None:
    """The likelihood screen of an arm that uses a learned generator (``quality.experiment_screen``);
    within a fold (``scope``) it learns from that fold's training images only."""
    screened = set(settings.quality.experiment_screen_generators)
    if not screened.intersection(arm.generators) or not settings.quality.experiment_screen.enabled:
        return None
    real = scope.images if scope is not None else None
    return factories.build_screen(settings, store, settings.quality.experiment_screen, real=real)


def _with_executor(settings: Settings, kind: str) -> Settings:
    if kind not in execution.EXECUTORS:
        raise ConfigError(f"--executor {kind!r}: choose one of {', '.join(execution.EXECUTORS)}")
    return settings.model_copy(update={"executor": settings.executor.model_copy(update={"kind": kind})})


def _quality_step(settings: Settings, feature_dir: Path) -> QualityStep:
    """The quality step; its probe shares the run folder's feature cache with the classifiers."""
    config = settings.quality
    return QualityStep(
        analyzer=lambda store: factories.build_quality_analyzer(settings, store, feature_dir=feature_dir),
        is_current=lambda report: report.thresholds == config.thresholds and report.feature_space == config.features,
    )


def dataset_step(dataset: DataLocation, settings: Settings, *, use_env: bool = True) -> DatasetStep:
    """A data set's store and the data set to ingest into it (``kind = "store"``: none); the
    main one or an external test set (``use_env=False``: MEDAUG_DATA names the main one only)."""
    if dataset.kind == "store":
        store = factories.build_store(settings, dataset.store)
        return DatasetStep(store=store, description=f"store {store.location}")
    source, description, slug = _source(dataset, settings, use_env=use_env)
    if dataset.limit is not None:
        slug += f"-limit{dataset.limit}-s{settings.seed}"
    # The phantom set has no patients; every other set's names stay out of the store and the run.
    pseudonymise = factories.build_pseudonymiser(settings) if settings.pseudonymise and dataset.kind != "phantom" else None
    if pseudonymise is not None:
        slug += "-pseudonymised"
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
    size = settings.image_size
    if isinstance(dataset, DatasetConfig) and dataset.kind == "phantom":
        source = factories.build_source("phantom", None, n=dataset.n, seed=dataset.seed, size=size)
        return (source, *dataset.names(None, size))
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
    )  # fmt: skip
    return (source, *dataset.names(Path(path), size))


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
    _check_names(spec.arms, spec.classifiers)
    lines = [f"dataset: {_describe(config.dataset, settings, 'dataset', use_env=True)}"]
    lines += [
        f"external {entry.name}: {_describe(entry, settings, f'dataset.external {entry.name}', use_env=False)}"
        for entry in config.dataset.external
    ]
    return lines + cell_lines(spec, factories.run_folder_location(settings, config.name, run_dir))


def check_external_sets(config: ExperimentConfig, settings: Settings) -> list[str]:
    """Describe each external set after checking it is there (as ``plan_experiment_job`` does)."""
    return [
        f"{entry.name}: {_describe(entry, settings, f'dataset.external {entry.name}', use_env=False)}"
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
    unknown = sorted({g for arm in arms for g in arm.generators} - set(factories.generator_names()))
    if unknown:
        raise ConfigError(
            f"unknown generator(s) {', '.join(unknown)} in arms; available: {', '.join(factories.generator_names())}"
        )
    bad = [c for c in classifiers if c not in factories.trainer_names()]
    if bad:
        raise ConfigError(f"unknown classifier(s) {', '.join(bad)}; available: {', '.join(factories.trainer_names())}")


def _fingerprint_settings(settings: Settings) -> dict[str, Any]:
    return {
        "image_size": settings.image_size,
        "trainers": settings.trainers.model_dump(mode="json"),
        "generators": {k: v for k, v in settings.generators.model_dump(mode="json").items() if k != "openai"},
    }
