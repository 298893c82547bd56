"""Classifiers that judge image quality: fitted on the real training split, they grade images and
give the feature space quality is measured in. The composition root hands them to
``adapters.quality`` (which never imports the trainers), by name:

- ``efficientnet-lite0`` (the default): the frozen EfficientNet-Lite0 probe, pooled backbone
  features (cached by image checksum, shared with the classifiers of an experiment) and a linear
  head on them;
- ``fundus-cnn``: the ``cnn`` classifier's network trained here on the real split, its
  penultimate layer the feature space (cached as safetensors per store and real training set).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import structlog
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from medaug.adapters.trainers.backbone import FrozenFeatures, frozen_features
from medaug.adapters.classifier_config import CNNConfig
from medaug.adapters.image_tensors import ImageTensors
from medaug.adapters.torch_support import seed_everything
from medaug.adapters.trainers.cnn import ProposedCNN
from medaug.adapters.trainers.config import EfficientNetConfig
from medaug.adapters.trainers.head import LinearHead, fit_linear_head, one_thread
from medaug.adapters.trainers.loop import TrainingLoop, predictions_of
from medaug.adapters.trainers.network import Network, Normalise
from medaug.application.errors import ConfigError
from medaug.application.ports import ImageStore, ProgressSink, TrainingRequest
from medaug.domain import FundusImage
from medaug.domain.experiment import Predictions

_log = structlog.get_logger(__name__)

CHECKPOINT_VERSION = "1"
"""Bumped when what the fundus CNN's cache key covers changes, so old checkpoints are not reused."""


# -- the frozen EfficientNet-Lite probe ----------------------------------------------------------


class Projection:
    """Centring and projection on the leading principal components of a set of features.

    Args:
        features: the rows the components are fitted on (NxD).
        components: how many to keep (at most N - 1).
    """

    def __init__(self, features: torch.Tensor, components: int) -> None:
        self.mean = features.double().mean(dim=0)
        keep = max(1, min(components, features.shape[0] - 1, features.shape[1]))
        with one_thread():  # 1.7 s for 413 x 2560; 30 s on two threads of a busy machine
            _, _, vh = torch.linalg.svd(features.double() - self.mean, full_matrices=False)
        self.basis = vh[:keep].T.contiguous()

    def __call__(self, features: torch.Tensor) -> torch.Tensor:
        return ((features.double() - self.mean) @ self.basis).float()


class BackboneJudge:
    """Grade probabilities of images by a head fitted on real ones, and their pooled backbone
    features projected on the real training features' principal components."""

    def __init__(self, name: str, features: FrozenFeatures, head: LinearHead, projection: Projection) -> None:
        self.name = name
        self.size: int | None = features.input_size
        self._features = features
        self._head = head.eval()
        self._projection = projection

    def profile(self, store: ImageStore, records: Sequence[FundusImage]) -> tuple[torch.Tensor, torch.Tensor]:
        """Probabilities (Nx5) and projected features (NxK) of stored images (features from the cache)."""
        features = self._features.of(store, records)[:, 0]
        return self._probabilities(features), self._projection(features)

    def scores(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Probabilities and projected features of a uint8 batch Nx3xSxS decoded at ``size`` (not cached)."""
        features = self._features.compute(images)
        return self._probabilities(features), self._projection(features)

    @torch.inference_mode()
    def _probabilities(self, features: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self._head(features).double(), dim=1).float()


class BackboneJudges:
    """Fits ``BackboneJudge`` s (and train-on-synthetic heads) on a frozen EfficientNet-Lite.

    Args:
        variant: ``efficientnet-lite0`` (or ``-lite1``, ``-lite2``).
        config: weights, input size and the head's options (``mode`` is ignored: always frozen).
        components: principal components the feature space keeps (see ``Projection``).
        folder: where features are cached (an experiment's run folder, or the quality folder).
        device: where the backbone runs.

    Raises:
        ConfigError: the packages or the weights are missing or wrong.
    """

    def __init__(
        self, variant: str, config: EfficientNetConfig, folder: Path | None, *, device: torch.device, components: int = 64
    ) -> None:
        self.name = variant
        self.config = config
        self.components = components
        self.features = frozen_features(variant, config.weights, config.input_size, folder, device=device,
                                        batch_size=config.batch_size)

    def fit(
        self,
        store: ImageStore,
        train: Sequence[FundusImage],
        *,
        val: Sequence[FundusImage],
        test: Sequence[FundusImage],
        seed: int,
        progress: ProgressSink,
    ) -> BackboneJudge:
        """The probe fitted on ``train`` (selection on ``val``); ``test`` is not used."""
        head = self._head(store, train, val, seed, progress, "quality-probe")
        projection = Projection(self.features.of(store, train)[:, 0], self.components)
        return BackboneJudge(self.name, self.features, head, projection)

    def train_and_predict(
        self, store: ImageStore, train: Sequence[FundusImage], *, test: Sequence[FundusImage], seed: int, progress: ProgressSink
    ) -> Predictions:
        """A head fitted on ``train`` alone (train-on-synthetic), predicting ``test``."""
        head = self._head(store, train, (), seed, progress, "quality-tstr")
        with torch.inference_mode():
            logits = head(self.features.of(store, test)[:, 0])
        return predictions_of(test, logits)

    def _head(
        self, store: ImageStore, train: Sequence[FundusImage], val: Sequence[FundusImage], seed: int,
        progress: ProgressSink, description: str,
    ) -> LinearHead:  # fmt: skip
        if not train:
            raise ConfigError(f"{store.location}: no images to fit the {self.name} probe on")
        train_x = self.features.of(store, train)[:, 0]
        val_x = self.features.of(store, val)[:, 0] if val else None
        fitted = fit_linear_head(
            train_x, _labels(train), val_x, _labels(val) if val else None, self.config,
            generator=seed_everything(seed), progress=progress, description=description,
        )  # fmt: skip
        return fitted.head


# -- the fundus CNN ------------------------------------------------------------------------------


class FundusClassifier(nn.Module):
    """A grading CNN on uint8 images: grade probabilities and penultimate-layer features.

    Args:
        model: the trained ``ProposedCNN``.
        normalise: the z-scoring it was trained with.
        size: the side images are resized to before the network.
        images: decoded-image cache for ``profile``.
    """

    def __init__(self, model: ProposedCNN, normalise: Normalise, size: int | None, images: ImageTensors | None = None) -> None:
        super().__init__()
        self.name = "fundus-cnn"
        self.model = model.eval()
        self.trunk = nn.Sequential(*list(model)[:-1])
        self.head = model[-1]
        self.normalise = normalise
        self.size = size
        self.num_features = int(model[-1].in_features)
        self._images = images or ImageTensors()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Penultimate-layer features of a uint8 batch Nx3xHxW (torchmetrics' custom feature contract)."""
        return self.scores(images)[1]

    def profile(self, store: ImageStore, records: Sequence[FundusImage]) -> tuple[torch.Tensor, torch.Tensor]:
        """Probabilities and features of stored images."""
        return self.scores(self._images.load(store, records, self.size))

    @torch.inference_mode()
    def scores(self, images: torch.Tensor, batch: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
        """Grade probabilities (Nx5) and penultimate features (NxD) of a uint8 batch Nx3xHxW, on CPU."""
        device = next(self.model.parameters()).device
        probabilities, features = [], []
        for start in range(0, images.shape[0], batch):
            inputs = self.normalise(resized(images[start : start + batch], self.size).to(device))
            hidden = self.trunk(inputs)
            probabilities.append(torch.softmax(self.head(hidden).double(), dim=1).float().cpu())
            features.append(hidden.float().cpu())
        if not probabilities:
            return torch.empty(0, 5), torch.empty(0, self.num_features)
        return torch.cat(probabilities), torch.cat(features)


class FundusCNNJudges:
    """Fits (or reads from its cache) the grading CNN of quality assessment.

    Args:
        config: the CNN's architecture and training options.
        cache_dir: where trained CNNs are cached.
        device: where it trains.
        images: decoded-image cache.
    """

    name = "fundus-cnn"

    def __init__(self, config: CNNConfig, cache_dir: Path, *, device: torch.device, images: ImageTensors) -> None:
        self.config = config
        self.cache_dir = Path(cache_dir)
        self.device = device
        self.images = images

    def fit(
        self,
        store: ImageStore,
        train: Sequence[FundusImage],
        *,
        val: Sequence[FundusImage],
        test: Sequence[FundusImage],
        seed: int,
        progress: ProgressSink,
    ) -> FundusClassifier:
        """The grading CNN trained on ``train`` (selection on ``val``), from the cache when present.

        ``test`` images are only predicted by the training loop, never trained on.
        """
        config = self.config
        path = self.cache_dir / f"fundus-cnn-{cache_key(config, train, val, seed)}.safetensors"
        if path.is_file():
            try:
                return load_fundus_classifier(path, config, self.device, self.images)
            except ConfigError as exc:
                _log.warning("quality_classifier_retrained", path=str(path), reason=str(exc))
        loop = TrainingLoop("quality-cnn", config, device=self.device, input_size=config.input_size,
                            normalisation="train", images=self.images)
        request = TrainingRequest(train=tuple(train), val=tuple(val), test=tuple(test), seed=seed, checkpoint_path=str(path))
        loop.run(request, store, progress, lambda _seed: Network(head=_network(config), channels_last=True))
        return load_fundus_classifier(path, config, self.device, self.images)

    def train_and_predict(
        self, store: ImageStore, train: Sequence[FundusImage], *, test: Sequence[FundusImage], seed: int, progress: ProgressSink
    ) -> Predictions:
        """Train a fresh grading CNN on ``train`` alone and predict ``test`` (train-on-synthetic, test-on-real)."""
        loop = TrainingLoop("quality-tstr", self.config, device=self.device, input_size=self.config.input_size,
                            normalisation="train", images=self.images)
        request = TrainingRequest(train=tuple(train), test=tuple(test), seed=seed)
        outcome = loop.run(request, store, progress, lambda _seed: Network(head=_network(self.config), channels_last=True))
        return outcome.predictions


def load_fundus_classifier(
    path: Path, config: CNNConfig, device: torch.device, images: ImageTensors | None = None
) -> FundusClassifier:
    """A cached grading CNN.

    Raises:
        ConfigError: the file is not a checkpoint of this architecture.
    """
    try:
        tensors = load_file(str(path))
    except (OSError, SafetensorError) as exc:
        raise ConfigError(f"{path}: cannot read the quality classifier ({exc})") from None
    model = _network(config)
    state = {k.removeprefix("head."): v for k, v in tensors.items() if k.startswith("head.")}
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ConfigError(f"{path}: not a checkpoint of this classifier ({str(exc).splitlines()[0]})") from None
    normalise = Normalise(tensors["normalise.mean"].tolist(), tensors["normalise.std"].tolist())
    return FundusClassifier(model.to(device), normalise.to(device), config.input_size, images)


def cache_key(config: CNNConfig, train: Sequence[FundusImage], val: Sequence[FundusImage], seed: int) -> str:
    """Identity of a trained grading CNN: the images (ids and grades), the settings and the seed."""
    payload = {
        "version": CHECKPOINT_VERSION,
        "config": config.model_dump(mode="json"),
        "seed": seed,
        "train": sorted(f"{r.id}:{int(r.grade)}" for r in train),
        "val": sorted(f"{r.id}:{int(r.grade)}" for r in val),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def resized(images: torch.Tensor, size: int | None) -> torch.Tensor:
    """uint8-valued images resized to ``size`` (bilinear, antialiased), as floats in [0, 255]."""
    if size is None or (images.shape[-1] == size and images.shape[-2] == size):
        return images
    out = nn.functional.interpolate(images.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return out.round_().clamp_(0, 255)


def _network(config: CNNConfig) -> ProposedCNN:
    return ProposedCNN(config.channels, config.fc, config.dropout, config.stem_stride, config.pool_size)


def _labels(records: Sequence[FundusImage]) -> torch.Tensor:
    return torch.tensor([int(r.grade) for r in records], dtype=torch.long)
