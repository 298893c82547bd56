"""Diabetic-retinopathy grades on the International Clinical DR severity scale."""

from __future__ import annotations

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
        """Parse a grade from an int or a string such as ``"3"`` or ``" 2 "``.

        Raises:
            DomainError: if the value is not an integer in 0-4.
        """
        if isinstance(value, bool):
            raise DomainError(f"grade {value!r} is not an integer 0-4")
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, str):
            text = value.strip()
            if not text.lstrip("-").isdigit():
                raise DomainError(f"grade {value!r} is not an integer 0-4")
            value = int(text)
        if not isinstance(value, int) or not 0 <= value <= 4:
            raise DomainError(f"grade {value!r} is outside 0-4")
        return cls(value)


_LABELS = {
    Grade.NO_DR: "No DR",
    Grade.MILD_NPDR: "Mild NPDR",
    Grade.MODERATE_NPDR: "Moderate NPDR",
    Grade.SEVERE_NPDR: "Severe NPDR",
    Grade.PROLIFERATIVE_DR: "Proliferative DR",
}

ALL_GRADES: tuple[Grade, ...] = tuple(Grade)
