"""Checkpoint folders of the trained generators (DCGAN, diffusion): the layout they share.

A generator's checkpoint root holds one folder per checkpoint, named ``step-NNNNNN`` after the
optimisation steps done, with JSON documents (``config.json``, ``state.json``) and safetensors
files inside. Each checkpoint is written into a hidden temporary folder, flushed to disk and
renamed into place, so a ``step-*`` folder is always complete: a run killed while saving leaves
the previous checkpoint. What goes into the files is each generator's own business.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import torch
from pydantic import BaseModel, ConfigDict
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from medaug.adapters.weights import tensors_sha256
from medaug.application.errors import ConfigError, GeneratorError

PREFIX = "step-"

LOAD_ERRORS: tuple[type[BaseException], ...] = (OSError, ValueError, RuntimeError, SafetensorError)
"""What reading a missing, truncated or mismatched checkpoint file raises."""


class _Versioned(Protocol):
    @property
    def format(self) -> int: ...


class _Recipe(Protocol):
    def architecture(self) -> Mapping[str, Any]: ...


class _Meta(Protocol):
    """What every generator's ``config.json`` model has: the step reached and the recipe."""

    @property
    def step(self) -> int: ...

    @property
    def recipe(self) -> Any: ...


VersionedT = TypeVar("VersionedT", bound=_Versioned)
ModuleT = TypeVar("ModuleT", bound=torch.nn.Module)
MetaT = TypeVar("MetaT", bound=_Meta)
DocumentT = TypeVar("DocumentT", bound=BaseModel)


class StepMeta(BaseModel):
    """What every generator's ``config.json`` holds: its layout version (each generator sets the
    default to the format it writes), the optimisation steps done and the training seed."""

    model_config = ConfigDict(frozen=True)

    format: int
    step: int
    seed: int


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


def write_checkpoint(
    root: Path,
    step: int,
    documents: Mapping[str, BaseModel],
    tensors: Mapping[str, Mapping[str, torch.Tensor]],
    *,
    keep: int,
    metadata: dict[str, str] | None = None,
) -> Path:
    """Write checkpoint ``root/step-NNNNNN`` atomically and prune all but the newest ``keep``.

    Args:
        root: the generator's checkpoint folder (created if missing).
        step: optimisation steps done; names the checkpoint.
        documents: JSON files to write, by file name (e.g. ``config.json``).
        tensors: safetensors files to write, by name without the ``.safetensors`` ending.
        keep: how many checkpoints to keep, this one included.
        metadata: string metadata stored in every safetensors file.

    Returns:
        The checkpoint folder.
    """
    root.mkdir(parents=True, exist_ok=True)
    target = root / checkpoint_name(step)
    temp = root / f".{target.name}.tmp-{os.getpid()}"
    shutil.rmtree(temp, ignore_errors=True)
    temp.mkdir()
    for file_name, document in documents.items():
        (temp / file_name).write_text(json.dumps(document.model_dump(mode="json"), indent=2, sort_keys=True))
    for name, values in tensors.items():
        save_file(_contiguous(values), str(temp / f"{name}.safetensors"), metadata=metadata)
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


@contextmanager
def load_errors_as(message: str, suffix: str = "") -> Iterator[None]:
    """Turn a failure to read checkpoint files into ``GeneratorError("<message> (<cause>)<suffix>")``.

    Raises:
        GeneratorError: the block raised one of ``LOAD_ERRORS``.
    """
    try:
        yield
    except LOAD_ERRORS as exc:
        raise GeneratorError(f"{message} ({first_line(exc)}){suffix}") from None


def read_config(
    path: Path, parse: Callable[[bytes], VersionedT], *, generator: str, expected_format: int
) -> VersionedT:
    """The ``config.json`` of checkpoint ``path``, parsed by ``parse`` and checked for its format.

    Raises:
        GeneratorError: the file is missing, not a ``generator`` checkpoint config, or of
            another format than ``expected_format``.
    """
    file = path / "config.json"
    with load_errors_as(f"{file}: not a readable {generator} checkpoint"):
        config = parse(file.read_bytes())
    if config.format != expected_format:
        raise GeneratorError(f"{file}: checkpoint format {config.format}, this build reads {expected_format}")
    return config


def load_tensor_files(path: Path, names: Iterable[str]) -> dict[str, dict[str, torch.Tensor]]:
    """The safetensors files ``<name>.safetensors`` of checkpoint ``path``, on the CPU, by name.

    Raises:
        OSError, ValueError, RuntimeError, SafetensorError: a file is missing or corrupt.
    """
    return {name: load_file(str(path / f"{name}.safetensors")) for name in names}


def read_document(path: Path, model: type[DocumentT], *, generator: str, name: str = "state.json") -> DocumentT:
    """The JSON document ``name`` of checkpoint ``path`` (no tensors), parsed as ``model``.

    Raises:
        GeneratorError: the file is missing or corrupt.
    """
    with load_errors_as(f"{path / name}: corrupt {generator} checkpoint"):
        return model.model_validate_json((path / name).read_bytes())


def load_training(
    path: Path,
    *,
    read_meta: Callable[[Path], MetaT],
    state: type[DocumentT],
    tensors: Iterable[str],
    generator: str,
) -> tuple[MetaT, DocumentT, dict[str, dict[str, torch.Tensor]]]:
    """Everything in checkpoint ``path`` that resuming training needs: its ``config.json``, its
    ``state.json`` parsed as ``state`` and its safetensors files ``tensors`` (on the CPU).

    Raises:
        GeneratorError: a file is missing or corrupt.
    """
    meta = read_meta(path)
    with load_errors_as(f"{path}: corrupt {generator} checkpoint", "; retrain with --fresh"):
        document = state.model_validate_json((path / "state.json").read_bytes())
        files = load_tensor_files(path, tensors)
    return meta, document, files


def load_weights(weights_file: Path, build: Callable[[], ModuleT], *, generator: str) -> tuple[ModuleT, str]:
    """A network made by ``build`` holding the weights of ``weights_file``, and the weights' digest.

    The digest (16 hex digits of ``adapters.weights.tensors_sha256``, over the tensors, not the
    file) names the exact weights in provenance: bit-identical weights saved with other
    metadata give the same digest.

    Raises:
        GeneratorError: the file is missing or corrupt, or its weights do not fit the network.
    """
    with load_errors_as(f"{weights_file}: cannot load {generator} weights"):
        state = load_file(str(weights_file))
        network = build()
        network.load_state_dict(state)
    return network, tensors_sha256(state)[:16]


@dataclass(frozen=True)
class ResumePoint(Generic[MetaT]):
    """Where a training run starts: the newest checkpoint and its ``config.json``, or nothing."""

    checkpoint: Path | None = None
    meta: MetaT | None = None

    def finished(self, total_steps: int) -> bool:
        """Whether the checkpoint already holds ``total_steps`` steps."""
        return self.meta is not None and self.meta.step >= total_steps


def resume_point(root: Path, recipe: _Recipe, *, resume: bool, read_meta: Callable[[Path], MetaT]) -> ResumePoint[MetaT]:
    """The checkpoint a run of ``recipe`` resumes from (none unless ``resume``).

    Raises:
        ConfigError: the checkpoint is of another architecture than ``recipe``.
        GeneratorError: its ``config.json`` is unreadable.
    """
    existing = latest_checkpoint(root) if resume else None
    if existing is None:
        return ResumePoint()
    meta = read_meta(existing)
    check_architecture(meta.recipe.architecture(), recipe.architecture(), existing)
    return ResumePoint(checkpoint=existing, meta=meta)


def require_training_images(images: Sequence[object], generator: str) -> None:
    """Raise ``ConfigError`` when there is nothing to train ``generator`` on."""
    if not images:
        raise ConfigError(f"no training images: the {generator} generator needs real training images")


@dataclass(frozen=True)
class SamplingModel(Generic[ModuleT, MetaT]):
    """A trained network loaded for sampling, with what provenance needs to name it.

    Attributes:
        network: the network in eval mode on its device.
        meta: the checkpoint's ``config.json``.
        checkpoint: the checkpoint's folder name (``step-NNNNNN``).
        digest: the weights' digest.
    """

    network: ModuleT
    meta: MetaT
    checkpoint: str
    digest: str


def load_sampling_model(
    path: Path,
    device: torch.device,
    *,
    read_meta: Callable[[Path], MetaT],
    weights: str,
    build: Callable[[MetaT], ModuleT],
    generator: str,
) -> SamplingModel[ModuleT, MetaT]:
    """The network ``build(meta)`` with the weights file ``weights`` of checkpoint ``path``.

    Raises:
        GeneratorError: the checkpoint is missing or corrupt.
    """
    meta = read_meta(path)
    network, digest = load_weights(path / weights, lambda: build(meta), generator=generator)
    return SamplingModel(network=network.to(device).eval(), meta=meta, checkpoint=path.name, digest=digest)


def check_architecture(theirs: Mapping[str, Any], ours: Mapping[str, Any], path: Path) -> None:
    """Raise ``ConfigError`` when the architecture ``ours`` differs from checkpoint ``path``'s.

    Args:
        theirs: the architecture fields of the checkpoint's recipe.
        ours: the architecture fields of the configured recipe.
        path: the checkpoint, for the message.
    """
    for name, value in ours.items():
        if theirs[name] != value:
            raise ConfigError(
                f"{path}: checkpoint has {name} = {_show(theirs[name])} but the configuration asks for "
                f"{_show(value)}; train with --fresh to start a new model"
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


def first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message (its type's name when it has none), for one-line errors."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _sync_files(folder: Path) -> None:
    # The rename is the commit point: the files must be on disk before it, not just cached.
    for path in folder.iterdir():
        with path.open("rb") as handle:
            os.fsync(handle.fileno())


def _contiguous(tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}


def _temporaries(root: Path) -> list[Path]:
    return [p for p in root.iterdir() if p.name.startswith(f".{PREFIX}")] if root.is_dir() else []


def _prune(root: Path, keep: int) -> None:
    for path in list_checkpoints(root)[:-keep] + _temporaries(root):
        shutil.rmtree(path, ignore_errors=True)


def _show(value: Any) -> str:
    return str(tuple(value)) if isinstance(value, (list, tuple)) else str(value)
