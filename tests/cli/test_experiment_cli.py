"""``medaug experiment run`` / ``experiment report`` through the Typer app, on a tiny phantom experiment."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.experiments import BALANCE, invoke, tiny_experiment

TINY = tiny_experiment("tiny", n=60, seeds=(0, 1), experiment="val_fraction = 0.2\n" + BALANCE, epochs=2)


@pytest.fixture
def workspace(cli_folder: Path) -> Path:
    (cli_folder / "tiny.toml").write_text(TINY)
    return cli_folder


def _cell_files(run: Path) -> dict[str, float]:
    return {p.name: p.stat().st_mtime_ns for p in (run / "cells").iterdir()}


def test_a_run_writes_the_report_and_a_rerun_resumes_from_its_cells(workspace: Path) -> None:
    run = workspace / "work" / "runs" / "tiny"
    first = invoke("experiment", "run", "tiny.toml")
    assert first.exit_code == 0, first.output
    for name in ("report.html", "report.md", "results.json"):
        assert (run / name).is_file(), name
    results = json.loads((run / "results.json").read_text())
    assert len(results["cells"]) == 4
    assert "classic" in first.output and "1 test image =" in first.output
    cells = _cell_files(run)

    again = invoke("experiment", "run", "tiny.toml")
    assert again.exit_code == 0, again.output
    assert _cell_files(run) == cells  # nothing retrained
    assert json.loads((run / "results.json").read_text())["cells"] == results["cells"]


def test_the_command_line_narrows_arms_and_seeds_and_report_rebuilds(workspace: Path) -> None:
    run = workspace / "narrow"
    result = invoke("experiment", "run", "tiny.toml", "--arms", "classic", "--seeds", "3", "--run-dir", str(run))
    assert result.exit_code == 0, result.output
    cells = json.loads((run / "results.json").read_text())["cells"]
    assert [(c["key"]["arm"], c["key"]["seed"]) for c in cells] == [("classic", 3)]
    (run / "report.html").unlink()
    rebuilt = invoke("experiment", "report", str(run))
    assert rebuilt.exit_code == 0, rebuilt.output
    assert (run / "report.html").is_file()
    (run / "report.md").unlink()
    assert invoke("report", str(run)).exit_code == 0  # the top-level shortcut
    assert (run / "report.md").is_file()


@pytest.mark.parametrize(
    ("old", "new", "args", "message"),
    [
        ("", "", ("--arms", "magic"), "arm(s) magic are not defined"),
        ("", "", ("--classifiers", "svm"), "unknown classifier(s) svm"),
        ('arms = ["none", "classic"]', 'arms = ["none", "magic"]', (), "unknown generator(s) magic"),
        ('kind = "phantom"', 'kind = "idrid"', (), "needs a path"),
        ("epochs = 2", "epochs = -1", (), "[settings]: trainers.cnn.epochs: Input should be greater than or equal to 1"),
    ],
)
def test_a_bad_experiment_is_one_line_before_any_work(
    workspace: Path, old: str, new: str, args: tuple[str, ...], message: str
) -> None:
    if old:
        (workspace / "tiny.toml").write_text(TINY.replace(old, new))
    result = invoke("experiment", "run", "tiny.toml", *args)
    assert result.exit_code == 2
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], result.output
    assert not (workspace / "work").exists()


def test_missing_or_invalid_files_name_the_file(workspace: Path) -> None:
    missing = invoke("experiment", "run", "nope.toml")
    assert missing.exit_code == 2 and "nope.toml: experiment file not found" in missing.output
    (workspace / "bad.toml").write_text("name = [")
    bad = invoke("experiment", "run", "bad.toml")
    assert bad.exit_code == 2 and "bad.toml: not valid TOML" in bad.output


def test_a_data_folder_that_does_not_exist_is_refused(workspace: Path) -> None:
    (workspace / "tiny.toml").write_text(TINY.replace('kind = "phantom"', 'kind = "idrid"'))
    result = invoke("experiment", "run", "tiny.toml", "--data", str(workspace / "absent"))
    assert result.exit_code == 2 and "data set folder not found" in result.output


def test_an_impossible_plan_is_refused_before_any_training(workspace: Path) -> None:
    (workspace / "tiny.toml").write_text(
        TINY.replace('policy = { kind = "balance-largest" }', 'policy = { kind = "balance-total", total = 5 }')
    )
    result = invoke("experiment", "run", "tiny.toml")
    assert result.exit_code == 2 and "cannot balance to 5 images" in result.output
    assert not (workspace / "work" / "runs" / "tiny" / "cells").exists()


def test_the_built_in_experiment_compares_none_classic_and_diffusion_on_phantom() -> None:
    from medaug.adapters.experiment_file import load_experiment_config

    config = load_experiment_config(None)
    assert config.dataset.kind == "phantom"
    assert [arm.name for arm in config.experiment.arms] == ["none", "classic", "diffusion"]
    assert config.experiment.classifiers == ["cnn"] and len(config.experiment.seeds) == 2
