"""Shared torch plumbing: device choice, seeding, PNG <-> tensor, and the run environment it reports."""

from __future__ import annotations

import contextlib
import os
import platform
import random
from collections.abc import Iterator
from importlib import metadata

import numpy as np
import torch

from medaug.adapters.png import decode_png, encode_png
from medaug.application.errors import ConfigError


def resolve_device(preference: str) -> torch.device:
    """``auto`` picks CUDA when present, else CPU; ``cuda`` without a GPU is a clear error."""
    if preference == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if preference == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device = 'cuda' but no CUDA GPU is available; use 'auto' or 'cpu'")
    return torch.device(preference)


@contextlib.contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """Run the block with ``count`` torch CPU (intra-op) threads (None: leave them), restoring the
    previous count after.

    Float sums split over a different number of threads differ in their last digits, so a result
    is reproducible only at the same count (a Ray worker starts with 1, a local process with one
    per core).
    """
    before = torch.get_num_threads()
    if count:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a CPU ``torch.Generator`` seeded the same."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def png_to_tensor(data: bytes, size: int | None = None) -> torch.Tensor:
    """PNG bytes -> float tensor 3xHxW in [0, 1], resized to ``size`` if given (bilinear, antialiased)."""
    array = decode_png(data)
    tensor = torch.from_numpy(array).permute(2, 0, 1).float().div_(255.0)
    if size is not None and (tensor.shape[1] != size or tensor.shape[2] != size):
        tensor = torch.nn.functional.interpolate(
            tensor[None], size=(size, size), mode="bilinear", antialias=True, align_corners=False
        )[0].clamp_(0, 1)
    return tensor


def tensor_to_png(tensor: torch.Tensor, size: int | None = None) -> bytes:
    """Float tensor 3xHxW in [0, 1] -> PNG bytes, resized to ``size`` if given."""
    tensor = tensor.detach().float().cpu().clamp(0, 1)
    if size is not None and (tensor.shape[1] != size or tensor.shape[2] != size):
        tensor = torch.nn.functional.interpolate(
            tensor[None], size=(size, size), mode="bicubic", antialias=True, align_corners=False
        )[0].clamp_(0, 1)
    array = (tensor.permute(1, 2, 0).numpy() * 255.0 + 0.5).astype(np.uint8)
    return encode_png(array)


def describe_device(preference: str) -> str:
    """The device torch work will run on, in words (e.g. ``cuda (NVIDIA H100)`` or ``cpu``)."""
    device = resolve_device(preference)
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return device.type


VERSIONED = ("medaug", "torch", "torchvision", "diffusers", "numpy", "scikit-learn", "pydantic")
"""The packages whose versions a run records."""


def environment() -> dict[str, str]:
    """Python, platform, CPUs and the versions of ``VERSIONED`` packages (those installed)."""
    env = {"python": platform.python_version(), "platform": platform.platform(), "cpus": str(os.cpu_count())}
    for package in VERSIONED:
        try:
            env[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return env
