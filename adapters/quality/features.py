"""Feature spaces for image quality, built without downloaded weights.

``FundusClassifier`` is the ``cnn`` trainer's network (``ProposedCNN``) trained on the real
training split by the trainers' own ``TrainingLoop``; its softmax grades synthetic images (label
fidelity) and its penultimate layer is the fundus feature space of FID, KID and PRDC. The trained
weights are cached as safetensors, keyed by the real images and the settings, so ``medaug quality``
and the augment filter train it once per store. ``InceptionFeatures`` reads a user-supplied
Inception-v3 weights file instead.
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

from medaug.adapters import weights
from medaug.adapters.trainers.cnn import ProposedCNN
from medaug.adapters.trainers.config import CNNConfig
from medaug.adapters.trainers.data import ImageTensors
from medaug.adapters.trainers.loop import TrainingLoop
from medaug.adapters.trainers.network import IMAGENET_MEAN, IMAGENET_STD, Network, Normalise
from medaug.application.errors import ConfigError
from medaug.application.ports import ImageStore, ProgressSink, TrainingRequest
from medaug.domain import FundusImage
from medaug.domain.experiment import Predictions

_log = structlog.get_logger(__name__)

CHECKPOINT_VERSION = "1"
"""Bumped when what the cache key covers changes, so old checkpoints are not reused."""


class FundusClassifier(nn.Module):
    """A grading CNN on uint8 images: grade probabilities and penultimate-layer features.

    Args:
        model: the trained ``ProposedCNN``.
        normalise: the z-scoring it was trained with.
        size: the side images are resized to before the network.
    """

    def __init__(self, model: ProposedCNN, normalise: Normalise, size: int | None) -> None:
        super().__init__()
        self.model = model.eval()
        self.trunk = nn.Sequential(*list(model)[:-1])
        self.head = model[-1]
        self.normalise = normalise
        self.size = size
        self.num_features = _penultimate_width(model)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Penultimate-layer features of a uint8 batch Nx3xHxW (torchmetrics' custom feature contract)."""
        return self.scores(images)[1]

    @torch.inference_mode()
    def scores(self, images: torch.Tensor, batch: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
        """Grade probabilities (Nx5) and penultimate features (NxD) of a uint8 batch Nx3xHxW, on CPU."""
        device = next(self.model.parameters()).device
        probabilities, features = [], []
        for start in range(0, images.shape[0], batch):
            inputs = self.normalise(_resized(images[start : start + batch], self.size).to(device))
            hidden = self.trunk(inputs)
            probabilities.append(torch.softmax(self.head(hidden).double(), dim=1).float().cpu())
            features.append(hidden.float().cpu())
        if not probabilities:
            return torch.empty(0, 5), torch.empty(0, self.num_features)
        return torch.cat(probabilities), torch.cat(features)


def fit_fundus_classifier(
    config: CNNConfig,
    store: ImageStore,
    train: Sequence[FundusImage],
    *,
    val: Sequence[FundusImage],
    test: Sequence[FundusImage],
    seed: int,
    cache_dir: Path,
    device: torch.device,
    images: ImageTensors,
    progress: ProgressSink,
) -> FundusClassifier:
    """The grading CNN trained on ``train`` (model selection on ``val``), from the cache when present.

    ``test`` images are only predicted by the training loop, never trained on.

    Raises:
        ConfigError: no training or test images.
        InputError: a stored image cannot be decoded.
    """
    path = cache_dir / f"fundus-cnn-{cache_key(config, train, val, seed)}.safetensors"
    if path.is_file():
        try:
            return load_fundus_classifier(path, config, device)
        except ConfigError as exc:
            _log.warning("quality_classifier_retrained", path=str(path), reason=str(exc))
    loop = TrainingLoop(
        "quality-cnn", config, device=device, input_size=config.image_size, normalisation="train", images=images
    )
    request = TrainingRequest(train=tuple(train), val=tuple(val), test=tuple(test), seed=seed, checkpoint_path=str(path))
    loop.run(request, store, progress, lambda _seed: Network(head=_network(config), channels_last=True))
    return load_fundus_classifier(path, config, device)


def train_on_and_predict(
    config: CNNConfig,
    store: ImageStore,
    train: Sequence[FundusImage],
    *,
    test: Sequence[FundusImage],
    seed: int,
    device: torch.device,
    images: ImageTensors,
    progress: ProgressSink,
) -> Predictions:
    """Train a fresh grading CNN on ``train`` alone and predict ``test`` (train-on-synthetic, test-on-real)."""
    loop = TrainingLoop(
        "quality-tstr", config, device=device, input_size=config.image_size, normalisation="train", images=images
    )
    request = TrainingRequest(train=tuple(train), test=tuple(test), seed=seed)
    outcome = loop.run(request, store, progress, lambda _seed: Network(head=_network(config), channels_last=True))
    return outcome.predictions


def load_fundus_classifier(path: Path, config: CNNConfig, device: torch.device) -> FundusClassifier:
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
    return FundusClassifier(model.to(device), normalise.to(device), config.image_size)


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


class InceptionFeatures(nn.Module):
    """Inception-v3 pool features (2048) of uint8 images, from a local weights file.

    With torch-fidelity installed, torchmetrics' ``NoTrainInceptionV3`` reads the standard FID
    weights (``pt_inception-2015-12-05-*.pth``), so FID and KID are comparable with published
    figures; otherwise torchvision's ``inception_v3`` reads a torchvision state dict. Nothing is
    ever downloaded.

    Args:
        path: the weights file.

    Raises:
        ConfigError: the file is missing or does not fit either network.
    """

    def __init__(self, path: Path) -> None:
        super().__init__()
        path = Path(path).expanduser()
        if not path.is_file():
            raise ConfigError(f"{path}: Inception weights file not found (quality.inception_weights); "
                              "medaug never downloads weights: copy the file here or use features = 'fundus-cnn'")
        self.network, self.kind = _inception(path)
        self.num_features = 2048
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.eval()

    @torch.inference_mode()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Features (Nx2048) of a uint8 batch Nx3xHxW."""
        if self.kind == "torch-fidelity":
            return self.network(images.to(torch.uint8)).float()
        inputs = _resized(images, 299).float().div(255.0)
        return self.network((inputs - self.mean) / self.std).float()


def _inception(path: Path) -> tuple[nn.Module, str]:
    try:
        from torchmetrics.image.fid import NoTrainInceptionV3

        network = NoTrainInceptionV3(name="inception-v3-compat", features_list=["2048"],
                                     feature_extractor_weights_path=str(path))
        return network, "torch-fidelity"
    except ModuleNotFoundError:
        pass
    except Exception as exc:  # noqa: BLE001 - a file for the other network: try torchvision's below
        _log.info("inception_not_torch_fidelity", path=str(path), reason=str(exc).splitlines()[0])
    return _torchvision_inception(path), "torchvision"


def _torchvision_inception(path: Path) -> nn.Module:
    import torchvision

    model = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=False)
    state = _read_state(path)
    state = {k: v for k, v in state.items() if not k.startswith(("AuxLogits.", "fc."))}
    own = {k for k in model.state_dict() if not k.startswith("fc.")}
    missing, unexpected = sorted(own - set(state)), sorted(set(state) - own)
    if missing or unexpected:
        first = (missing or unexpected)[0]
        raise ConfigError(f"{path}: not an Inception-v3 state dict ({'missing' if missing else 'unexpected'} key {first})")
    try:
        model.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        raise ConfigError(f"{path}: not an Inception-v3 state dict ({str(exc).splitlines()[0]})") from None
    model.fc = nn.Identity()
    return model.eval()


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    return weights.read_state_dict(path, "Inception weights")


def _network(config: CNNConfig) -> ProposedCNN:
    return ProposedCNN(config.channels, config.fc, config.dropout, config.stem_stride, config.pool_size)


def _penultimate_width(model: ProposedCNN) -> int:
    return int(model[-1].in_features)


def _resized(images: torch.Tensor, size: int | None) -> torch.Tensor:
    if size is None or (images.shape[-1] == size and images.shape[-2] == size):
        return images
    resized = nn.functional.interpolate(images.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return resized.round_().clamp_(0, 255)
