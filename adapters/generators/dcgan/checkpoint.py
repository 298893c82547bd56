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

import hashlib
import json
import os
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from adapters.generators.dcgan.config import DCGANRecipe
from adapters.generators.dcgan.diversity import DiversityReport
from adapters.generators.dcgan.model import Generator
from application.errors import ConfigError, GeneratorError

FORMAT = 1
PREFIX = "step-"
TENSOR_FILES: tuple[str, ...] = ("sampler", "generator", "discriminator", "optimizer_g", "optimizer_d")


class CheckpointMeta(BaseModel):
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

    model_config = ConfigDict(frozen=True)

    format: int = FORMAT
    step: int
    total_steps: int
    seed: int
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


def checkpoint_name(step: int) -> str:
    """Folder name of the checkpoint at ``step``."""
    return f"{PREFIX}{step:06d}"


def list_checkpoints(root: Path) -> list[Path]:
    """Complete checkpoints under ``root``, oldest first."""
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(PREFIX) and p.name[len(PREFIX) :].isdigit()]
    return sorted(found, key=lambda p: int(p.name[len(PREFIX) :]))


def latest_checkpoint(root: Path) -> Path | None:
    """The newest complete checkpoint under ``root``, or None."""
    found = list_checkpoints(root)
    return found[-1] if found else None


def save_checkpoint(root: Path, saved: Saved, *, keep: int) -> Path:
    """Write ``saved`` as ``root/step-NNNNNN`` atomically and prune all but the newest ``keep``."""
    root.mkdir(parents=True, exist_ok=True)
    target = root / checkpoint_name(saved.meta.step)
    temp = root / f".{target.name}.tmp-{os.getpid()}"
    shutil.rmtree(temp, ignore_errors=True)
    temp.mkdir()
    (temp / "config.json").write_text(json.dumps(saved.meta.model_dump(mode="json"), indent=2, sort_keys=True))
    (temp / "state.json").write_text(json.dumps(saved.state.model_dump(mode="json"), indent=2, sort_keys=True))
    signal = saved.meta.diversity.model_dump_json() if saved.meta.diversity else "null"
    metadata = {"format": str(FORMAT), "step": str(saved.meta.step), "diversity": signal}
    for name in TENSOR_FILES:
        save_file(_contiguous(saved.tensors[name]), str(temp / f"{name}.safetensors"), metadata=metadata)
    if target.exists():
        shutil.rmtree(target)
    os.replace(temp, target)
    _prune(root, keep)
    return target


def clear_checkpoints(root: Path) -> None:
    """Remove every checkpoint, contact sheet and half-written temporary folder under ``root``."""
    for path in list_checkpoints(root) + _temporaries(root):
        shutil.rmtree(path, ignore_errors=True)
    for sheet in root.glob("*.png") if root.is_dir() else []:
        sheet.unlink(missing_ok=True)


def read_meta(path: Path) -> CheckpointMeta:
    """The ``config.json`` of checkpoint ``path``.

    Raises:
        GeneratorError: the file is missing or not a DCGAN checkpoint config of this format.
    """
    try:
        meta = CheckpointMeta.model_validate_json((path / "config.json").read_bytes())
    except (OSError, ValueError) as exc:
        raise GeneratorError(f"{path / 'config.json'}: not a readable dcgan checkpoint ({_first_line(exc)})") from None
    if meta.format != FORMAT:
        raise GeneratorError(f"{path / 'config.json'}: checkpoint format {meta.format}, this build reads {FORMAT}")
    return meta


def load_checkpoint(path: Path) -> Saved:
    """Everything in checkpoint ``path`` (tensors on the CPU), for resuming training.

    Raises:
        GeneratorError: a file is missing or corrupt.
    """
    meta = read_meta(path)
    try:
        state = TrainingState.model_validate_json((path / "state.json").read_bytes())
        tensors = {name: load_file(str(path / f"{name}.safetensors")) for name in TENSOR_FILES}
    except (OSError, ValueError, RuntimeError, SafetensorError) as exc:
        raise GeneratorError(f"{path}: corrupt dcgan checkpoint ({_first_line(exc)}); retrain with --fresh") from None
    return Saved(meta=meta, state=state, tensors=tensors)


class SamplingModel(BaseModel):
    """A generator loaded for sampling, with what provenance needs to name it."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    generator: Generator
    meta: CheckpointMeta
    checkpoint: str
    digest: str


def load_sampling_model(path: Path, device: torch.device) -> SamplingModel:
    """The sampling generator of checkpoint ``path``, in eval mode on ``device``.

    Raises:
        GeneratorError: the checkpoint is missing or corrupt.
    """
    meta = read_meta(path)
    weights_file = path / "sampler.safetensors"
    try:
        raw = weights_file.read_bytes()
        generator = Generator(meta.recipe)
        generator.load_state_dict(load_file(str(weights_file)))
    except (OSError, ValueError, RuntimeError, SafetensorError) as exc:
        raise GeneratorError(f"{weights_file}: cannot load dcgan weights ({_first_line(exc)})") from None
    digest = hashlib.sha256(raw).hexdigest()[:16]
    return SamplingModel(generator=generator.to(device).eval(), meta=meta, checkpoint=path.name, digest=digest)


def check_compatible(meta: CheckpointMeta, recipe: DCGANRecipe, path: Path) -> None:
    """Raise ``ConfigError`` when ``recipe`` describes another model than checkpoint ``path``."""
    theirs, ours = meta.recipe.architecture(), recipe.architecture()
    for name, value in ours.items():
        if theirs[name] != value:
            raise ConfigError(
                f"{path}: checkpoint has {name} = {theirs[name]} but the configuration asks for {value}; "
                "train with --fresh to start a new model"
            )


def flatten_optimizer(state_dict: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer state dict into safetensors-ready tensors and a JSON-ready rest."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, entries in state_dict["state"].items():
        for name, value in entries.items():
            if torch.is_tensor(value):
                tensors[f"state.{index}.{name}"] = value
            else:
                scalars.setdefault(str(index), {})[name] = value
    return tensors, {"param_groups": state_dict["param_groups"], "scalars": scalars}


def unflatten_optimizer(tensors: dict[str, torch.Tensor], rest: dict[str, Any]) -> dict[str, Any]:
    """The inverse of :func:`flatten_optimizer`."""
    state: dict[int, dict[str, Any]] = defaultdict(dict)
    for key, value in tensors.items():
        _, index, name = key.split(".", 2)
        state[int(index)][name] = value
    for index, entries in rest.get("scalars", {}).items():
        state[int(index)].update(entries)
    return {"state": dict(state), "param_groups": rest["param_groups"]}


def _contiguous(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}


def _temporaries(root: Path) -> list[Path]:
    return [p for p in root.iterdir() if p.name.startswith(f".{PREFIX}")] if root.is_dir() else []


def _prune(root: Path, keep: int) -> None:
    for path in list_checkpoints(root)[:-keep] + _temporaries(root):
        shutil.rmtree(path, ignore_errors=True)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
