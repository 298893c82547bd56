"""The public DR grading sets in the layouts they are published in, as DatasetSources.

One reader driven by a table (``LAYOUTS``): the sets differ only in where their labels and
images lie, which columns hold the image name and the grade, and how an ungradable image is
marked. Every set's grades are the ICDR scale 0-4 already.

::

    aptos2019/  train.csv (id_code,diagnosis)   train_images/<id_code>.png   [test.csv, test_images/: no labels]
    eyepacs/    trainLabels.csv (image,level)   train/<image>.jpeg
                [retinopathy_solution.csv (image,level,Usage)   test/<image>.jpeg]
    messidor2/  messidor_data.csv (image_id,adjudicated_dr_grade,adjudicated_dme,adjudicated_gradable)
                and the images anywhere below (found by file name)
    ddr/        DR_grading/{train,valid,test}/   DR_grading/{train,valid,test}.txt ("<file> <grade>", 5 = ungradable)
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

from medaug.adapters.datasets.common import (
    Row,
    assign_ids,
    cell,
    find_column,
    image_files,
    read_csv,
    read_image_file,
    read_name_grade_lines,
    relative_path,
    unlisted_notice,
)
from medaug.application.errors import InputError
from medaug.application.ports import ScanResult, SourceItem
from medaug.domain import DomainError, Grade, Split


@dataclass(frozen=True)
class Part:
    """One labelled part of a data set: a labels file and the folder of its images.

    Attributes:
        split: the split the publisher put it in.
        labels: the labels file, relative to the data-set folder.
        images: the images' folder, relative to the data-set folder ("" : anywhere below it,
            found by file name).
        name_column, grade_column: the columns (CSV header names; ``"0"``/``"1"`` for a
            whitespace-separated text file without header).
        extension: appended to the name cell to get the file name ("" when the cell has it).
        ungradable: ``(column, value)``: a row whose column holds the value is ungradable.
        required: a missing optional part is skipped, with a notice if its images are there.
    """

    split: Split
    labels: str
    images: str
    name_column: str
    grade_column: str
    extension: str = ""
    ungradable: tuple[str, str] | None = None
    required: bool = True

    @property
    def is_text(self) -> bool:
        """The labels are a ``<file> <grade>`` text file, not a CSV."""
        return self.labels.endswith(".txt")

    @property
    def ungradable_value(self) -> str | None:
        """The value that marks a row ungradable."""
        return self.ungradable[1] if self.ungradable else None


@dataclass(frozen=True)
class Layout:
    """A published data set: its parts, and what else it holds.

    Attributes:
        name: the source's short name (provenance, id prefix, ``kind`` in experiment files).
        title: how people call it, for messages.
        parts: its labelled parts.
        subfolder: the folder the parts lie in when the user gives its parent ("" : none).
        unlabelled: ``(folder, why)``: a published part without labels, skipped with a notice.
        group_pattern: a regular expression whose first group, matched on the image name,
            names the patient (images of one patient are one group).
        split_in_id: ids carry the split (names repeat between parts).
    """

    name: str
    title: str
    parts: tuple[Part, ...]
    subfolder: str = ""
    unlabelled: tuple[str, str] | None = None
    group_pattern: str | None = None
    split_in_id: bool = False

    def expected(self) -> str:
        """What the layout should hold, for error messages."""
        return ", ".join(f"'{p.labels}'" + (f" with '{p.images}/'" if p.images else "") for p in self.parts)


LAYOUTS: dict[str, Layout] = {
    layout.name: layout
    for layout in (
        Layout(
            name="aptos2019",
            title="APTOS 2019 Blindness Detection",
            parts=(Part(Split.TRAIN, "train.csv", "train_images", "id_code", "diagnosis", extension=".png"),),
            unlabelled=("test_images", "APTOS 2019 publishes no test labels"),
        ),
        Layout(
            name="eyepacs",
            title="EyePACS (Kaggle Diabetic Retinopathy Detection 2015)",
            parts=(
                Part(Split.TRAIN, "trainLabels.csv", "train", "image", "level", extension=".jpeg"),
                Part(Split.TEST, "retinopathy_solution.csv", "test", "image", "level", extension=".jpeg",
                     required=False),
            ),
            group_pattern=r"^(.+)_(?:left|right)$",
        ),
        Layout(
            name="messidor2",
            title="Messidor-2 (adjudicated grades)",
            parts=(
                Part(Split.TRAIN, "messidor_data.csv", "", "image_id", "adjudicated_dr_grade",
                     ungradable=("adjudicated_gradable", "0")),
            ),
        ),
        Layout(
            name="ddr",
            title="DDR (DR_grading)",
            subfolder="DR_grading",
            parts=tuple(
                Part(split, f"{folder}.txt", folder, "0", "1", ungradable=("1", "5"))
                for split, folder in ((Split.TRAIN, "train"), (Split.VAL, "valid"), (Split.TEST, "test"))
            ),
            split_in_id=True,
        ),
    )
}


@dataclass(frozen=True)
class _Found:
    part: Part
    name: str
    path: Path
    grade: Grade


class PublishedSource:
    """The ``DatasetSource`` port over one of ``LAYOUTS`` at ``path``.

    Args:
        layout: the data set's layout.
        path: the folder the set was unpacked into (or, with a ``subfolder`` layout, its parent).
        labels: another labels file for a single-part layout (Messidor-2's CSV under another
            name); relative paths are looked up in ``path``.
    """

    def __init__(self, layout: Layout, path: str | os.PathLike[str], *, labels: str | os.PathLike[str] | None = None):
        if labels is not None:
            if len(layout.parts) != 1:
                raise InputError(f"{layout.name}: its labels files are fixed ({layout.expected()})")
            layout = replace(layout, parts=(replace(layout.parts[0], labels=str(labels)),))
        self._layout = layout
        self._path = Path(path)

    @property
    def name(self) -> str:
        """The layout's short name (``aptos2019``, ``eyepacs``, ``messidor2``, ``ddr``)."""
        return self._layout.name

    def scan(self) -> ScanResult:
        """List the gradable labelled images; ungradable and unlabelled ones are counted in notices.

        Raises:
            InputError: the folder or a required labels file is missing, a column is unknown, or
                a labels file is unreadable.
        """
        root = self._root()
        found: list[_Found] = []
        problems: list[str] = []
        notices: list[str] = []
        for part in self._layout.parts:
            part_found, part_problems, part_notices = self._scan_part(root, part)
            found.extend(part_found)
            problems.extend(part_problems)
            notices.extend(part_notices)
        notices.extend(self._unlabelled_notice(root))
        prefixes = [f"{self.name}-{f.part.split.value}" if self._layout.split_in_id else self.name for f in found]
        ids = assign_ids([(prefix, f.name) for prefix, f in zip(prefixes, found, strict=True)])
        items = tuple(
            SourceItem(id=image_id, grade=f.grade, split=f.part.split, locator=str(f.path), original_name=f.name,
                       group=self._group(f.name))
            for image_id, f in zip(ids, found, strict=True)
        )
        return ScanResult(items=items, problems=tuple(problems), notices=tuple(notices))

    def read(self, item: SourceItem) -> bytes:
        """The raw bytes of ``item``'s file.

        Raises:
            InputError: the file cannot be read.
        """
        return read_image_file(Path(item.locator))

    def _root(self) -> Path:
        layout = self._layout
        if not self._path.is_dir():
            raise InputError(f"{self._path}: no such folder (expected {layout.title}: {layout.expected()})")
        root = self._path
        if layout.subfolder and (root / layout.subfolder).is_dir():
            root = root / layout.subfolder
        missing = [p.labels for p in layout.parts if p.required and not (root / p.labels).is_file()]
        missing += [f"{p.images}/" for p in layout.parts if p.required and p.images and not (root / p.images).is_dir()]
        if missing:
            listed = ", ".join(repr(m) for m in missing)
            raise InputError(f"{root}: not the {layout.title} layout, missing {listed} (expected {layout.expected()})")
        return root.resolve()

    def _scan_part(self, root: Path, part: Part) -> tuple[list[_Found], list[str], list[str]]:
        labels = root / part.labels
        folder = root / part.images
        if not labels.is_file():  # an optional part
            present = len(image_files(folder)) if part.images and folder.is_dir() else 0
            return [], [], [f"{part.images}: {present} images skipped, no '{part.labels}' (their labels)"] if present else []
        rows, name_col, grade_col, ungradable_col = self._table(labels, part)
        files = _FileIndex(folder, root)
        found: list[_Found] = []
        problems: list[str] = []
        ungradable = 0
        first_row: dict[str, int] = {}
        for number, row in rows:
            try:
                name = relative_path(cell(row, name_col)).as_posix() + part.extension
                if name in first_row:
                    raise InputError(f"duplicate row for {name!r} (also row {first_row[name]})")
                first_row[name] = number
                if ungradable_col is not None and cell(row, ungradable_col).strip() == part.ungradable_value:
                    files.mark_used(name)
                    ungradable += 1
                    continue
                found.append(_Found(part, name, files.find(name), _grade(cell(row, grade_col))))
            except InputError as exc:
                problems.append(f"{part.labels} row {number}: {exc}")
        notices = [f"{part.labels}: {ungradable} ungradable images left out"] if ungradable else []
        problems.extend(files.problems)
        notices.extend(unlisted_notice(folder, files.unlisted(), part.labels))
        return found, problems, notices

    def _table(self, labels: Path, part: Part) -> tuple[list[Row], int, int, int | None]:
        if part.is_text:
            columns = [int(part.name_column), int(part.grade_column)]
            ungradable = int(part.ungradable[0]) if part.ungradable else None
            return read_name_grade_lines(labels), columns[0], columns[1], ungradable
        header, rows = read_csv(labels)
        ungradable = find_column(header, part.ungradable[0], labels) if part.ungradable else None
        return rows, find_column(header, part.name_column, labels), find_column(header, part.grade_column, labels), ungradable

    def _unlabelled_notice(self, root: Path) -> list[str]:
        if self._layout.unlabelled is None:
            return []
        folder, why = self._layout.unlabelled
        count = len(image_files(root / folder)) if (root / folder).is_dir() else 0
        return [f"{folder}: {count} unlabelled test images skipped ({why})"] if count else []

    def _group(self, name: str) -> str | None:
        if self._layout.group_pattern is None:
            return None
        match = re.match(self._layout.group_pattern, PurePosixPath(name).stem)
        return f"{self.name}-{match.group(1)}" if match else None


class _FileIndex:
    """The image files of one folder (recursively), found by relative path or by file name."""

    def __init__(self, folder: Path, root: Path) -> None:
        self._folder = folder.resolve()
        self._root = root
        self._files = image_files(self._folder)
        self._by_name: dict[str, list[Path]] = {}
        for path in self._files:
            self._by_name.setdefault(path.name, []).append(path)
        self._used: set[Path] = set()
        self.problems: list[str] = []

    def find(self, name: str) -> Path:
        """The file ``name`` (a path relative to the folder, or a file name found below it).

        Raises:
            InputError: no such image, several files of that name, or a symlink leading out
                of the data set.
        """
        direct = self._folder / name
        candidates = [direct] if direct in self._by_name.get(direct.name, []) else self._by_name.get(name, [])
        if not candidates:
            raise InputError(f"no image {name!r} in {self._folder}")
        if len(candidates) > 1:
            listed = ", ".join(p.relative_to(self._folder).as_posix() for p in candidates)
            raise InputError(f"several images named {name!r}: {listed}")
        path = candidates[0]
        self._used.add(path)
        if not path.resolve().is_relative_to(self._root):
            raise InputError(f"{path.relative_to(self._folder).as_posix()}: a symlink leads outside the data set, not read")
        if not path.is_file():
            raise InputError(f"no image {name!r} in {self._folder}")
        return path

    def mark_used(self, name: str) -> None:
        """Count the file ``name`` (if there is one) as named by a row: it was left out on purpose."""
        direct = self._folder / name
        self._used.update([direct] if direct in self._by_name.get(direct.name, []) else self._by_name.get(name, []))

    def unlisted(self) -> list[Path]:
        """The folder's images no row named."""
        return [path for path in self._files if path not in self._used]


def _grade(text: str) -> Grade:
    try:
        return Grade.parse(text)
    except DomainError as exc:
        raise InputError(str(exc)) from None


def published_source(kind: str, path: str | os.PathLike[str], *, labels: str | os.PathLike[str] | None = None) -> PublishedSource:
    """The source of the published set ``kind`` (a key of ``LAYOUTS``) at ``path``.

    Raises:
        InputError: ``kind`` is not one of them.
    """
    try:
        layout = LAYOUTS[kind]
    except KeyError:
        raise InputError(f"unknown data set {kind!r}; known: {', '.join(LAYOUTS)}") from None
    return PublishedSource(layout, path, labels=labels)
