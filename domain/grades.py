"""Diabetic-retinopathy grades on the International Clinical DR severity scale."""

from __future__ import annotations

import re
from enum import IntEnum

from medaug.domain.errors import DomainError


class Grade(IntEnum):
    """Retinopathy grade 0-4 (International Clinical Diabetic Retinopathy scale)."""

    NO_DR = 0
    MILD_NPDR = 1
    MODERATE_NPDR = 2
    SEVERE_NPDR = 3
    PROLIFERATIVE_DR = 4

    @property
    def label(self) -> str:
        """Human-readable clinical name, e.g. ``"Moderate NPDR"``."""
        return _LABELS[self]

    @classmethod
    def parse(cls, value: object) -> Grade:
        """Parse a grade, strictly.

        Accepted: an ``int`` 0-4 (not a ``bool``), a float with a whole value 0-4, or a string
        that, after trimming spaces, tabs and line ends, is one ASCII digit ``0``-``4``,
        optionally written as a whole decimal (``"2.0"``, as spreadsheets export grades).
        Everything else (``"²"``, ``"--2"``, ``"+2"``, ``"02"``, ``"2.5"``, ``"٢"``, ``""``,
        ``"5"``) is refused.

        Raises:
            DomainError: one line quoting the value.
        """
        if isinstance(value, bool):
            raise DomainError(f"grade {value!r} is not an integer 0-4")
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, str):
            match = _GRADE_TEXT.fullmatch(value.strip(" \t\r\n"))
            if match is None:
                raise DomainError(f"grade {value!r} is not an integer 0-4")
            value = int(match.group(1))
        if not isinstance(value, int) or not 0 <= value <= 4:
            raise DomainError(f"grade {value!r} is outside 0-4")
        return cls(value)


_GRADE_TEXT = re.compile(r"([0-9])(?:\.0+)?", re.ASCII)

_LABELS = {
    Grade.NO_DR: "No DR",
    Grade.MILD_NPDR: "Mild NPDR",
    Grade.MODERATE_NPDR: "Moderate NPDR",
    Grade.SEVERE_NPDR: "Severe NPDR",
    Grade.PROLIFERATIVE_DR: "Proliferative DR",
}

ALL_GRADES: tuple[Grade, ...] = tuple(Grade)
