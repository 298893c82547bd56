"""The class-conditional UNet and the training noise schedule, built from a recipe."""

from __future__ import annotations

from typing import Any

import torch
from diffusers import DDPMScheduler, UNet2DModel

from medaug.adapters.generators.diffusion.config import NUM_CLASSES, DiffusionRecipe

_BETA_SCHEDULES = {"linear": "linear", "cosine": "squaredcos_cap_v2"}

IMAGE_CHANNELS = 3
COORDINATE_CHANNELS = 2


def unet_config(recipe: DiffusionRecipe) -> dict[str, Any]:
    """The ``UNet2DModel`` config for ``recipe``: five grades plus the null class as class labels."""
    levels = len(recipe.channels)
    attention = [i >= levels - recipe.attention_levels for i in range(levels)]
    down = tuple("AttnDownBlock2D" if a else "DownBlock2D" for a in attention)
    up = tuple("AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attention))
    attn_channels = [c for c, a in zip(recipe.channels, attention, strict=True) if a] or [recipe.channels[-1]]
    return {
        "sample_size": recipe.resolution,
        "in_channels": IMAGE_CHANNELS + (COORDINATE_CHANNELS if recipe.coordinate_channels else 0),
        "out_channels": IMAGE_CHANNELS,
        "block_out_channels": tuple(recipe.channels),
        "layers_per_block": recipe.layers_per_block,
        "down_block_types": down,
        "up_block_types": up,
        "add_attention": recipe.attention_levels > 0,
        "attention_head_dim": 32 if all(c % 32 == 0 for c in attn_channels) else None,
        "norm_num_groups": _norm_groups(recipe.channels),
        "num_class_embeds": NUM_CLASSES,
    }


def build_unet(recipe: DiffusionRecipe) -> UNet2DModel:
    """A freshly initialised ``UNet2DModel`` for ``recipe`` (seed torch first for repeatability)."""
    return UNet2DModel(**unet_config(recipe))


def unet_from_config(config: dict[str, Any]) -> UNet2DModel:
    """A ``UNet2DModel`` from a config saved in a checkpoint, to load weights into.

    Its throw-away initial weights are drawn from a forked RNG, so loading a model leaves the
    global torch seed where it was.
    """
    with torch.random.fork_rng(devices=[]):
        return UNet2DModel.from_config(config)


def noise_scheduler(recipe: DiffusionRecipe) -> DDPMScheduler:
    """The training noise process: DDPM with the recipe's beta schedule and prediction type."""
    return DDPMScheduler(
        num_train_timesteps=recipe.num_train_timesteps,
        beta_schedule=_BETA_SCHEDULES[recipe.schedule],
        prediction_type=recipe.prediction_type,
    )


def uses_coordinates(unet: UNet2DModel) -> bool:
    """Whether ``unet`` takes the two coordinate channels after the image channels."""
    return int(unet.config.in_channels) == IMAGE_CHANNELS + COORDINATE_CHANNELS


def coordinate_maps(canvas: int, tops: torch.Tensor, lefts: torch.Tensor, size: int) -> torch.Tensor:
    """Coordinate channels of ``size`` px crops of a ``canvas`` px image (Patch Diffusion).

    Channel 0 is the column (x), channel 1 the row (y) of each pixel in the full image, mapped
    linearly to [-1, 1] (pixel 0 = -1, pixel ``canvas - 1`` = 1), so a crop carries where it sits.

    Args:
        canvas: side of the full image.
        tops, lefts: the crops' top-left corners (one per crop, integer tensors).
        size: side of the crops.

    Returns:
        ``N x 2 x size x size`` float tensor on the device of ``tops``.
    """
    axis = torch.linspace(-1.0, 1.0, canvas, device=tops.device)
    offsets = torch.arange(size, device=tops.device)
    rows = axis[tops[:, None] + offsets]  # N x size
    cols = axis[lefts[:, None] + offsets]
    x = cols[:, None, :].expand(-1, size, -1)
    y = rows[:, :, None].expand(-1, -1, size)
    return torch.stack([x, y], dim=1)


def with_coordinates(unet: UNet2DModel, x: torch.Tensor, coordinates: torch.Tensor | None = None) -> torch.Tensor:
    """``x`` with coordinate channels appended when ``unet`` takes them (full-canvas maps if none given)."""
    if not uses_coordinates(unet):
        return x
    if coordinates is None:
        n, size = len(x), x.shape[-1]
        zeros = torch.zeros(n, dtype=torch.long, device=x.device)
        coordinates = coordinate_maps(size, zeros, zeros, size)
    return torch.cat([x, coordinates.to(dtype=x.dtype, device=x.device)], dim=1)


def count_parameters(model: Any) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _norm_groups(channels: tuple[int, ...]) -> int:
    # GroupNorm needs a group count dividing every level's channels; 32 is diffusers' default.
    return next(g for g in (32, 16, 8, 4, 2, 1) if all(c % g == 0 for c in channels))
