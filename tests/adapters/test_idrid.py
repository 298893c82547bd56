"""IdridSource over small data sets in the official layout, and over the real one when present."""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from medaug.adapters.datasets.idrid import IdridSource
from medaug.application.errors import InputError
from medaug.domain import Grade, Split
from tests.contracts.dataset_source import DatasetSourceContract

GRADING = "B. Disease Grading"
TRAIN_DIR = "1. Original Images/a. Training Set"
TEST_DIR = "1. Original Images/b. Testing Set"
TRAIN_CSV = "2. Groundtruths/a. IDRiD_Disease Grading_Training Labels.csv"
TEST_CSV = "2. Groundtruths/b. IDRiD_Disease Grading_Testing Labels.csv"


def tiny_jpeg(shade: int = 120) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (24, 16), (shade, shade // 2, 20)).save(buffer, format="JPEG")
    return buffer.getvalue()


def write_csv(path: Path, rows: list[tuple[str, str]], trailing_columns: bool) -> None:
    """A label file as IDRiD ships it: header with a trailing space, maybe empty extra columns."""
    extra = ",,,,,,,," if trailing_columns else ""
    lines = [f"Image name,Retinopathy grade,Risk of macular edema {extra}"]
    lines += [f"{name},{grade},0{extra}" for name, grade in rows]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n" + (f"{extra}\n" if extra else ""))


def make_idrid(
    root: Path,
    train: list[tuple[str, str]] | None = None,
    test: list[tuple[str, str]] | None = None,
    train_images: list[str] | None = None,
    test_images: list[str] | None = None,
) -> Path:
    """A small IDRiD in the official layout; images default to the rows' names."""
    train = [("IDRiD_001", "3"), ("IDRiD_002", "0"), ("IDRiD_003", "2")] if train is None else train
    test = [("IDRiD_001", "4"), ("IDRiD_002", "1")] if test is None else test
    grading = root / GRADING
    for folder, rows, images, csv_name, trailing in (
        (TRAIN_DIR, train, train_images, TRAIN_CSV, True),
        (TEST_DIR, test, test_images, TEST_CSV, False),
    ):
        (grading / folder).mkdir(parents=True, exist_ok=True)
        for name in images if images is not None else [f"{n}.jpg" for n, _ in rows]:
            (grading / folder / name).write_bytes(tiny_jpeg())
        write_csv(grading / csv_name, rows, trailing)
    return root


class TestIdridSourceContract(DatasetSourceContract):
    @pytest.fixture
    def source(self, tmp_path: Path) -> IdridSource:
        return IdridSource(make_idrid(tmp_path))


def test_scan_reads_both_sets_with_split_prefixed_ids(tmp_path: Path) -> None:
    result = IdridSource(make_idrid(tmp_path)).scan()
    assert result.problems == ()
    assert [(i.id, i.split, i.grade, i.original_name) for i in result.items] == [
        ("idrid-train-IDRiD_001", Split.TRAIN, Grade(3), "IDRiD_001.jpg"),
        ("idrid-train-IDRiD_002", Split.TRAIN, Grade(0), "IDRiD_002.jpg"),
        ("idrid-train-IDRiD_003", Split.TRAIN, Grade(2), "IDRiD_003.jpg"),
        ("idrid-test-IDRiD_001", Split.TEST, Grade(4), "IDRiD_001.jpg"),
        ("idrid-test-IDRiD_002", Split.TEST, Grade(1), "IDRiD_002.jpg"),
    ]
    assert IdridSource(tmp_path).name == "idrid"


def test_path_may_be_the_grading_folder_itself(tmp_path: Path) -> None:
    make_idrid(tmp_path)
    assert IdridSource(tmp_path / GRADING).scan() == IdridSource(tmp_path).scan()


def test_read_returns_the_file_bytes(tmp_path: Path) -> None:
    source = IdridSource(make_idrid(tmp_path))
    item = source.scan().items[0]
    assert source.read(item) == (tmp_path / GRADING / TRAIN_DIR / "IDRiD_001.jpg").read_bytes()


def test_unreadable_image_is_an_input_error_naming_it(tmp_path: Path) -> None:
    source = IdridSource(make_idrid(tmp_path))
    item = source.scan().items[0]
    (tmp_path / GRADING / TRAIN_DIR / "IDRiD_001.jpg").unlink()
    with pytest.raises(InputError, match=r"IDRiD_001\.jpg: cannot read image"):
        source.read(item)


@pytest.mark.parametrize("missing", [TRAIN_DIR, TEST_DIR, TRAIN_CSV, TEST_CSV])
def test_missing_part_of_the_layout_is_named(tmp_path: Path, missing: str) -> None:
    make_idrid(tmp_path)
    target = tmp_path / GRADING / missing
    if target.is_dir():
        for file in target.iterdir():
            file.unlink()
        target.rmdir()
    else:
        target.unlink()
    with pytest.raises(InputError) as caught:
        IdridSource(tmp_path).scan()
    assert repr(missing) in str(caught.value) and "\n" not in str(caught.value)


def test_folder_without_the_layout_says_what_is_expected(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no 'B. Disease Grading' folder.*expected"):
        IdridSource(tmp_path).scan()
    with pytest.raises(InputError, match="no such folder"):
        IdridSource(tmp_path / "nope").scan()


def _problems(root: Path, **layout) -> tuple[list[str], list[str]]:  # type: ignore[no-untyped-def]
    result = IdridSource(make_idrid(root, **layout)).scan()
    return [item.id for item in result.items], list(result.problems)


def test_row_without_image_is_a_problem_naming_csv_and_row(tmp_path: Path) -> None:
    ids, problems = _problems(tmp_path, train_images=["IDRiD_001.jpg", "IDRiD_003.jpg"])
    assert problems == [
        "a. IDRiD_Disease Grading_Training Labels.csv row 3: no image IDRiD_002.jpg in 'a. Training Set'"
    ]
    assert "idrid-train-IDRiD_002" not in ids and len(ids) == 4


def test_image_without_row_is_a_problem_naming_the_image(tmp_path: Path) -> None:
    images = ["IDRiD_001.jpg", "IDRiD_002.jpg", "IDRiD_003.jpg", "IDRiD_099.jpg", "notes.txt"]
    ids, problems = _problems(tmp_path, train_images=images)
    assert problems == ["a. Training Set/IDRiD_099.jpg: image has no row in a. IDRiD_Disease Grading_Training Labels.csv"]
    assert len(ids) == 5


@pytest.mark.parametrize(("grade", "problem"), [("7", "grade 7 is outside 0-4"), ("two", "'two' is not an integer")])
def test_bad_grade_is_a_problem_naming_csv_and_row(tmp_path: Path, grade: str, problem: str) -> None:
    ids, problems = _problems(tmp_path, test=[("IDRiD_001", "4"), ("IDRiD_002", grade)])
    assert len(problems) == 1
    assert problems[0].startswith("b. IDRiD_Disease Grading_Testing Labels.csv row 3: IDRiD_002: ")
    assert problem in problems[0]
    assert "idrid-test-IDRiD_002" not in ids


def test_duplicate_row_is_a_problem_and_the_first_row_wins(tmp_path: Path) -> None:
    rows = [("IDRiD_001", "3"), ("IDRiD_002", "0"), ("IDRiD_001", "1")]
    result = IdridSource(make_idrid(tmp_path, train=rows)).scan()
    assert result.problems == (
        "a. IDRiD_Disease Grading_Training Labels.csv row 4: duplicate row for IDRiD_001 (first at row 2)",
    )
    assert [(i.id, i.grade) for i in result.items if i.split is Split.TRAIN] == [
        ("idrid-train-IDRiD_001", Grade(3)),
        ("idrid-train-IDRiD_002", Grade(0)),
    ]


def test_names_with_extension_in_the_csv_are_accepted(tmp_path: Path) -> None:
    ids, problems = _problems(tmp_path, test=[("IDRiD_001.jpg", "4")], test_images=["IDRiD_001.jpg"])
    assert problems == [] and "idrid-test-IDRiD_001" in ids


def test_csv_without_the_grade_column_lists_the_columns(tmp_path: Path) -> None:
    make_idrid(tmp_path)
    (tmp_path / GRADING / TEST_CSV).write_text("Image name,Grade\nIDRiD_001,4\n")
    with pytest.raises(InputError, match=r"no column 'Retinopathy grade'; available columns: 'Image name', 'Grade'"):
        IdridSource(tmp_path).scan()


def test_real_idrid_counts(idrid_root: Path) -> None:
    result = IdridSource(idrid_root).scan()
    assert result.problems == ()
    counts = Counter((item.split, int(item.grade)) for item in result.items)
    assert [counts[(Split.TRAIN, g)] for g in range(5)] == [134, 20, 136, 74, 49]
    assert [counts[(Split.TEST, g)] for g in range(5)] == [34, 5, 32, 19, 13]
    assert len({item.id for item in result.items}) == 516


@pytest.mark.slow
def test_every_real_image_preprocesses(idrid_root: Path) -> None:
    from medaug.adapters.imaging.preprocess import FundusPreprocessor
    from medaug.adapters.png import decode_png

    source, preprocessor = IdridSource(idrid_root), FundusPreprocessor(size=64)
    for item in source.scan().items:
        pixels = decode_png(preprocessor.preprocess(source.read(item), item.original_name))
        assert pixels.shape == (64, 64, 3)
        assert pixels[:2, :2].max() < 40 and pixels[24:40, 24:40].mean() > 20, item.id


def test_symlink_leading_out_of_the_data_set_is_refused_naming_the_file(tmp_path: Path) -> None:
    root = make_idrid(tmp_path / "idrid")
    secret = tmp_path / "elsewhere.jpg"
    secret.write_bytes(tiny_jpeg(200))
    image = root / GRADING / TRAIN_DIR / "IDRiD_002.jpg"
    image.unlink()
    image.symlink_to(secret)
    result = IdridSource(root).scan()
    assert "idrid-train-IDRiD_002" not in [item.id for item in result.items]
    assert result.problems[0] == "a. Training Set/IDRiD_002.jpg: a symlink leads outside the data set, not read"


def test_symlink_inside_the_data_set_is_followed(tmp_path: Path) -> None:
    root = make_idrid(tmp_path / "idrid")
    image = root / GRADING / TRAIN_DIR / "IDRiD_002.jpg"
    image.unlink()
    image.symlink_to(root / GRADING / TRAIN_DIR / "IDRiD_001.jpg")
    assert IdridSource(root).scan().problems == ()


def test_names_that_differ_only_by_unsafe_characters_get_distinct_ids(tmp_path: Path) -> None:
    root = make_idrid(tmp_path, train=[("IDRiD 001", "1"), ("IDRiD_001", "2")], test=[("IDRiD_001", "0")])
    result = IdridSource(root).scan()
    assert result.problems == ()
    ids = [item.id for item in result.items]
    assert len(set(ids)) == 3
    assert ids[1] == "idrid-train-IDRiD_001" and ids[0].startswith("idrid-train-IDRiD_001-")
    assert [item.grade for item in result.items] == [Grade(1), Grade(2), Grade(0)]
