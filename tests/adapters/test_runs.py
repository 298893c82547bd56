"""The local run folder: atomic cells, safe resuming, results round trip."""

from __future__ import annotations

from pathlib import Path

import pytest

from medaug.adapters.runs import LocalRunFolder
from medaug.application.errors import ConfigError
from medaug.domain import Grade
from medaug.domain.experiment import CellKey, CellResult, EpochRecord, Metrics, Predictions


def cell(seed: int = 0) -> CellResult:
    metrics = Metrics(n=2, accuracy=0.5, balanced_accuracy=0.5, macro_f1=0.5, quadratic_kappa=0.1, loss=1.2,
                      precision={g: 0.0 for g in Grade}, recall={g: 0.0 for g in Grade},
                      confusion=[[1, 0, 0, 0, 0], [1, 0, 0, 0, 0], [0] * 5, [0] * 5, [0] * 5])
    predictions = Predictions(image_ids=("a", "b"), labels=(0, 1), predicted=(0, 0),
                              probabilities=((0.9, 0.1, 0, 0, 0), (0.6, 0.4, 0, 0, 0)))
    return CellResult(key=CellKey(arm="classic", classifier="cnn", seed=seed), metrics=metrics, predictions=predictions,
                      history=(EpochRecord(epoch=1, train_loss=1.0, train_accuracy=0.5),), train_images=10, seconds=1.0)


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
