"""What the file-based data-set sources share: label tables, safe paths, injective ids, image files."""

from __future__ import annotations

import csv
import hashlib
import os
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path, PurePosixPath, PureWindowsPath

from medaug.application.errors import InputError
from medaug.domain import Split

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".gif", ".webp", ".ppm", ".pgm"})
"""File extensions (lower case) treated as images when looking for unlabelled files."""

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_MAX_ID = 128
_HASH = 8

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


def relative_path(text: str) -> PurePosixPath:
    """The image path a label cell names, checked to stay inside the data-set folder.

    Backslashes count as separators, so label files written on Windows work.

    Raises:
        InputError: the path is empty, holds a NUL byte, is absolute or climbs out with ``..``.
    """
    name = text.strip()
    if not name:
        raise InputError("empty image path")
    if "\0" in name:
        raise InputError(f"image path {name.replace(chr(0), '')!r} holds a NUL byte")
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
    start and gets a short hash of the whole so distinct texts stay distinct). Not injective on
    its own (``a b`` and ``a_b`` meet): ``assign_ids`` is.
    """
    cleaned = _UNSAFE.sub("_", text).lstrip("._-") or "image"
    if len(cleaned) > _MAX_ID:
        digest = hashlib.sha1(text.encode()).hexdigest()[:10]
        cleaned = f"{cleaned[: _MAX_ID - 11]}-{digest}"
    return cleaned


def assign_ids(names: Sequence[tuple[str, str]]) -> list[str]:
    """Injective store ids for distinct ``(prefix, file name)`` pairs, in their order.

    An id is ``<prefix>-<name without its image extension>`` when that is already a safe id and
    no other name gives the same; when two names share it (``x.jpg``, ``x.png``) the extension
    joins the name; a name that had to be changed to be safe (``IDRiD 001``, ``sub/a.jpg``), or
    that still meets another, gets a short hash of the whole original name instead. So distinct names
    never share an id, and a name's id does not depend on the others unless they would meet.

    Raises:
        InputError: two equal pairs (the caller's duplicate rows) were given.
    """
    repeated = [pair for pair, count in Counter(names).items() if count > 1]
    if repeated:
        raise InputError(f"image {repeated[0][1]!r} is listed twice")
    tiers = [0 if _is_safe(_candidate(prefix, name, 0)) else 2 for prefix, name in names]
    while True:
        ids = [_candidate(prefix, name, tier) for (prefix, name), tier in zip(names, tiers, strict=True)]
        counts = Counter(ids)
        clashing = [i for i, image_id in enumerate(ids) if counts[image_id] > 1 and tiers[i] < 2]
        if not clashing:
            return ids
        for i in clashing:
            tiers[i] = 1 if tiers[i] == 0 and _is_safe(_candidate(*names[i], 1)) else 2


def _candidate(prefix: str, name: str, tier: int) -> str:
    text = f"{prefix}-{name if tier == 1 else _without_image_extension(name)}"
    if tier < 2:
        return text
    digest = hashlib.sha256(f"{prefix}\0{name}".encode()).hexdigest()[:_HASH]
    return f"{safe_id(text)[: _MAX_ID - _HASH - 1]}-{digest}"


def _is_safe(text: str) -> bool:
    return len(text) <= _MAX_ID and _SAFE.fullmatch(text) is not None


def _without_image_extension(name: str) -> str:
    path = PurePosixPath(name)
    return path.with_suffix("").as_posix() if path.suffix.lower() in IMAGE_EXTENSIONS else name


def read_csv(path: Path) -> tuple[list[str], list[Row]]:
    """The header (names stripped) and the non-blank rows, each with its line number.

    Raises:
        InputError: the file is missing, unreadable, not UTF-8, malformed, holds a NUL byte
            or is empty (one line naming the file, and the row where known).
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
    _refuse_nul(path, rows)
    return [name.strip() for name in rows[0][1]], rows[1:]


def read_name_grade_lines(path: Path) -> list[Row]:
    """The non-blank lines of a ``<file> <grade>`` text file, split on whitespace, with line numbers.

    Raises:
        InputError: the file is missing, unreadable, not UTF-8 or holds a NUL byte.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"{path}: label file not found") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a UTF-8 text file") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    rows = [(number, line.split()) for number, line in enumerate(text.splitlines(), start=1) if line.strip()]
    _refuse_nul(path, rows)
    return rows


def _refuse_nul(path: Path, rows: list[Row]) -> None:
    for number, row in rows:
        if any("\0" in value for value in row):
            raise InputError(f"{path} row {number}: a cell holds a NUL byte (not a text label file?)")


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


def is_image_file(path: Path | PurePosixPath) -> bool:
    """True for a visible file name with an image extension."""
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def image_files(root: Path) -> list[Path]:
    """Every visible image file under ``root`` (resolved), recursively, in a stable order."""
    found: list[Path] = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found.extend(Path(folder) / file for file in sorted(files) if is_image_file(Path(file)))
    return found


def unlisted_notice(folder: Path, unlisted: Sequence[Path], labels: str) -> list[str]:
    """One notice line counting the images of ``folder`` that the labels file ``labels`` leaves out."""
    if not unlisted:
        return []
    example = unlisted[0].relative_to(folder).as_posix() if unlisted[0].is_relative_to(folder) else unlisted[0].name
    plural = "s" if len(unlisted) > 1 else ""
    return [f"{folder.name}: {len(unlisted)} image{plural} without a row in {labels} not ingested (e.g. {example})"]
