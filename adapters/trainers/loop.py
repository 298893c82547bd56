"""The training loop every classifier shares.

A run decodes its images (once per process, see ``data``), z-scores them, trains a network's head
for a number of epochs with Adam and cross-entropy (one progress bar, one ``EpochRecord`` per
epoch), optionally selects the best epoch on the validation images and stops early, writes the
chosen weights as safetensors and predicts the test images.

A network is split into a ``frozen`` stage (run without gradients, in eval mode) and a trained
``head``. The output of the frozen stage does not change during a run, so it is computed once per
image and kept in a feature cache keyed by the frozen weights' identity: an epoch then costs only
the head.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import time
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import structlog
import torch
from safetensors.torch import save as safetensors_save
from sklearn.utils.class_weight import compute_class_weight
from torch import nn
from torchvision.transforms import v2

from medaug.adapters.evaluation.evaluator import quadratic_kappa
from medaug.adapters.files import write_atomic
from medaug.adapters.torch_support import seed_everything
from medaug.adapters.trainers.config import LoopConfig
from medaug.adapters.trainers.data import ImageTensors, TensorCache, stack_cached
from medaug.application.errors import ConfigError
from medaug.application.ports import ImageStore, ProgressSink, TrainingOutcome, TrainingRequest
from medaug.domain import FundusImage
from medaug.domain.experiment import EpochRecord, Predictions

_log = structlog.get_logger(__name__)

NUM_GRADES = 5
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Normalise(nn.Module):
    """uint8 images -> floats z-scored with fixed per-channel statistics.

    Args:
        mean: per-channel mean of the [0, 1] pixel values.
        std: per-channel standard deviation of the [0, 1] pixel values.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Normalise a uint8 (or [0, 255] float) batch Nx3xHxW."""
        return (images.float() / 255.0 - self.mean) / self.std


class Stem(nn.Module):
    """What runs before the head without gradients: the normalisation, then any frozen stage.

    Args:
        normalise: the z-score normalisation.
        frozen: the frozen part of the network, or None.
    """

    def __init__(self, normalise: Normalise, frozen: nn.Module | None) -> None:
        super().__init__()
        self.normalise = normalise
        self.frozen = frozen

    @property
    def has_frozen(self) -> bool:
        """True when a frozen network stage follows the normalisation."""
        return self.frozen is not None

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 images -> the head's inputs."""
        inputs = self.normalise(images)
        return self.frozen(inputs) if self.frozen is not None else inputs


@dataclass
class Network:
    """A classifier as the loop sees it.

    Attributes:
        head: the trained part; maps the frozen stage's output to five logits.
        frozen: a part run without gradients in eval mode before the head, or None.
        identity: names the frozen stage's weights (e.g. ``imagenet:resnet50-11ad3fa6.pth|pooled``);
            when set, its outputs are cached per image under it. None disables the cache.
        channels_last: feed the head channels-last tensors (faster convolutions on CPU).
    """

    head: nn.Module
    frozen: nn.Module | None = None
    identity: str | None = None
    channels_last: bool = False


NetworkBuilder = Callable[[int], Network]
"""Builds a fresh network for a run's seed (called after seeding, so its initialisation is seeded)."""


def channel_stats(images: torch.Tensor, chunk: int = 64) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation of uint8 images Nx3xHxW, in [0, 1] units."""
    total = torch.zeros(images.shape[1], dtype=torch.float64)
    squares = torch.zeros_like(total)
    for start in range(0, images.shape[0], chunk):
        part = images[start : start + chunk].to(torch.float64).div_(255.0)
        total += part.sum(dim=(0, 2, 3))
        squares += part.square().sum(dim=(0, 2, 3))
    count = images.shape[0] * images.shape[2] * images.shape[3]
    mean = total / count
    std = (squares / count - mean.square()).clamp_min(1e-12).sqrt().clamp_min(1e-3)
    return tuple(mean.tolist()), tuple(std.tolist())


def class_weights(labels: Sequence[int]) -> torch.Tensor:
    """Balanced cross-entropy weights over the five grades (``n / (k * n_grade)``); 1 for absent grades."""
    present = np.unique(np.asarray(labels))
    balanced = compute_class_weight("balanced", classes=present, y=np.asarray(labels))
    weights = torch.ones(NUM_GRADES, dtype=torch.float32)
    weights[torch.as_tensor(present)] = torch.as_tensor(balanced, dtype=torch.float32)
    return weights


class OnlineAugmentation:
    """Random flips and a small rotation of each image (torchvision.transforms.v2, global torch RNG).

    Args:
        degrees: the largest rotation either way.
    """

    def __init__(self, degrees: float) -> None:
        self._transform = v2.Compose(
            [v2.RandomHorizontalFlip(), v2.RandomVerticalFlip(), v2.RandomRotation(degrees)]
        )

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Augment each image of a uint8 batch Nx3xHxW independently."""
        return torch.stack([self._transform(image) for image in images])


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
            key = _cache_key(network.identity, mean, std, self.input_size, store.location)
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
            checkpoint = self._save(request, head, network, mean, std, best_epoch)
        predictions = predictions_of(request.test, logits)
        seconds = time.perf_counter() - started
        _log.info("classifier_trained", classifier=self.name, seed=request.seed, epochs=len(history),
                  best_epoch=best_epoch, seconds=round(seconds, 1))
        return TrainingOutcome(
            predictions=predictions,
            history=tuple(history),
            best_epoch=best_epoch,
            checkpoint=checkpoint,
            seconds=seconds,
            images_per_second=seen / train_seconds if train_seconds > 0 else 0.0,
        )

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
        return record, quadratic_kappa(val.labels.tolist(), predicted.tolist())

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


class EpochSelector:
    """Keeps the best epoch's weights (on validation) and decides when to stop early.

    The monitored value is the validation loss (or kappa, per ``selection_metric``) when there are
    validation images, else the training loss; weights are only kept with validation images.

    Args:
        config: patience, selection metric and whether to select at all.
        has_val: whether the run has validation images.
    """

    def __init__(self, config: LoopConfig, *, has_val: bool) -> None:
        self._config = config
        self._has_val = has_val
        self._best = math.inf
        self._stale = 0
        self.best_epoch: int | None = None
        self.best_state: dict[str, torch.Tensor] | None = None

    def update(self, record: EpochRecord, kappa: float | None, head: nn.Module) -> None:
        """Note an epoch's figures, keeping the head's weights when they are the best so far."""
        score = self._score(record, kappa)
        if score < self._best - 1e-9:
            self._best, self._stale = score, 0
            if self._has_val and self._config.select_best_on_val:
                self.best_epoch = record.epoch
                self.best_state = copy.deepcopy(head.state_dict())
        else:
            self._stale += 1

    def should_stop(self) -> bool:
        """True once the monitored value has not improved for ``early_stopping_patience`` epochs."""
        patience = self._config.early_stopping_patience
        return patience is not None and self._stale >= patience

    def _score(self, record: EpochRecord, kappa: float | None) -> float:
        """The monitored value, lower is better."""
        if not self._has_val:
            return record.train_loss
        if self._config.selection_metric == "kappa":
            return -(kappa if kappa is not None else 0.0)
        return record.val_loss if record.val_loss is not None else math.inf


def check_request(name: str, request: TrainingRequest) -> None:
    """Refuse a run that cannot train or would touch the test images.

    Raises:
        ConfigError: no training or test images, or a test image among the training/validation ones.
    """
    if not request.train:
        raise ConfigError(f"{name}: no training images in the request")
    if not request.test:
        raise ConfigError(f"{name}: no test images to predict in the request")
    test_ids = {r.id for r in request.test}
    leaked = sorted(test_ids & {r.id for r in (*request.train, *request.val)})
    if leaked:
        raise ConfigError(f"{name}: test image {leaked[0]} is also a training or validation image")


def save_atomic(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str]) -> str:
    """Write a safetensors file atomically (temporary file in the same folder, then rename)."""
    return str(write_atomic(path, safetensors_save(tensors, metadata=metadata)))


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
