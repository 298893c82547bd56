"""The local run folder: atomic cells, safe resuming, results round trip."""

from __future__ import annotations

from pathlib import Path

import pytest

from medaug.adapters.runs import LocalRunFolder
from medaug.application.errors import ConfigError
from medaug.domain.experiment import CellKey
from tests.contracts.run_repository import cell


def test_cells_round_trip_and_survive_a_new_instance(tmp_path: Path) -> None:
    LocalRunFolder(tmp_path).save_cell(cell(3))
    assert LocalRunFolder(tmp_path).load_cell(CellKey(arm="classic", classifier="cnn", seed=3)) == cell(3)
    assert LocalRunFolder(tmp_path).load_cell(CellKey(arm="classic", classifier="cnn", seed=4)) is None


def test_an_unreadable_cell_is_run_again(tmp_path: Path) -> None:
    runs = LocalRunFolder(tmp_path)
    runs.save_cell(cell(0))
    (tmp_path / "cells" / "classic__cnn__s0.json").write_text('{"key": ')
    assert runs.load_cell(cell(0).key) is None


def test_claim_allows_new_arms_but_not_redefined_ones(tmp_path: Path) -> None:
    runs = LocalRunFolder(tmp_path)
    runs.claim("f1", {"classic": "A"})
    runs.claim("f1", {"classic": "A", "diffusion": "B"})  # extending resumes
    runs.claim("f1", {"diffusion": "B"})  # narrowing resumes
    with pytest.raises(ConfigError, match="arm 'diffusion' was defined differently"):
        LocalRunFolder(tmp_path).claim("f1", {"diffusion": "C"})
    with pytest.raises(ConfigError, match="different experiment definition"):
        LocalRunFolder(tmp_path).claim("f2", {"classic": "A"})


def test_missing_results_are_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no results.json"):
        LocalRunFolder(tmp_path).load_result()


def test_no_temporary_files_are_left_behind(tmp_path: Path) -> None:
    runs = LocalRunFolder(tmp_path)
    runs.save_cell(cell(0))
    runs.save_cell(cell(0))
    assert [p.name for p in (tmp_path / "cells").iterdir()] == ["classic__cnn__s0.json"]
