"""``medaug data ingest aptos2019|eyepacs|messidor2|ddr`` end to end on fixtures in the published layouts."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medaug.adapters.stores.local import LocalImageStore
from medaug.cli.app import app
from medaug.domain import Split
from tests.published_fixtures import make_aptos, make_ddr, make_eyepacs, make_messidor2

runner = CliRunner()

EXPECTED = {  # kind: (fixture writer, images ingested, a notice it prints)
    "aptos2019": (make_aptos, 5, "test_images: 2 unlabelled test images skipped"),
    "eyepacs": (make_eyepacs, 12, None),
    "messidor2": (make_messidor2, 4, "messidor_data.csv: 1 ungradable images left out"),
    "ddr": (make_ddr, 7, "train.txt: 1 ungradable images left out"),
}


def flat(text: str) -> str:
    return " ".join(text.split())


def ingest(kind: str, path: Path, store: Path, *extra: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, ["-q", "data", "ingest", kind, str(path), "--store", str(store), "--size", "32", *extra])


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_ingest_twice_adds_nothing_the_second_time(tmp_path: Path, kind: str) -> None:
    make, count, notice = EXPECTED[kind]
    root = make(tmp_path / kind)
    store = tmp_path / "store"
    first = ingest(kind, root, store)
    assert first.exit_code == 0, first.output
    assert f"{count} added, 0 already present, 0 skipped" in flat(first.stdout)
    if notice:
        assert f"note: {notice}" in flat(first.stderr)
    records = LocalImageStore(store).list()
    assert len(records) == count and {r.provenance.generator for r in records} == {kind}
    second = ingest(kind, root, store)
    assert second.exit_code == 0, second.output
    assert f"0 added, {count} already present, 0 skipped" in flat(second.stdout)
    assert len(LocalImageStore(store).list()) == count


def test_eyepacs_records_keep_the_patient_group(tmp_path: Path) -> None:
    store = tmp_path / "store"
    assert ingest("eyepacs", make_eyepacs(tmp_path / "eyepacs"), store).exit_code == 0
    groups = {r.id: r.group for r in LocalImageStore(store).list()}
    assert groups["eyepacs-13_left"] == groups["eyepacs-13_right"] == "eyepacs-13"


def test_a_bad_row_stops_the_ingest_with_one_line_naming_file_and_row(tmp_path: Path) -> None:
    root = make_aptos(tmp_path / "aptos", rows=["000c1434d8d7,2", "001639a390f0,9"])
    result = ingest("aptos2019", root, tmp_path / "store")
    assert result.exit_code != 0
    assert flat(result.stderr) == "error: train.csv row 3: grade 9 is outside 0-4"
    assert not (tmp_path / "store").exists() or LocalImageStore(tmp_path / "store").list() == []


def test_missing_layout_is_one_line(tmp_path: Path) -> None:
    result = ingest("ddr", tmp_path, tmp_path / "store")
    assert result.exit_code != 0
    message = flat(result.stderr)
    assert message.startswith(f"error: {tmp_path}: not the DDR (DR_grading) layout, missing 'train.txt'")
    assert len(result.stderr.strip().splitlines()) <= 3  # one line, wrapped by rich at 80 columns


def test_limit_takes_a_stratified_seeded_subset_and_is_repeatable(tmp_path: Path) -> None:
    root = make_eyepacs(tmp_path / "eyepacs")
    store = tmp_path / "store"
    first = ingest("eyepacs", root, store, "--limit", "6", "--seed", "3")
    assert first.exit_code == 0, first.output
    assert "6 added, 0 already present" in flat(first.stdout)
    assert "note: --limit 6: 6 of 12 images taken, stratified by split and grade (seed 3)" in flat(first.stderr)
    records = LocalImageStore(store).list()
    assert len(records) == 6 and {r.split for r in records} == {Split.TRAIN, Split.TEST}
    assert Counter(r.grade for r in records)[0] >= 2  # the largest grade stays the largest share
    again = ingest("eyepacs", root, store, "--limit", "6", "--seed", "3")
    assert "0 added, 6 already present" in flat(again.stdout)


def test_limit_must_be_positive(tmp_path: Path) -> None:
    result = ingest("aptos2019", make_aptos(tmp_path / "a"), tmp_path / "store", "--limit", "0")
    assert result.exit_code != 0
