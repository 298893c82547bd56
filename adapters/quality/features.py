"""Inception-v3 features for image quality, from a user-supplied weights file.

The other feature spaces (the frozen EfficientNet-Lite0 probe, the fundus CNN) are judges the
composition root hands to the analyzer (see ``judge``).
"""

from __future__ import annotations

from pathlib import Path

import structlog
import torch
from torch import nn

from medaug.adapters import weights
from medaug.application.errors import ConfigError

_log = structlog.get_logger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

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


def _resized(images: torch.Tensor, size: int | None) -> torch.Tensor:
    if size is None or (images.shape[-1] == size and images.shape[-2] == size):
        return images
    resized = nn.functional.interpolate(images.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return resized.round_().clamp_(0, 255)
