"""Procedural fundus photographs with diabetic-retinopathy lesions of a chosen grade.

Geometry is drawn in units of the field radius (``R``) so an image looks the same at any pixel
size; only sub-pixel floors (lesions never thinner than about one pixel) depend on the size.
Three independent random streams per image keep anatomy, lesions and texture apart, so
the same eye can be drawn at every grade (what the tests use to measure lesion load).
This module builds the scene (``phantom_scene``); ``phantom_render`` paints it.
"""

from __future__ import annotations

import numpy as np

from medaug.adapters.datasets.phantom_render import render
from medaug.adapters.datasets.phantom_scene import Anatomy, Frame, Lesions, PhantomDrawing, Vessel

_ANATOMY, _LESIONS, _TEXTURE = 0, 1, 2
_STEP = 0.02  # vessel random-walk step, in field radii
_FOVEA_CLEAR = 0.1  # vessels stop at the foveal avascular zone (field radii)


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
    return render(frame, anatomy, lesions, rngs[_TEXTURE])


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
