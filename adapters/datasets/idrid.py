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
An image that is a symlink leading out of the data-set folder is refused (a problem line).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from medaug.adapters.datasets.common import assign_ids, cell, find_column, is_image_file, read_csv, read_image_file
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
        found: list[_Found] = []
        problems: list[str] = []
        for part in _PARTS:
            part_found, part_problems = _scan_part(grading, part)
            found.extend(part_found)
            problems.extend(part_problems)
        ids = assign_ids([(f"idrid-{part.split.value}", path.name) for part, _, path in found])
        items = [
            SourceItem(id=image_id, grade=grade, split=part.split, locator=str(path), original_name=path.name)
            for image_id, (part, grade, path) in zip(ids, found, strict=True)
        ]
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


_Found = tuple[_Part, Grade, Path]


def _scan_part(grading: Path, part: _Part) -> tuple[list[_Found], list[str]]:
    labels = grading / part.label_file
    header, rows = read_csv(labels)
    name_col = find_column(header, _NAME_COLUMN, labels)
    grade_col = find_column(header, _GRADE_COLUMN, labels)
    images, problems = _images_by_stem(grading / part.image_folder, grading.resolve(), part)
    found: list[_Found] = []
    first_row: dict[str, int] = {}
    for number, row in rows:
        stem = _stem(cell(row, name_col))
        try:
            found.append(_row(part, stem, cell(row, grade_col), images, first_row, number))
        except InputError as exc:
            problems.append(f"{part.labels} row {number}: {exc}")
    problems.extend(
        f"{part.images}/{path.name}: image has no row in {part.labels}"
        for stem, paths in sorted(images.items())
        if stem not in first_row
        for path in paths
    )
    return found, problems


def _row(
    part: _Part, stem: str, grade_text: str, images: dict[str, list[Path]], first_row: dict[str, int], number: int
) -> _Found:
    """The image and grade of one CSV row (recording it in ``first_row``).

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
    return part, grade, paths[0]


def _images_by_stem(folder: Path, inside: Path, part: _Part) -> tuple[dict[str, list[Path]], list[str]]:
    """The folder's image files by name without extension, and one problem per symlink leading out.

    The data set is the grading folder ``inside`` (resolved): an image whose real file lies
    outside it is not read.
    """
    images: dict[str, list[Path]] = {}
    problems: list[str] = []
    for path in sorted(folder.iterdir()):
        if not is_image_file(path):
            continue
        if not path.resolve().is_relative_to(inside):
            problems.append(f"{part.images}/{path.name}: a symlink leads outside the data set, not read")
        elif path.is_file():
            images.setdefault(path.stem, []).append(path)
    return images, problems


def _stem(name: str) -> str:
    """The image name without a trailing image extension (the CSV usually has none)."""
    path = Path(name.strip())
    return path.stem if is_image_file(path) else name.strip()
