"""``resnet50``: torchvision's ResNet50 with a new two-layer head, backbone frozen (the thesis's fine-tuning).

Weights are never downloaded: ``imagenet`` reads torchvision's file from the torch hub cache,
a path reads a local state dict, ``none`` starts from random weights. With the backbone frozen
its pooled features are computed once per image (the loop's feature cache), so an epoch trains
only the head; ``unfreeze_last_block`` trains ``layer4`` too and caches the features before it.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torchvision
from torch import nn

from medaug.adapters import weights
from medaug.adapters.torch_support import resolve_device
from medaug.adapters.trainers.config import ResNetConfig
from medaug.adapters.image_tensors import ImageTensors, TensorCache, shared_cache
from medaug.adapters.trainers.loop import TrainingLoop
from medaug.adapters.trainers.network import NUM_GRADES, Network
from medaug.application.errors import ConfigError
from medaug.application.ports import ImageStore, ProgressSink, TrainingOutcome, TrainingRequest

IMAGENET_FILES = ("resnet50-11ad3fa6.pth", "resnet50-0676ba61.pth")
"""torchvision's IMAGENET1K_V2 and IMAGENET1K_V1 files, in order of preference."""

FEATURES = 2048


def find_imagenet_weights(hub_dir: Path) -> Path:
    """torchvision's ResNet50 ImageNet file in the torch hub cache (never downloads).

    Raises:
        ConfigError: no such file, with how to get one.
    """
    folder = Path(hub_dir) / "checkpoints"
    for name in IMAGENET_FILES:
        if (folder / name).is_file():
            return folder / name
    found = sorted(folder.glob("resnet50-*.pth")) if folder.is_dir() else []
    if found:
        return found[0]
    raise ConfigError(
        f"resnet50 weights 'imagenet' not found in {folder}; on a machine with internet run: "
        "python -c 'import torchvision; torchvision.models.resnet50(weights=\"IMAGENET1K_V2\")' "
        f"and copy {IMAGENET_FILES[0]} here, or set trainers.resnet50.weights = PATH to a state dict, or 'none'"
    )


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from ``torch.save`` (``.pth``/``.pt``, tensors only) or a ``.safetensors`` file.

    Raises:
        ConfigError: the file is missing or is not a state dict.
    """
    if not path.is_file():
        raise ConfigError(f"{path}: resnet50 weights file not found; set trainers.resnet50.weights to a state dict, "
                          "'imagenet' or 'none'")
    return weights.read_state_dict(path, "resnet50 weights")


def load_backbone(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load ``state`` into a torchvision ResNet50 (its ``fc`` may be absent or of any size).

    Raises:
        ConfigError: keys are missing or unexpected, or shapes differ (naming the first few).
    """
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    own = {k: v for k, v in model.state_dict().items() if not k.startswith("fc.")}
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    for problem, keys in (("missing keys", missing), ("unexpected keys", unexpected), ("wrong shapes", wrong)):
        if keys:
            shown = ", ".join(keys[:3]) + (f" (+{len(keys) - 3} more)" if len(keys) > 3 else "")
            raise ConfigError(f"{source}: not a resnet50 state dict: {problem} {shown}")
    model.load_state_dict(state, strict=False)


def new_head(hidden: int, dropout: float, classes: int = NUM_GRADES) -> nn.Sequential:
    """The two new layers (2048 -> hidden -> classes), Xavier-normal weights and zero biases."""
    head = nn.Sequential(nn.Linear(FEATURES, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(hidden, classes))
    for layer in head:
        if isinstance(layer, nn.Linear):
            nn.init.xavier_normal_(layer.weight)
            nn.init.zeros_(layer.bias)
    return head


def split_resnet(model: torchvision.models.ResNet, head: nn.Module, unfreeze_last_block: bool) -> tuple[nn.Module, nn.Module]:
    """The frozen part and the trained part of a ResNet with a new ``head``."""
    trunk = [model.conv1, model.bn1, model.relu, model.maxpool, model.layer1, model.layer2, model.layer3]
    tail = [model.layer4, model.avgpool, nn.Flatten()]
    if unfreeze_last_block:
        return nn.Sequential(*trunk), nn.Sequential(*tail, head)
    return nn.Sequential(*trunk, *tail), head


class ResNetTrainer:
    """ClassifierTrainer ``resnet50``: a frozen ResNet50 backbone with a trained two-layer head.

    Args:
        config: weights, head and training options.
        device: ``cpu`` or ``cuda``, as the composition resolved it (``LoopConfig.device`` or the global one).
        hub_dir: the torch hub folder searched for ``imagenet`` weights (``torch.hub.get_dir()``).
        images: decoded-image cache (the process-wide one by default).
        features: backbone-feature cache (one per trainer by default).

    Raises:
        ConfigError: the weights cannot be found (before any work).
    """

    def __init__(
        self,
        config: ResNetConfig | None = None,
        *,
        device: str,
        hub_dir: Path | None = None,
        images: ImageTensors | None = None,
        features: TensorCache | None = None,
    ) -> None:
        self.config = config or ResNetConfig()
        self._weights_path = self._locate_weights(hub_dir)
        self._state: dict[str, torch.Tensor] | None = None
        normalisation = self.config.normalisation
        if normalisation == "auto":
            normalisation = "train" if self._weights_path is None else "imagenet"
        self._loop = TrainingLoop(
            self.name,
            self.config,
            device=resolve_device(device),
            input_size=self.config.input_size,
            normalisation=normalisation,
            images=images or ImageTensors(shared_cache()),
            features=(features if features is not None else TensorCache()) if self.config.feature_cache else None,
        )

    @property
    def name(self) -> str:
        return "resnet50"

    @property
    def frozen_images(self) -> int:
        """Images passed through the frozen backbone so far (fewer with the feature cache)."""
        return self._loop.frozen_images

    def train_and_predict(
        self, request: TrainingRequest, store: ImageStore, *, progress: ProgressSink
    ) -> TrainingOutcome:
        """Train the head on ``request.train`` and predict ``request.test`` (see ``ClassifierTrainer``)."""
        return self._loop.run(request, store, progress, self._network)

    def _locate_weights(self, hub_dir: Path | None) -> Path | None:
        weights = self.config.weights
        if weights == "none":
            return None
        if weights == "imagenet":
            return find_imagenet_weights(Path(hub_dir) if hub_dir is not None else Path(torch.hub.get_dir()))
        path = Path(weights).expanduser()
        if not path.is_file():
            raise ConfigError(f"{path}: resnet50 weights file not found; set trainers.resnet50.weights to a state dict, "
                              "'imagenet' or 'none'")
        return path

    def _network(self, seed: int) -> Network:
        model = torchvision.models.resnet50(weights=None)
        if self._weights_path is not None:
            if self._state is None:
                self._state = read_state_dict(self._weights_path)
            load_backbone(model, self._state, str(self._weights_path))
        head = new_head(self.config.hidden, self.config.dropout)
        frozen, trained = split_resnet(model, head, self.config.unfreeze_last_block)
        origin = _file_identity(self._weights_path) if self._weights_path is not None else f"none:seed{seed}"
        cut = "layer3" if self.config.unfreeze_last_block else "pooled"
        return Network(head=trained, frozen=frozen, identity=f"{origin}|{cut}")


def _file_identity(path: Path) -> str:
    """Names a weights file by path, size and modification time (a replaced file is a new identity)."""
    stat = path.stat()
    return f"file:{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
