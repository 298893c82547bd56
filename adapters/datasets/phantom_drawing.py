"""Procedural fundus photographs with diabetic-retinopathy lesions of a chosen grade.

Geometry is drawn in units of the field radius (``R``) so an image looks the same at any pixel
size; only sub-pixel floors (lesions never thinner than about one pixel) depend on the size.
Three independent random streams per image keep anatomy, lesions and sensor noise apart, so
the same eye can be drawn at every grade (what the tests use to measure lesion load).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SUPERSAMPLE = 2
"""Masks are drawn at this multiple of the output size, then box-filtered down (anti-aliasing)."""

_ANATOMY, _LESIONS, _NOISE = 0, 1, 2
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
    gradient: np.ndarray
    disc_colour: np.ndarray


@dataclass
class Lesions:
    """Lesions of one image, in field radii (sizes already floored to visible pixel sizes)."""

    red_dots: list[tuple[float, float, float]] = field(default_factory=list)
    red_polygons: list[np.ndarray] = field(default_factory=list)
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
    rngs = [np.random.default_rng([seed % 2**64, index, stream]) for stream in (_ANATOMY, _LESIONS, _NOISE)]
    frame = _frame(rngs[_ANATOMY], size)
    anatomy = _anatomy(rngs[_ANATOMY])
    lesions = _lesions(rngs[_LESIONS], grade, anatomy, frame)
    return _render(frame, anatomy, lesions, rngs[_NOISE])


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
        disc_radius=rng.uniform(0.12, 0.15),
        disc_aspect=rng.uniform(1.0, 1.15),
        fovea=fovea,
        vessels=vessels,
        colour=colour.astype(np.float32),
        brightness=rng.uniform(0.72, 1.02),
        vignetting=rng.uniform(0.3, 0.55),
        gradient=rng.uniform(-0.12, 0.12, size=2),
        disc_colour=np.array([1.0, rng.uniform(0.78, 0.92), rng.uniform(0.45, 0.65)], dtype=np.float32),
    )


def _vessel_tree(rng: np.random.Generator, side: int, disc: np.ndarray, fovea: np.ndarray) -> tuple[Vessel, ...]:
    """Four arcades (superior/inferior, temporal/nasal), each a vein with an artery beside it."""
    trunks = [
        (-rng.uniform(0.9, 1.25), rng.uniform(0.9, 1.3), rng.uniform(1.4, 1.7)),  # superotemporal
        (rng.uniform(0.9, 1.25), -rng.uniform(0.9, 1.3), rng.uniform(1.4, 1.7)),  # inferotemporal
        (-rng.uniform(2.0, 2.6), rng.uniform(-0.4, 0.4), rng.uniform(0.8, 1.2)),  # superonasal
        (rng.uniform(2.0, 2.6), rng.uniform(-0.4, 0.4), rng.uniform(0.8, 1.2)),  # inferonasal
    ]
    vessels: list[Vessel] = []
    for angle, bend, length in trunks:
        vein_width = rng.uniform(0.024, 0.03)
        for vein, offset, width in ((True, 0.0, vein_width), (False, rng.uniform(-0.3, 0.3), vein_width * 0.66)):
            _grow(rng, vessels, side, fovea, disc, angle + offset, bend, length, width, vein, depth=0)
    return tuple(vessels)


def _grow(
    rng: np.random.Generator,
    out: list[Vessel],
    side: int,
    fovea: np.ndarray,
    start: np.ndarray,
    angle: float,
    bend: float,
    length: float,
    width: float,
    vein: bool,
    depth: int,
) -> None:
    """Random-walk one vessel from ``start``, then its branches (recursively, depth <= 2).

    ``angle`` is measured from the temporal direction (positive = downwards) so that the same
    numbers describe a left and a right eye.
    """
    steps = max(3, int(length / _STEP))
    phi = angle + bend * _STEP * np.arange(steps) + np.cumsum(rng.normal(0.0, 0.07, steps))
    moves = np.stack([-side * np.cos(phi), np.sin(phi)], -1) * _STEP
    points = start + np.vstack([np.zeros((1, 2)), np.cumsum(moves, 0)])
    keep = _inside_run(points, fovea)
    if keep < 2:
        return
    points, phi = points[:keep], np.concatenate([phi[:1], phi])[:keep]
    widths = width * np.exp(-np.arange(keep) * _STEP / 2.5)
    out.append(Vessel(points=points, widths=widths, vein=vein, depth=depth))
    if depth >= 2:
        return
    chance = rng.random(keep)
    chance[:6] = 1.0  # no branch right at the start
    for k in np.flatnonzero(chance < (0.05 if depth == 0 else 0.06))[: 5 - depth * 2]:
        turn = rng.choice([-1.0, 1.0]) * rng.uniform(0.45, 1.0)
        child_length = length * rng.uniform(0.3, 0.55) if depth == 0 else rng.uniform(0.12, 0.3)
        _grow(rng, out, side, fovea, points[k], phi[k] + turn, rng.uniform(-0.8, 0.8), child_length,
              widths[k] * rng.uniform(0.55, 0.75), vein, depth + 1)


def _inside_run(points: np.ndarray, fovea: np.ndarray) -> int:
    """How many leading points stay inside the field and out of the foveal avascular zone."""
    ok = (np.hypot(points[:, 0], points[:, 1]) < 0.99) & (np.hypot(*(points - fovea).T) > _FOVEA_CLEAR)
    bad = np.flatnonzero(~ok)
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
    lesions.red_polygons += _blobs(rng, centres, radii, rng.uniform(1.0, 2.2, count))
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
    for _ in range(count):
        trunks = _trunk_veins(anatomy)
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
        for k in range(start, min(len(vein.points), start + 25), 3):
            x, y = vein.points[k]
            lesions.beads.append((x, y, max(1.0 * px, vein.widths[k] * 0.95)))
    lesions.findings["venous_beading"] = len(chosen)


def _trunk_veins(anatomy: Anatomy) -> list[Vessel]:
    """The main veins leaving the disc: superotemporal, inferotemporal, then the nasal ones."""
    return [v for v in anatomy.vessels if v.vein and v.depth == 0]


def _proliferative(rng: np.random.Generator, lesions: Lesions, anatomy: Anatomy, px: float) -> None:
    """Neovascularisation (disc or elsewhere) and/or a boat-shaped pre-retinal haemorrhage."""
    kind = rng.choice(["neovascularisation", "preretinal", "both"], p=[0.45, 0.25, 0.3])
    if kind != "preretinal":
        tufts = int(rng.integers(1, 4))
        for t in range(tufts):
            if t == 0 and rng.random() < 0.6:
                centre = anatomy.disc + rng.normal(0.0, anatomy.disc_radius * 0.4, 2)  # NVD
            else:
                vessel = anatomy.vessels[int(rng.integers(0, len(anatomy.vessels)))]  # NVE
                centre = vessel.points[int(rng.integers(0, len(vessel.points)))]
            lesions.red_strands += _tuft(rng, centre, px)
        lesions.findings["neovascular_tufts"] = tufts
    if kind != "neovascularisation":
        lesions.red_polygons.append(_boat(rng, anatomy, px))
        lesions.findings["preretinal_haemorrhages"] = 1


def _tuft(rng: np.random.Generator, centre: np.ndarray, px: float) -> list[np.ndarray]:
    """A cluster of fine, tortuous new vessels."""
    strands = []
    step = max(0.012, 0.8 * px)
    for _ in range(int(rng.integers(10, 18))):
        n = int(rng.integers(8, 16))
        phi = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0.0, 0.7, n))
        moves = np.stack([np.cos(phi), np.sin(phi)], -1) * step
        strands.append(centre + rng.normal(0.0, 0.03, 2) + np.cumsum(moves, 0))
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
    u = ((np.arange(frame.width, dtype=np.float32) + 0.5 - frame.cx) / frame.radius)[None, :]
    v = ((np.arange(frame.height, dtype=np.float32) + 0.5 - frame.cy) / frame.radius)[:, None]
    lum = _illumination(frame, anatomy, u, v, rng)
    image = lum[..., None] * anatomy.colour
    _macula(image, anatomy, u, v)
    _optic_disc(image, frame, anatomy, u, v)
    masks = _masks(frame, anatomy, lesions)
    image *= 1.0 - masks["vein"][..., None] * (1.0 - _VEIN_TINT)
    image *= 1.0 - masks["artery"][..., None] * (1.0 - _ARTERY_TINT)
    image *= 1.0 - masks["red"][..., None] * (1.0 - _RED_LESION_TINT)
    glow = np.clip(lum * 1.25, 0.55, 1.0)[..., None]
    image += masks["exudate"][..., None] * (_EXUDATE_COLOUR * glow - image)
    image += masks["cotton"][..., None] * (_COTTON_WOOL_COLOUR * glow - image)
    edge = np.clip((1.0 - np.sqrt(u * u + v * v)) * frame.radius + 0.5, 0.0, 1.0)
    image *= edge[..., None]
    image += rng.normal(0.0, 0.006, (frame.height, frame.width, 1)).astype(np.float32) + 0.012
    pixels = (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    inside = edge > 0.5
    return PhantomDrawing(
        pixels=pixels,
        red_lesions=(masks["red"] > 0.5) & inside,
        bright_lesions=(np.maximum(masks["exudate"], masks["cotton"]) > 0.5) & inside,
        field=inside,
        findings=dict(lesions.findings),
    )


def _illumination(frame: Frame, anatomy: Anatomy, u: np.ndarray, v: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Brightness over the field: vignetting, uneven flash, and smooth choroidal texture."""
    r2 = u * u + v * v
    tilt = 1.0 + anatomy.gradient[0] * u + anatomy.gradient[1] * v
    lum = anatomy.brightness * (1.0 - anatomy.vignetting * r2 * (0.6 + 0.4 * r2)) * tilt
    return lum * (1.0 + _smooth_noise(rng, frame, (0.06, 0.035)))


def _smooth_noise(rng: np.random.Generator, frame: Frame, amplitudes: tuple[float, float]) -> np.ndarray:
    """Two octaves of smooth value noise, upsampled bicubically to the frame."""
    coarse = rng.normal(0.0, amplitudes[0], (4, 5)).astype(np.float32)
    fine = rng.normal(0.0, amplitudes[1], (14, 18)).astype(np.float32)
    coarse_up = np.asarray(Image.fromarray(coarse, mode="F").resize((18, 14), Image.BICUBIC))
    small = Image.fromarray(coarse_up + fine, mode="F")
    return np.asarray(small.resize((frame.width, frame.height), Image.BICUBIC))


def _macula(image: np.ndarray, anatomy: Anatomy, u: np.ndarray, v: np.ndarray) -> None:
    """Darker, browner macula with a darker fovea at its centre."""
    d2 = (u - anatomy.fovea[0]) ** 2 + (v - anatomy.fovea[1]) ** 2
    macula = np.exp(d2 * (-1.0 / (2 * 0.16**2)))
    fovea = np.exp(d2 * (-1.0 / (2 * 0.035**2)))
    image *= 1.0 - (0.28 * macula + 0.15 * fovea)[..., None] * np.array([0.8, 1.0, 0.9], dtype=np.float32)


def _optic_disc(image: np.ndarray, frame: Frame, anatomy: Anatomy, u: np.ndarray, v: np.ndarray) -> None:
    """A bright yellowish disc with soft edges and a paler cup, blended in its bounding box."""
    reach = anatomy.disc_radius * anatomy.disc_aspect * 1.6
    x0, x1 = np.searchsorted(u[0], [anatomy.disc[0] - reach, anatomy.disc[0] + reach])
    y0, y1 = np.searchsorted(v[:, 0], [anatomy.disc[1] - reach, anatomy.disc[1] + reach])
    if x1 <= x0 or y1 <= y0:
        return
    du = (u[:, x0:x1] - anatomy.disc[0]) / anatomy.disc_radius
    dv = (v[y0:y1] - anatomy.disc[1]) / (anatomy.disc_radius * anatomy.disc_aspect)
    dist = np.sqrt(du * du + dv * dv)
    alpha = 1.0 / (1.0 + np.exp((dist - 1.0) * 9.0))
    cup = 1.0 / (1.0 + np.exp((dist - 0.45) * 12.0))
    colour = anatomy.disc_colour * (0.9 + 0.15 * anatomy.brightness)
    colour = colour + cup[..., None] * (np.array([1.0, 0.97, 0.85], dtype=np.float32) - colour) * 0.7
    patch = image[y0:y1, x0:x1]
    patch += (alpha * 0.92)[..., None] * (colour - patch)


def _masks(frame: Frame, anatomy: Anatomy, lesions: Lesions) -> dict[str, np.ndarray]:
    """Anti-aliased alpha masks (0-1, HxW) of vessels and lesions."""
    size = (frame.width * SUPERSAMPLE, frame.height * SUPERSAMPLE)
    layers = {name: Image.new("L", size) for name in ("vein", "artery", "red", "exudate", "cotton")}
    draws = {name: ImageDraw.Draw(layer) for name, layer in layers.items()}
    for vessel in anatomy.vessels:
        _polyline(draws["vein" if vessel.vein else "artery"], frame, vessel.points, vessel.widths)
    _discs(draws["vein"], frame, lesions.beads)
    _discs(draws["red"], frame, lesions.red_dots)
    for polygon in lesions.red_polygons:
        draws["red"].polygon(frame.px(polygon).ravel().tolist(), fill=255)
    for strand in lesions.red_strands:
        draws["red"].line(frame.px(strand).ravel().tolist(), fill=200, width=max(1, round(frame.radius / 90)))
    _discs(draws["exudate"], frame, lesions.exudates)
    for x, y, radius, opacity in lesions.cotton_wool:
        _discs(draws["cotton"], frame, [(x, y, radius)], fill=round(255 * opacity))
    masks = {name: layer.reduce(SUPERSAMPLE) for name, layer in layers.items()}
    if lesions.cotton_wool:
        masks["cotton"] = masks["cotton"].filter(ImageFilter.GaussianBlur(0.02 * frame.radius))
    return {name: np.asarray(mask, dtype=np.float32) * (1.0 / 255.0) for name, mask in masks.items()}


def _polyline(draw: ImageDraw.ImageDraw, frame: Frame, points: np.ndarray, widths: np.ndarray) -> None:
    """Draw a tapering line as runs of constant integer width."""
    pixels = frame.px(points)
    width = np.maximum(1, np.rint(widths * frame.radius * SUPERSAMPLE)).astype(int)
    cuts = np.flatnonzero(np.diff(width)) + 1
    for start, stop in zip(np.r_[0, cuts], np.r_[cuts, len(width)], strict=True):
        run = pixels[start : min(stop + 1, len(pixels))]
        if len(run) >= 2:
            draw.line(run.ravel().tolist(), fill=255, width=int(width[start]), joint="curve")


def _discs(draw: ImageDraw.ImageDraw, frame: Frame, discs: list[tuple[float, float, float]], fill: int = 255) -> None:
    for x, y, radius in discs:
        cx, cy = frame.px(np.array([x, y]))
        r = radius * frame.radius * SUPERSAMPLE
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)

