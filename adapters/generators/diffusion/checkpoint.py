"""Checkpoints of the diffusion model: safetensors weights, a JSON config, and resume state.

Layout of a checkpoint folder (one per generator and store)::

    step-000600/            one complete checkpoint (the newest ``keep`` are kept)
        config.json         UNet config, training noise schedule, recipe, step, seed
        ema.safetensors     EMA weights: what sampling uses
        model.safetensors   live weights, optimizer.safetensors (AdamW moments), state.json
    samples-step-000600.png contact sheet of samples per grade at that step

Each checkpoint is written into a hidden temporary folder and renamed into place, so a
``step-*`` folder is always complete: a run killed while saving leaves the previous checkpoint.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict

from medaug.adapters.generators import checkpointing
from medaug.adapters.generators.checkpointing import (  # noqa: F401 (re-exported: tests and training import them from here)
    flatten_optimizer,
    latest_checkpoint,
    list_checkpoints,
    unflatten_optimizer,
)
from medaug.adapters.generators.diffusion.config import DiffusionRecipe
from medaug.adapters.generators.diffusion.model import unet_from_config

FORMAT = 1


class CheckpointMeta(checkpointing.StepMeta):
    """The ``config.json`` of a checkpoint: enough to rebuild the model and sample from it."""

    format: int = FORMAT
    recipe: DiffusionRecipe
    unet: dict[str, Any]
    schedule: dict[str, Any]
    world_size: int = 1


class TrainingState(BaseModel):
    """Everything besides weights that a resumed run needs (``state.json`` + optimizer tensors).

    Attributes:
        step: optimisation steps done.
        ema: diffusers ``EMAModel`` state without its shadow parameters (those are ema.safetensors).
        optimizer: the optimizer state dict without tensors (``param_groups`` and scalars).
        lr_scheduler: the learning-rate scheduler's state dict.
        loss: the smoothed training loss at ``step``.
        images_seen: training images consumed so far, all processes together.
    """

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    step: int
    ema: dict[str, Any]
    optimizer: dict[str, Any]
    lr_scheduler: dict[str, Any]
    loss: float | None = None
    images_seen: int = 0


class Saved(BaseModel):
    """A checkpoint in memory: weights, optimizer tensors and the JSON parts."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    meta: CheckpointMeta
    state: TrainingState
    model: dict[str, torch.Tensor]
    ema: dict[str, torch.Tensor]
    optimizer: dict[str, torch.Tensor]


def save_checkpoint(root: Path, saved: Saved, *, keep: int) -> Path:
    """Write ``saved`` as ``root/step-NNNNNN`` atomically and prune all but the newest ``keep``."""
    documents = {"config.json": saved.meta, "state.json": saved.state}
    tensors = {"model": saved.model, "ema": saved.ema, "optimizer": saved.optimizer}
    return checkpointing.write_checkpoint(root, saved.meta.step, documents, tensors, keep=keep)


def clear_checkpoints(root: Path) -> None:
    """Remove every checkpoint (and half-written temporary folder) under ``root``."""
    checkpointing.clear_checkpoints(root)


def read_meta(path: Path) -> CheckpointMeta:
    """The ``config.json`` of checkpoint ``path``.

    Raises:
        GeneratorError: the file is missing or not a checkpoint config of this format.
    """
    parse = CheckpointMeta.model_validate_json
    return checkpointing.read_config(path, parse, generator="diffusion", expected_format=FORMAT)


def read_state(path: Path) -> TrainingState:
    """The ``state.json`` of checkpoint ``path`` (no tensors).

    Raises:
        GeneratorError: the file is missing or corrupt.
    """
    return checkpointing.read_document(path, TrainingState, generator="diffusion")


def load_checkpoint(path: Path) -> Saved:
    """Everything in checkpoint ``path`` (tensors on the CPU), for resuming training.

    Raises:
        GeneratorError: a file is missing or corrupt.
    """
    meta, state, tensors = checkpointing.load_training(
        path, read_meta=read_meta, state=TrainingState, tensors=("model", "ema", "optimizer"), generator="diffusion"
    )
    return Saved(meta=meta, state=state, **tensors)


SamplingModel = checkpointing.SamplingModel


load_sampling_model = functools.partial(
    checkpointing.load_sampling_model,
    read_meta=read_meta, weights="ema.safetensors", build=lambda meta: unet_from_config(meta.unet), generator="diffusion",
)
"""``load_sampling_model(path, device)``: the EMA UNet of checkpoint ``path`` in eval mode on
``device`` (``GeneratorError`` when the checkpoint is missing or corrupt)."""
