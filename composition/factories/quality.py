"""Quality of synthetic images: the analyzer, its judges, and the screen applied while augmenting.

Adapters are imported inside the factories: nothing heavy loads until a service needs it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from medaug.adapters.quality.config import ScreenConfig
from medaug.application.ports import (
    ImageStore,
    ProgressSink,
    QualityAnalyzer,
    SyntheticScreen,
)
from medaug.composition.settings import Settings, device_of, seed_of
from medaug.domain import FundusImage
from medaug.domain.quality import QualityReport

if TYPE_CHECKING:
    from medaug.adapters.quality.config import QualityConfig
    from medaug.adapters.quality.judge import JudgeMaker


def quality_dir(settings: Settings, store: ImageStore) -> Path:
    """Where ``medaug quality`` keeps its grading CNN and writes its outputs for ``store`` (by identity)."""
    return settings.work_dir / "quality" / f"store-{store.identity}"


def build_quality_analyzer(
    settings: Settings, store: ImageStore, *, feature_dir: Path | None = None
) -> QualityAnalyzer:
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

        head = EfficientNetConfig(**config.probe_head())
        judges["efficientnet-lite0"] = BackboneJudges(
            "efficientnet-lite0", head, feature_dir, device=torch_device, components=config.probe.components
        )
    if "fundus-cnn" in wanted:
        from medaug.adapters.image_tensors import ImageTensors, shared_cache
        from medaug.adapters.trainers.quality_judges import FundusCNNJudges

        judges["fundus-cnn"] = FundusCNNJudges(
            config.cnn, models_dir, device=torch_device, images=ImageTensors(shared_cache())
        )
    return judges


def _fundus_quality_analyzer(settings: Settings, store: ImageStore, feature_dir: Path | None = None):  # type: ignore[no-untyped-def]
    from medaug.adapters.quality.analyzer import FundusQualityAnalyzer

    config = settings.quality
    device = device_of(settings, config.device)
    folder = quality_dir(settings, store)
    judges = build_quality_judges(
        config, models_dir=folder / "models", feature_dir=feature_dir or folder / "features", device=device
    )
    return FundusQualityAnalyzer(
        config,
        judges=judges,
        cache_dir=folder / "models",
        seed=seed_of(settings, config.seed),
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
    """The screen ``augment`` applies to generated images (``settings.quality.screen``, with
    overrides), or None when it would drop nothing."""
    config = settings.quality.screen.overridden(min_confidence=min_confidence, drop_near_copies=drop_near_copies)
    if not config.enabled:
        return None
    return build_screen(settings, store, config, progress=progress)


def build_screen(
    settings: Settings,
    store: ImageStore,
    config: ScreenConfig,
    *,
    progress: ProgressSink | None = None,
    real: Sequence[FundusImage] | None = None,
) -> SyntheticScreen:
    """The quality screen ``config`` describes, judging images against ``store``'s real training
    images (or against ``real``, one fold's training images)."""
    from medaug.adapters.quality.screen import QualityScreen

    return QualityScreen(_fundus_quality_analyzer(settings, store), store, config, progress=progress, real=real)


def write_quality_outputs(
    reports: Mapping[str, QualityReport], store: ImageStore, out: Path, *, worst: int = 8
) -> list[Path]:
    """Write ``quality.json`` and the quality figures (similarities, worst pairs, fidelity) to ``out``."""
    from medaug.adapters.quality.plots import write_quality_outputs as write

    return write(reports, store, out, worst=worst)
