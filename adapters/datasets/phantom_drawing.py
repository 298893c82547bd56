"""Procedural fundus photographs with diabetic-retinopathy lesions of a chosen grade.

Geometry is drawn in units of the field radius (``R``) so an image looks the same at any pixel
size; only sub-pixel floors (lesions never thinner than about one pixel) depend on the size.
Three independent random streams per image keep anatomy, lesions and texture apart, so
the same eye can be drawn at every grade (what the tests use to measure lesion load).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SUPERSAMPLE = 2
"""Masks are drawn at this multiple of the output size, then box-filtered down (anti-aliasing)."""

_ANATOMY, _LESIONS, _TEXTURE = 0, 1, 2
_STEP = 0.02  # vessel random-walk step, in field radii
_FOVEA_CLEAR = 0.1  # vessels stop at the foveal avascular zone (field radii)

_VEIN_TINT = np.array([0.66, 0.36, 0.48], dtype=np.float32)
_ARTERY_TINT = np.array([0.80, 0.55, 0.65], dtype=np.float32)
_RED_LESION_TINT = np.array([0.56, 0.22, 0.30], dtype=np.float32)
_EXUDATE_COLOUR = np.array([1.0, 0.90, 0.42], dtype=np.float32)
_COTTON_WOOL_COLOUR = np.array([0.96, 0.86, 0.66], dtype=np.float32)


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


# -- entry point -----------------------------------------------------------------------------


def draw_phantom(seed: int, index: int, grade: int, size: int) -> PhantomDrawing:
    """Draw image ``index`` of the phantom set made with ``seed``, at ``grade`` and ``size``.

    The eye (anatomy, vessels, colour) depends only on ``(seed, index)``; the grade only adds
    lesions, so the same ``(seed, index)`` at two grades shows the same eye.

    Args:
        seed: the data set's seed (any integer).
        index: the image's index in the set (>= 0).
        grade: International Clinical DR grade 0-4.
        size: the frame height in pixels (the width is 4/3 of it).
    """
    rngs = [np.random.default_rng([seed % 2**64, index, stream]) for stream in (_ANATOMY, _LESIONS, _TEXTURE)]
    frame = _frame(rngs[_ANATOMY], size)
    anatomy = _anatomy(rngs[_ANATOMY])
    lesions = _lesions(rngs[_LESIONS], grade, anatomy, frame)
    return _render(frame, anatomy, lesions, rngs[_TEXTURE])


# -- anatomy ---------------------------------------------------------------------------------


def _frame(rng: np.random.Generator, size: int) -> Frame:
    width = round(size * 4 / 3)
    radius = size / 2 * rng.uniform(0.97, 1.07)  # > 1: the camera mask crops top and bottom
    cx = width / 2 + rng.uniform(-0.03, 0.03) * size
    cy = size / 2 + rng.uniform(-0.02, 0.02) * size
    return Frame(height=size, width=width, cx=cx, cy=cy, radius=radius)


def _anatomy(rng: np.random.Generator) -> Anatomy:
    side = int(rng.choice([-1, 1]))
    disc = np.array([side * rng.uniform(0.55, 0.68), rng.uniform(-0.08, 0.06)])
    fovea = disc + np.array([-side * rng.uniform(0.62, 0.72), rng.uniform(0.02, 0.1)])
    vessels = _vessel_tree(rng, side, disc, fovea)
    hue = rng.uniform(0.0, 1.0)  # 0: deep red, 1: orange-yellow
    colour = np.array([rng.uniform(0.86, 0.98), 0.30 + 0.2 * hue, 0.06 + 0.1 * hue * rng.uniform(0.4, 1.2)])
    return Anatomy(
        side=side,
        disc=disc,
        disc_radius=float(rng.uniform(0.12, 0.15)),
        disc_aspect=float(rng.uniform(1.0, 1.15)),
        fovea=fovea,
        vessels=vessels,
        colour=colour.astype(np.float32),
        brightness=float(rng.uniform(0.72, 1.02)),
        vignetting=float(rng.uniform(0.3, 0.55)),
        gradient=(float(rng.uniform(-0.12, 0.12)), float(rng.uniform(-0.12, 0.12))),
        disc_colour=np.array([1.0, rng.uniform(0.72, 0.86), rng.uniform(0.36, 0.55)], dtype=np.float32),
    )


def _vessel_tree(rng: np.random.Generator, side: int, disc: np.ndarray, fovea: np.ndarray) -> tuple[Vessel, ...]:
    """Four arcades (superior/inferior, temporal/nasal), each a vein with an artery beside it."""
    trunks = [
        (-rng.uniform(0.9, 1.25), rng.uniform(0.9, 1.3), rng.uniform(1.4, 1.7)),  # superotemporal
        (rng.uniform(0.9, 1.25), -rng.uniform(0.9, 1.3), rng.uniform(1.4, 1.7)),  # inferotemporal
        (-rng.uniform(2.0, 2.6), rng.uniform(-0.4, 0.4), rng.uniform(0.8, 1.2)),  # superonasal
        (rng.uniform(2.0, 2.6), rng.uniform(-0.4, 0.4), rng.uniform(0.8, 1.2)),  # inferonasal
    ]
    tree = _VesselTree(rng, side, fovea)
    for angle, bend, length in trunks:
        vein_width = rng.uniform(0.024, 0.03)
        for vein, offset, width in ((True, 0.0, vein_width), (False, rng.uniform(-0.3, 0.3), vein_width * 0.66)):
            tree.grow(disc, angle + offset, bend, length, width, vein, depth=0)
    return tuple(tree.vessels)


class _VesselTree:
    """Grows vessels as smooth random walks, each followed by its branches (depth <= 2).

    Angles are measured from the temporal direction (positive = downwards) so that the same
    numbers describe a left and a right eye.
    """

    def __init__(self, rng: np.random.Generator, side: int, fovea: np.ndarray) -> None:
        self.rng, self.side, self.fovea = rng, side, fovea
        self.vessels: list[Vessel] = []

    def grow(
        self, start: np.ndarray, angle: float, bend: float, length: float, width: float, vein: bool, depth: int
    ) -> None:
        """Walk one vessel from ``start`` until it leaves the field or nears the fovea."""
        steps = max(3, int(length / _STEP))
        phi = angle + bend * _STEP * np.arange(steps) + np.cumsum(self.rng.normal(0.0, 0.055, steps))
        points = np.empty((steps + 1, 2))
        points[0] = start
        points[1:, 0] = start[0] - self.side * _STEP * np.cumsum(np.cos(phi))
        points[1:, 1] = start[1] + _STEP * np.cumsum(np.sin(phi))
        keep = _inside_run(points, self.fovea)
        if keep < 2:
            return
        points = points[:keep]
        widths = width * np.exp(np.arange(keep) * (-_STEP / 2.5))
        self.vessels.append(Vessel(points=points, widths=widths, vein=vein, depth=depth))
        if depth < 2:
            self._branch(points, phi, widths, length, vein, depth)

    def _branch(
        self, points: np.ndarray, phi: np.ndarray, widths: np.ndarray, length: float, vein: bool, depth: int
    ) -> None:
        """Side branches at random points along a vessel (none right at its start)."""
        chance = self.rng.random(len(points))
        sites = np.flatnonzero(chance[6:] < (0.05 if depth == 0 else 0.06))[: 5 - depth * 2] + 6
        params = self.rng.random((len(sites), 5))
        for k, (side_pick, turn, reach, bend, thin) in zip(sites, params.tolist(), strict=True):
            turn = (0.45 + 0.55 * turn) * (1.0 if side_pick < 0.5 else -1.0)
            child_length = length * (0.3 + 0.25 * reach) if depth == 0 else 0.12 + 0.18 * reach
            child_width = float(widths[k]) * (0.55 + 0.2 * thin)
            self.grow(points[k], float(phi[k - 1]) + turn, 1.6 * bend - 0.8, child_length, child_width, vein, depth + 1)


def _inside_run(points: np.ndarray, fovea: np.ndarray) -> int:
    """How many leading points stay inside the field and out of the foveal avascular zone."""
    x, y = points[:, 0], points[:, 1]
    fx, fy = x - fovea[0], y - fovea[1]
    bad = np.flatnonzero((x * x + y * y >= 0.98) | (fx * fx + fy * fy <= _FOVEA_CLEAR**2))
    return int(bad[0]) if bad.size else len(points)


# -- lesions (International Clinical DR scale) -----------------------------------------------


def _lesions(rng: np.random.Generator, grade: int, anatomy: Anatomy, frame: Frame) -> Lesions:
    """The lesions of ``grade``: each grade adds the findings that define it to the previous ones."""
    lesions = Lesions()
    px = 1.0 / frame.radius  # one pixel in field radii
    if grade == 0:
        return lesions
    counts = {1: (3, 9), 2: (6, 15), 3: (10, 21), 4: (10, 21)}[grade]
    _microaneurysms(rng, lesions, anatomy, int(rng.integers(*counts)), px)
    if grade >= 2:
        haemorrhages = int(rng.integers(3, 9)) if grade == 2 else 0
        _haemorrhages(rng, lesions, anatomy, haemorrhages, px, (0.025, 0.05))
        _exudates(rng, lesions, anatomy, int(rng.integers(1, 4) if grade == 2 else rng.integers(2, 6)), px)
        _cotton_wool(rng, lesions, anatomy, int(rng.integers(1, 4) if grade == 2 else rng.integers(2, 6)), px)
    if grade >= 3:
        for quadrant in range(4):  # the 4-2-1 rule: many haemorrhages in every quadrant
            _haemorrhages(rng, lesions, anatomy, int(rng.integers(5, 9)), px, (0.025, 0.06), quadrant)
        _venous_beading(rng, lesions, anatomy, px)
    if grade == 4:
        _proliferative(rng, lesions, anatomy, px)
    return lesions


def _field_points(
    rng: np.random.Generator, anatomy: Anatomy, count: int, quadrant: int | None = None, reach: float = 0.9
) -> np.ndarray:
    """``count`` points spread over the field (or one quadrant), away from the optic disc."""
    found = np.zeros((0, 2))
    while len(found) < count:
        radius = reach * np.sqrt(rng.uniform(0.02, 1.0, 4 * count + 4))
        low, high = (0.0, 2 * np.pi) if quadrant is None else (quadrant * np.pi / 2, (quadrant + 1) * np.pi / 2)
        theta = rng.uniform(low, high, radius.size)
        points = np.stack([radius * np.cos(theta), radius * np.sin(theta)], -1)
        points = points[np.hypot(*(points - anatomy.disc).T) > anatomy.disc_radius * 1.3]
        found = np.vstack([found, points])
    return found[:count]


def _near(rng: np.random.Generator, centre: np.ndarray, count: int, spread: float) -> np.ndarray:
    points = centre + rng.normal(0.0, spread, (count, 2))
    scale = np.maximum(1.0, np.hypot(*points.T) / 0.93)[:, None]
    return points / scale


def _microaneurysms(rng: np.random.Generator, lesions: Lesions, anatomy: Anatomy, count: int, px: float) -> None:
    """Small round red dots, mostly around the posterior pole."""
    pole = count - count // 3
    points = np.vstack([_near(rng, anatomy.fovea, pole, 0.3), _field_points(rng, anatomy, count - pole)])
    radii = np.maximum(1.0 * px, rng.uniform(0.014, 0.022, count))
    lesions.red_dots += [(x, y, r) for (x, y), r in zip(points, radii, strict=True)]
    lesions.findings["microaneurysms"] = count


def _haemorrhages(
    rng: np.random.Generator,
    lesions: Lesions,
    anatomy: Anatomy,
    count: int,
    px: float,
    size: tuple[float, float],
    quadrant: int | None = None,
) -> None:
    """Dot-blot and flame haemorrhages: irregular dark-red blobs, some elongated."""
    if count == 0:
        return
    centres = _field_points(rng, anatomy, count, quadrant)
    radii = np.maximum(1.5 * px, rng.uniform(*size, count))
    fills = rng.integers(190, 256, count)
    blobs = _blobs(rng, centres, radii, rng.uniform(1.0, 2.2, count))
    lesions.red_polygons += [(blob, int(fill)) for blob, fill in zip(blobs, fills, strict=True)]
    lesions.findings["haemorrhages"] = lesions.findings.get("haemorrhages", 0) + count


def _blobs(rng: np.random.Generator, centres: np.ndarray, radii: np.ndarray, aspect: np.ndarray) -> list[np.ndarray]:
    """Irregular rotated ellipses as 12-gons."""
    angles = np.linspace(0, 2 * np.pi, 12, endpoint=False)[None, :] + rng.uniform(-0.2, 0.2, (len(radii), 12))
    wobble = 1.0 + rng.uniform(-0.22, 0.22, (len(radii), 12))
    rot = rng.uniform(0, np.pi, len(radii))[:, None]
    a, b = radii[:, None] * np.sqrt(aspect)[:, None] * wobble, radii[:, None] / np.sqrt(aspect)[:, None] * wobble
    x, y = a * np.cos(angles), b * np.sin(angles)
    shape = np.stack([x * np.cos(rot) - y * np.sin(rot), x * np.sin(rot) + y * np.cos(rot)], -1)
    return list(centres[:, None, :] + shape)


def _exudates(rng: np.random.Generator, lesions: Lesions, anatomy: Anatomy, clusters: int, px: float) -> None:
    """Hard exudates: clusters of small sharp yellow deposits around the macula."""
    total = 0
    for _ in range(clusters):
        theta, dist = rng.uniform(0, 2 * np.pi), rng.uniform(0.12, 0.5)
        centre = anatomy.fovea + dist * np.array([np.cos(theta), np.sin(theta)])
        count = int(rng.integers(5, 14))
        points = _near(rng, centre, count, rng.uniform(0.025, 0.05))
        radii = np.maximum(0.8 * px, rng.uniform(0.008, 0.018, count))
        lesions.exudates += [(x, y, r) for (x, y), r in zip(points, radii, strict=True)]
        total += count
    lesions.findings["hard_exudates"] = total


def _cotton_wool(rng: np.random.Generator, lesions: Lesions, anatomy: Anatomy, count: int, px: float) -> None:
    """Cotton-wool spots: soft, pale, fluffy patches along the arcades near the disc."""
    trunks = _trunk_veins(anatomy)
    for _ in range(count):
        vessel = trunks[int(rng.integers(0, len(trunks)))]
        point = vessel.points[int(rng.integers(len(vessel.points) // 4, max(len(vessel.points) * 3 // 4, 2)))]
        x, y = point + rng.normal(0.0, 0.05, 2)
        radius = max(1.5 * px, rng.uniform(0.04, 0.065))
        lesions.cotton_wool.append((x, y, radius, rng.uniform(0.75, 0.95)))
    lesions.findings["cotton_wool_spots"] = count


def _venous_beading(rng: np.random.Generator, lesions: Lesions, anatomy: Anatomy, px: float) -> None:
    """Sausage-like bulges every few vein widths along a stretch of 2-3 main veins."""
    veins = _trunk_veins(anatomy)
    chosen = rng.choice(len(veins), size=min(len(veins), int(rng.integers(2, 4))), replace=False)
    for index in chosen:
        vein = veins[int(index)]
        start = int(rng.integers(len(vein.points) // 5, max(len(vein.points) // 2, 2)))
        for k in range(start, min(len(vein.points), start + 28), 4):
            x, y = vein.points[k]
            lesions.beads.append((x, y, max(1.0 * px, vein.widths[k])))
    lesions.findings["venous_beading"] = len(chosen)


def _trunk_veins(anatomy: Anatomy) -> list[Vessel]:
    """The main veins leaving the disc: superotemporal, inferotemporal, then the nasal ones."""
    return [v for v in anatomy.vessels if v.vein and v.depth == 0]


def _proliferative(rng: np.random.Generator, lesions: Lesions, anatomy: Anatomy, px: float) -> None:
    """Neovascularisation (disc or elsewhere) and/or a boat-shaped pre-retinal haemorrhage."""
    kind = rng.choice(["neovascularisation", "preretinal", "both"], p=[0.35, 0.25, 0.4])
    if kind != "preretinal":
        tufts = int(rng.integers(2, 5))
        for t in range(tufts):
            if t == 0 and rng.random() < 0.7:
                centre = anatomy.disc + rng.normal(0.0, anatomy.disc_radius * 0.3, 2)  # NVD
            else:
                vessel = anatomy.vessels[int(rng.integers(0, len(anatomy.vessels)))]  # NVE
                centre = vessel.points[int(rng.integers(0, len(vessel.points)))]
            lesions.red_strands += _tuft(rng, centre, px)
        lesions.findings["neovascular_tufts"] = tufts
    if kind != "neovascularisation":
        lesions.red_polygons.append((_boat(rng, anatomy, px), 255))
        lesions.findings["preretinal_haemorrhages"] = 1


def _tuft(rng: np.random.Generator, centre: np.ndarray, px: float) -> list[np.ndarray]:
    """A cluster of fine, tortuous new vessels."""
    strands = []
    step = max(0.012, 0.8 * px)
    for _ in range(int(rng.integers(14, 24))):
        n = int(rng.integers(8, 16))
        phi = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0.0, 0.7, n))
        moves = np.stack([np.cos(phi), np.sin(phi)], -1) * step
        strands.append(centre + rng.normal(0.0, 0.04, 2) + np.cumsum(moves, 0))
    return strands


def _boat(rng: np.random.Generator, anatomy: Anatomy, px: float) -> np.ndarray:
    """A pre-retinal haemorrhage: flat top (fluid level), rounded bottom."""
    temporal = _trunk_veins(anatomy)[:2]
    vessel = temporal[int(rng.integers(0, len(temporal)))]
    centre = vessel.points[int(rng.integers(len(vessel.points) // 4, max(len(vessel.points) * 2 // 3, 2)))]
    a = max(4 * px, rng.uniform(0.14, 0.22))
    b = a * rng.uniform(0.55, 0.75)
    t = np.linspace(0, np.pi, 16)
    bottom = np.stack([a * np.cos(t), b * np.sin(t) * (1 + rng.uniform(-0.08, 0.08, 16))], -1)
    return centre + np.vstack([bottom, [[-a * 0.9, -b * 0.08], [a * 0.9, -b * 0.08]]])


# -- rendering -------------------------------------------------------------------------------


def _render(frame: Frame, anatomy: Anatomy, lesions: Lesions, rng: np.random.Generator) -> PhantomDrawing:
    """Compose the photograph inside the field's columns; the rest of the frame is surround."""
    x0, x1 = frame.field_columns()
    u = ((np.arange(x0, x1, dtype=np.float32) + np.float32(0.5 - frame.cx)) / np.float32(frame.radius))[None, :]
    v = ((np.arange(frame.height, dtype=np.float32) + np.float32(0.5 - frame.cy)) / np.float32(frame.radius))[:, None]
    r2 = u * u + v * v
    lum = _illumination(anatomy, u, v, r2, _smooth_noise(rng, frame)[:, x0:x1])
    masks = _masks(frame, anatomy, lesions, (x0, x1))
    image = _compose(anatomy, u, v, lum, masks)
    edge = np.clip((1.0 - np.sqrt(r2)) * np.float32(frame.radius) + 0.5, 0.0, 1.0)
    inside = edge > 0.5
    bright = np.maximum(masks.get("exudate", 0.0), masks.get("cotton", 0.0))
    return PhantomDrawing(
        pixels=_to_pixels(frame, image * edge, x0),
        red_lesions=_widen(frame, (masks["red"] > 0.5) & inside if "red" in masks else None, x0),
        bright_lesions=_widen(frame, (bright > 0.5) & inside if np.ndim(bright) else None, x0),
        field=_widen(frame, inside, x0),
        findings=dict(lesions.findings),
    )


def _compose(
    anatomy: Anatomy, u: np.ndarray, v: np.ndarray, lum: np.ndarray, masks: dict[str, np.ndarray]
) -> np.ndarray:
    """Retina, macula, disc, then vessels and lesions, as a 3xHxW float image in 0-1.

    Channels come first: numpy broadcasts far faster over rows than over a last axis of 3.
    """
    shade = _macula_shade(anatomy, u, v)
    image = lum * (_col(anatomy.colour) - shade * _col(anatomy.colour * _MACULA_TINT))
    _optic_disc(image, anatomy, u, v)
    for name, tint in (("vein", _VEIN_TINT), ("artery", _ARTERY_TINT), ("red", _RED_LESION_TINT)):
        if name in masks:
            image *= 1.0 - masks[name] * _col(1.0 - tint)
    glow = np.clip(lum * 1.25, 0.55, 1.0)
    for name, colour in (("exudate", _EXUDATE_COLOUR), ("cotton", _COTTON_WOOL_COLOUR)):
        if name in masks:
            image += masks[name] * (_col(colour) * glow - image)
    return image


_BLACK = 3  # a camera's black is never quite 0


def _to_pixels(frame: Frame, image: np.ndarray, x0: int) -> np.ndarray:
    """The 3xHxw float window, placed in an HxWx3 uint8 frame of dark surround."""
    image *= 255.0
    image += 0.5 + _BLACK
    pixels = np.full((frame.height, frame.width, 3), _BLACK, dtype=np.uint8)
    pixels[:, x0 : x0 + image.shape[2]] = np.clip(image, 0.0, 255.0).astype(np.uint8).transpose(1, 2, 0)
    return pixels


def _widen(frame: Frame, mask: np.ndarray | None, x0: int) -> np.ndarray:
    """A window mask placed in a full-frame False mask."""
    full = np.zeros((frame.height, frame.width), dtype=bool)
    if mask is not None:
        full[:, x0 : x0 + mask.shape[1]] = mask
    return full


_MACULA_TINT = np.array([0.8, 1.0, 0.9], dtype=np.float32)


def _col(colour: np.ndarray) -> np.ndarray:
    """An RGB triple shaped to broadcast over a 3xHxW image."""
    return np.asarray(colour, dtype=np.float32)[:, None, None]


def _illumination(anatomy: Anatomy, u: np.ndarray, v: np.ndarray, r2: np.ndarray, texture: np.ndarray) -> np.ndarray:
    """Brightness over the field: vignetting, uneven flash, and smooth choroidal texture."""
    falloff = 1.0 - anatomy.vignetting * r2 * (0.6 + 0.4 * r2)
    tilt = 1.0 + anatomy.gradient[0] * u + anatomy.gradient[1] * v
    return falloff * tilt * (anatomy.brightness + anatomy.brightness * texture)


_OCTAVES = (((4, 5), 0.04), ((12, 16), 0.025), ((36, 48), 0.015))


def _smooth_noise(rng: np.random.Generator, frame: Frame) -> np.ndarray:
    """Octaves of smooth value noise (coarse blotches to fine grain), upsampled bicubically."""
    total = np.zeros(_OCTAVES[0][0], dtype=np.float32)
    for shape, amplitude in _OCTAVES:
        total = np.asarray(Image.fromarray(total, mode="F").resize(shape[::-1], Image.BICUBIC))
        total = total + rng.normal(0.0, amplitude, shape).astype(np.float32)
    return np.asarray(Image.fromarray(total, mode="F").resize((frame.width, frame.height), Image.BICUBIC))


def _macula_shade(anatomy: Anatomy, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """How much darker the macula (broad) and the fovea (narrow) are; Gaussians are separable."""
    du, dv = u - np.float32(anatomy.fovea[0]), v - np.float32(anatomy.fovea[1])
    macula = np.exp(dv * dv * np.float32(-1 / (2 * 0.16**2))) * np.exp(du * du * np.float32(-1 / (2 * 0.16**2)))
    fovea = np.exp(dv * dv * np.float32(-1 / (2 * 0.035**2))) * np.exp(du * du * np.float32(-1 / (2 * 0.035**2)))
    return 0.28 * macula + 0.15 * fovea


def _optic_disc(image: np.ndarray, anatomy: Anatomy, u: np.ndarray, v: np.ndarray) -> None:
    """A bright yellowish disc with soft edges and a paler cup, blended in its bounding box."""
    reach = anatomy.disc_radius * anatomy.disc_aspect * 1.6
    x0, x1 = np.searchsorted(u[0], [anatomy.disc[0] - reach, anatomy.disc[0] + reach])
    y0, y1 = np.searchsorted(v[:, 0], [anatomy.disc[1] - reach, anatomy.disc[1] + reach])
    if x1 <= x0 or y1 <= y0:
        return
    du = (u[:, x0:x1] - np.float32(anatomy.disc[0])) / np.float32(anatomy.disc_radius)
    dv = (v[y0:y1] - np.float32(anatomy.disc[1])) / np.float32(anatomy.disc_radius * anatomy.disc_aspect)
    dist = np.sqrt(du * du + dv * dv)
    alpha = 0.85 / (1.0 + np.exp((dist - 1.0) * 9.0))
    cup = 0.55 / (1.0 + np.exp((dist - 0.45) * 12.0))
    colour = _col(anatomy.disc_colour * (0.8 + 0.2 * anatomy.brightness))
    colour = colour + cup * (_col(np.array([1.0, 0.95, 0.8])) - colour)
    patch = image[:, y0:y1, x0:x1]
    patch += alpha * (colour - patch)


def _masks(frame: Frame, anatomy: Anatomy, lesions: Lesions, columns: tuple[int, int]) -> dict[str, np.ndarray]:
    """Anti-aliased alpha masks (0-1, H x field columns) of vessels and of the lesions present."""
    canvas = _Canvas(frame)
    for vessel in anatomy.vessels:
        canvas.polyline("vein" if vessel.vein else "artery", vessel.points, vessel.widths)
    canvas.discs("vein", lesions.beads)
    canvas.discs("red", lesions.red_dots)
    for polygon, fill in lesions.red_polygons:
        canvas.draw("blot").polygon(frame.px(polygon).ravel().tolist(), fill=fill)
    strand_width = max(SUPERSAMPLE, round(frame.radius * SUPERSAMPLE * 0.006))
    for strand in lesions.red_strands:
        canvas.draw("red").line(frame.px(strand).ravel().tolist(), fill=220, width=strand_width)
    canvas.discs("exudate", lesions.exudates)
    for x, y, radius, opacity in lesions.cotton_wool:
        canvas.discs("cotton", [(x, y, radius)], fill=round(255 * opacity))
    blur = {"cotton": 0.02 * frame.radius, "blot": 0.007 * frame.radius if frame.radius >= 50 else 0.0}
    masks = canvas.masks(blur, columns)
    if "blot" in masks:
        blot = masks.pop("blot")
        masks["red"] = np.maximum(masks["red"], blot) if "red" in masks else blot
    return masks


class _Canvas:
    """Mask layers drawn with PIL at ``SUPERSAMPLE`` times the frame size, created on first use."""

    def __init__(self, frame: Frame) -> None:
        self.frame = frame
        self.layers: dict[str, Image.Image] = {}
        self.draws: dict[str, ImageDraw.ImageDraw] = {}

    def draw(self, name: str) -> ImageDraw.ImageDraw:
        if name not in self.draws:
            size = (self.frame.width * SUPERSAMPLE, self.frame.height * SUPERSAMPLE)
            self.layers[name] = Image.new("L", size)
            self.draws[name] = ImageDraw.Draw(self.layers[name])
        return self.draws[name]

    def polyline(self, name: str, points: np.ndarray, widths: np.ndarray) -> None:
        """A tapering line, drawn as runs of constant integer width."""
        pixels = self.frame.px(points)
        width = np.maximum(1, np.rint(widths * (self.frame.radius * SUPERSAMPLE))).astype(int)
        cuts = (np.flatnonzero(np.diff(width)) + 1).tolist()
        draw = self.draw(name)
        for start, stop in zip([0, *cuts], [*cuts, len(width)], strict=True):
            if stop + 1 - start >= 2:
                draw.line(pixels[start : stop + 1].ravel().tolist(), fill=255, width=int(width[start]))

    def discs(self, name: str, discs: list[tuple[float, float, float]], fill: int = 255) -> None:
        if not discs:
            return
        circles = np.asarray(discs, dtype=np.float64)
        centres = self.frame.px(circles[:, :2])
        radii = circles[:, 2] * (self.frame.radius * SUPERSAMPLE)
        boxes = np.concatenate([centres - radii[:, None], centres + radii[:, None]], 1).tolist()
        draw = self.draw(name)
        for box in boxes:
            draw.ellipse(box, fill=fill)

    def masks(self, blur: dict[str, float], columns: tuple[int, int]) -> dict[str, np.ndarray]:
        """Each layer box-filtered to the frame size (optionally blurred), as float32 in 0-1."""
        out = {}
        for name, layer in self.layers.items():
            small = layer.reduce(SUPERSAMPLE).crop((columns[0], 0, columns[1], self.frame.height))
            out[name] = np.asarray(_soften(small, blur.get(name, 0.0)), dtype=np.float32) * np.float32(1 / 255)
        return out


def _soften(layer: Image.Image, radius: float) -> Image.Image:
    """Gaussian blur; wide blurs run at a quarter of the resolution (the result is smooth anyway)."""
    if radius < 0.3:
        return layer
    if radius < 3.0:
        return layer.filter(ImageFilter.GaussianBlur(radius))
    small = layer.reduce(4).filter(ImageFilter.GaussianBlur(radius / 4))
    return small.resize(layer.size, Image.BILINEAR)
