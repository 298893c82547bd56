"""``medaug experiment run FILE --dry-run``: external test-set entries validate, data sets are checked."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from medaug.application.errors import ConfigError
from medaug.cli.app import app
from medaug.adapters.experiment_file import load_experiment_config
from tests.adapters.test_idrid import make_idrid
from tests.published_fixtures import make_aptos, make_ddr, make_messidor2

runner = CliRunner()
EXAMPLE = Path(__file__).resolve().parents[2] / "experiments" / "idrid-cross-dataset.toml"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("MEDAUG_WORK_DIR", str(tmp_path / "work"))
    monkeypatch.delenv("MEDAUG_DATA", raising=False)
    monkeypatch.setenv("COLUMNS", "300")
    return tmp_path


def dry_run(*args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, ["-q", "experiment", "run", str(EXAMPLE), "--dry-run", *args])


def test_the_cross_data_set_example_validates_and_names_its_external_sets(home: Path) -> None:
    config = load_experiment_config(EXAMPLE)
    assert config.dataset.kind == "idrid" and config.dataset.path == home / "data" / "idrid"
    assert [(e.name, e.kind, e.path) for e in config.dataset.external] == [
        ("aptos2019", "aptos2019", home / "data" / "aptos2019"),
        ("messidor2", "messidor2", home / "data" / "messidor2"),
    ]


def test_without_data_the_dry_run_fails_with_one_line_naming_the_missing_folder(home: Path) -> None:
    result = dry_run()
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: dataset: {home}/data/idrid: data set folder not found"
    make_idrid(home / "data" / "idrid")
    make_aptos(home / "data" / "aptos2019")
    result = dry_run()
    assert result.stderr.strip() == (
        f"error: dataset.external messidor2: {home}/data/messidor2: data set folder not found"
    )
    assert not (home / "work").exists()


def test_with_data_the_dry_run_reports_what_would_run_and_trains_nothing(home: Path) -> None:
    make_idrid(home / "data" / "idrid")
    make_aptos(home / "data" / "aptos2019")
    make_messidor2(home / "data" / "messidor2")
    result = dry_run()
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert lines[0] == "dataset: IDRiD grading (256 px): 5 images (3 train, 2 test)"
    assert lines[1].startswith(f"external aptos2019: aptos2019 {home}/data/aptos2019 (256 px): 5 images (5 train); ")
    assert lines[2].startswith("external messidor2: messidor2 ")
    assert "4 images (4 train); messidor_data.csv: 1 ungradable images left out" in lines[2]
    assert lines[3] == "6 cells: arms none, classic x classifiers cnn x seeds 0, 1, 2"
    assert lines[4] == f"run folder: {home}/work/runs/idrid-cross-dataset"
    assert not (home / "work").exists()


def test_a_labels_problem_in_an_external_set_is_one_line(home: Path) -> None:
    make_idrid(home / "data" / "idrid")
    make_aptos(home / "data" / "aptos2019", rows=["000c1434d8d7,2", "001639a390f0,8"])
    make_messidor2(home / "data" / "messidor2")
    result = dry_run()
    assert result.exit_code != 0
    assert result.stderr.strip() == "error: dataset.external aptos2019: train.csv row 3: grade 8 is outside 0-4"


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ('name = "x"\nkind = "folder"\npath = "/d"', "external set 'x': kind 'folder' needs csv"),
        ('name = "x"\nkind = "aptos2019"', "external set 'x': kind 'aptos2019' needs path"),
        ('name = "x"\nkind = "kaggle"\npath = "/d"', "dataset.external.0.kind: Input should be"),
        ('name = "a b"\nkind = "ddr"\npath = "/d"', "dataset.external.0.name: String should match pattern"),
    ],
)
def test_bad_external_entries_are_one_line_naming_the_file(tmp_path: Path, entry: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(f'[dataset]\nkind = "phantom"\n[[dataset.external]]\n{entry}\n[experiment]\narms = ["none"]\n')
    with pytest.raises(ConfigError) as caught:
        load_experiment_config(path)
    assert str(caught.value).startswith(f"{path}: ") and message in str(caught.value)


def test_external_names_are_unique(tmp_path: Path) -> None:
    path = tmp_path / "twice.toml"
    entry = '[[dataset.external]]\nname = "a"\nkind = "ddr"\npath = "/d"\n'
    path.write_text(f'[dataset]\nkind = "phantom"\n{entry}{entry}[experiment]\narms = ["none"]\n')
    with pytest.raises(ConfigError, match="external set name\\(s\\) a used twice"):
        load_experiment_config(path)


def test_external_sets_and_limit_unset_leave_the_fingerprint_unchanged(tmp_path: Path) -> None:
    plain = tmp_path / "plain.toml"
    plain.write_text('[dataset]\nkind = "idrid"\npath = "/d"\n[experiment]\narms = ["none"]\n')
    text = plain.read_text().replace("[experiment]", '[[dataset.external]]\nname = "m"\nkind = "messidor2"\n'
                                     'path = "/m"\n[experiment]')
    (tmp_path / "ext.toml").write_text(text)
    limited = tmp_path / "limited.toml"
    limited.write_text(plain.read_text().replace('path = "/d"', 'path = "/d"\nlimit = 50'))
    settings = {"image_size": 64, "trainers": {}, "generators": {}}
    fingerprints = [
        load_experiment_config(tmp_path / n).fingerprint(settings, "s") for n in ("plain.toml", "ext.toml", "limited.toml")
    ]
    assert fingerprints[0] == fingerprints[1] != fingerprints[2]


def test_an_experiment_on_a_published_set_ingests_it_with_its_limit(home: Path) -> None:
    from medaug.application.ports import NullProgress
    from medaug.application.services.ingest import ingest
    from medaug.adapters.experiment_file import DatasetConfig
    from medaug.composition.jobs import dataset_step
    from medaug.composition.settings import Settings

    make_ddr(home / "ddr")
    settings = Settings(image_size=32, work_dir=home / "work")
    step = dataset_step(DatasetConfig(kind="ddr", path=home / "ddr", limit=4), settings)
    assert step.source is not None and step.preprocessor is not None
    ingest(step.source, step.preprocessor, step.store, progress=NullProgress(), limit=step.limit, seed=step.seed)
    store, description = step.store, step.description
    assert description.startswith("ddr ") and len(store.list()) == 4
    assert store.location.endswith(f"ddr-32px-limit4-s{settings.seed}")


SHIPPED = sorted((EXAMPLE.parent).glob("idrid-*.toml"))


@pytest.mark.parametrize("path", [p for p in SHIPPED if p != EXAMPLE], ids=lambda p: p.name)
def test_every_shipped_idrid_experiment_validates_with_its_settings(home: Path, path: Path) -> None:
    make_idrid(home / "data" / "idrid")
    result = runner.invoke(app, ["-q", "experiment", "run", str(path), "--data", str(home / "data" / "idrid"), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "cells: arms" in result.output
