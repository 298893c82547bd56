"""Train a generator on the real training split of a store."""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from medaug.application.errors import ConfigError
from medaug.application.ports import (
    GeneratorTrainer,
    GeneratorTrainingResult,
    ImageStore,
    LabelledImage,
    NullProgress,
    ProgressSink,
)
from medaug.domain import FundusImage, Origin, Split

_log = structlog.get_logger(__name__)


def load_training_images(store: ImageStore) -> list[LabelledImage]:
    """The real training-split images of ``store`` (never validation, test or synthetic ones)."""
    records = store.list(split=Split.TRAIN, origin=Origin.REAL)
    return [LabelledImage(image_id=r.id, grade=r.grade, data=store.get(r.id)) for r in records]


def train_generator(
    store: ImageStore,
    trainer: GeneratorTrainer,
    *,
    resume: bool = True,
    progress: ProgressSink | None = None,
    only: Sequence[FundusImage] | None = None,
) -> GeneratorTrainingResult:
    """Train ``trainer`` on the real training images of ``store`` (or on ``only`` these real
    images of it: a k-fold experiment trains on the fold's training part).

    Raises:
        ConfigError: the store has no real training images.
    """
    if only is None:
        images = load_training_images(store)
    else:
        images = [LabelledImage(image_id=r.id, grade=r.grade, data=store.get(r.id)) for r in only if r.origin is Origin.REAL]
    if not images:
        raise ConfigError(f"{store.location}: no real training images to train {trainer.name} on; ingest a data set first")
    result = trainer.train(images, progress=progress or NullProgress(), resume=resume)
    _log.info("generator_trained", generator=result.generator, steps=result.steps, checkpoint=result.checkpoint,
              seconds=round(result.seconds, 1))
    return result
