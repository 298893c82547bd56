"""Small data sets written in the published layouts of APTOS 2019, EyePACS, Messidor-2 and DDR.

Each writer returns the folder a user would pass to ``medaug data ingest <name>``. The images are
tiny generated fundus-like discs (a few per grade), never real data.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image


def fundus_image(seed: int, suffix: str) -> bytes:
    """A bright disc on black, 40x30, slightly different per seed, encoded for ``suffix``."""
    yy, xx = np.mgrid[0:30, 0:40]
    pixels = np.zeros((30, 40, 3), dtype=np.uint8)
    pixels[(xx - 20) ** 2 + (yy - 15) ** 2 <= 144] = (150 + seed % 100, 90, 30)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG" if suffix == ".png" else "JPEG")
    return buffer.getvalue()


def write_images(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for seed, name in enumerate(names):
        (folder / name).write_bytes(fundus_image(seed, Path(name).suffix))


def write_lines(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


APTOS_TRAIN = [("000c1434d8d7", 2), ("001639a390f0", 4), ("0024cdab0c1e", 1), ("002c21358ce6", 0), ("005b95c28852", 0)]


def make_aptos(root: Path, rows: list[str] | None = None, images: list[str] | None = None) -> Path:
    """``train.csv`` + ``train_images/<id_code>.png``, and an unlabelled test part of two images."""
    rows = [f"{code},{grade}" for code, grade in APTOS_TRAIN] if rows is None else rows
    write_lines(root / "train.csv", ["id_code,diagnosis", *rows])
    write_images(root / "train_images", [f"{c}.png" for c, _ in APTOS_TRAIN] if images is None else images)
    write_lines(root / "test.csv", ["id_code", "0005cfc8afb6", "003f0afdcd15"])
    write_images(root / "test_images", ["0005cfc8afb6.png", "003f0afdcd15.png"])
    return root


EYEPACS_TRAIN = [("10_left", 0), ("10_right", 0), ("13_left", 2), ("13_right", 1), ("15_left", 4), ("15_right", 3),
                 ("16_left", 0), ("16_right", 1)]
EYEPACS_TEST = [("1_left", 0), ("1_right", 2), ("2_left", 4), ("2_right", 4)]


def make_eyepacs(root: Path, *, with_test: bool = True, rows: list[str] | None = None) -> Path:
    """``trainLabels.csv`` + ``train/<image>.jpeg``, and the labelled test part (``retinopathy_solution.csv``)."""
    rows = [f"{image},{level}" for image, level in EYEPACS_TRAIN] if rows is None else rows
    write_lines(root / "trainLabels.csv", ["image,level", *rows])
    write_images(root / "train", [f"{image}.jpeg" for image, _ in EYEPACS_TRAIN])
    write_images(root / "test", [f"{image}.jpeg" for image, _ in EYEPACS_TEST])
    if with_test:
        usage = ["Public", "Private"]
        write_lines(root / "retinopathy_solution.csv",
                    ["image,level,Usage", *(f"{i},{lv},{usage[n % 2]}" for n, (i, lv) in enumerate(EYEPACS_TEST))])
    return root


MESSIDOR_ROWS = [
    "20051020_43808_0100_PP.png,0,0,1",
    "20051020_43832_0100_PP.png,2,0,1",
    "IM000001.png,3,1,1",
    "IM000002.png,,,0",
    "IM000003.png,1,0,1",
]


def make_messidor2(root: Path, rows: list[str] | None = None) -> Path:
    """The adjudicated grades CSV (``messidor_data.csv``) and the images in a folder below it."""
    rows = MESSIDOR_ROWS if rows is None else rows
    write_lines(root / "messidor_data.csv", ["image_id,adjudicated_dr_grade,adjudicated_dme,adjudicated_gradable",
                                             *rows])
    write_images(root / "messidor-2" / "preprocess", [row.split(",")[0] for row in MESSIDOR_ROWS])
    return root


DDR_PARTS = {
    "train": [("007-0004-000.jpg", 0), ("007-0007-000.jpg", 2), ("20170323093305605.jpg", 4), ("007-0010-000.jpg", 5)],
    "valid": [("007-0025-000.jpg", 1), ("007-0026-000.jpg", 3)],
    "test": [("007-0004-000.jpg", 3), ("007-0041-000.jpg", 0), ("007-0042-000.jpg", 5)],
}


def make_ddr(root: Path, train_lines: list[str] | None = None) -> Path:
    """``DR_grading/{train,valid,test}/`` with ``train.txt``/``valid.txt``/``test.txt`` (``<file> <grade>``).

    The test part repeats a training file name, as ids must still be distinct.
    """
    grading = root / "DR_grading"
    for part, rows in DDR_PARTS.items():
        write_images(grading / part, [name for name, _ in rows])
        lines = [f"{name} {grade}" for name, grade in rows]
        write_lines(grading / f"{part}.txt", train_lines if part == "train" and train_lines is not None else lines)
    return root
