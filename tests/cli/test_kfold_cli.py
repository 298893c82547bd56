"""``medaug experiment run`` with ``protocol = "kfold"`` and a folder+CSV external set, end to end
on a tiny phantom experiment (real CNN, tiny images and epochs)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.experiments import BALANCE, invoke, tiny_experiment

KFOLD = tiny_experiment(
    "tiny-kfold", n=50, experiment='protocol = "kfold"\nfolds = 3\nrepeats = 1\nbaseline = "none"\n' + BALANCE
)


@pytest.fixture
def workspace(cli_folder: Path) -> Path:
    (cli_folder / "kfold.toml").write_text(KFOLD)
    folder = cli_folder / "other-camera"
    folder.mkdir()
    rng = np.random.default_rng(0)
    rows = ["image,grade"]
    for index in range(10):
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(folder / f"eye{index}.png")
        rows.append(f"eye{index}.png,{index % 5}")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    return cli_folder


def test_a_kfold_run_pools_out_of_fold_predictions_and_tests_the_external_set(workspace: Path) -> None:
    run = workspace / "work" / "runs" / "tiny-kfold"
    result = invoke("experiment", "run", "kfold.toml", "--external", str(workspace / "other-camera"))
    assert result.exit_code == 0, result.output
    data = json.loads((run / "results.json").read_text())
    assert len(data["cells"]) == 3 * 2
    assert {c["key"]["fold"] for c in data["cells"]} == {0, 1, 2}
    assert sorted(i for f in data["folds"] for i in f["test_ids"]) == sorted(
        i for c in data["cells"] if c["key"]["arm"] == "none" and c["key"]["seed"] == 0
        for i in c["predictions"]["image_ids"]
    )
    assert data["test_images"] == 50
    (comparison,) = data["kfold_comparisons"]
    assert comparison["primary_test"] == "Nadeau-Bengio corrected resampled t-test"
    assert comparison["accuracy_test"]["n"] == 3
    external = data["external"]["other-camera"]
    assert external["images"] == 10
    assert external["summaries"]["classic"]["cnn"]["accuracy"]["n"] == 3
    assert all(len(c["external"]["other-camera"]["image_ids"]) == 10 for c in data["cells"])
    markdown = (run / "report.md").read_text()
    assert "corrected resampled t-test" in markdown and "other-camera" in markdown
    assert "corrected resampled t-test" in (run / "report.html").read_text()
    cells = sorted((run / "cells").iterdir())
    assert any(p.name.startswith("classic__cnn__s0__f2r0") for p in cells)
    again = invoke("experiment", "run", "kfold.toml", "--external", str(workspace / "other-camera"))
    assert again.exit_code == 0, again.output
    assert json.loads((run / "results.json").read_text())["cells"] == data["cells"]


def test_evaluate_scores_a_saved_cnn_on_its_store_and_an_external_folder(workspace: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("MEDAUG_TRAINERS__CNN__EPOCHS", "1")
    store = str(workspace / "store")
    made = invoke("data", "phantom", "--store", store, "--n", "30", "--size", "32")
    assert made.exit_code == 0, made.output
    weights = workspace / "cnn.safetensors"
    trained = invoke("train", "--store", store, "--checkpoint", str(weights))
    assert trained.exit_code == 0, trained.output
    scored = invoke("evaluate", "--checkpoint", str(weights), "--store", store, "--external", str(workspace / "other-camera"))
    assert scored.exit_code == 0, scored.output
    assert "test" in scored.output and "other-camera" in scored.output
    missing = invoke("evaluate", "--checkpoint", str(workspace / "absent.safetensors"), "--store", store)
    assert missing.exit_code != 0 and "absent.safetensors: checkpoint not found" in missing.output
