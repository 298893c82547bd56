"""Shared set-up of the CLI tests: a scratch folder as the working directory and work folder."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def cli_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``tmp_path`` as the working directory (no stray ./medaug.toml) and ``tmp_path/work`` as
    the work folder, with wide terminal output (one line per table row)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MEDAUG_WORK_DIR", str(tmp_path / "work"))
    monkeypatch.setenv("COLUMNS", "200")
    return tmp_path
