"""Checkpoints of the DCGAN: safetensors weights, a JSON config, and the state a resumed run needs.

Layout of a checkpoint folder (one per generator and store)::

    step-000200/                 one complete checkpoint (the newest ``keep`` are kept)
        config.json              recipe, step, seed, parameter counts, mode-collapse signal
        sampler.safetensors      the generator that sampling uses: weight average (EMA) with
                                 batch-norm statistics recomputed for it; signal in its metadata
        generator.safetensors    live generator weights
        discriminator.safetensors
        optimizer_g.safetensors  Adam moments of each network
        optimizer_d.safetensors
        state.json               step, losses, optimizer scalars, EMA state, signal history
    samples-step-000200.png      contact sheet at that step: one row per grade
    reals.png                    real training images, one row per grade, for comparison

Random draws of step ``s`` come from a generator seeded by ``(seed, s)`` (see ``training``), so
the random state to restore is the step itself. Each checkpoint is written into a hidden
temporary folder and renamed into place: a ``step-*`` folder is always complete, and a run killed
while saving leaves the previous checkpoint.
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
from medaug.adapters.generators.dcgan.config import DCGANRecipe
from medaug.adapters.generators.dcgan.diversity import DiversityReport
from medaug.adapters.generators.dcgan.model import Generator

FORMAT = 1
TENSOR_FILES: tuple[str, ...] = ("sampler", "generator", "discriminator", "optimizer_g", "optimizer_d")


class CheckpointMeta(checkpointing.StepMeta):
    """The ``config.json`` of a checkpoint: enough to rebuild the generator and judge it.

    Attributes:
        format: layout version of the checkpoint.
        step: optimisation steps done.
        total_steps: the run's planned length.
        seed: the training seed.
        recipe: the recipe it was trained with.
        parameters: trainable parameters of each network.
        diversity: the mode-collapse signal at this step.
    """

    format: int = FORMAT
    total_steps: int
    recipe: DCGANRecipe
    parameters: dict[str, int] = {}
    diversity: DiversityReport | None = None


class TrainingState(BaseModel):
    """Everything besides weights that a resumed run needs (``state.json``).

    Attributes:
        step: optimisation steps done; with the seed, it fixes every later random draw.
        images_seen: real images consumed so far.
        d_loss: smoothed discriminator loss; g_loss: smoothed generator loss.
        optimizer_g, optimizer_d: optimizer state dicts without tensors.
        ema: diffusers ``EMAModel`` state without its shadow parameters (None without EMA).
        history: the mode-collapse signal at every checkpoint so far.
    """

    model_config = ConfigDict(frozen=True)

    step: int
    images_seen: int = 0
    d_loss: float | None = None
    g_loss: float | None = None
    optimizer_g: dict[str, Any]
    optimizer_d: dict[str, Any]
    ema: dict[str, Any] | None = None
    history: tuple[DiversityReport, ...] = ()


class Saved(BaseModel):
    """A checkpoint in memory: the JSON parts and the tensors of each ``TENSOR_FILES`` entry."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    meta: CheckpointMeta
    state: TrainingState
    tensors: dict[str, dict[str, torch.Tensor]]


def save_checkpoint(root: Path, saved: Saved, *, keep: int) -> Path:
    """Write ``saved`` as ``root/step-NNNNNN`` atomically and prune all but the newest ``keep``."""
    signal = saved.meta.diversity.model_dump_json() if saved.meta.diversity else "null"
    metadata = {"format": str(FORMAT), "step": str(saved.meta.step), "diversity": signal}
    documents = {"config.json": saved.meta, "state.json": saved.state}
    tensors = {name: saved.tensors[name] for name in TENSOR_FILES}
    return checkpointing.write_checkpoint(root, saved.meta.step, documents, tensors, keep=keep, metadata=metadata)


def clear_checkpoints(root: Path) -> None:
    """Remove every checkpoint, contact sheet and half-written temporary folder under ``root``."""
    checkpointing.clear_checkpoints(root)
    for sheet in root.glob("*.png") if root.is_dir() else []:
        sheet.unlink(missing_ok=True)


def read_meta(path: Path) -> CheckpointMeta:
    """The ``config.json`` of checkpoint ``path``.

    Raises:
        GeneratorError: the file is missing or not a DCGAN checkpoint config of this format.
    """
    parse = CheckpointMeta.model_validate_json
    return checkpointing.read_config(path, parse, generator="dcgan", expected_format=FORMAT)


def load_checkpoint(path: Path) -> Saved:
    """Everything in checkpoint ``path`` (tensors on the CPU), for resuming training.

    Raises:
        GeneratorError: a file is missing or corrupt.
    """
    meta, state, tensors = checkpointing.load_training(
        path, read_meta=read_meta, state=TrainingState, tensors=TENSOR_FILES, generator="dcgan"
    )
    return Saved(meta=meta, state=state, tensors=tensors)


SamplingModel = checkpointing.SamplingModel


load_sampling_model = functools.partial(
    checkpointing.load_sampling_model,
    read_meta=read_meta, weights="sampler.safetensors", build=lambda meta: Generator(meta.recipe), generator="dcgan",
)
"""``load_sampling_model(path, device)``: the sampling generator (``sampler.safetensors``) of
checkpoint ``path`` in eval mode on ``device`` (``GeneratorError`` when it is missing or corrupt)."""
