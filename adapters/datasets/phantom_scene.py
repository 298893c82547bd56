"""What a phantom fundus photograph is made of: its frame, anatomy, vessels and lesions (in
units of the field radius), and the drawn result (``phantom_drawing`` builds them,
``phantom_render`` paints them)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

SUPERSAMPLE = 2
"""Masks are drawn at this multiple of the output size, then box-filtered down (anti-aliasing)."""


# -- data ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Frame:
    """The camera frame: its pixel size and where the circular field lies in it."""

    height: int
    width: int
    cx: float
    cy: float
    radius: float

    def px(self, points: np.ndarray, scale: int = SUPERSAMPLE) -> np.ndarray:
        """Field-radius coordinates (centre 0, y down) -> canvas pixels at ``scale``."""
        return np.stack([self.cx + points[..., 0] * self.radius, self.cy + points[..., 1] * self.radius], -1) * scale

    def field_columns(self) -> tuple[int, int]:
        """The range of pixel columns the circular field touches."""
        return max(0, math.floor(self.cx - self.radius)), min(self.width, math.ceil(self.cx + self.radius))


@dataclass(frozen=True)
class Vessel:
    """A vessel centre line (field radii) with its width at each point; veins are darker."""

    points: np.ndarray
    widths: np.ndarray
    vein: bool
    depth: int


@dataclass(frozen=True)
class Anatomy:
    """The healthy eye: laterality, optic disc, fovea, vessel tree and photographic look."""

    side: int
    disc: np.ndarray
    disc_radius: float
    disc_aspect: float
    fovea: np.ndarray
    vessels: tuple[Vessel, ...]
    colour: np.ndarray
    brightness: float
    vignetting: float
    gradient: tuple[float, float]
    disc_colour: np.ndarray


@dataclass
class Lesions:
    """Lesions of one image, in field radii (sizes already floored to visible pixel sizes)."""

    red_dots: list[tuple[float, float, float]] = field(default_factory=list)
    red_polygons: list[tuple[np.ndarray, int]] = field(default_factory=list)
    red_strands: list[np.ndarray] = field(default_factory=list)
    beads: list[tuple[float, float, float]] = field(default_factory=list)
    exudates: list[tuple[float, float, float]] = field(default_factory=list)
    cotton_wool: list[tuple[float, float, float, float]] = field(default_factory=list)
    findings: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class PhantomDrawing:
    """A drawn fundus image and where its lesions are.

    Attributes:
        pixels: HxWx3 uint8 RGB image (a 4:3 frame, field on a dark surround).
        red_lesions: HxW bool mask of red lesions (microaneurysms, haemorrhages,
            neovascularisation); venous beading is not included.
        bright_lesions: HxW bool mask of hard exudates and cotton-wool spots.
        field: HxW bool mask of the circular retinal field.
        findings: count of each lesion kind drawn, e.g. ``{"microaneurysms": 5}``.
    """

    pixels: np.ndarray
    red_lesions: np.ndarray
    bright_lesions: np.ndarray
    field: np.ndarray
    findings: dict[str, int]
