"""Issue 26 item 4: a store remembers how its real images are named and refuses an ingest that
would name them otherwise (every image added again, or real names added to a private store)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medaug.adapters.stores.common import settle_names
from medaug.adapters.stores.local import LocalImageStore
from medaug.application.errors import StoreError
from medaug.cli.app import app
from tests.conftest import real_record
from tests.faults.patients import KEY, patient_folder


@pytest.fixture
def data(tmp_path: Path) -> tuple[Path, Path]:
    folder, csv, _ = patient_folder(tmp_path / "data", n=12, size=32)
    return folder, csv


def ingest(data: tuple[Path, Path], store: Path, *extra: str, key: str = KEY):  # type: ignore[no-untyped-def]
    folder, csv = data
    args = ["-q", "data", "ingest", "folder", str(folder), "--csv", str(csv), "--store", str(store),
            "--size", "32", "--split-column", "split", *extra]
    return CliRunner().invoke(app, args, env={"MEDAUG_PSEUDONYM_KEY": key})


def test_a_plain_store_refuses_a_pseudonymised_ingest(tmp_path: Path, data: tuple[Path, Path]) -> None:
    store = tmp_path / "store"
    assert ingest(data, store).exit_code == 0
    refused = ingest(data, store, "--pseudonymise")
    assert refused.exit_code != 0
    assert "keeps the data sets' own names" in refused.output and len(refused.output.strip().splitlines()) == 1
    assert len(LocalImageStore(store).list()) == 12
    assert json.loads((store / "store.json").read_text())["names"] == "plain"


def test_a_pseudonymised_store_refuses_plain_names_and_another_key(tmp_path: Path, data: tuple[Path, Path]) -> None:
    store = tmp_path / "store"
    assert ingest(data, store, "--pseudonymise").exit_code == 0
    recorded = json.loads((store / "store.json").read_text())["names"]
    assert recorded.startswith("pseudonyms:") and KEY not in (store / "store.json").read_text()
    plain = ingest(data, store)
    assert plain.exit_code != 0 and "is pseudonymised" in plain.output
    other = ingest(data, store, "--pseudonymise", key="another-key-0123456789abcdef")
    assert other.exit_code != 0 and "another key" in other.output
    again = ingest(data, store, "--pseudonymise")
    assert again.exit_code == 0 and "0 added, 12 already present" in again.output
    records = LocalImageStore(store).list()
    assert len(records) == 12 and all(r.id.startswith("p-") and r.provenance.original_name is None for r in records)


def test_a_store_made_before_names_were_recorded_is_judged_by_its_images() -> None:
    named = [real_record("a")]
    assert settle_names(None, "plain", named, "s") == "plain"
    with pytest.raises(StoreError, match="own names"):
        settle_names(None, "pseudonyms:p-1", named, "s")
    private = [real_record("p-1").model_copy(update={"provenance": real_record("p-1").provenance.model_copy(
        update={"original_name": None})})]
    assert settle_names(None, "pseudonyms:p-1", private, "s") == "pseudonyms:p-1"
    with pytest.raises(StoreError, match="is pseudonymised"):
        settle_names(None, "plain", private, "s")
    assert settle_names(None, "pseudonyms:x", [], "s") == "pseudonyms:x"
    assert settle_names("plain", "plain", named, "s") is None
