"""Issue 26 item 3: an experiment with ``pseudonymise = true`` keeps patient names out of its store
(ids, provenance, groups) and out of every file of the run."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from benchmarks.kill_cases import pseudonymised_experiment
from medaug.adapters.stores.local import LocalImageStore
from medaug.cli.app import app
from tests.faults.leaks import files_containing
from tests.faults.patients import KEY, patient_folder


def test_an_experiment_on_a_folder_set_with_pseudonymise_leaks_no_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, csv, names = patient_folder(tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MEDAUG_WORK_DIR", str(tmp_path / "work"))
    (tmp_path / "exp.toml").write_text(pseudonymised_experiment("private", folder, csv, KEY))
    result = CliRunner().invoke(app, ["experiment", "run", "exp.toml"])
    assert result.exit_code == 0, result.output
    work = tmp_path / "work"
    assert (work / "runs" / "private" / "results.json").is_file()
    stores = [p.parent for p in (work / "stores").rglob("store.json")]
    assert len(stores) == 1
    records = LocalImageStore(stores[0]).list()
    assert len(records) > 40  # the real images and classic's synthetic ones
    assert all(r.id.startswith("p-") or r.origin.value == "synthetic" for r in records)
    assert all(r.provenance.original_name is None for r in records)
    assert files_containing(work, names) == {}
    assert not any(name in result.output for name in names)
