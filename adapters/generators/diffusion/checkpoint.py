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

import hashlib
import json
import os
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch
from diffusers import UNet2DModel
from pydantic import BaseModel, ConfigDict
from safetensors.torch import load_file, save_file

from adapters.generators.diffusion.config import DiffusionRecipe
from adapters.generators.diffusion.model import unet_from_config
from application.errors import ConfigError, GeneratorError

FORMAT = 1
PREFIX = "step-"


class CheckpointMeta(BaseModel):
    """The ``config.json`` of a checkpoint: enough to rebuild the model and sample from it."""

    model_config = ConfigDict(frozen=True)

    format: int = FORMAT
    step: int
    seed: int
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
    _write_json(temp / "config.json", saved.meta.model_dump(mode="json"))
    _write_json(temp / "state.json", saved.state.model_dump(mode="json"))
    save_file(_contiguous(saved.model), str(temp / "model.safetensors"))
    save_file(_contiguous(saved.ema), str(temp / "ema.safetensors"))
    save_file(_contiguous(saved.optimizer), str(temp / "optimizer.safetensors"))
    _sync_files(temp)
    if target.exists():
        shutil.rmtree(target)
    os.replace(temp, target)
    _prune(root, keep)
    return target


def clear_checkpoints(root: Path) -> None:
    """Remove every checkpoint (and half-written temporary folder) under ``root``."""
    for path in list_checkpoints(root) + _temporaries(root):
        shutil.rmtree(path, ignore_errors=True)


def read_meta(path: Path) -> CheckpointMeta:
    """The ``config.json`` of checkpoint ``path``.

    Raises:
        GeneratorError: the file is missing or not a checkpoint config of this format.
    """
    try:
        meta = CheckpointMeta.model_validate_json((path / "config.json").read_bytes())
    except (OSError, ValueError) as exc:
        raise GeneratorError(f"{path / 'config.json'}: not a readable diffusion checkpoint ({_first_line(exc)})") from None
    if meta.format != FORMAT:
        raise GeneratorError(f"{path / 'config.json'}: checkpoint format {meta.format}, this build reads {FORMAT}")
    return meta


def read_state(path: Path) -> TrainingState:
    """The ``state.json`` of checkpoint ``path`` (no tensors).

    Raises:
        GeneratorError: the file is missing or corrupt.
    """
    try:
        return TrainingState.model_validate_json((path / "state.json").read_bytes())
    except (OSError, ValueError) as exc:
        raise GeneratorError(f"{path / 'state.json'}: corrupt diffusion checkpoint ({_first_line(exc)})") from None


def load_checkpoint(path: Path) -> Saved:
    """Everything in checkpoint ``path`` (tensors on the CPU), for resuming training.

    Raises:
        GeneratorError: a file is missing or corrupt.
    """
    meta, state = read_meta(path), read_state(path)
    try:
        tensors = {name: load_file(str(path / f"{name}.safetensors")) for name in ("model", "ema", "optimizer")}
    except (OSError, ValueError, RuntimeError) as exc:
        raise GeneratorError(f"{path}: corrupt diffusion checkpoint ({_first_line(exc)}); retrain with --fresh") from None
    return Saved(meta=meta, state=state, **tensors)


class SamplingModel(BaseModel):
    """An EMA model loaded for sampling, with what provenance needs to name it."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    unet: UNet2DModel
    meta: CheckpointMeta
    checkpoint: str
    digest: str


def load_sampling_model(path: Path, device: torch.device) -> SamplingModel:
    """The EMA UNet of checkpoint ``path`` in eval mode on ``device``.

    Raises:
        GeneratorError: the checkpoint is missing or corrupt.
    """
    meta = read_meta(path)
    weights_file = path / "ema.safetensors"
    try:
        raw = weights_file.read_bytes()
        unet = unet_from_config(meta.unet)
        unet.load_state_dict(load_file(str(weights_file)))
    except (OSError, ValueError, RuntimeError) as exc:
        raise GeneratorError(f"{weights_file}: cannot load diffusion weights ({_first_line(exc)})") from None
    digest = hashlib.sha256(raw).hexdigest()[:16]
    return SamplingModel(unet=unet.to(device).eval(), meta=meta, checkpoint=path.name, digest=digest)


def flatten_optimizer(state_dict: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer state dict into safetensors-ready tensors and JSON-ready rest."""
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


def check_compatible(meta: CheckpointMeta, recipe: DiffusionRecipe, path: Path) -> None:
    """Raise ``ConfigError`` when ``recipe`` describes another model than checkpoint ``path``."""
    theirs, ours = meta.recipe.architecture(), recipe.architecture()
    for name, value in ours.items():
        if theirs[name] != value:
            raise ConfigError(
                f"{path}: checkpoint has {name} = {_show(theirs[name])} but the configuration asks for "
                f"{_show(value)}; train with --fresh to start a new model"
            )


def _sync_files(folder: Path) -> None:
    # The rename below is the commit point: the files must be on disk before it, not just cached.
    for path in folder.iterdir():
        with path.open("rb") as handle:
            os.fsync(handle.fileno())


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2, sort_keys=True))


def _contiguous(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}


def _temporaries(root: Path) -> list[Path]:
    return [p for p in root.iterdir() if p.name.startswith(f".{PREFIX}")] if root.is_dir() else []


def _prune(root: Path, keep: int) -> None:
    for path in list_checkpoints(root)[:-keep] + _temporaries(root):
        shutil.rmtree(path, ignore_errors=True)


def _show(value: Any) -> str:
    return str(tuple(value)) if isinstance(value, (list, tuple)) else str(value)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
