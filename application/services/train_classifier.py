"""Train one classifier on one store (real images plus, optionally, one augmentation set)."""

from __future__ import annotations

from medaug.application.errors import ConfigError
from medaug.application.ports import (
    ClassifierTrainer,
    Evaluator,
    ImageStore,
    NullProgress,
    ProgressSink,
    TrainingRequest,
)
from medaug.application.services.augment import training_set
from medaug.domain import Split
from medaug.domain.experiment import CellKey, CellResult


def train_classifier(
    store: ImageStore,
    trainer: ClassifierTrainer,
    evaluator: Evaluator,
    *,
    augmentation: str | None,
    seed: int,
    checkpoint_path: str | None = None,
    progress: ProgressSink | None = None,
) -> CellResult:
    """Train ``trainer`` on the store's training set and evaluate it on the test split.

    Raises:
        ConfigError: no training or no test images, or an augmentation set with no images.
    """
    train = training_set(store, augmentation)
    test = store.list(split=Split.TEST)
    if not train or not test:
        raise ConfigError(f"{store.location}: needs real training and test images (ingest a data set first)")
    if augmentation is not None and len(train) == len(training_set(store, None)):
        raise ConfigError(f"{store.location}: augmentation set {augmentation!r} has no images; run `medaug augment run` first")
    request = TrainingRequest(
        train=tuple(train), val=tuple(store.list(split=Split.VAL)), test=tuple(test), seed=seed,
        checkpoint_path=checkpoint_path,
    )
    key = CellKey(arm=augmentation or "none", classifier=trainer.name, seed=seed)
    return train_cell(key, request, store, trainer, evaluator, progress=progress or NullProgress())


def train_cell(
    key: CellKey,
    request: TrainingRequest,
    store: ImageStore,
    trainer: ClassifierTrainer,
    evaluator: Evaluator,
    *,
    progress: ProgressSink,
) -> CellResult:
    """Train ``trainer`` as ``request`` asks and score its test predictions: one cell's result."""
    outcome = trainer.train_and_predict(request, store, progress=progress)
    return CellResult(
        key=key,
        metrics=evaluator.metrics(outcome.predictions),
        predictions=outcome.predictions,
        history=outcome.history,
        best_epoch=outcome.best_epoch,
        train_images=len(request.train),
        seconds=outcome.seconds,
        checkpoint=outcome.checkpoint,
        weights_sha256=outcome.weights_sha256,
        external=dict(outcome.extra_predictions),
        external_metrics={name: evaluator.metrics(p) for name, p in outcome.extra_predictions.items()},
    )
