"""Differentiable augmentation for GANs trained on little data (DiffAugment, Zhao et al. 2020).

The discriminator of a GAN trained on a few hundred images memorises them and its feedback to
the generator collapses. DiffAugment applies the *same kind* of random colour, translation and
cutout changes to real and generated images before every discriminator call, in both networks'
updates; being differentiable, the generator still learns through them, and since generated
images are augmented too, the augmentations do not leak into the samples.

These are the reference implementation's operations (``mit-han-lab/data-efficient-gans``) in
plain torch, because they must be differentiable, per-image random and drawn from an explicit
``torch.Generator`` (torchvision's v2 transforms draw one parameter set per call from the global
generator). Images are in [-1, 1].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

TRANSLATION_RATIO = 0.125
CUTOUT_RATIO = 0.5


def diff_augment(images: torch.Tensor, policy: tuple[str, ...], rng: torch.Generator) -> torch.Tensor:
    """Apply each operation of ``policy`` (``color``, ``translation``, ``cutout``) in order.

    Args:
        images: ``B x 3 x H x W`` in [-1, 1], on any device.
        policy: operation names (see ``config.DIFFAUGMENT_OPERATIONS``).
        rng: a CPU generator every random draw comes from (same state, same augmentation).
    """
    for operation in policy:
        images = _OPERATIONS[operation](images, rng)
    return images


def _uniform(rng: torch.Generator, images: torch.Tensor) -> torch.Tensor:
    return torch.rand(images.shape[0], 1, 1, 1, generator=rng).to(images.device, images.dtype)


def color(images: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    """Random brightness (+-0.5), saturation (x0-2) and contrast (x0.5-1.5) per image."""
    images = images + (_uniform(rng, images) - 0.5)
    mean = images.mean(dim=1, keepdim=True)
    images = (images - mean) * (_uniform(rng, images) * 2) + mean
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    return (images - mean) * (_uniform(rng, images) + 0.5) + mean


def translation(images: torch.Tensor, rng: torch.Generator, ratio: float = TRANSLATION_RATIO) -> torch.Tensor:
    """Shift each image by up to ``ratio`` of its side, filling with zeros."""
    batch, _, height, width = images.shape
    shift_y, shift_x = int(height * ratio + 0.5), int(width * ratio + 0.5)
    dy = torch.randint(-shift_y, shift_y + 1, (batch, 1, 1), generator=rng).to(images.device)
    dx = torch.randint(-shift_x, shift_x + 1, (batch, 1, 1), generator=rng).to(images.device)
    grid_b, grid_y, grid_x = torch.meshgrid(
        torch.arange(batch, device=images.device),
        torch.arange(height, device=images.device),
        torch.arange(width, device=images.device),
        indexing="ij",
    )
    grid_y = torch.clamp(grid_y + dy + 1, 0, height + 1)
    grid_x = torch.clamp(grid_x + dx + 1, 0, width + 1)
    padded = F.pad(images, [1, 1, 1, 1])
    return padded.permute(0, 2, 3, 1)[grid_b, grid_y, grid_x].permute(0, 3, 1, 2).contiguous()


def cutout(images: torch.Tensor, rng: torch.Generator, ratio: float = CUTOUT_RATIO) -> torch.Tensor:
    """Zero a square of ``ratio`` of the side at a random place in each image."""
    batch, _, height, width = images.shape
    cut_h, cut_w = int(height * ratio + 0.5), int(width * ratio + 0.5)
    off_y = torch.randint(0, height + (1 - cut_h % 2), (batch, 1, 1), generator=rng).to(images.device)
    off_x = torch.randint(0, width + (1 - cut_w % 2), (batch, 1, 1), generator=rng).to(images.device)
    rows = torch.arange(height, device=images.device)[None, :, None]
    cols = torch.arange(width, device=images.device)[None, None, :]
    inside_y = (rows >= off_y - cut_h // 2) & (rows < off_y - cut_h // 2 + cut_h)
    inside_x = (cols >= off_x - cut_w // 2) & (cols < off_x - cut_w // 2 + cut_w)
    keep = ~(inside_y & inside_x)
    return images * keep[:, None].to(images.dtype)


_OPERATIONS = {"color": color, "translation": translation, "cutout": cutout}
