"""Issue 26 item 1: a run name is a plain name, and --fresh never deletes outside the runs folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from medaug.adapters.runs import discard_run_folder
from medaug.application.errors import ConfigError
from medaug.adapters.experiment_file import load_experiment_config

BODY = '\n[experiment]\narms = ["none"]\n'


@pytest.mark.parametrize("name", ["../../victim", "/tmp/victim", "a/b", "..", ".", "", "x\\y", "-rf", "a b"])
def test_a_run_name_that_is_not_a_plain_name_is_refused_naming_the_file(tmp_path: Path, name: str) -> None:
    path = tmp_path / "exp.toml"
    path.write_text(f"name = {name!r}".replace("'", '"') + BODY)
    with pytest.raises(ConfigError) as caught:
        load_experiment_config(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: name:") and "\n" not in message


def test_plain_names_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "exp.toml"
    path.write_text('name = "idrid-thesis_2.v1"' + BODY)
    assert load_experiment_config(path).name == "idrid-thesis_2.v1"


def _victim(tmp_path: Path) -> Path:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("keep me")
    return victim


def test_discarding_refuses_a_folder_outside_the_runs_folder(tmp_path: Path) -> None:
    victim = _victim(tmp_path)
    runs = tmp_path / "work" / "runs"
    runs.mkdir(parents=True)
    for target in (runs / ".." / ".." / "victim", victim, runs, runs / ".."):
        with pytest.raises(ConfigError):
            discard_run_folder(target, within=runs)
    assert (victim / "precious.txt").read_text() == "keep me"


def test_discarding_refuses_a_folder_that_is_not_a_run_folder(tmp_path: Path) -> None:
    victim = _victim(tmp_path)
    with pytest.raises(ConfigError, match="not a run folder"):
        discard_run_folder(victim, within=None)
    assert (victim / "precious.txt").is_file()


def test_discarding_refuses_a_symlink_into_another_folder(tmp_path: Path) -> None:
    victim = _victim(tmp_path)
    (victim / "experiment.json").write_text("{}")
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "linked").symlink_to(victim)
    with pytest.raises(ConfigError):
        discard_run_folder(runs / "linked", within=runs)
    assert (victim / "precious.txt").is_file()


def test_a_run_folder_is_discarded(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    run = runs / "tiny"
    (run / "cells").mkdir(parents=True)
    (run / "experiment.json").write_text("{}")
    (run / "cells" / "a.json").write_text("{}")
    discard_run_folder(run, within=runs)
    assert not run.exists() and runs.is_dir()
    discard_run_folder(run, within=runs)  # nothing there: nothing to do
