"""IDRiD "B. Disease Grading" in its official layout, as a DatasetSource.

::

    B. Disease Grading/
        1. Original Images/a. Training Set/IDRiD_001.jpg ...   (413 images)
        1. Original Images/b. Testing Set/IDRiD_001.jpg ...    (103 images)
        2. Groundtruths/a. IDRiD_Disease Grading_Training Labels.csv
        2. Groundtruths/b. IDRiD_Disease Grading_Testing Labels.csv

The label files have the columns ``Image name`` (without extension), ``Retinopathy grade``
and ``Risk of macular edema `` (with a trailing space), often followed by empty columns.
File names repeat between the two sets, so ids carry the split: ``idrid-train-IDRiD_001``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from medaug.adapters.datasets.folder_csv import cell, find_column, is_image_file, read_csv, read_image_file, safe_id
from medaug.application.errors import InputError
from medaug.application.ports import ScanResult, SourceItem
from medaug.domain import DomainError, Grade, Split

GRADING_FOLDER = "B. Disease Grading"
_IMAGES = "1. Original Images"
_TRUTHS = "2. Groundtruths"
_NAME_COLUMN = "Image name"
_GRADE_COLUMN = "Retinopathy grade"
_EXPECTED = (
    f"expected '{GRADING_FOLDER}/{_IMAGES}/a. Training Set' and '.../b. Testing Set' with the JPEGs, and "
    f"'{GRADING_FOLDER}/{_TRUTHS}/' with 'a. IDRiD_Disease Grading_Training Labels.csv' and "
    "'b. IDRiD_Disease Grading_Testing Labels.csv'"
)


@dataclass(frozen=True)
class _Part:
    split: Split
    images: str
    labels: str

    @property
    def image_folder(self) -> str:
        return f"{_IMAGES}/{self.images}"

    @property
    def label_file(self) -> str:
        return f"{_TRUTHS}/{self.labels}"


_PARTS = (
    _Part(Split.TRAIN, "a. Training Set", "a. IDRiD_Disease Grading_Training Labels.csv"),
    _Part(Split.TEST, "b. Testing Set", "b. IDRiD_Disease Grading_Testing Labels.csv"),
)


class IdridSource:
    """The ``DatasetSource`` port over the IDRiD disease-grading set.

    Args:
        path: the folder holding ``B. Disease Grading``, or that folder itself.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._path = Path(path)

    @property
    def name(self) -> str:
        """``"idrid"``."""
        return "idrid"

    def scan(self) -> ScanResult:
        """List the graded images of both sets; bad rows and unlabelled images become problems.

        Raises:
            InputError: a folder or label file of the layout is missing, or a CSV is unreadable.
        """
        grading = self._grading_folder()
        items: list[SourceItem] = []
        problems: list[str] = []
        for part in _PARTS:
            part_items, part_problems = _scan_part(grading, part)
            items.extend(part_items)
            problems.extend(part_problems)
        return ScanResult(items=tuple(items), problems=tuple(problems))

    def read(self, item: SourceItem) -> bytes:
        """The raw JPEG bytes of ``item``.

        Raises:
            InputError: the file cannot be read.
        """
        return read_image_file(Path(item.locator))

    def _grading_folder(self) -> Path:
        if not self._path.is_dir():
            raise InputError(f"{self._path}: no such folder ({_EXPECTED})")
        if (self._path / GRADING_FOLDER).is_dir():
            grading = self._path / GRADING_FOLDER
        elif self._path.name == GRADING_FOLDER or (self._path / _IMAGES).is_dir() or (self._path / _TRUTHS).is_dir():
            grading = self._path
        else:
            raise InputError(f"{self._path}: not the IDRiD layout, no '{GRADING_FOLDER}' folder in it ({_EXPECTED})")
        missing = [p.image_folder for p in _PARTS if not (grading / p.image_folder).is_dir()]
        missing += [p.label_file for p in _PARTS if not (grading / p.label_file).is_file()]
        if missing:
            listed = ", ".join(repr(m) for m in missing)
            raise InputError(f"{grading}: not the IDRiD layout, missing {listed} ({_EXPECTED})")
        return grading


def _scan_part(grading: Path, part: _Part) -> tuple[list[SourceItem], list[str]]:
    labels = grading / part.label_file
    header, rows = read_csv(labels)
    name_col = find_column(header, _NAME_COLUMN, labels)
    grade_col = find_column(header, _GRADE_COLUMN, labels)
    images = _images_by_stem(grading / part.image_folder)
    items: list[SourceItem] = []
    problems: list[str] = []
    first_row: dict[str, int] = {}
    for number, row in rows:
        stem = _stem(cell(row, name_col))
        try:
            items.append(_item(part, stem, cell(row, grade_col), images, first_row, number))
        except InputError as exc:
            problems.append(f"{part.labels} row {number}: {exc}")
    problems.extend(
        f"{part.images}/{path.name}: image has no row in {part.labels}"
        for stem, paths in sorted(images.items())
        if stem not in first_row
        for path in paths
    )
    return items, problems


def _item(
    part: _Part, stem: str, grade_text: str, images: dict[str, list[Path]], first_row: dict[str, int], number: int
) -> SourceItem:
    """The item of one CSV row (recording it in ``first_row``).

    Raises:
        InputError: the row is empty, a duplicate, badly graded or has no (single) image.
    """
    if not stem:
        raise InputError("empty image name")
    if stem in first_row:
        raise InputError(f"duplicate row for {stem} (first at row {first_row[stem]})")
    first_row[stem] = number
    try:
        grade = Grade.parse(grade_text)
    except DomainError as exc:
        raise InputError(f"{stem}: {exc}") from None
    paths = images.get(stem, [])
    if not paths:
        raise InputError(f"no image {stem}.jpg in '{part.images}'")
    if len(paths) > 1:
        raise InputError(f"several images named {stem}: {', '.join(p.name for p in paths)}")
    return SourceItem(
        id=safe_id(f"idrid-{part.split.value}-{stem}"),
        grade=grade,
        split=part.split,
        locator=str(paths[0]),
        original_name=paths[0].name,
    )


def _images_by_stem(folder: Path) -> dict[str, list[Path]]:
    images: dict[str, list[Path]] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and is_image_file(path):
            images.setdefault(path.stem, []).append(path)
    return images


def _stem(name: str) -> str:
    """The image name without a trailing image extension (the CSV usually has none)."""
    path = Path(name.strip())
    return path.stem if is_image_file(path) else name.strip()

