"""Issue 26 item 8: grades parse strictly; an odd grade is one line, in strict and lenient ingests."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from medaug.cli.app import app
from medaug.domain import DomainError, Grade
from tests.faults.patients import patient_folder

ODD = ["²", "--2", "2.5", "", " ", "+2", "02", "٢", "2e0", "0x2", "-0", "1_0", "½", "2 2", "nan"]


@pytest.mark.parametrize("text", ODD)
def test_odd_grades_are_refused_in_one_line(text: str) -> None:
    with pytest.raises(DomainError) as caught:
        Grade.parse(text)
    assert "\n" not in str(caught.value) and repr(text) in str(caught.value)


@pytest.mark.parametrize(("text", "grade"), [("0", 0), (" 4 ", 4), ("\t2\r\n", 2), ("3.0", 3), (2, 2), (1.0, 1)])
def test_accepted_forms(text: object, grade: int) -> None:
    assert Grade.parse(text) == Grade(grade)


@given(st.text(max_size=6))
def test_any_text_is_a_grade_0_4_or_a_domain_error(text: str) -> None:
    try:
        grade = Grade.parse(text)
    except DomainError:
        return
    assert text.strip(" \t\r\n").split(".")[0] == str(int(grade))


@pytest.mark.parametrize("lenient", [False, True])
def test_an_ingest_with_odd_grades_gives_one_line_each(tmp_path: Path, lenient: bool) -> None:
    folder, csv, _ = patient_folder(tmp_path / "data", n=6, size=32)
    lines = csv.read_text().splitlines()
    for number, odd in enumerate(["²", "--2", "2.5"], start=1):
        name, _, split = lines[number].split(",")
        lines[number] = f"{name},{odd},{split}"
    csv.write_text("\n".join(lines) + "\n")
    args = ["-q", "data", "ingest", "folder", str(folder), "--csv", str(csv), "--store", str(tmp_path / "s"),
            "--size", "32", "--split-column", "split"] + (["--lenient"] if lenient else [])
    result = CliRunner().invoke(app, args)
    assert "Traceback" not in result.output and not isinstance(result.exception, ValueError)
    if lenient:
        assert result.exit_code == 0
        # One line for the one kind of problem; the list beside the store has every row.
        skipped = [line for line in result.output.splitlines() if line.startswith("skipped")]
        assert len(skipped) == 1 and skipped[0].startswith("skipped 3:") and "is not an integer 0-4" in skipped[0]
        assert "3 added" in result.output
        (listing,) = (tmp_path / "s" / "reports").glob("ingest-problems-*.txt")
        assert all(odd in listing.read_text() for odd in ("'²'", "'--2'", "'2.5'"))
    else:
        assert result.exit_code != 0
        errors = [line for line in result.output.splitlines() if line.strip()]
        assert len(errors) == 1 and "'²'" in errors[0] and "(and 2 more problems" in errors[0]


def test_a_digit_beyond_4_is_outside_the_scale() -> None:
    with pytest.raises(DomainError, match="grade 5 is outside 0-4"):
        Grade.parse(" 5 ")
