"""The training loop every classifier shares.

A run decodes its images (once per process, see ``data``), z-scores them, trains a network's head
for a number of epochs with Adam and cross-entropy (one progress bar, one ``EpochRecord`` per
epoch), optionally selects the best epoch on the validation images and stops early, writes the
chosen weights as safetensors and predicts the test images.

A network is split into a ``frozen`` stage (run without gradients, in eval mode) and a trained
``head``. The output of the frozen stage does not change during a run, so it is computed once per
image and kept in a feature cache keyed by the frozen weights' identity: an epoch then costs only
the head. The network's parts live in ``network``; best-epoch selection, early stopping, request
checks and checkpoint writing in ``handlers``.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog
import torch
from torch import nn

from medaug.adapters.torch_support import seed_everything
from medaug.adapters.trainers.config import LoopConfig
from medaug.adapters.image_tensors import ImageTensors, TensorCache, stack_cached
from medaug.adapters.trainers.handlers import EpochSelector, check_request, save_atomic
from medaug.adapters.trainers.network import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    NUM_GRADES,
    Network,
    NetworkBuilder,
    Normalise,
    OnlineAugmentation,
    Stem,
    channel_stats,
    class_weights,
)
from medaug.application.ports import ExternalTestSet, ImageStore, ProgressSink, TrainingOutcome, TrainingRequest
from medaug.domain import FundusImage
from medaug.domain.experiment import EpochRecord, Predictions
from medaug.domain.metrics import quadratic_weighted_kappa

_log = structlog.get_logger(__name__)

@dataclass
class _Split:
    """The inputs of one image set: precomputed frozen-stage outputs, or images to run per batch."""

    labels: torch.Tensor
    images: torch.Tensor | None = None
    features: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass
class _Epoch:
    loss: float
    accuracy: float
    images: int
    seconds: float


class TrainingLoop:
    """Trains and evaluates one classifier; shared by the ``cnn`` and ``resnet50`` trainers.

    Learning curves: ``train_loss`` is the training criterion (class-weighted when enabled) averaged
    over the epoch's batches in training mode; validation and test losses are unweighted.

    Args:
        name: the classifier's name (progress bars, logs, checkpoint metadata).
        config: epochs, batch size, optimiser and selection options.
        device: where tensors live.
        input_size: side images are resized to; None keeps the store's size.
        normalisation: ``train`` (z-score with the training images' statistics), ``imagenet`` or
            ``fixed`` (``fixed_statistics``).
        fixed_statistics: per-channel (mean, std) in [0, 1] units for ``normalisation = "fixed"``.
        images: decoded-image cache (shared between trainers by default).
        features: the frozen-stage feature cache, or None to recompute it every batch.
    """

    def __init__(
        self,
        name: str,
        config: LoopConfig,
        *,
        device: torch.device,
        input_size: int | None,
        normalisation: str = "train",
        fixed_statistics: tuple[Sequence[float], Sequence[float]] | None = None,
        images: ImageTensors | None = None,
        features: TensorCache | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self.device = device
        self.input_size = input_size
        self.normalisation = normalisation
        self.fixed_statistics = fixed_statistics
        self.images = images or ImageTensors()
        self.features = features
        self.frozen_images = 0
        """Images passed through a frozen stage so far (what the feature cache saves)."""

    # -- the run -------------------------------------------------------------------------------

    def run(
        self, request: TrainingRequest, store: ImageStore, progress: ProgressSink, build: NetworkBuilder
    ) -> TrainingOutcome:
        """Train on ``request.train`` (selecting on ``request.val``), predict ``request.test``.

        Raises:
            ConfigError: no training or test images, or test images among the training ones.
            InputError: a stored image cannot be decoded.
        """
        check_request(self.name, request)
        started = time.perf_counter()
        with _torch_state(self.config, self.device):
            raw = {part: self.images.load(store, getattr(request, part), self.input_size) for part in ("train", "val", "test")}
            mean, std = self._statistics(raw["train"])
            generator = seed_everything(request.seed)
            network = build(request.seed)
            stem = self._stem(Normalise(mean, std), network)
            key = _cache_key(network.identity, mean, std, self.input_size, store.identity)
            augment = OnlineAugmentation(self.config.rotation_degrees) if self.config.online_augmentation else None
            splits = {
                part: self._split(getattr(request, part), raw[part], stem, key, per_batch=(part == "train" and augment is not None))
                for part in ("train", "val", "test")
            }
            head = network.head.to(self.device)
            if network.channels_last:
                head = head.to(memory_format=torch.channels_last)
            history, best_epoch, train_seconds, seen = self._fit(
                head, stem, splits, augment, generator, request.seed, progress, network.channels_last
            )
            logits = self._logits(head, stem, splits["test"], network.channels_last)
            extra = {
                name: predictions_of(external.images, self._predict_external(head, stem, network, mean, std, external))
                for name, external in request.extra_tests.items()
            }
            checkpoint = self._save(request, head, network, mean, std, best_epoch)
        predictions = predictions_of(request.test, logits)
        seconds = time.perf_counter() - started
        _log.info("classifier_trained", classifier=self.name, seed=request.seed, epochs=len(history),
                  best_epoch=best_epoch, seconds=round(seconds, 1))
        return TrainingOutcome(
            predictions=predictions,
            extra_predictions=extra,
            history=tuple(history),
            best_epoch=best_epoch,
            checkpoint=checkpoint,
            seconds=seconds,
            images_per_second=seen / train_seconds if train_seconds > 0 else 0.0,
        )

    def _predict_external(
        self,
        head: nn.Module,
        stem: Stem,
        network: Network,
        mean: Sequence[float],
        std: Sequence[float],
        external: ExternalTestSet,
    ) -> torch.Tensor:
        """Logits of an external set's images, read from its own store, through the trained model
        (normalised with the training images' statistics)."""
        raw = self.images.load(external.store, external.images, self.input_size)
        key = _cache_key(network.identity, mean, std, self.input_size, external.store.identity)
        split = self._split(external.images, raw, stem, key, per_batch=False)
        return self._logits(head, stem, split, network.channels_last)

    def _statistics(self, train: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
        if self.normalisation == "imagenet":
            return IMAGENET_MEAN, IMAGENET_STD
        if self.normalisation == "fixed" and self.fixed_statistics is not None:
            mean, std = self.fixed_statistics
            return tuple(mean), tuple(std)
        return channel_stats(train)

    def _stem(self, normalise: Normalise, network: Network) -> Stem:
        stem = Stem(normalise, network.frozen).to(self.device).eval()
        for parameter in stem.parameters():
            parameter.requires_grad_(False)
        return stem

    # -- inputs --------------------------------------------------------------------------------

    def _split(
        self,
        records: Sequence[FundusImage],
        images: torch.Tensor,
        stem: Stem,
        key: tuple[Hashable, ...] | None,
        *,
        per_batch: bool,
    ) -> _Split:
        labels = torch.tensor([int(r.grade) for r in records], dtype=torch.long)
        if per_batch or key is None or self.features is None or not len(records):
            return _Split(labels=labels, images=images)
        features = stack_cached(
            self.features,
            [(*key, record.id) for record in records],
            lambda indices: self._frozen(stem, images[indices]).unbind(0),
            what=lambda i: records[i].id,
            batch_size=self.config.batch_size,  # a frozen backbone's activations are large
        )
        return _Split(labels=labels, features=features.to(self.device))

    def _frozen(self, stem: Stem, images: torch.Tensor) -> torch.Tensor:
        self.frozen_images += images.shape[0]
        with torch.inference_mode():
            return stem(images.to(self.device)).float().cpu().clone()

    def _batch(
        self,
        split: _Split,
        index: torch.Tensor,
        stem: Stem,
        augment: OnlineAugmentation | None,
        channels_last: bool,
    ) -> torch.Tensor:
        if split.features is not None:
            return split.features[index.to(self.device)]
        assert split.images is not None
        images = split.images[index]
        if augment is not None:
            images = augment(images)
        if stem.has_frozen:
            self.frozen_images += images.shape[0]
        with torch.no_grad():
            inputs = stem(images.to(self.device, non_blocking=True))
        return inputs.contiguous(memory_format=torch.channels_last) if channels_last and inputs.dim() == 4 else inputs

    # -- training ------------------------------------------------------------------------------

    def _fit(
        self,
        head: nn.Module,
        stem: Stem,
        splits: dict[str, _Split],
        augment: OnlineAugmentation | None,
        generator: torch.Generator,
        seed: int,
        progress: ProgressSink,
        channels_last: bool,
    ) -> tuple[list[EpochRecord], int | None, float, int]:
        config = self.config
        trainable = [p for p in head.parameters() if p.requires_grad]
        optimiser = torch.optim.Adam(trainable, lr=config.lr, weight_decay=config.weight_decay)
        weights = class_weights(splits["train"].labels.tolist()) if config.class_weighted else None
        criterion = nn.CrossEntropyLoss(weight=weights.to(self.device) if weights is not None else None)
        selector = EpochSelector(config, has_val=len(splits["val"]) > 0)
        history: list[EpochRecord] = []
        train_seconds, seen = 0.0, 0
        with progress.task(f"{self.name} seed {seed}", total=config.epochs) as task:
            for epoch in range(1, config.epochs + 1):
                result = self._epoch(head, stem, splits["train"], augment, generator, optimiser, criterion, channels_last)
                train_seconds, seen = train_seconds + result.seconds, seen + result.images
                record, kappa = self._record(epoch, result, head, stem, splits["val"], channels_last)
                history.append(record)
                fields = {"loss": record.train_loss, "acc": record.train_accuracy}
                if record.val_accuracy is not None:
                    fields["val_acc"] = record.val_accuracy
                task.advance(1, **fields)
                selector.update(record, kappa, head)
                if selector.should_stop():
                    break
        if selector.best_state is not None:
            head.load_state_dict(selector.best_state)
        return history, selector.best_epoch, train_seconds, seen

    def _epoch(
        self,
        head: nn.Module,
        stem: Stem,
        train: _Split,
        augment: OnlineAugmentation | None,
        generator: torch.Generator,
        optimiser: torch.optim.Optimizer,
        criterion: nn.Module,
        channels_last: bool,
    ) -> _Epoch:
        head.train()
        started = time.perf_counter()
        total_loss, correct = 0.0, 0
        order = torch.randperm(len(train), generator=generator)
        for index in order.split(self.config.batch_size):
            inputs = self._batch(train, index, stem, augment, channels_last)
            labels = train.labels[index].to(self.device)
            logits = head(inputs)
            loss = criterion(logits, labels)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            total_loss += float(loss.detach()) * len(index)
            correct += int((logits.detach().argmax(dim=1) == labels).sum())
        return _Epoch(
            loss=total_loss / len(train),
            accuracy=correct / len(train),
            images=len(train),
            seconds=time.perf_counter() - started,
        )

    def _record(
        self, epoch: int, result: _Epoch, head: nn.Module, stem: Stem, val: _Split, channels_last: bool
    ) -> tuple[EpochRecord, float | None]:
        """The epoch's learning-curve point and, with validation images, their quadratic kappa."""
        if not len(val):
            return EpochRecord(epoch=epoch, train_loss=result.loss, train_accuracy=result.accuracy), None
        logits = self._logits(head, stem, val, channels_last)
        predicted = logits.argmax(dim=1)
        record = EpochRecord(
            epoch=epoch,
            train_loss=result.loss,
            train_accuracy=result.accuracy,
            val_loss=float(nn.functional.cross_entropy(logits.double(), val.labels)),
            val_accuracy=float((predicted == val.labels).double().mean()),
        )
        return record, quadratic_weighted_kappa(val.labels.tolist(), predicted.tolist())

    def _logits(self, head: nn.Module, stem: Stem, split: _Split, channels_last: bool) -> torch.Tensor:
        head.eval()
        outputs = []
        through_backbone = split.features is None and stem.has_frozen
        size = self.config.batch_size if through_backbone else self.config.eval_batch_size
        with torch.inference_mode():
            for index in torch.arange(len(split)).split(size):
                outputs.append(head(self._batch(split, index, stem, None, channels_last)).float().cpu())
        return torch.cat(outputs) if outputs else torch.empty(0, NUM_GRADES)

    # -- checkpoint ----------------------------------------------------------------------------

    def _save(
        self,
        request: TrainingRequest,
        head: nn.Module,
        network: Network,
        mean: Sequence[float],
        std: Sequence[float],
        best_epoch: int | None,
    ) -> str | None:
        if request.checkpoint_path is None:
            return None
        tensors = {f"head.{k}": v.detach().cpu().contiguous().clone() for k, v in head.state_dict().items()}
        tensors["normalise.mean"] = torch.tensor(mean, dtype=torch.float32)
        tensors["normalise.std"] = torch.tensor(std, dtype=torch.float32)
        metadata = {
            "classifier": self.name,
            "seed": str(request.seed),
            "mean": json.dumps(list(mean)),
            "std": json.dumps(list(std)),
            "input_size": str(self.input_size),
            "frozen": network.identity or "",
            "best_epoch": str(best_epoch),
            "config": self.config.model_dump_json(),
        }
        return save_atomic(tensors, Path(request.checkpoint_path), metadata)


def predictions_of(records: Sequence[FundusImage], logits: torch.Tensor) -> Predictions:
    """Softmax probabilities and argmax grades of ``logits``, one per record, in order."""
    probabilities = torch.softmax(logits.double(), dim=1)
    probabilities = probabilities / probabilities.sum(dim=1, keepdim=True)
    return Predictions(
        image_ids=tuple(r.id for r in records),
        labels=tuple(int(r.grade) for r in records),
        predicted=tuple(int(p) for p in probabilities.argmax(dim=1)),
        probabilities=tuple(tuple(float(v) for v in row) for row in probabilities.tolist()),
    )


def _cache_key(
    identity: str | None, mean: Sequence[float], std: Sequence[float], size: int | None, location: str
) -> tuple[Hashable, ...] | None:
    if identity is None:
        return None
    return (identity, tuple(round(v, 6) for v in mean), tuple(round(v, 6) for v in std), size, location)


@contextlib.contextmanager
def _torch_state(config: LoopConfig, device: torch.device) -> Iterator[None]:
    """Thread count and deterministic algorithms for one run, restored afterwards."""
    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    if config.deterministic and device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
