"""A local folder as the RunRepository of an experiment: ``cells/*.json`` + ``results.json``."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from medaug.adapters.files import write_atomic
from medaug.application.errors import ConfigError, StoreError
from medaug.domain.experiment import CellKey, CellResult, ExperimentResult

RESULTS = "results.json"
_CLAIM = "experiment.json"


class LocalRunFolder:
    """Run folder on disk. Every file is written to a temporary name and renamed into place."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self._root = Path(root)

    @property
    def location(self) -> str:
        return str(self._root)

    def claim(self, fingerprint: str, arms: Mapping[str, str]) -> None:
        path = self._root / _CLAIM
        held: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {"fingerprint": fingerprint, "arms": {}}
        advice = "choose another --run-dir or pass --fresh to discard them"
        if held.get("fingerprint") != fingerprint:
            raise ConfigError(
                f"{self._root}: this run folder holds results of a different experiment definition "
                f"(data set, plan or settings); {advice}"
            )
        for name, definition in arms.items():
            if held["arms"].setdefault(name, definition) != definition:
                raise ConfigError(f"{self._root}: arm {name!r} was defined differently in this run folder; {advice}")
        self._write(path, json.dumps(held, indent=2))

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
