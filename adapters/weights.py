"""Weights files shared by every generator and classifier: reading a state dict, hashing tensors."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

import torch

from medaug.application.errors import ConfigError

_ZIP = b"PK\x03\x04"
_PICKLE = b"\x80"


def tensors_sha256(tensors: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over the tensors themselves: names, dtypes, shapes and bytes, in name order.

    Two files holding bit-identical weights give the same digest however they were written
    (safetensors metadata, header order, ``torch.save`` versus safetensors), and any change of a
    name, dtype, shape or value gives another.
    """
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().to("cpu").contiguous()
        header = f"{name}\0{str(tensor.dtype).removeprefix('torch.')}\0{','.join(map(str, tensor.shape))}\0"
        digest.update(len(header).to_bytes(8, "little") + header.encode())
        raw = tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b""
        digest.update(len(raw).to_bytes(8, "little") + raw)
    return digest.hexdigest()


def read_state_dict(path: Path, what: str) -> dict[str, torch.Tensor]:
    """A state dict from a ``.safetensors`` file or a ``torch.save`` file (tensors only).

    Args:
        path: the file.
        what: what the weights are for, for messages (e.g. ``resnet50 weights``).

    Raises:
        ConfigError: one line naming the file: missing, not a weights file, or not tensors.
    """
    if not path.is_file():
        raise ConfigError(f"{path}: {what} file not found")
    try:
        with path.open("rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read {what} ({exc.strerror or exc})") from None
    safetensors = path.suffix == ".safetensors" or _looks_like_safetensors(head)
    if not safetensors and not head.startswith((_ZIP, _PICKLE)):
        raise ConfigError(f"{path}: cannot read {what} (neither safetensors nor a torch.save state dict)")
    try:
        if safetensors:
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user error
        problem = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        kind = "safetensors" if safetensors else "torch.save"
        raise ConfigError(f"{path}: cannot read {what} ({kind}: {problem})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConfigError(f"{path}: not a state dict of tensors ({what})")
    return state


def _looks_like_safetensors(head: bytes) -> bool:
    """A safetensors file starts with its JSON header's length (little-endian u64), then ``{``."""
    return len(head) == 8 and 0 < int.from_bytes(head, "little") < 100 * 1024 * 1024
