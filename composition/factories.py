"""The one place that knows concrete adapters: it builds them from Settings.

Adding a generator = one adapter module + one entry in ``GENERATORS`` below. Adapters are
imported lazily inside the factories so that ``import medaug`` stays light and nothing heavy
(torch, SDK clients, weights) is loaded until a service actually needs it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from medaug.adapters.quality.config import FilterConfig
from medaug.application.errors import ConfigError
from medaug.application.ports import (
    ClassifierTrainer,
    DatasetSource,
    Evaluator,
    GeneratorTrainer,
    ImageGenerator,
    ImageStore,
    Preprocessor,
    ProgressSink,
    QualityAnalyzer,
    ReportWriter,
    RunRepository,
    SyntheticScreen,
)
from medaug.composition.settings import Settings
from medaug.domain.quality import QualityReport

# -- stores ----------------------------------------------------------------------------------


def build_store(settings: Settings, location: str | None = None) -> ImageStore:
    """The image store named by ``location`` (a folder or ``s3://bucket/prefix``) or settings."""
    config = settings.store
    if location is not None:
        if location.startswith("s3://"):
            bucket, _, prefix = location.removeprefix("s3://").partition("/")
            config = config.model_copy(
                update={"kind": "s3", "s3": config.s3.model_copy(update={"bucket": bucket, "prefix": prefix})}
            )
        else:
            config = config.model_copy(update={"kind": "local", "root": Path(location)})
    if config.kind == "s3":
        return _build_s3_store(config)
    from medaug.adapters.stores.local import LocalImageStore

    return LocalImageStore(config.root)


def _build_s3_store(config) -> ImageStore:  # type: ignore[no-untyped-def]
    try:
        from medaug.adapters.stores.s3 import S3ImageStore, make_s3_client
    except ImportError as exc:  # pragma: no cover - until the S3 adapter lands
        raise ConfigError("store.kind = 's3' is not available in this build") from exc
    if not config.s3.bucket:
        raise ConfigError("store.kind = 's3' needs store.s3.bucket (or --store s3://bucket/prefix)")
    return S3ImageStore(
        make_s3_client(config.s3),
        bucket=config.s3.bucket,
        prefix=config.s3.prefix,
        multipart_threshold=config.s3.multipart_threshold,
        multipart_chunksize=config.s3.multipart_chunksize,
        max_workers=config.s3.max_workers,
    )


# -- data sets and preprocessing -------------------------------------------------------------


def build_preprocessor(settings: Settings, size: int | None = None) -> Preprocessor:
    """The fundus preprocessor at the working size."""
    from medaug.adapters.imaging.preprocess import FundusPreprocessor

    return FundusPreprocessor(size=size or settings.image_size)


def build_idrid_source(path: Path) -> DatasetSource:
    """IDRiD "B. Disease Grading" in its official layout."""
    from medaug.adapters.datasets.idrid import IdridSource

    return IdridSource(path)


def build_folder_source(
    path: Path, csv: Path, *, image_column: str, label_column: str, split_column: str | None, name: str
) -> DatasetSource:
    """A folder of images labelled by a CSV file."""
    from medaug.adapters.datasets.folder_csv import FolderCsvSource

    return FolderCsvSource(
        path, csv, image_column=image_column, label_column=label_column, split_column=split_column, name=name
    )


PUBLISHED_DATASETS = ("aptos2019", "eyepacs", "messidor2", "ddr")
"""The public DR sets read in their published layouts (``medaug data ingest <name>``, ``kind = "<name>"``)."""


def build_published_source(kind: str, path: Path, *, labels: Path | None = None) -> DatasetSource:
    """One of ``PUBLISHED_DATASETS`` in its published layout at ``path`` (``labels``: another labels file)."""
    from medaug.adapters.datasets.published import published_source

    return published_source(kind, path, labels=labels)


def build_phantom_source(n: int, *, seed: int, size: int, test_fraction: float = 0.2) -> DatasetSource:
    """The built-in synthetic fundus set."""
    from medaug.adapters.datasets.phantom import PhantomSource

    return PhantomSource(n=n, seed=seed, size=size, test_fraction=test_fraction)


# -- generators ------------------------------------------------------------------------------


def _classic(settings: Settings, store: ImageStore) -> ImageGenerator:
    from medaug.adapters.generators.classic.generator import ClassicGenerator

    return ClassicGenerator(settings.generators.classic, device=settings.device)


def _openai(settings: Settings, store: ImageStore) -> ImageGenerator:
    # The privacy gate (allow_external_upload) and the key are checked when it is first used, so
    # that ``augment run --dry-run`` can estimate costs before either is set.
    from medaug.adapters.generators.openai_edits.generator import (
        OpenAIGenerator,
        make_openai_client,
    )

    config = settings.generators.openai
    return OpenAIGenerator(make_openai_client(config), config, generator_dir(settings, "openai", store))


def _diffusion(settings: Settings, store: ImageStore) -> ImageGenerator:
    from medaug.adapters.generators.diffusion.generator import DiffusionGenerator

    config = settings.generators.diffusion
    return DiffusionGenerator(
        config, generator_dir(settings, "diffusion", store), device=config.device or settings.device
    )


def _dcgan(settings: Settings, store: ImageStore) -> ImageGenerator:
    from medaug.adapters.generators.dcgan.generator import DCGANGenerator

    config = settings.generators.dcgan
    return DCGANGenerator(config, generator_dir(settings, "dcgan", store), device=config.device or settings.device)


GeneratorFactory = Callable[[Settings, ImageStore], ImageGenerator]

GENERATORS: dict[str, GeneratorFactory] = {
    "classic": _classic,
    "dcgan": _dcgan,
    "diffusion": _diffusion,
    "openai": _openai,
}


def generator_names() -> list[str]:
    """Names of every generator this build can make."""
    return sorted(GENERATORS)


def build_generator(name: str, settings: Settings, store: ImageStore) -> ImageGenerator:
    """The generator called ``name``, configured from settings.

    Raises:
        ConfigError: no generator has that name.
    """
    try:
        factory = GENERATORS[name]
    except KeyError:
        raise ConfigError(f"unknown generator {name!r}; choose one of: {', '.join(generator_names())}") from None
    return factory(settings, store)


# -- generator training ----------------------------------------------------------------------


def generator_dir(settings: Settings, name: str, store: ImageStore) -> Path:
    """Where generator ``name`` keeps its checkpoints for ``store`` (one model per store)."""
    import hashlib

    digest = hashlib.sha1(store.location.encode()).hexdigest()[:8]
    return settings.work_dir / "generators" / f"{name}-{digest}"


def _diffusion_trainer(settings: Settings, store: ImageStore, profile: str | None) -> GeneratorTrainer:
    from medaug.adapters.generators.diffusion.training import DiffusionTrainer

    config = settings.generators.diffusion
    return DiffusionTrainer(
        config.resolve(profile),
        generator_dir(settings, "diffusion", store),
        seed=settings.seed if config.seed is None else config.seed,
        device=config.device or settings.device,
        profile=profile or config.profile,
    )


def _dcgan_trainer(settings: Settings, store: ImageStore, profile: str | None) -> GeneratorTrainer:
    from medaug.adapters.generators.dcgan.training import DCGANTrainer

    config = settings.generators.dcgan
    return DCGANTrainer(
        config.resolve(profile),
        generator_dir(settings, "dcgan", store),
        seed=settings.seed if config.seed is None else config.seed,
        device=config.device or settings.device,
        profile=profile or config.profile,
        num_threads=config.num_threads,
    )


GeneratorTrainerFactory = Callable[[Settings, ImageStore, str | None], GeneratorTrainer]

GENERATOR_TRAINERS: dict[str, GeneratorTrainerFactory] = {
    "dcgan": _dcgan_trainer,
    "diffusion": _diffusion_trainer,
}


def build_generator_trainer(
    name: str, settings: Settings, store: ImageStore, profile: str | None = None
) -> GeneratorTrainer:
    """The trainer of generator ``name`` (checkpoints under ``generator_dir``).

    Raises:
        ConfigError: no trainable generator has that name.
    """
    try:
        factory = GENERATOR_TRAINERS[name]
    except KeyError:
        names = ", ".join(sorted(GENERATOR_TRAINERS)) or "none in this build"
        raise ConfigError(f"generator {name!r} cannot be trained; trainable generators: {names}") from None
    return factory(settings, store, profile)


# -- logging ----------------------------------------------------------------------------------


def configure_logging(settings: Settings) -> None:
    """structlog as the settings ask (readable in a terminal, JSON otherwise)."""
    from medaug.adapters.logging import configure_logging as configure

    configure(settings.log_format, settings.log_level)


# -- devices ----------------------------------------------------------------------------------


def describe_device(preference: str) -> str:
    """The device torch work will run on, in words (e.g. ``cuda (NVIDIA H100)`` or ``cpu``)."""
    from medaug.adapters.torch_support import resolve_device

    device = resolve_device(preference)
    if device.type == "cuda":
        import torch

        return f"cuda ({torch.cuda.get_device_name(device)})"
    return device.type


# -- reporting -------------------------------------------------------------------------------


def write_contact_sheet(
    store: ImageStore, out: Path, *, per_cell: int = 4, augmentation: str | None = None
) -> Path:
    """Write a PNG contact sheet of ``store`` (grades x real/synthetic columns) to ``out``, atomically."""
    from medaug.adapters.reporting.contact_sheet import write_contact_sheet as write

    return write(store, out, per_cell=per_cell, augmentation=augmentation)


def build_run_folder(location: Path) -> RunRepository:
    """The run folder of an experiment (cells, results, checkpoints), on the local file system."""
    from medaug.adapters.runs import LocalRunFolder

    return LocalRunFolder(location)


def build_report_writer() -> ReportWriter:
    """The experiment report writer: ``report.html`` (self-contained), ``report.md`` and figures."""
    from medaug.adapters.reporting.report import HtmlMarkdownReportWriter

    return HtmlMarkdownReportWriter()


# -- classifiers and evaluation ---------------------------------------------------------------


def _trainer_device(settings: Settings, configured: str) -> str:
    return settings.device if configured == "auto" else configured


def _cnn(settings: Settings) -> ClassifierTrainer:
    from medaug.adapters.trainers.cnn import CNNTrainer

    config = settings.trainers.cnn
    return CNNTrainer(config, device=_trainer_device(settings, config.device))


def _resnet50(settings: Settings) -> ClassifierTrainer:
    from medaug.adapters.trainers.resnet import ResNetTrainer

    config = settings.trainers.resnet50
    return ResNetTrainer(config, device=_trainer_device(settings, config.device))


TrainerFactory = Callable[[Settings], ClassifierTrainer]

TRAINERS: dict[str, TrainerFactory] = {
    "cnn": _cnn,
    "resnet50": _resnet50,
}


def trainer_names() -> list[str]:
    """Names of every classifier this build can train."""
    return sorted(TRAINERS)


def build_trainer(name: str, settings: Settings) -> ClassifierTrainer:
    """The classifier trainer called ``name``, configured from ``settings.trainers``.

    Raises:
        ConfigError: no classifier has that name, or its weights cannot be found.
    """
    try:
        factory = TRAINERS[name]
    except KeyError:
        raise ConfigError(f"unknown classifier {name!r}; choose one of: {', '.join(trainer_names())}") from None
    return factory(settings)


def build_evaluator() -> Evaluator:
    """Metrics and paired statistics (scikit-learn and scipy)."""
    from medaug.adapters.evaluation.evaluator import SklearnEvaluator

    return SklearnEvaluator()


# -- quality of synthetic images --------------------------------------------------------------


def quality_dir(settings: Settings, store: ImageStore) -> Path:
    """Where ``medaug quality`` keeps its grading CNN and writes its outputs for ``store``."""
    import hashlib

    digest = hashlib.sha1(store.location.encode()).hexdigest()[:8]
    return settings.work_dir / "quality" / f"store-{digest}"


def build_quality_analyzer(settings: Settings, store: ImageStore) -> QualityAnalyzer:
    """The quality analyzer of ``settings.quality`` (its grading CNN cached under ``quality_dir``).

    Raises:
        ConfigError: the Inception weights file is missing or unreadable.
    """
    return _fundus_quality_analyzer(settings, store)


def _fundus_quality_analyzer(settings: Settings, store: ImageStore):  # type: ignore[no-untyped-def]
    from medaug.adapters.quality.analyzer import FundusQualityAnalyzer

    config = settings.quality
    return FundusQualityAnalyzer(
        config,
        cache_dir=quality_dir(settings, store) / "models",
        seed=settings.seed if config.seed is None else config.seed,
        device=settings.device if config.device == "auto" else config.device,
    )


def build_synthetic_screen(
    settings: Settings,
    store: ImageStore,
    *,
    min_confidence: float | None = None,
    drop_near_copies: bool | None = None,
    progress: ProgressSink | None = None,
) -> SyntheticScreen | None:
    """The filter ``augment`` applies to generated images (``settings.quality.filter``, with
    overrides), or None when it would drop nothing."""
    config = settings.quality.filter
    updates: dict[str, object] = {}
    if min_confidence is not None:  # a threshold given on the command line replaces a calibrated one
        updates |= {"min_confidence": min_confidence, "keep_real": None}
    if drop_near_copies is not None:
        updates["drop_near_copies"] = drop_near_copies
    config = config.model_copy(update=updates)
    if not config.enabled:
        return None
    return build_screen(settings, store, config, progress=progress)


def build_screen(
    settings: Settings, store: ImageStore, config: FilterConfig, *, progress: ProgressSink | None = None
) -> SyntheticScreen:
    """The quality screen ``config`` describes, judging images against ``store``'s real images."""
    from medaug.adapters.quality.screen import QualityScreen

    return QualityScreen(_fundus_quality_analyzer(settings, store), store, config, progress=progress)


def write_quality_outputs(
    reports: Mapping[str, QualityReport], store: ImageStore, out: Path, *, worst: int = 8
) -> list[Path]:
    """Write ``quality.json`` and the quality figures (similarities, worst pairs, fidelity) to ``out``."""
    from medaug.adapters.quality.plots import write_quality_outputs as write

    return write(reports, store, out, worst=worst)


def working_image_size(settings: Settings, store: ImageStore) -> int:
    """The side synthetic images are made at, for every flow: that of the store's real images,
    or ``settings.image_size`` for a store without any yet."""
    return store_image_size(store) or settings.image_size


def store_image_size(store: ImageStore) -> int | None:
    """The side of the store's real images (synthetic ones are made to match), or None if empty."""
    from medaug.adapters.imaging.png import decode_pil
    from medaug.domain import Origin

    real = store.list(origin=Origin.REAL)
    if not real:
        return None
    return decode_pil(store.get(real[0].id)).width


# -- progress --------------------------------------------------------------------------------


def build_progress(enabled: bool = True, interactive: bool | None = None) -> ProgressSink:
    """Rich bars when stderr is a terminal, periodic log lines when it is not, or nothing.

    Args:
        enabled: False shows no progress at all.
        interactive: whether stderr is a terminal; None asks stderr.
    """
    from medaug.application.ports import NullProgress

    if not enabled:
        return NullProgress()
    from medaug.adapters.progress import LogProgress, RichProgress

    if interactive is None:
        interactive = sys.stderr.isatty()
    return RichProgress() if interactive else LogProgress()
