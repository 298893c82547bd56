"""PublishedSource over APTOS 2019, EyePACS, Messidor-2 and DDR written in their published layouts."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from medaug.adapters.datasets.published import LAYOUTS, PublishedSource, published_source
from medaug.application.errors import InputError
from medaug.domain import Grade, Split
from tests.contracts.dataset_source import DatasetSourceContract
from tests.published_fixtures import (
    APTOS_TRAIN,
    EYEPACS_TEST,
    EYEPACS_TRAIN,
    make_aptos,
    make_ddr,
    make_eyepacs,
    make_messidor2,
)

MAKERS = {"aptos2019": make_aptos, "eyepacs": make_eyepacs, "messidor2": make_messidor2, "ddr": make_ddr}


class TestPublishedSourceContract(DatasetSourceContract):
    @pytest.fixture(params=sorted(MAKERS))
    def source(self, request: pytest.FixtureRequest, tmp_path: Path) -> PublishedSource:
        return published_source(request.param, MAKERS[request.param](tmp_path / request.param))


def test_every_published_layout_has_a_fixture() -> None:
    assert set(LAYOUTS) == set(MAKERS)


# -- APTOS 2019 ---------------------------------------------------------------------------------


def test_aptos_maps_diagnosis_and_skips_the_unlabelled_test_part(tmp_path: Path) -> None:
    result = published_source("aptos2019", make_aptos(tmp_path)).scan()
    assert result.problems == ()
    assert [(i.id, i.grade, i.split, i.original_name) for i in result.items] == [
        (f"aptos2019-{code}", Grade(grade), Split.TRAIN, f"{code}.png") for code, grade in APTOS_TRAIN
    ]
    assert result.notices == ("test_images: 2 unlabelled test images skipped (APTOS 2019 publishes no test labels)",)


def test_aptos_missing_image_and_bad_label_are_problems_naming_file_and_row(tmp_path: Path) -> None:
    rows = ["000c1434d8d7,2", "ffffffffffff,1", "001639a390f0,7", "0024cdab0c1e,two"]
    result = published_source("aptos2019", make_aptos(tmp_path, rows=rows)).scan()
    assert [i.id for i in result.items] == ["aptos2019-000c1434d8d7"]
    assert result.problems[0].startswith("train.csv row 3: no image 'ffffffffffff.png' in ")
    assert result.problems[1:] == (
        "train.csv row 4: grade 7 is outside 0-4",
        "train.csv row 5: grade 'two' is not an integer 0-4",
    )
    assert "train_images: 2 images without a row in train.csv not ingested (e.g. 002c21358ce6.png)" in result.notices


def test_aptos_layout_missing_names_what_is_expected(tmp_path: Path) -> None:
    (tmp_path / "train_images").mkdir()
    with pytest.raises(InputError) as caught:
        published_source("aptos2019", tmp_path).scan()
    assert str(caught.value) == (
        f"{tmp_path}: not the APTOS 2019 Blindness Detection layout, missing 'train.csv' "
        "(expected 'train.csv' with 'train_images/')"
    )
    with pytest.raises(InputError, match="no such folder"):
        published_source("aptos2019", tmp_path / "absent").scan()


# -- EyePACS ------------------------------------------------------------------------------------


def test_eyepacs_reads_train_and_the_labelled_test_part_with_patient_groups(tmp_path: Path) -> None:
    result = published_source("eyepacs", make_eyepacs(tmp_path)).scan()
    assert result.problems == () and result.notices == ()
    items = {i.original_name: i for i in result.items}
    assert len(items) == len(EYEPACS_TRAIN) + len(EYEPACS_TEST)
    assert items["13_left.jpeg"].grade == Grade(2) and items["13_left.jpeg"].split is Split.TRAIN
    assert items["2_right.jpeg"].grade == Grade(4) and items["2_right.jpeg"].split is Split.TEST
    assert items["13_left.jpeg"].id == "eyepacs-13_left"
    groups = Counter(i.group for i in result.items)
    assert groups == {f"eyepacs-{p}": 2 for p in ("10", "13", "15", "16", "1", "2")}
    for group in groups:  # the two eyes of one patient share one split
        assert len({i.split for i in result.items if i.group == group}) == 1


def test_eyepacs_without_the_solution_file_skips_the_test_images_with_a_notice(tmp_path: Path) -> None:
    result = published_source("eyepacs", make_eyepacs(tmp_path, with_test=False)).scan()
    assert {i.split for i in result.items} == {Split.TRAIN}
    assert result.notices == ("test: 4 images skipped, no 'retinopathy_solution.csv' (their labels)",)


# -- Messidor-2 ---------------------------------------------------------------------------------


def test_messidor2_leaves_ungradable_images_out_and_counts_them(tmp_path: Path) -> None:
    result = published_source("messidor2", make_messidor2(tmp_path)).scan()
    assert result.problems == ()
    assert [(i.id, i.grade) for i in result.items] == [
        ("messidor2-20051020_43808_0100_PP", Grade(0)),
        ("messidor2-20051020_43832_0100_PP", Grade(2)),
        ("messidor2-IM000001", Grade(3)),
        ("messidor2-IM000003", Grade(1)),
    ]
    assert result.notices == ("messidor_data.csv: 1 ungradable images left out",)


def test_messidor2_bad_grade_and_missing_image(tmp_path: Path) -> None:
    rows = ["IM000001.png,3,1,1", "IM000003.png,5,0,1", "IM999999.png,1,0,1"]
    result = published_source("messidor2", make_messidor2(tmp_path, rows=rows)).scan()
    assert [i.id for i in result.items] == ["messidor2-IM000001"]
    assert result.problems[0] == "messidor_data.csv row 3: grade 5 is outside 0-4"
    assert result.problems[1].startswith("messidor_data.csv row 4: no image 'IM999999.png'")


def test_messidor2_labels_under_another_name(tmp_path: Path) -> None:
    make_messidor2(tmp_path)
    (tmp_path / "messidor_data.csv").rename(tmp_path / "grades.csv")
    assert len(PublishedSource(LAYOUTS["messidor2"], tmp_path, labels="grades.csv").scan().items) == 4


# -- DDR ----------------------------------------------------------------------------------------


def test_ddr_keeps_the_published_split_and_leaves_grade_5_out(tmp_path: Path) -> None:
    result = published_source("ddr", make_ddr(tmp_path)).scan()
    assert result.problems == ()
    assert Counter(i.split for i in result.items) == {Split.TRAIN: 3, Split.VAL: 2, Split.TEST: 2}
    assert result.notices == ("train.txt: 1 ungradable images left out", "test.txt: 1 ungradable images left out")
    ids = [i.id for i in result.items]
    assert "ddr-train-007-0004-000" in ids and "ddr-test-007-0004-000" in ids  # same file name in two parts
    assert Grade(4) in {i.grade for i in result.items}


def test_ddr_accepts_the_dr_grading_folder_itself(tmp_path: Path) -> None:
    make_ddr(tmp_path)
    assert published_source("ddr", tmp_path / "DR_grading").scan() == published_source("ddr", tmp_path).scan()


def test_ddr_bad_lines(tmp_path: Path) -> None:
    lines = ["007-0004-000.jpg 0", "007-0007-000.jpg", "nothere.jpg 1", "20170323093305605.jpg 9"]
    result = published_source("ddr", make_ddr(tmp_path, train_lines=lines)).scan()
    assert [i.original_name for i in result.items if i.split is Split.TRAIN] == ["007-0004-000.jpg"]
    assert result.problems[0] == "train.txt row 2: grade '' is not an integer 0-4"
    assert result.problems[1].startswith("train.txt row 3: no image 'nothere.jpg'")
    assert result.problems[2] == "train.txt row 4: grade 9 is outside 0-4"


# -- every layout -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_symlink_leading_out_of_the_data_set_is_refused(tmp_path: Path, kind: str) -> None:
    root = MAKERS[kind](tmp_path / "set")
    item = published_source(kind, root).scan().items[0]
    outside = tmp_path / "outside.bin"
    outside.write_bytes(Path(item.locator).read_bytes())
    Path(item.locator).unlink()
    Path(item.locator).symlink_to(outside)
    result = published_source(kind, root).scan()
    assert item.id not in [i.id for i in result.items]
    assert result.problems[0].endswith(f"{item.original_name}: a symlink leads outside the data set, not read")


@pytest.mark.parametrize("kind", ["aptos2019", "eyepacs", "messidor2"])
def test_nul_byte_in_a_label_cell_is_one_line(tmp_path: Path, kind: str) -> None:
    root = MAKERS[kind](tmp_path)
    labels = next(p for p in sorted(root.glob("*.csv")) if p.name != "test.csv")
    header, first, rest = labels.read_bytes().split(b"\n", 2)
    labels.write_bytes(header + b"\n" + first.replace(b",", b"\x00,", 1) + b"\n" + rest)
    with pytest.raises(InputError) as caught:
        published_source(kind, root).scan()
    assert str(caught.value) == f"{labels} row 2: a cell holds a NUL byte (not a text label file?)"


def test_nul_byte_in_a_ddr_line_is_one_line(tmp_path: Path) -> None:
    root = make_ddr(tmp_path)
    labels = root / "DR_grading" / "valid.txt"
    labels.write_bytes(b"007-0025-000.jpg 1\n007-0026\x00-000.jpg 3\n")
    with pytest.raises(InputError, match=r"valid.txt row 2: a cell holds a NUL byte"):
        published_source("ddr", root).scan()


def test_unknown_kind_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown data set 'kaggle'; known: aptos2019, eyepacs, messidor2, ddr"):
        published_source("kaggle", tmp_path)
