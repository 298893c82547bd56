"""Many problem lines (an ingest's skipped rows and images) summarised by kind.

A partly unpacked download (EyePACS's full ``trainLabels.csv`` with a few of its archives) gives
one "no image" problem per missing file, tens of thousands of lines that differ only in the row
number and the file name. Lines are of one kind when they read the same once the labels file's
row number, quoted names, the leading image name, details in parentheses and numbers are set
aside; what was set aside is the line's example.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict

_ROW = re.compile(r"^(?P<file>.*?)\s*\brow (?P<row>\d+): (?P<rest>.*)$")
_LEADING_NAME = re.compile(r"^(?P<name>[^\s:'\"]+): (?P<rest>.+)$")
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_DETAIL = re.compile(r"\([^()]*\)")
_NUMBER = re.compile(r"(?<![\w./-])\d+(?![\w./-])")  # a range such as 0-4 is part of the text


class ProblemKind(BaseModel):
    """Problems of one kind.

    Attributes:
        kind: the problem with its particulars replaced (``…`` for a name, ``N`` for a number),
            after the labels file it was found in, if any.
        count: how many lines are of this kind.
        examples: the particulars of the first few (``row 64 '10_left.jpeg'``).
        first: the first line of this kind, whole.
    """

    model_config = ConfigDict(frozen=True)

    kind: str
    count: int
    examples: tuple[str, ...]
    first: str


def summarise_problems(lines: Iterable[str], *, examples: int = 3) -> list[ProblemKind]:
    """Group ``lines`` by kind, in the order each kind first appears, keeping ``examples`` of each."""
    kinds: dict[str, tuple[int, list[str], str]] = {}
    for line in lines:
        kind, example = _kind_of(line)
        count, shown, first = kinds.get(kind, (0, [], line))
        if len(shown) < examples:
            shown.append(example)
        kinds[kind] = (count + 1, shown, first)
    return [ProblemKind(kind=k, count=c, examples=tuple(s), first=f) for k, (c, s, f) in kinds.items()]


def _kind_of(line: str) -> tuple[str, str]:
    """The kind of one problem line and its particulars."""
    particulars: list[str] = []
    where, rest = "", line
    row = _ROW.match(line)
    named = None if row else _LEADING_NAME.match(line)
    if row:
        where, rest = row["file"], row["rest"]
        particulars.append(f"row {row['row']}")
    elif named:
        where, rest = "…", named["rest"]
        particulars.append(named["name"])
    particulars += _QUOTED.findall(rest)[:1]
    text = _QUOTED.sub("'…'", rest)
    while _DETAIL.search(text):  # innermost first, so nested details collapse into one
        text = _DETAIL.sub("\x00", text)
    text = _NUMBER.sub("N", text.replace("\x00", "(…)"))
    return (f"{where}: {text}" if where else text), " ".join(particulars) or line
