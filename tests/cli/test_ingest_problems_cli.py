"""A partly unpacked download with ``--lenient``: a few summary lines, and the full list in a file."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from medaug.adapters.stores.local import LocalImageStore
from medaug.application.services.problems import summarise_problems
from medaug.cli.app import app
from tests.published_fixtures import EYEPACS_TRAIN, make_eyepacs

runner = CliRunner()

MISSING = 3000


def partial_eyepacs(root: Path) -> Path:
    """The fixture's 8 training images, but a trainLabels.csv of 3,008 rows (most archives not unpacked)."""
    rows = [f"{image},{level}" for image, level in EYEPACS_TRAIN]
    rows += [f"{1000 + n}_{'left' if n % 2 else 'right'},{n % 5}" for n in range(MISSING)]
    return make_eyepacs(root, rows=rows)


def ingest(root: Path, store: Path, *extra: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, ["-q", "data", "ingest", "eyepacs", str(root), "--store", str(store), "--size", "32",
                               *extra])


def test_strict_ingest_names_the_first_problem_and_counts_the_rest(tmp_path: Path) -> None:
    result = ingest(partial_eyepacs(tmp_path / "eyepacs"), tmp_path / "store")
    assert result.exit_code != 0
    message = " ".join(result.stderr.split())
    assert "trainLabels.csv row 10: no image '1000_right.jpeg'" in message
    assert f"(and {MISSING - 1} more problems; --lenient skips them)" in message


def test_lenient_ingest_prints_a_handful_of_lines_and_lists_every_problem_in_the_store(tmp_path: Path) -> None:
    store = tmp_path / "store"
    result = ingest(partial_eyepacs(tmp_path / "eyepacs"), store, "--lenient")
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) <= 5, result.output
    stderr = " ".join(result.stderr.split())
    assert f"skipped {MISSING:,}: trainLabels.csv: no image '…' in {tmp_path / 'eyepacs' / 'train'}" in stderr
    assert "row 10 '1000_right.jpeg', row 11 '1001_left.jpeg'" in stderr
    listed = sorted((store / "reports").glob("ingest-problems-eyepacs-*.txt"))
    assert len(listed) == 1
    summary = " ".join(result.stdout.split())
    assert f"12 added, 0 already present, {MISSING} skipped (every one listed in {listed[0]})" in summary
    problems = listed[0].read_text().splitlines()
    assert len(problems) == MISSING
    assert problems[0].startswith("trainLabels.csv row 10: no image '1000_right.jpeg'")
    assert problems[-1].startswith(f"trainLabels.csv row {MISSING + 9}: no image '{1000 + MISSING - 1}_left.jpeg'")
    assert len(LocalImageStore(store).list()) == 12
    assert LocalImageStore(store).check() == []


def test_a_pseudonymised_store_keeps_the_list_outside(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("MEDAUG_PSEUDONYM_KEY", "k" * 32)
    monkeypatch.setenv("MEDAUG_WORK_DIR", str(tmp_path / "work"))
    store = tmp_path / "store"
    result = ingest(partial_eyepacs(tmp_path / "eyepacs"), store, "--lenient", "--pseudonymise")
    assert result.exit_code == 0, result.output
    assert not (store / "reports").exists()
    listed = list((tmp_path / "work" / "reports").glob("store-*/ingest-problems-eyepacs-*.txt"))
    assert len(listed) == 1 and len(listed[0].read_text().splitlines()) == MISSING
    assert str(listed[0]) in " ".join(result.stdout.split())


def test_kinds_keep_their_first_appearance_order_and_single_problems_whole() -> None:
    lines = ["labels.csv row 3: grade 7 is outside 0-4", "a.jpg: truncated or corrupt image (cut)",
             "b.jpg: truncated or corrupt image (other reason)", "labels.csv row 9: grade 8 is outside 0-4",
             "labels.csv row 12: duplicate row for 'c.jpg' (also row 4)"]
    kinds = summarise_problems(lines, examples=1)
    assert [(k.kind, k.count, k.examples) for k in kinds] == [
        ("labels.csv: grade N is outside 0-4", 2, ("row 3",)),
        ("…: truncated or corrupt image (…)", 2, ("a.jpg",)),
        ("labels.csv: duplicate row for '…' (…)", 1, ("row 12 'c.jpg'",)),
    ]
    assert kinds[2].first == lines[4]


def test_nested_details_collapse_into_one() -> None:
    (kind,) = summarise_problems(["a.jpg: truncated or corrupt image (image file is truncated (55 bytes not processed))",
                                  "b.jpg: truncated or corrupt image (broken data stream)"])
    assert (kind.kind, kind.count) == ("…: truncated or corrupt image (…)", 2)
