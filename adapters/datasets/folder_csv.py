"""A folder of images labelled by a CSV file, as a DatasetSource.

The CSV decides what is ingested: images of the folder without a row are counted in one notice,
not errors; rows whose image is missing are errors.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from medaug.adapters.datasets.common import (
    Row,
    assign_ids,
    cell,
    find_column,
    image_files,
    parse_split,
    read_csv,
    read_image_file,
    relative_path,
    resolve_inside,
    safe_id,
    unlisted_notice,
)
from medaug.application.errors import InputError
from medaug.application.ports import ScanResult, SourceItem
from medaug.domain import DomainError, Grade, Split

__all__ = ["FolderCsvSource", "safe_id"]

_Columns = tuple[int, int, int | None]
_Parsed = tuple[PurePosixPath, Path, Split, Grade]


class FolderCsvSource:
    """The ``DatasetSource`` port over ``<folder>/...images`` and a CSV of labels.

    Args:
        root: the folder holding the images; CSV image paths are relative to it.
        csv_path: the CSV file (a relative path not found as given is looked up in ``root``).
        image_column: column holding the image path.
        label_column: column holding the grade 0-4.
        split_column: optional column holding train/val/test (case-insensitive); without it
            every image is in the training split.
        name: the data set's short name (provenance, and the prefix of every id).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        csv_path: str | os.PathLike[str],
        *,
        image_column: str = "image",
        label_column: str = "grade",
        split_column: str | None = None,
        name: str = "folder",
    ) -> None:
        self._root = Path(root)
        csv_file = Path(csv_path)
        if not csv_file.is_absolute() and not csv_file.exists() and (self._root / csv_file).exists():
            csv_file = self._root / csv_file
        self._csv = csv_file
        self._image_column = image_column
        self._label_column = label_column
        self._split_column = split_column
        self._name = name

    @property
    def name(self) -> str:
        """The data set's short name."""
        return self._name

    def scan(self) -> ScanResult:
        """List the labelled images; every bad row is a problem, images without a row one notice.

        Raises:
            InputError: the folder or CSV is missing or unreadable, or a column is unknown.
        """
        if not self._root.is_dir():
            raise InputError(f"{self._root}: no such folder of images")
        header, rows = read_csv(self._csv)
        columns = (
            find_column(header, self._image_column, self._csv),
            find_column(header, self._label_column, self._csv),
            find_column(header, self._split_column, self._csv) if self._split_column else None,
        )
        root = self._root.resolve()
        referenced: set[Path] = set()
        parsed, problems = self._scan_rows(rows, columns, root, referenced)
        ids = assign_ids([(self._name, relative.as_posix()) for relative, *_ in parsed])
        items = [
            SourceItem(id=image_id, grade=grade, split=split, locator=str(path), original_name=relative.as_posix())
            for image_id, (relative, path, split, grade) in zip(ids, parsed, strict=True)
        ]
        unlisted = [p for p in image_files(root) if p not in referenced]
        return ScanResult(
            items=tuple(items), problems=tuple(problems), notices=tuple(unlisted_notice(root, unlisted, self._csv.name))
        )

    def _scan_rows(
        self, rows: list[Row], columns: _Columns, root: Path, referenced: set[Path]
    ) -> tuple[list[_Parsed], list[str]]:
        parsed: list[_Parsed] = []
        problems: list[str] = []
        first_row: dict[PurePosixPath, int] = {}
        for number, row in rows:
            where = f"{self._csv.name} row {number}"
            try:
                relative, path, split, grade = self._parse(row, root, columns, referenced)
            except InputError as exc:
                problems.append(f"{where}: {exc}")
                continue
            if relative in first_row:
                problems.append(f"{where}: duplicate row for {relative.as_posix()!r} (also row {first_row[relative]})")
                continue
            first_row[relative] = number
            parsed.append((relative, path, split, grade))
        return parsed, problems

    def read(self, item: SourceItem) -> bytes:
        """The raw bytes of ``item``'s file.

        Raises:
            InputError: the file cannot be read.
        """
        return read_image_file(Path(item.locator))

    def _parse(
        self, row: list[str], root: Path, columns: _Columns, referenced: set[Path]
    ) -> _Parsed:
        image_col, label_col, split_col = columns
        relative = relative_path(cell(row, image_col))
        referenced.add(root / relative)
        path = resolve_inside(root, relative)
        referenced.add(path)
        if not path.is_file():
            raise InputError(f"no image {relative.as_posix()!r} in {self._root}")
        try:
            grade = Grade.parse(cell(row, label_col))
        except DomainError as exc:
            raise InputError(str(exc)) from None
        split = parse_split(cell(row, split_col)) if split_col is not None else Split.TRAIN
        return relative, path, split, grade
