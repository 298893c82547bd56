"""Painting a phantom scene: illumination, texture, optic disc, vessels and lesions as soft
masks drawn at ``SUPERSAMPLE`` times the frame size, composed into RGB pixels."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from medaug.adapters.datasets.phantom_scene import SUPERSAMPLE, Anatomy, Frame, Lesions, PhantomDrawing

_VEIN_TINT = np.array([0.66, 0.36, 0.48], dtype=np.float32)
_ARTERY_TINT = np.array([0.80, 0.55, 0.65], dtype=np.float32)
_RED_LESION_TINT = np.array([0.56, 0.22, 0.30], dtype=np.float32)
_EXUDATE_COLOUR = np.array([1.0, 0.90, 0.42], dtype=np.float32)
_COTTON_WOOL_COLOUR = np.array([0.96, 0.86, 0.66], dtype=np.float32)


def render(frame: Frame, anatomy: Anatomy, lesions: Lesions, rng: np.random.Generator) -> PhantomDrawing:
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
