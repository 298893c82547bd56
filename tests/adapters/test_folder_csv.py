"""FolderCsvSource: a folder of images and a labels CSV, with every kind of bad row."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from medaug.adapters.datasets.common import assign_ids
from medaug.adapters.datasets.folder_csv import FolderCsvSource, safe_id
from medaug.application.errors import InputError
from medaug.domain import Grade, Split
from tests.contracts.dataset_source import DatasetSourceContract


def tiny_jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (10, 6), (150, 80, 30)).save(buffer, format="JPEG")
    return buffer.getvalue()


def make_folder(root: Path, csv_text: str, images: list[str]) -> Path:
    """Image files under ``root/images`` and ``root/labels.csv``; returns the CSV path."""
    for name in images:
        path = root / "images" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(tiny_jpeg())
    (root / "images").mkdir(exist_ok=True)
    csv_path = root / "labels.csv"
    csv_path.write_text(csv_text)
    return csv_path


GOOD_CSV = "image,grade,split\na.jpg,0,train\nsub/b c.jpg,3,VAL\nd.png,4,Test\n"
GOOD_IMAGES = ["a.jpg", "sub/b c.jpg", "d.png"]
SUB_B_C = assign_ids([("eyes", "sub/b c.jpg")])[0]  # a name made safe carries a hash of the original


def source_for(root: Path, csv_text: str = GOOD_CSV, images: list[str] | None = None, **kwargs) -> FolderCsvSource:  # type: ignore[no-untyped-def]
    csv_path = make_folder(root, csv_text, GOOD_IMAGES if images is None else images)
    options = {"split_column": "split", "name": "eyes"} | kwargs
    return FolderCsvSource(root / "images", csv_path, **options)


class TestFolderCsvSourceContract(DatasetSourceContract):
    @pytest.fixture
    def source(self, tmp_path: Path) -> FolderCsvSource:
        return source_for(tmp_path)


def test_scan_reads_rows_with_sanitised_ids_and_case_insensitive_splits(tmp_path: Path) -> None:
    result = source_for(tmp_path).scan()
    assert result.problems == ()
    assert [(i.id, i.grade, i.split, i.original_name) for i in result.items] == [
        ("eyes-a", Grade(0), Split.TRAIN, "a.jpg"),
        (SUB_B_C, Grade(3), Split.VAL, "sub/b c.jpg"),
        ("eyes-d", Grade(4), Split.TEST, "d.png"),
    ]
    assert source_for(tmp_path).name == "eyes"


def test_without_split_column_everything_is_train(tmp_path: Path) -> None:
    result = source_for(tmp_path, split_column=None).scan()
    assert {item.split for item in result.items} == {Split.TRAIN}


def test_custom_column_names_and_windows_separators(tmp_path: Path) -> None:
    csv_text = "File,DR Level\nsub\\b c.jpg,2\na.jpg,1\nd.png,0\n"
    result = source_for(tmp_path, csv_text, image_column="File", label_column="dr level", split_column=None).scan()
    assert result.problems == ()
    assert [i.id for i in result.items] == [SUB_B_C, "eyes-a", "eyes-d"]


def test_unknown_column_lists_the_available_ones(tmp_path: Path) -> None:
    with pytest.raises(InputError) as caught:
        source_for(tmp_path, label_column="level").scan()
    message = str(caught.value)
    assert "labels.csv: no column 'level'; available columns: 'image', 'grade', 'split'" in message


def test_missing_csv_and_folder_are_input_errors(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    with pytest.raises(InputError, match="nope.csv: CSV file not found"):
        FolderCsvSource(tmp_path / "images", tmp_path / "nope.csv").scan()
    with pytest.raises(InputError, match="no such folder"):
        FolderCsvSource(tmp_path / "absent", tmp_path / "nope.csv").scan()


def test_relative_csv_path_is_found_in_the_folder(tmp_path: Path) -> None:
    make_folder(tmp_path, GOOD_CSV, GOOD_IMAGES)
    (tmp_path / "labels.csv").rename(tmp_path / "images" / "in-folder.csv")
    result = FolderCsvSource(tmp_path / "images", "in-folder.csv", split_column="split").scan()
    assert len(result.items) == 3 and result.problems == ()


def _scan(root: Path, rows: str, images: list[str] | None = None) -> tuple[list[str], list[str]]:
    result = source_for(root, "image,grade,split\n" + rows, images).scan()
    return [item.id for item in result.items], list(result.problems)


def test_row_without_image(tmp_path: Path) -> None:
    ids, problems = _scan(tmp_path, "a.jpg,0,train\nmissing.jpg,1,train\n", ["a.jpg"])
    assert ids == ["eyes-a"]
    assert len(problems) == 1 and problems[0].startswith("labels.csv row 3: no image 'missing.jpg'")


def test_images_without_a_row_are_one_notice_not_problems(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir(parents=True)
    (tmp_path / "images" / "README.txt").write_text("not an image")
    result = source_for(tmp_path, "image,grade,split\na.jpg,0,train\n", ["a.jpg", "extra/e.JPG", "f.png"]).scan()
    assert [item.id for item in result.items] == ["eyes-a"]
    assert result.problems == ()
    assert result.notices == ("images: 2 images without a row in labels.csv not ingested (e.g. f.png)",)


def test_all_images_listed_means_no_notice(tmp_path: Path) -> None:
    assert source_for(tmp_path).scan().notices == ()


@pytest.mark.parametrize(
    ("grade", "problem"),
    [("7", "labels.csv row 2: grade 7 is outside 0-4"), ("two", "labels.csv row 2: grade 'two' is not an integer 0-4")],
)
def test_bad_grade(tmp_path: Path, grade: str, problem: str) -> None:
    ids, problems = _scan(tmp_path, f"a.jpg,{grade},train\nd.png,1,train\n", ["a.jpg", "d.png"])
    assert ids == ["eyes-d"] and problems == [problem]


def test_bad_split(tmp_path: Path) -> None:
    ids, problems = _scan(tmp_path, "a.jpg,1,holdout\n", ["a.jpg"])
    assert ids == [] and problems == ["labels.csv row 2: split 'holdout' is not train, val or test"]


def test_distinct_files_never_share_an_id(tmp_path: Path) -> None:
    rows = "a.jpg,0,train\na.png,1,train\nx y.jpg,2,test\nx_y.jpg,2,test\nIDRiD 001.jpg,3,train\nIDRiD_001.jpg,4,train\n"
    images = ["a.jpg", "a.png", "x y.jpg", "x_y.jpg", "IDRiD 001.jpg", "IDRiD_001.jpg"]
    ids, problems = _scan(tmp_path, rows, images)
    assert problems == []
    assert len(set(ids)) == 6
    assert ids[0] == "eyes-a.jpg" and ids[1] == "eyes-a.png"  # the extension joins the name when needed
    assert ids[3] == "eyes-x_y" and ids[2].startswith("eyes-x_y-")  # a name made safe carries a hash
    assert ids[5] == "eyes-IDRiD_001" and ids[4].startswith("eyes-IDRiD_001-")


def test_ids_are_injective_even_when_extensions_and_stems_meet() -> None:
    names = ["x.jpg", "x.png", "x.jpg.png", "x.png.jpg", "x", "x_", "x .jpg", "sub/x.jpg", "sub_x.jpg", "y" * 200]
    ids = assign_ids([("p", name) for name in names])
    assert len(set(ids)) == len(names)
    assert all(len(i) <= 128 for i in ids)
    assert assign_ids([("p", "x.jpg")]) == ["p-x"]  # alone, a safe name keeps its plain id


def test_the_same_image_listed_twice_is_a_duplicate_row(tmp_path: Path) -> None:
    ids, problems = _scan(tmp_path, "a.jpg,0,train\na.jpg,0,train\n", ["a.jpg"])
    assert ids == ["eyes-a"] and problems == ["labels.csv row 3: duplicate row for 'a.jpg' (also row 2)"]


def test_nul_byte_in_the_image_cell_is_one_line_naming_file_and_row(tmp_path: Path) -> None:
    make_folder(tmp_path, "", ["a.jpg"])
    (tmp_path / "labels.csv").write_bytes(b"image,grade\na\x00.jpg,0\n")
    with pytest.raises(InputError) as caught:
        FolderCsvSource(tmp_path / "images", tmp_path / "labels.csv").scan()
    message = str(caught.value)
    assert message.endswith("labels.csv row 2: a cell holds a NUL byte (not a text label file?)")
    assert "\n" not in message


@pytest.mark.parametrize("path", ["../x.jpg", "sub/../../x.jpg", "/etc/x.jpg", "C:\\x.jpg", "..\\x.jpg"])
def test_paths_leaving_the_folder_are_refused(tmp_path: Path, path: str) -> None:
    (tmp_path / "x.jpg").write_bytes(tiny_jpeg())
    ids, problems = _scan(tmp_path, f"a.jpg,0,train\n{path},1,train\n", ["a.jpg"])
    assert ids == ["eyes-a"]
    assert len(problems) == 1 and problems[0].startswith("labels.csv row 3: unsafe image path")


def test_symlink_escaping_the_folder_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "outside.jpg"
    secret.write_bytes(tiny_jpeg())
    make_folder(tmp_path, "", ["a.jpg"])
    (tmp_path / "images" / "link.jpg").symlink_to(secret)
    (tmp_path / "images" / "inner.jpg").symlink_to(tmp_path / "images" / "a.jpg")
    ids, problems = _scan(tmp_path, "a.jpg,0,train\nlink.jpg,1,train\ninner.jpg,2,train\n", [])
    assert ids == ["eyes-a", "eyes-inner"]
    assert problems == ["labels.csv row 3: unsafe image path 'link.jpg': a symlink leads outside the folder"]


def test_blank_rows_are_skipped_and_short_rows_reported(tmp_path: Path) -> None:
    ids, problems = _scan(tmp_path, "a.jpg,0,train\n,,\n\nd.png\n", ["a.jpg", "d.png"])
    assert ids == ["eyes-a"]
    assert problems == ["labels.csv row 5: grade '' is not an integer 0-4"]


def test_read_errors_name_the_file(tmp_path: Path) -> None:
    source = source_for(tmp_path)
    item = source.scan().items[0]
    (tmp_path / "images" / "a.jpg").unlink()
    with pytest.raises(InputError, match=r"a\.jpg: cannot read image"):
        source.read(item)


def test_safe_id_rules() -> None:
    assert safe_id("eyes-dir/ä b.c") == "eyes-dir___b.c"
    assert safe_id("..hidden") == "hidden"
    long = safe_id("x" * 300)
    assert len(long) == 128 and long != safe_id("x" * 299)
