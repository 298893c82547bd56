"""The one place that knows concrete adapters: it builds them from Settings.

Adding a generator = one adapter module + one entry in ``GENERATORS`` below. Adapters are
imported lazily inside the factories so that ``import medaug`` stays light and nothing heavy
(torch, SDK clients, weights) is loaded until a service actually needs it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from medaug.adapters.quality.config import FilterConfig
from medaug.application.errors import ConfigError
from medaug.application.ports import (
    ClassifierTrainer,
    DatasetSource,
    DuplicateFinder,
    Evaluator,
    FoldSplitter,
    GeneratorTrainer,
    ImageGenerator,
    ImageStore,
    Preprocessor,
    ProgressSink,
    QualityAnalyzer,
    ReportWriter,
    RunRepository,
    SavedClassifier,
    SyntheticScreen,
)
from medaug.composition.settings import Settings
from medaug.domain.quality import QualityReport

if TYPE_CHECKING:
    from medaug.adapters.quality.config import QualityConfig
    from medaug.adapters.quality.judge import JudgeMaker

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

    return LocalImageStore(config.root, lock_wait=config.lock_wait_seconds)


def _build_s3_store(config) -> ImageStore:  # type: ignore[no-untyped-def]
    try:
        from medaug.adapters.stores.s3 import S3ImageStore
        from medaug.adapters.stores.s3_client import make_s3_client
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
        lock_wait=config.lock_wait_seconds,
        lease_seconds=config.s3.lease_seconds,
    )


def check_output_file(path: Path, what: str) -> None:
    """Refuse, before any work, an output path that cannot be written (a folder, no permission)."""
    from medaug.adapters.files import check_output_file as check

    check(path, what)


def build_pseudonymiser(settings: Settings) -> Callable[[str], str]:
    """Ids -> ``p-`` + 20 hex digits of HMAC-SHA256(key, id), the key from settings (never stored).

    Raises:
        ConfigError: no key is set, or the key file cannot be read or is empty.
    """
    import hashlib
    import hmac

    if settings.pseudonym_key is not None:
        key = settings.pseudonym_key.get_secret_value().encode()
    elif settings.pseudonym_key_file is not None:
        try:
            key = settings.pseudonym_key_file.read_bytes().strip()
        except OSError as exc:
            raise ConfigError(f"{settings.pseudonym_key_file}: cannot read pseudonym_key_file ({exc.strerror or exc})") from None
    else:
        raise ConfigError("pseudonymising needs a key: set MEDAUG_PSEUDONYM_KEY or pseudonym_key_file")
    if len(key) < 16:
        raise ConfigError("pseudonym_key: too short (at least 16 characters, e.g. from 'openssl rand -hex 32')")
    return lambda name: "p-" + hmac.new(key, name.encode(), hashlib.sha256).hexdigest()[:20]


def check_mapping_file(path: Path, store: ImageStore) -> None:
    """Refuse, before any work, a pseudonym mapping file inside ``store`` or that cannot be written."""
    from medaug.adapters.files import check_output_file as check

    root = getattr(store, "root", None)
    if root is not None:
        resolved, store_root = path.resolve(), Path(root).resolve()
        if resolved == store_root or store_root in resolved.parents:
            raise ConfigError(f"{path}: the pseudonym mapping must be kept outside the store ({store.location})")
    check(path, "--mapping")


def write_mapping(path: Path, mapping: Mapping[str, str]) -> None:
    """Write pseudonym,original CSV rows to ``path`` atomically, readable by its owner only."""
    import csv
    import io

    from medaug.adapters.files import write_atomic

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["pseudonym", "original"])
    writer.writerows(sorted(mapping.items()))
    write_atomic(path, buffer.getvalue(), mode=0o600)


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


def _classic(settings: Settings, store: ImageStore, scope: str | None = None) -> ImageGenerator:
    from medaug.adapters.generators.classic.generator import ClassicGenerator

    return ClassicGenerator(settings.generators.classic, device=settings.device)


def _openai(settings: Settings, store: ImageStore, scope: str | None = None) -> ImageGenerator:
    # The privacy gate (allow_external_upload) and the key are checked when it is first used, so
    # that ``augment run --dry-run`` can estimate costs before either is set.
    from medaug.adapters.generators.openai_edits.generator import (
        OpenAIGenerator,
        make_openai_client,
    )

    config = settings.generators.openai
    return OpenAIGenerator(make_openai_client(config), config, generator_dir(settings, "openai", store, scope))


def _diffusion(settings: Settings, store: ImageStore, scope: str | None = None) -> ImageGenerator:
    from medaug.adapters.generators.diffusion.generator import DiffusionGenerator

    config = settings.generators.diffusion
    return DiffusionGenerator(
        config, generator_dir(settings, "diffusion", store, scope), device=config.device or settings.device
    )


def _dcgan(settings: Settings, store: ImageStore, scope: str | None = None) -> ImageGenerator:
    from medaug.adapters.generators.dcgan.generator import DCGANGenerator

    config = settings.generators.dcgan
    return DCGANGenerator(config, generator_dir(settings, "dcgan", store, scope), device=config.device or settings.device)


GeneratorFactory = Callable[[Settings, ImageStore, str | None], ImageGenerator]

GENERATORS: dict[str, GeneratorFactory] = {
    "classic": _classic,
    "dcgan": _dcgan,
    "diffusion": _diffusion,
    "openai": _openai,
}


def generator_names() -> list[str]:
    """Names of every generator this build can make."""
    return sorted(GENERATORS)


def build_generator(name: str, settings: Settings, store: ImageStore, scope: str | None = None) -> ImageGenerator:
    """The generator called ``name``, configured from settings (``scope``: see ``generator_dir``).

    Raises:
        ConfigError: no generator has that name.
    """
    try:
        factory = GENERATORS[name]
    except KeyError:
        raise ConfigError(f"unknown generator {name!r}; choose one of: {', '.join(generator_names())}") from None
    return factory(settings, store, scope)


# -- generator training ----------------------------------------------------------------------


def generator_dir(settings: Settings, name: str, store: ImageStore, scope: str | None = None) -> Path:
    """Where generator ``name`` keeps its checkpoints for ``store`` (one model per store), and per
    ``scope`` within it: a k-fold experiment trains one model per fold (``f0r0``...) on that
    fold's training images only.

    Keyed by the store's identity, never its path as typed: the same store reached by a
    relative or an absolute path finds the same model, and a model never serves another store.
    """
    return settings.work_dir / "generators" / (f"{name}-{store.identity}" + (f"-{scope}" if scope else ""))


def _diffusion_trainer(
    settings: Settings, store: ImageStore, profile: str | None, scope: str | None = None
) -> GeneratorTrainer:
    from medaug.adapters.generators.diffusion.training import DiffusionTrainer

    config = settings.generators.diffusion
    return DiffusionTrainer(
        config.resolve(profile),
        generator_dir(settings, "diffusion", store, scope),
        seed=settings.seed if config.seed is None else config.seed,
        device=config.device or settings.device,
        profile=profile or config.profile,
    )


def _dcgan_trainer(
    settings: Settings, store: ImageStore, profile: str | None, scope: str | None = None
) -> GeneratorTrainer:
    from medaug.adapters.generators.dcgan.training import DCGANTrainer

    config = settings.generators.dcgan
    return DCGANTrainer(
        config.resolve(profile),
        generator_dir(settings, "dcgan", store, scope),
        seed=settings.seed if config.seed is None else config.seed,
        device=config.device or settings.device,
        profile=profile or config.profile,
        num_threads=config.num_threads,
    )


GeneratorTrainerFactory = Callable[[Settings, ImageStore, str | None, str | None], GeneratorTrainer]

GENERATOR_TRAINERS: dict[str, GeneratorTrainerFactory] = {
    "dcgan": _dcgan_trainer,
    "diffusion": _diffusion_trainer,
}


def build_generator_trainer(
    name: str, settings: Settings, store: ImageStore, profile: str | None = None, scope: str | None = None
) -> GeneratorTrainer:
    """The trainer of generator ``name`` (checkpoints under ``generator_dir``, per ``scope``).

    Raises:
        ConfigError: no trainable generator has that name.
    """
    try:
        factory = GENERATOR_TRAINERS[name]
    except KeyError:
        names = ", ".join(sorted(GENERATOR_TRAINERS)) or "none in this build"
        raise ConfigError(f"generator {name!r} cannot be trained; trainable generators: {names}") from None
    return factory(settings, store, profile, scope)


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
    """The experiment report writer: ``report.html`` (self-contained), ``report.md`` and figures,
    with the synthetic images' quality section contributed by the quality adapter."""
    from medaug.adapters.quality.report_section import quality_sections
    from medaug.adapters.reporting.report import HtmlMarkdownReportWriter

    return HtmlMarkdownReportWriter(extra_sections=(quality_sections,))


# -- classifiers and evaluation ---------------------------------------------------------------


def _trainer_device(settings: Settings, configured: str) -> str:
    return settings.device if configured == "auto" else configured


def _cnn(settings: Settings, feature_dir: Path | None) -> ClassifierTrainer:
    from medaug.adapters.trainers.cnn import CNNTrainer

    config = settings.trainers.cnn
    return CNNTrainer(config, device=_trainer_device(settings, config.device))


def _resnet50(settings: Settings, feature_dir: Path | None) -> ClassifierTrainer:
    from medaug.adapters.trainers.resnet import ResNetTrainer

    config = settings.trainers.resnet50
    return ResNetTrainer(config, device=_trainer_device(settings, config.device))


def _efficientnet(name: str) -> TrainerFactory:
    """The factory of classifier ``name`` (``efficientnet-lite0``, ``efficientnet-lite0-finetune``...),
    configured by ``[trainers.<name with _ for ->]``."""
    variant = name.removesuffix("-finetune")

    def factory(settings: Settings, feature_dir: Path | None) -> ClassifierTrainer:
        from medaug.adapters.trainers.efficientnet import EfficientNetTrainer

        config = getattr(settings.trainers, name.replace("-", "_"))
        return EfficientNetTrainer(
            variant, config, name=name, device=_trainer_device(settings, config.device),
            feature_dir=feature_dir if feature_dir is not None else settings.work_dir / "features",
        )  # fmt: skip

    return factory


TrainerFactory = Callable[[Settings, Path | None], ClassifierTrainer]

TRAINERS: dict[str, TrainerFactory] = {
    "cnn": _cnn,
    "resnet50": _resnet50,
    **{
        name: _efficientnet(name)
        for variant in ("efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2")
        for name in (variant, f"{variant}-finetune")
    },
}


def trainer_names() -> list[str]:
    """Names of every classifier this build can train."""
    return sorted(TRAINERS)


def build_trainer(name: str, settings: Settings, *, feature_dir: Path | None = None) -> ClassifierTrainer:
    """The classifier trainer called ``name``, configured from ``settings.trainers``.

    Args:
        feature_dir: where frozen-backbone features are cached (an experiment's run folder);
            None uses ``<work_dir>/features``.

    Raises:
        ConfigError: no classifier has that name, or its weights cannot be found.
    """
    try:
        factory = TRAINERS[name]
    except KeyError:
        raise ConfigError(f"unknown classifier {name!r}; choose one of: {', '.join(trainer_names())}") from None
    return factory(settings, feature_dir)


def build_saved_classifier(path: Path) -> SavedClassifier:
    """A classifier saved by ``medaug train --checkpoint`` (the CNN), loaded from ``path``.

    Raises:
        ConfigError: the file is missing or holds no CNN.
    """
    from medaug.adapters.trainers.saved import SavedCNN

    return SavedCNN(path)


def build_fold_splitter() -> FoldSplitter:
    """Stratified, group-aware k-fold assignment (scikit-learn)."""
    from medaug.adapters.evaluation.folds import StratifiedGroupFolds

    return StratifiedGroupFolds()


def build_duplicate_finder() -> DuplicateFinder:
    """Finds copies among real images (identical or near-identical pixels)."""
    from medaug.adapters.evaluation.duplicates import PixelDuplicateFinder

    return PixelDuplicateFinder()


def build_evaluator() -> Evaluator:
    """Metrics and paired statistics (scikit-learn and scipy)."""
    from medaug.adapters.evaluation.evaluator import SklearnEvaluator

    return SklearnEvaluator()


# -- quality of synthetic images --------------------------------------------------------------


def quality_dir(settings: Settings, store: ImageStore) -> Path:
    """Where ``medaug quality`` keeps its grading CNN and writes its outputs for ``store`` (by identity)."""
    return settings.work_dir / "quality" / f"store-{store.identity}"


def build_quality_analyzer(settings: Settings, store: ImageStore, *, feature_dir: Path | None = None) -> QualityAnalyzer:
    """The quality analyzer of ``settings.quality``, its judges' caches under ``quality_dir``.

    Args:
        feature_dir: where frozen-backbone features are cached (an experiment's run folder, shared
            with its classifiers); None uses ``quality_dir / "features"``.

    Raises:
        ConfigError: the Inception or EfficientNet weights are missing or unreadable.
    """
    return _fundus_quality_analyzer(settings, store, feature_dir)


def build_quality_judges(
    config: QualityConfig, *, models_dir: Path, feature_dir: Path | None, device: str
) -> dict[str, JudgeMaker]:
    """The judges ``config`` names (its ``classifier`` and its ``features``), by name.

    Raises:
        ConfigError: the EfficientNet weights or packages are missing.
    """
    from medaug.adapters.torch_support import resolve_device

    torch_device = resolve_device(device)
    wanted = {config.classifier} | ({config.features} - {"inception"})
    judges: dict[str, JudgeMaker] = {}
    if "efficientnet-lite0" in wanted:
        from medaug.adapters.trainers.config import EfficientNetConfig
        from medaug.adapters.trainers.quality_judges import BackboneJudges

        probe = config.probe
        head = EfficientNetConfig(weights=probe.weights, input_size=probe.input_size, c=probe.c,
                                  head_epochs=probe.head_epochs, num_threads=config.num_threads)
        judges["efficientnet-lite0"] = BackboneJudges(
            "efficientnet-lite0", head, feature_dir, device=torch_device, components=probe.components
        )
    if "fundus-cnn" in wanted:
        from medaug.adapters.image_tensors import ImageTensors, shared_cache
        from medaug.adapters.trainers.quality_judges import FundusCNNJudges

        judges["fundus-cnn"] = FundusCNNJudges(config.cnn, models_dir, device=torch_device, images=ImageTensors(shared_cache()))
    return judges


def _fundus_quality_analyzer(settings: Settings, store: ImageStore, feature_dir: Path | None = None):  # type: ignore[no-untyped-def]
    from medaug.adapters.quality.analyzer import FundusQualityAnalyzer

    config = settings.quality
    device = settings.device if config.device == "auto" else config.device
    folder = quality_dir(settings, store)
    judges = build_quality_judges(
        config, models_dir=folder / "models", feature_dir=feature_dir or folder / "features", device=device
    )
    return FundusQualityAnalyzer(
        config,
        judges=judges,
        cache_dir=folder / "models",
        seed=settings.seed if config.seed is None else config.seed,
        device=device,
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
    from medaug.adapters.png import decode_pil
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
