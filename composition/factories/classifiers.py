"""Classifier trainers by name, saved classifiers, and evaluation (metrics, folds, duplicates).

Adapters are imported inside the factories: nothing heavy loads until a service needs it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from medaug.application.errors import ConfigError
from medaug.application.ports import (
    ClassifierTrainer,
    DuplicateFinder,
    Evaluator,
    FoldSplitter,
    SavedClassifier,
)
from medaug.composition.settings import Settings, device_of


def _cnn(settings: Settings, feature_dir: Path | None) -> ClassifierTrainer:
    from medaug.adapters.trainers.cnn import CNNTrainer

    config = settings.trainers.cnn
    return CNNTrainer(config, device=device_of(settings, config.device))


def _resnet50(settings: Settings, feature_dir: Path | None) -> ClassifierTrainer:
    from medaug.adapters.trainers.resnet import ResNetTrainer

    config = settings.trainers.resnet50
    return ResNetTrainer(config, device=device_of(settings, config.device))


def _efficientnet(name: str) -> TrainerFactory:
    """The factory of classifier ``name`` (``efficientnet-lite0``, ``efficientnet-lite0-finetune``,
    ``efficientnet-lite0-partial``...), configured by ``[trainers.<name with _ for ->]``."""
    variant = name.removesuffix("-finetune").removesuffix("-partial")

    def factory(settings: Settings, feature_dir: Path | None) -> ClassifierTrainer:
        from medaug.adapters.trainers.efficientnet import EfficientNetTrainer

        config = getattr(settings.trainers, name.replace("-", "_"))
        config.check_input_sizes(name, settings.image_size)
        return EfficientNetTrainer(
            variant, config, name=name, device=device_of(settings, config.device),
            feature_dir=feature_dir if feature_dir is not None else settings.work_dir / "features",
        )  # fmt: skip

    return factory


TrainerFactory = Callable[[Settings, Path | None], ClassifierTrainer]


def check_store_size(names: Sequence[str], settings: Settings, store_size: int | None, store: str) -> None:
    """Refuse classifiers ``names`` asking for larger images than an existing store holds (see
    ``TrainersConfig.check_store_size``)."""
    settings.trainers.check_store_size(names, store_size, store)


TRAINERS: dict[str, TrainerFactory] = {
    "cnn": _cnn,
    "resnet50": _resnet50,
    **{
        name: _efficientnet(name)
        for variant in ("efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2")
        for name in (variant, f"{variant}-finetune", f"{variant}-partial")
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


def build_evaluator(seed: int) -> Evaluator:
    """Metrics and paired statistics (scikit-learn and scipy), the bootstrap drawn with ``seed``."""
    from medaug.adapters.evaluation.evaluator import SklearnEvaluator

    return SklearnEvaluator(seed=seed)
