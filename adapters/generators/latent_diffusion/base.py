"""What the latent-diffusion trainer and generator share: the base model, its digest, the LoRA
checkpoint's documents, precision, and the one-line messages for bad input and CUDA memory."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from pydantic import BaseModel

from medaug.adapters.generators.checkpointing import StepMeta, read_config, read_document
from medaug.adapters.generators.latent_diffusion.components import Components, LayoutError, load_components
from medaug.adapters.generators.latent_diffusion.config import LatentDiffusionRecipe
from medaug.adapters.weights import tensors_sha256
from medaug.application.errors import ConfigError, InputError
from medaug.application.ports import LabelledImage

FORMAT = 1
GENERATOR = "latent-diffusion"


class LoraMeta(StepMeta):
    """A LoRA checkpoint's ``config.json``: what it adapts and how it was trained."""

    format: int = FORMAT
    recipe: LatentDiffusionRecipe
    base_source: str
    base_sha256: str
    world_size: int = 1


class LoraState(BaseModel):
    """A LoRA checkpoint's ``state.json``: what resuming needs besides the tensors."""

    step: int
    optimizer: dict[str, Any]
    lr_scheduler: dict[str, Any]
    loss: float | None = None
    images_seen: int = 0


def read_meta(path: Path) -> LoraMeta:
    """The ``config.json`` of LoRA checkpoint ``path``.

    Raises:
        GeneratorError: missing, unreadable or of another format.
    """
    return read_config(path, LoraMeta.model_validate_json, generator=GENERATOR, expected_format=FORMAT)


def read_state(path: Path) -> LoraState:
    """The ``state.json`` of LoRA checkpoint ``path``.

    Raises:
        GeneratorError: the file is missing or corrupt.
    """
    return read_document(path, LoraState, generator=GENERATOR)


def load_base(source: str, local: bool, dtype: torch.dtype = torch.float32) -> tuple[Components, str]:
    """Stable Diffusion's components from ``source`` and their weights' digest (16 hex digits).

    The digest covers the UNet, VAE and text encoder tensors (``adapters.weights.tensors_sha256``),
    taken before any LoRA is added, so that it names the base model a LoRA belongs to.

    Raises:
        ConfigError: not a diffusers Stable Diffusion folder, or a part cannot load (one line).
    """
    try:
        components = load_components(source, local=local, dtype=dtype)
    except LayoutError as exc:
        raise ConfigError(str(exc)) from None
    tensors: dict[str, torch.Tensor] = {}
    for part in ("unet", "vae", "text_encoder"):
        tensors |= {f"{part}.{k}": v for k, v in getattr(components, part).state_dict().items()}
    return components, tensors_sha256(tensors)[:16]


def check_base(meta: LoraMeta, digest: str, source: str, checkpoint: Path) -> None:
    """Raise ``ConfigError`` when LoRA checkpoint ``checkpoint`` was trained on another base model."""
    if meta.base_sha256 != digest:
        raise ConfigError(
            f"{checkpoint}: LoRA checkpoint of another base model (trained on {meta.base_source}, weights "
            f"{meta.base_sha256}; {source} is {digest}); set weights to that model or train with --fresh"
        )


def check_image_sizes(images: Sequence[LabelledImage], resolution: int, profile: str) -> None:
    """Raise ``ConfigError`` when the store's images are smaller than the pipeline's ``resolution``.

    Raises:
        InputError: an image cannot be read.
    """
    for image in images:
        try:
            width, height = Image.open(io.BytesIO(image.data)).size
        except (OSError, ValueError) as exc:
            raise InputError(f"training image {image.image_id}: cannot decode ({exc})") from None
        if min(width, height) < resolution:
            raise ConfigError(
                f"store images are {width}x{height} px (e.g. {image.image_id}), smaller than the latent-diffusion "
                f"profile {profile or '(configured)'}'s resolution {resolution} px; ingest the store with image_size "
                f">= {resolution} or set generators.latent_diffusion.resolution = {min(width, height) // 8 * 8}"
            )


def weight_dtype(precision: str, device: torch.device) -> torch.dtype:
    """The dtype of the frozen base weights: bf16/fp16 on CUDA under mixed precision, else fp32."""
    if device.type != "cuda" or precision == "no":
        return torch.float32
    if precision == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if precision == "bf16" else torch.float16


SMALL_GPU_BYTES = 24 * 2**30


def gradient_checkpointing(setting: str, device: torch.device) -> bool:
    """Whether to recompute UNet activations in the backward pass: ``auto`` = on a CUDA GPU of
    under 24 GiB. (Measured on an H200, SD 1.5 at 512 px, batch 4: 14.4 images/s and 3.2 GiB with
    it, 25.3 images/s and 6.6 GiB without: it only pays where memory is short.)"""
    if setting != "auto":
        return setting == "on"
    return device.type == "cuda" and torch.cuda.get_device_properties(device).total_memory < SMALL_GPU_BYTES


def out_of_memory(what: str, batch_setting: str, batch: int, resolution: int) -> ConfigError:
    """The one line for a CUDA out-of-memory error, naming the settings to lower."""
    return ConfigError(
        f"CUDA out of memory while {what} at {batch_setting} = {batch}, resolution = {resolution}: lower "
        f"generators.latent_diffusion.{batch_setting} (or resolution; for training, gradient_checkpointing = 'on' "
        "and mixed_precision = 'fp16' also help)"
    )
