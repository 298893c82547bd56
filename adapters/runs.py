"""A local folder as the RunRepository of an experiment: ``cells/*.json`` + ``results.json``."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from medaug.adapters.files import write_atomic
from medaug.application.errors import ConfigError, StoreError
from medaug.domain.experiment import CellKey, CellResult, ExperimentResult

RESULTS = "results.json"
CLAIM = "experiment.json"



RUN_FILES = (CLAIM, RESULTS, "cells", "report.md", "report.html")
"""What only a run folder holds: a folder with none of these is not discarded."""


def discard_run_folder(path: str | os.PathLike[str], *, within: str | os.PathLike[str] | None) -> None:
    """Delete the run folder ``path`` (``--fresh``), refusing anything that may not be one.

    Refused with one line (``ConfigError``), nothing deleted: a symbolic link; a folder not
    strictly inside ``within`` (the runs folder, after resolving ``..`` and links; None when the
    folder was named on the command line); a non-empty folder holding none of a run folder's
    files. A missing folder is nothing to do.
    """
    folder = Path(path)
    if folder.is_symlink():
        raise ConfigError(f"{folder}: is a symbolic link; --fresh deletes only a run folder itself")
    if not folder.exists():
        return
    resolved = folder.resolve()
    if within is not None and Path(within).resolve() not in resolved.parents:
        raise ConfigError(f"{folder}: outside the runs folder {within}; --fresh deletes nothing there")
    if not resolved.is_dir():
        raise ConfigError(f"{folder}: not a folder; --fresh deletes only a run folder")
    if any(resolved.iterdir()) and not any((resolved / name).exists() for name in RUN_FILES):
        raise ConfigError(f"{folder}: not a run folder (no {CLAIM}, {RESULTS} or cells/); --fresh deletes nothing there")
    try:
        shutil.rmtree(resolved)
    except OSError as exc:
        raise StoreError(f"{folder}: cannot delete ({exc.strerror or exc})") from exc


def merge_claim(held: dict[str, Any] | None, fingerprint: str, arms: Mapping[str, str], where: str) -> str:
    """The claim document (``experiment.json``) after ``claim(fingerprint, arms)`` over ``held``.

    Raises:
        ConfigError: ``held`` is another experiment definition, or defines an arm differently.
    """
    held = held if held is not None else {"fingerprint": fingerprint, "arms": {}}
    advice = "choose another --run-dir or pass --fresh to discard them"
    if held.get("fingerprint") != fingerprint:
        raise ConfigError(
            f"{where}: this run folder holds results of a different experiment definition "
            f"(data set, plan or settings); {advice}"
        )
    for name, definition in arms.items():
        if held["arms"].setdefault(name, definition) != definition:
            raise ConfigError(f"{where}: arm {name!r} was defined differently in this run folder; {advice}")
    return json.dumps(held, indent=2)


class LocalRunFolder:
    """Run folder on disk. Every file is written to a temporary name and renamed into place."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self._root = Path(root)

    @property
    def location(self) -> str:
        return str(self._root)

    def claim(self, fingerprint: str, arms: Mapping[str, str]) -> None:
        path = self._root / CLAIM
        held = json.loads(path.read_text()) if path.is_file() else None
        self._write(path, merge_claim(held, fingerprint, arms, str(self._root)))

    def load_cell(self, key: CellKey) -> CellResult | None:
        path = self._cell_path(key)
        if not path.is_file():
            return None
        try:
            return CellResult.model_validate_json(path.read_bytes())
        except (ValidationError, ValueError):
            return None  # unreadable cell: it is simply run again

    def save_cell(self, cell: CellResult) -> None:
        self._write(self._cell_path(cell.key), cell.model_dump_json(indent=1))

    def save_result(self, result: ExperimentResult) -> str:
        path = self._root / RESULTS
        self._write(path, result.model_dump_json(indent=1))
        return str(path)

    def load_result(self) -> ExperimentResult:
        path = self._root / RESULTS
        try:
            return ExperimentResult.model_validate_json(path.read_bytes())
        except FileNotFoundError:
            raise ConfigError(f"{path}: no results.json here; run the experiment first") from None
        except (ValidationError, ValueError) as exc:
            raise ConfigError(f"{path}: unreadable results ({str(exc).splitlines()[0]})") from None

    def checkpoint_path(self, slug: str) -> str:
        return str(self._root / "checkpoints" / f"{slug}.safetensors")

    def _cell_path(self, key: CellKey) -> Path:
        return self._root / "cells" / f"{key.slug}.json"

    def _write(self, path: Path, text: str) -> None:
        try:
            write_atomic(path, text)
        except OSError as exc:
            raise StoreError(f"{path}: cannot write ({exc.strerror or exc})") from exc
