"""Pieces of the training loops shared by the trained generators (DCGAN, diffusion).

Training images, their order (seeded epochs any step can recompute, which makes resuming exact),
loss smoothing for progress and checkpoints, and the contact sheets written at checkpoints.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

import structlog
import torch
import torch.nn.functional as F
from torchvision.utils import make_grid

from medaug.adapters.generators.checkpointing import MetaT, ResumePoint, require_training_images, resume_point
from medaug.adapters.torch_support import png_to_tensor, resolve_device
from medaug.application.errors import InputError
from medaug.application.ports import GeneratorTrainingResult, LabelledImage
from medaug.domain.plan import derive_seed

_log = structlog.get_logger(__name__)

LOSS_SMOOTHING = 0.98
GRAD_CLIP = 1.0
"""Gradient norm the diffusion trainers clip to."""
SHEET_CELL = 128

RecipeT = TypeVar("RecipeT")


class CheckpointedTrainer(Generic[RecipeT]):
    """What the generators' ``GeneratorTrainer`` adapters share: their settings and checkpoint folder.

    A subclass sets ``generator_name`` and implements ``train``.

    Args:
        recipe: the resolved profile.
        checkpoint_dir: where checkpoints and contact sheets go (one folder per store).
        seed: the training seed.
        device: ``auto`` (CUDA when present), ``cpu`` or ``cuda``.
        profile: the profile's name, for messages.
    """

    generator_name: ClassVar[str]

    def __init__(
        self, recipe: RecipeT, checkpoint_dir: Path, *, seed: int, device: str = "cpu", profile: str = ""
    ) -> None:
        self._recipe = recipe
        self._root = Path(checkpoint_dir)
        self._seed = seed
        self._device = device
        self._profile = profile

    @property
    def name(self) -> str:
        """The generator's name (``generator_name``)."""
        return self.generator_name

    @property
    def checkpoint_dir(self) -> Path:
        """The folder holding this trainer's checkpoints."""
        return self._root

    def _begin(
        self, images: Sequence[LabelledImage], *, resume: bool, read_meta: Callable[[Path], MetaT]
    ) -> tuple[torch.device, ResumePoint[MetaT]]:
        """The device to train on and the checkpoint to resume from (see ``resume_point``).

        Raises:
            ConfigError: no images, an unusable device, or a checkpoint of another architecture.
        """
        require_training_images(images, self.generator_name)
        device = resolve_device(self._device)
        return device, resume_point(self._root, self._recipe, resume=resume, read_meta=read_meta)  # type: ignore[arg-type]

    def _already_trained(
        self, path: Path, steps: int, final_loss: float | None, metrics: dict[str, Any] | None = None
    ) -> GeneratorTrainingResult:
        """The result of a run whose newest checkpoint ``path`` already holds all its ``steps``."""
        _log.info(f"{self.generator_name.replace('-', '_')}_already_trained", checkpoint=str(path), steps=steps)
        return GeneratorTrainingResult(
            generator=self.name, checkpoint=str(path), steps=steps, seconds=0.0, final_loss=final_loss,
            metrics={"already_trained": True, **(metrics or {})},
        )


def training_tensors(images: Sequence[LabelledImage], resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode training images to an ``N x 3 x R x R`` tensor in [-1, 1] and their grades.

    Raises:
        InputError: an image cannot be decoded (the message names it).
    """
    pixels = []
    for image in images:
        try:
            pixels.append(png_to_tensor(image.data, size=resolution))
        except (OSError, ValueError) as exc:
            raise InputError(f"training image {image.image_id}: cannot decode ({exc})") from None
    labels = torch.tensor([int(image.grade) for image in images], dtype=torch.long)
    return torch.stack(pixels).mul_(2.0).sub_(1.0), labels


def epoch_indices(seed: int, count: int, position: int, size: int, *, stream: str = "epoch") -> torch.Tensor:
    """``size`` image indices starting at ``position`` of the endless stream of seeded epochs.

    Each epoch is a permutation of ``range(count)`` seeded by ``(seed, stream, epoch)``, so the
    batch of any step can be recomputed without replaying the ones before it.

    Args:
        seed: the training seed.
        count: how many training images there are.
        position: images consumed before this batch, over all epochs.
        size: the batch size.
        stream: names the permutations, so that generators trained with one seed shuffle
            differently.
    """
    taken: list[torch.Tensor] = []
    remaining = size
    while remaining:
        epoch, offset = divmod(position, count)
        take = min(remaining, count - offset)
        taken.append(_permutation(seed, stream, epoch, count)[offset : offset + take])
        position, remaining = position + take, remaining - take
    return torch.cat(taken)


def clipped_step(accelerator: Any, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """Clip ``model``'s gradients to norm ``GRAD_CLIP`` once ``accelerator`` has synchronised them
    (the last micro-batch of an accumulation), then step ``optimizer`` and clear the gradients."""
    if accelerator.sync_gradients:
        accelerator.clip_grad_norm_(model.parameters(), GRAD_CLIP)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def smoothed(average: float | None, value: float) -> float:
    """The exponential moving average ``average`` updated with ``value`` (``value`` when it is the first)."""
    return value if average is None else LOSS_SMOOTHING * average + (1 - LOSS_SMOOTHING) * value


def contact_grid(images: torch.Tensor, per_row: int) -> torch.Tensor:
    """A grid of ``images`` in [0, 1] (rows of ``per_row``: one row per grade), cells at least 128 px."""
    zoom = max(1, SHEET_CELL // images.shape[-1])
    if zoom > 1:
        images = F.interpolate(images, scale_factor=zoom, mode="nearest")
    return make_grid(images, nrow=per_row, padding=2, pad_value=1.0)


@lru_cache(maxsize=8)
def _permutation(seed: int, stream: str, epoch: int, count: int) -> torch.Tensor:
    return torch.randperm(count, generator=torch.Generator().manual_seed(derive_seed(seed, stream, epoch)))
