"""The experiment report as a small document: sections of text, tables, figures and code.

A neutral module shared by the adapters that contribute to the report: ``adapters.reporting``
assembles and renders the document, and other adapters (``adapters.quality``) hand it sections
through :class:`SectionBuilder`, so neither imports the other.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from medaug.application.ports import ImageStore
from medaug.domain.experiment import ExperimentResult

_NUMERIC = re.compile(r"^[<\[≈]?\s*[+\-]?(\d|n/a$)")


@dataclass(frozen=True)
class Stat:
    """A table cell holding a figure and, below it (on the same line in Markdown), its interval."""

    main: str
    interval: str = ""
    joiner: str = " "

    def __str__(self) -> str:
        return f"{self.main}{self.joiner}{self.interval}" if self.interval else self.main


@dataclass(frozen=True)
class Verdict:
    """A table cell saying whether a comparison is significant."""

    significant: bool

    def __str__(self) -> str:
        return "significant" if self.significant else "not significant"


@dataclass(frozen=True)
class Lines:
    """A table cell of several short lines (one per seed, say)."""

    lines: tuple[str, ...]

    def __str__(self) -> str:
        return "; ".join(self.lines)


Cell = str | Stat | Verdict | Lines


@dataclass(frozen=True)
class Table:
    """A table; ``caption`` is shown above it."""

    headers: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]
    caption: str = ""

    def is_numeric_column(self, index: int) -> bool:
        """Whether every cell of column ``index`` is a figure (aligned right when rendered)."""
        cells = [row[index] for row in self.rows if index < len(row)]
        return bool(cells) and all(
            isinstance(c, Stat) or (isinstance(c, str) and _NUMERIC.match(c) is not None) for c in cells
        )


@dataclass(frozen=True)
class Text:
    """A paragraph; ``kind`` is ``p``, ``warning``, ``key`` (a finding) or ``note``."""

    text: str
    kind: str = "p"


@dataclass(frozen=True)
class Bullets:
    """A list of findings, shown highlighted."""

    items: tuple[str, ...]


@dataclass(frozen=True)
class Code:
    """Preformatted text (configuration)."""

    text: str


@dataclass(frozen=True)
class FigureBlock:
    """A PNG figure written to ``path`` (relative to the run folder) and inlined in the HTML."""

    path: str
    data: bytes
    caption: str


@dataclass(frozen=True)
class Group:
    """A titled group of blocks; ``collapsed`` groups fold away and ``tiled`` ones sit side by side in HTML."""

    title: str
    blocks: tuple[Block, ...]
    collapsed: bool = False
    tiled: bool = False


Block = Table | Text | Bullets | Code | FigureBlock | Group


@dataclass
class Section:
    """A top-level section of the report, listed in the table of contents."""

    anchor: str
    title: str
    blocks: list[Block] = field(default_factory=list)


@dataclass(frozen=True)
class Document:
    """The whole report: title, subtitle, the one-sentence answer that opens it, and its sections."""

    title: str
    subtitle: str
    answer: str
    sections: Sequence[Section]

    def figures(self) -> Iterator[FigureBlock]:
        """Every figure of the document, in reading order (groups included)."""

        def walk(blocks: Sequence[Block]) -> Iterator[FigureBlock]:
            for block in blocks:
                if isinstance(block, FigureBlock):
                    yield block
                elif isinstance(block, Group):
                    yield from walk(block.blocks)

        for section in self.sections:
            yield from walk(section.blocks)


class SectionBuilder(Protocol):
    """Contributes sections to an experiment's report.

    Contract: ``builder(result, store, dpi=dpi)`` returns the sections it has for ``result`` (none
    when the result holds nothing for it), reading only the result and the store; figures are drawn
    at ``dpi``. It never writes files: the report writer does.
    """

    def __call__(self, result: ExperimentResult, store: ImageStore, *, dpi: int) -> Sequence[Section]: ...
