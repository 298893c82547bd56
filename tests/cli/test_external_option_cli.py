"""``--external`` takes what ``[[dataset.external]]`` takes: ``KIND:PATH``, ``store:PATH``, ``PATH[,CSV]``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medaug.application.errors import ConfigError
from medaug.cli.app import app
from medaug.adapters.experiment_overrides import EXTERNAL_KINDS, external_option
from tests.experiments import tiny_experiment
from tests.published_fixtures import make_aptos, make_eyepacs

TINY = tiny_experiment("tiny-external", n=30, arms=["none"], experiment='baseline = "none"\n')


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MEDAUG_WORK_DIR", str(tmp_path / "work"))
    monkeypatch.setenv("COLUMNS", "300")
    (tmp_path / "tiny.toml").write_text(TINY)
    make_eyepacs(tmp_path / "eyepacs")
    store = tmp_path / "ingested"
    made = invoke("data", "ingest", "aptos2019", str(make_aptos(tmp_path / "aptos")), "--store", str(store),
                  "--size", "32")
    assert made.exit_code == 0, made.output
    return tmp_path


def invoke(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, ["--quiet", *args])


def test_a_dry_run_checks_a_store_and_a_published_set_given_on_the_command_line(workspace: Path) -> None:
    result = invoke("experiment", "run", "tiny.toml", "--dry-run", "--external", f"store:{workspace / 'ingested'}",
                    "--external", f"eyepacs:{workspace / 'eyepacs'}")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[1] == f"external ingested: store {workspace / 'ingested'}"
    assert lines[2].startswith(f"external eyepacs: eyepacs {workspace / 'eyepacs'} (32 px): 12 images (8 train, 4 test)")
    assert not (workspace / "work").exists()


def test_a_published_set_from_the_command_line_gets_the_file_routes_checks(workspace: Path) -> None:
    make_eyepacs(workspace / "bad", rows=["10_left,0", "10_right,9"])
    result = invoke("experiment", "run", "tiny.toml", "--dry-run", "--external", f"eyepacs:{workspace / 'bad'}")
    assert result.exit_code != 0
    assert result.stderr.strip() == "error: dataset.external eyepacs: trainLabels.csv row 3: grade 9 is outside 0-4"


def test_a_run_tests_every_cell_on_a_store_and_a_published_set(workspace: Path) -> None:
    result = invoke("experiment", "run", "tiny.toml", "--external", f"store:{workspace / 'ingested'}",
                    "--external", f"eyepacs:{workspace / 'eyepacs'}")
    assert result.exit_code == 0, result.output
    external = json.loads((workspace / "work" / "runs" / "tiny-external" / "results.json").read_text())["external"]
    assert {name: entry["images"] for name, entry in external.items()} == {"ingested": 5, "eyepacs": 12}


def test_a_bad_kind_is_one_line_listing_the_kinds(workspace: Path) -> None:
    result = invoke("experiment", "run", "tiny.toml", "--dry-run", "--external", "kaggle:/data/kaggle")
    assert result.exit_code != 0
    (line,) = result.stderr.strip().splitlines()
    assert line == (f"error: --external kaggle:/data/kaggle: unknown kind 'kaggle'; use KIND:PATH with KIND one of "
                    f"{', '.join(EXTERNAL_KINDS)}, or PATH[,CSV] for a folder labelled by a CSV")
    assert set(EXTERNAL_KINDS) == {"idrid", "folder", "store", "aptos2019", "eyepacs", "messidor2", "ddr"}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("eyepacs:{root}/absent", "{root}/absent is not a folder"),
        ("store:{root}/absent", "{root}/absent is not a store folder"),
        ("store:", "name the store as store:PATH (a folder or s3://bucket/prefix)"),
        ("{root}/eyepacs", "name the labels file as PATH,CSV (2 CSV files in {root}/eyepacs)"),
        ("folder:{root}/eyepacs", "name the labels file as PATH,CSV (2 CSV files in {root}/eyepacs)"),
    ],
)
def test_bad_values_are_one_line_naming_the_value(workspace: Path, value: str, message: str) -> None:
    text = value.format(root=workspace)
    with pytest.raises(ConfigError) as caught:
        external_option(text)
    assert str(caught.value) == f"--external {text}: {message.format(root=workspace)}"


def test_the_forms_build_the_entries_the_file_would(workspace: Path) -> None:
    folder = external_option(f"{workspace / 'eyepacs'},{workspace / 'eyepacs' / 'trainLabels.csv'}")
    assert (folder.name, folder.kind, folder.csv) == ("eyepacs", "folder", workspace / "eyepacs" / "trainLabels.csv")
    published = external_option(f"eyepacs:{workspace / 'eyepacs'}")
    assert (published.name, published.kind, published.path, published.csv) == ("eyepacs", "eyepacs",
                                                                                 workspace / "eyepacs", None)
    s3 = external_option("store:s3://bucket/prefix/other-site")
    assert (s3.name, s3.kind, s3.store) == ("other-site", "store", "s3://bucket/prefix/other-site")
