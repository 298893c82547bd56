"""A folder of images labelled by a CSV file, as a DatasetSource.

Also home of the helpers the file-based sources share: reading a labels CSV, finding a column,
making a store id from a file name and reading an image file.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
from pathlib import Path, PurePosixPath, PureWindowsPath

from medaug.application.errors import InputError
from medaug.application.ports import ScanResult, SourceItem
from medaug.domain import DomainError, Grade, Split

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".gif", ".webp", ".ppm", ".pgm"})
"""File extensions (lower case) treated as images when looking for unlabelled files."""

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_MAX_ID = 128

_SPLITS = {
    "train": Split.TRAIN,
    "training": Split.TRAIN,
    "val": Split.VAL,
    "valid": Split.VAL,
    "validation": Split.VAL,
    "test": Split.TEST,
    "testing": Split.TEST,
}

Row = tuple[int, list[str]]
_Columns = tuple[int, int, int | None]


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
        """List the labelled images; every bad row or unlabelled image becomes a problem line.

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
        items, problems = self._scan_rows(rows, columns, root, referenced)
        problems.extend(f"{p.relative_to(root).as_posix()}: image has no row in {self._csv.name}"
                        for p in _unlabelled(root, referenced))
        return ScanResult(items=tuple(items), problems=tuple(problems))

    def _scan_rows(
        self, rows: list[Row], columns: _Columns, root: Path, referenced: set[Path]
    ) -> tuple[list[SourceItem], list[str]]:
        items: list[SourceItem] = []
        problems: list[str] = []
        first_row: dict[str, int] = {}
        for number, row in rows:
            where = f"{self._csv.name} row {number}"
            try:
                relative, path, split, grade = self._parse(row, root, columns, referenced)
            except InputError as exc:
                problems.append(f"{where}: {exc}")
                continue
            image_id = safe_id(f"{self._name}-{relative.with_suffix('').as_posix()}")
            if image_id in first_row:
                problems.append(f"{where}: duplicate id {image_id} (also row {first_row[image_id]})")
                continue
            first_row[image_id] = number
            items.append(SourceItem(id=image_id, grade=grade, split=split, locator=str(path),
                                    original_name=relative.as_posix()))
        return items, problems

    def read(self, item: SourceItem) -> bytes:
        """The raw bytes of ``item``'s file.

        Raises:
            InputError: the file cannot be read.
        """
        return read_image_file(Path(item.locator))

    def _parse(
        self, row: list[str], root: Path, columns: _Columns, referenced: set[Path]
    ) -> tuple[PurePosixPath, Path, Split, Grade]:
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


def relative_path(text: str) -> PurePosixPath:
    """The image path a CSV cell names, checked to stay inside the data-set folder.

    Backslashes count as separators, so CSV files written on Windows work.

    Raises:
        InputError: the path is empty, absolute or climbs out with ``..``.
    """
    name = text.strip()
    if not name:
        raise InputError("empty image path")
    relative = PurePosixPath(name.replace("\\", "/"))
    if relative.is_absolute() or PureWindowsPath(name).drive:
        raise InputError(f"unsafe image path {name!r}: absolute paths are not allowed")
    if ".." in relative.parts:
        raise InputError(f"unsafe image path {name!r}: '..' leaves the folder")
    return relative


def resolve_inside(root: Path, relative: PurePosixPath) -> Path:
    """``root / relative`` with symlinks resolved (``root`` already resolved).

    Raises:
        InputError: a symlink leads outside ``root``.
    """
    path = (root / relative).resolve()
    if not path.is_relative_to(root):
        raise InputError(f"unsafe image path {relative.as_posix()!r}: a symlink leads outside the folder")
    return path


def parse_split(text: str) -> Split:
    """A split from ``train``/``val``/``test`` (any case; ``training``, ``validation``... too).

    Raises:
        InputError: any other value.
    """
    try:
        return _SPLITS[text.strip().lower()]
    except KeyError:
        raise InputError(f"split {text.strip()!r} is not train, val or test") from None


def safe_id(text: str) -> str:
    """A store id from any text: characters outside ``[A-Za-z0-9._-]`` become ``_``.

    The id starts with a letter or digit and is at most 128 characters (a long text keeps its
    start and gets a short hash of the whole so distinct texts stay distinct).
    """
    cleaned = _UNSAFE.sub("_", text).lstrip("._-") or "image"
    if len(cleaned) > _MAX_ID:
        digest = hashlib.sha1(text.encode()).hexdigest()[:10]
        cleaned = f"{cleaned[: _MAX_ID - 11]}-{digest}"
    return cleaned


def read_csv(path: Path) -> tuple[list[str], list[Row]]:
    """The header (names stripped) and the non-blank rows, each with its line number.

    Raises:
        InputError: the file is missing, unreadable, not UTF-8, malformed or empty.
    """
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            rows = [(reader.line_num, row) for row in reader if any(c.strip() for c in row)]
    except FileNotFoundError:
        raise InputError(f"{path}: CSV file not found") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a UTF-8 text CSV file") from None
    except csv.Error as exc:
        raise InputError(f"{path}: malformed CSV ({exc})") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if not rows:
        raise InputError(f"{path}: empty CSV file, expected a header row")
    return [name.strip() for name in rows[0][1]], rows[1:]


def find_column(header: list[str], wanted: str, path: Path) -> int:
    """Index of column ``wanted`` (exact name, else the one equal ignoring case and spaces).

    Raises:
        InputError: no such column; the message lists the available ones.
    """
    if wanted.strip() in header:
        return header.index(wanted.strip())
    folded = [name.lower() for name in header]
    if folded.count(wanted.strip().lower()) == 1:
        return folded.index(wanted.strip().lower())
    available = ", ".join(repr(name) for name in header if name)
    raise InputError(f"{path}: no column {wanted!r}; available columns: {available}")


def cell(row: list[str], index: int) -> str:
    """The cell at ``index``, or an empty string for a short row."""
    return row[index] if index < len(row) else ""


def read_image_file(path: Path) -> bytes:
    """The bytes of an image file.

    Raises:
        InputError: it cannot be read (naming the file and the reason).
    """
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read image ({exc.strerror or exc})") from None


def is_image_file(path: Path) -> bool:
    """True for a visible file with an image extension."""
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def _unlabelled(root: Path, referenced: set[Path]) -> list[Path]:
    found: list[Path] = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for file in sorted(files):
            path = Path(folder) / file
            if is_image_file(path) and path not in referenced:
                found.append(path)
    return found
