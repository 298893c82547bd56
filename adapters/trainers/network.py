"""What the training loop trains: the network split into a frozen stem and a trained head,
the normalisation in front of it, class weights and online augmentation."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.utils.class_weight import compute_class_weight
from torch import nn
from torchvision.transforms import v2

NUM_GRADES = 5
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Normalise(nn.Module):
    """uint8 images -> floats z-scored with fixed per-channel statistics.

    Args:
        mean: per-channel mean of the [0, 1] pixel values.
        std: per-channel standard deviation of the [0, 1] pixel values.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Normalise a uint8 (or [0, 255] float) batch Nx3xHxW."""
        return (images.float() / 255.0 - self.mean) / self.std


class Stem(nn.Module):
    """What runs before the head without gradients: the normalisation, then any frozen stage.

    Args:
        normalise: the z-score normalisation.
        frozen: the frozen part of the network, or None.
    """

    def __init__(self, normalise: Normalise, frozen: nn.Module | None) -> None:
        super().__init__()
        self.normalise = normalise
        self.frozen = frozen

    @property
    def has_frozen(self) -> bool:
        """True when a frozen network stage follows the normalisation."""
        return self.frozen is not None

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 images -> the head's inputs."""
        inputs = self.normalise(images)
        return self.frozen(inputs) if self.frozen is not None else inputs


@dataclass
class Network:
    """A classifier as the loop sees it.

    Attributes:
        head: the trained part; maps the frozen stage's output to five logits.
        frozen: a part run without gradients in eval mode before the head, or None.
        identity: names the frozen stage's weights (e.g. ``imagenet:resnet50-11ad3fa6.pth|pooled``);
            when set, its outputs are cached per image under it. None disables the cache.
        channels_last: feed the head channels-last tensors (faster convolutions on CPU).
    """

    head: nn.Module
    frozen: nn.Module | None = None
    identity: str | None = None
    channels_last: bool = False


NetworkBuilder = Callable[[int], Network]
"""Builds a fresh network for a run's seed (called after seeding, so its initialisation is seeded)."""


def channel_stats(images: torch.Tensor, chunk: int = 64) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation of uint8 images Nx3xHxW, in [0, 1] units."""
    total = torch.zeros(images.shape[1], dtype=torch.float64)
    squares = torch.zeros_like(total)
    for start in range(0, images.shape[0], chunk):
        part = images[start : start + chunk].to(torch.float64).div_(255.0)
        total += part.sum(dim=(0, 2, 3))
        squares += part.square().sum(dim=(0, 2, 3))
    count = images.shape[0] * images.shape[2] * images.shape[3]
    mean = total / count
    std = (squares / count - mean.square()).clamp_min(1e-12).sqrt().clamp_min(1e-3)
    return tuple(mean.tolist()), tuple(std.tolist())


def class_weights(labels: Sequence[int]) -> torch.Tensor:
    """Balanced cross-entropy weights over the five grades (``n / (k * n_grade)``); 1 for absent grades."""
    present = np.unique(np.asarray(labels))
    balanced = compute_class_weight("balanced", classes=present, y=np.asarray(labels))
    weights = torch.ones(NUM_GRADES, dtype=torch.float32)
    weights[torch.as_tensor(present)] = torch.as_tensor(balanced, dtype=torch.float32)
    return weights


class OnlineAugmentation:
    """Random flips and a small rotation of each image (torchvision.transforms.v2, global torch RNG).

    Args:
        degrees: the largest rotation either way.
    """

    def __init__(self, degrees: float) -> None:
        self._transform = v2.Compose(
            [v2.RandomHorizontalFlip(), v2.RandomVerticalFlip(), v2.RandomRotation(degrees)]
        )

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Augment each image of a uint8 batch Nx3xHxW independently."""
        return torch.stack([self._transform(image) for image in images])
