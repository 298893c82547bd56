"""Contact sheets: a PNG grid of sample images, grades (rows) by origin (columns).

Used by ``medaug augment grid`` and by report writers. Columns are the real training images
and the synthetic images of each augmentation set; each cell shows ``per_cell`` thumbnails
chosen deterministically (by a seeded hash of the ids, so adding images elsewhere does not
reshuffle a cell).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, ImageOps

from medaug.adapters.files import write_atomic
from medaug.adapters.png import decode_pil, encode_png
from medaug.application.errors import ConfigError, InputError
from medaug.application.ports import ImageStore
from medaug.domain import FundusImage, Grade, Origin, Split

_BACKGROUND = (255, 255, 255)
_INK = (20, 20, 20)
_FAINT = (150, 150, 150)
_RULE = (210, 210, 210)
_GAP = 4
_PAD = 8


def contact_sheet(
    store: ImageStore, *, per_cell: int = 4, augmentation: str | None = None, thumb: int = 96, seed: int
) -> bytes:
    """A PNG contact sheet of ``store``'s training images.

    Args:
        store: where the images are.
        per_cell: thumbnails per grade and column.
        augmentation: only this augmentation set's synthetic column (default: every set).
        thumb: side of each thumbnail in pixels.
        seed: picks which images of a cell are shown.

    Raises:
        ConfigError: bad sizes, an unknown augmentation set, or no training image at all.
        InputError: a chosen image cannot be read.
    """
    if per_cell < 1 or thumb < 16:
        raise ConfigError(f"contact sheet needs per_cell >= 1 and thumb >= 16 (got {per_cell}, {thumb})")
    columns = _columns(store, augmentation)
    font = ImageFont.load_default(size=max(11, thumb // 7))
    titles = [f"{title} ({len(images)})" for title, images in columns]
    label_width = max(_text_width(font, _row_label(grade)) for grade in Grade) + 2 * _PAD
    strip = per_cell * thumb + (per_cell - 1) * _GAP
    widths = [max(strip, _text_width(font, title)) + 2 * _PAD for title in titles]
    header = _text_height(font) + 2 * _PAD
    row_height = thumb + 2 * _PAD
    sheet = Image.new("RGB", (label_width + sum(widths), header + row_height * len(Grade)), _BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    left = label_width
    for title, (_, images), width in zip(titles, columns, widths, strict=True):
        draw.text((left + _PAD, _PAD), title, fill=_INK, font=font)
        draw.line([(left, 0), (left, sheet.height)], fill=_RULE)
        for grade in Grade:
            top = header + int(grade) * row_height
            chosen = _pick([img for img in images if img.grade == grade], per_cell, seed)
            _fill_cell(sheet, draw, store, chosen, (left + _PAD, top + _PAD), thumb, font)
        left += width
    for grade in Grade:
        top = header + int(grade) * row_height
        draw.line([(0, top), (sheet.width, top)], fill=_RULE)
        draw.text((_PAD, top + _PAD), _row_label(grade), fill=_INK, font=font)
    return encode_png(sheet)


def write_contact_sheet(
    store: ImageStore,
    path: str | os.PathLike[str],
    *,
    per_cell: int = 4,
    augmentation: str | None = None,
    thumb: int = 96,
    seed: int,
) -> Path:
    """Write ``contact_sheet(...)`` to ``path`` atomically (temporary file, then rename).

    Raises:
        ConfigError: as ``contact_sheet``, or ``path`` cannot be written.
        InputError: a chosen image cannot be read.
    """
    data = contact_sheet(store, per_cell=per_cell, augmentation=augmentation, thumb=thumb, seed=seed)
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(target, data)
    except OSError as exc:
        raise ConfigError(f"{target}: cannot write contact sheet ({exc.strerror or exc})") from None
    return target


def _columns(store: ImageStore, augmentation: str | None) -> list[tuple[str, list[FundusImage]]]:
    real = store.list(split=Split.TRAIN, origin=Origin.REAL)
    synthetic = store.list(split=Split.TRAIN, origin=Origin.SYNTHETIC)
    sets = sorted({img.augmentation for img in synthetic if img.augmentation})
    if augmentation is not None:
        if augmentation not in sets:
            known = ", ".join(sets) or "none yet"
            raise ConfigError(f"{store.location}: no augmentation set {augmentation!r}; sets in the store: {known}")
        sets = [augmentation]
    if not real and not sets:
        raise ConfigError(f"{store.location}: no training images to show; ingest a data set first")
    by_set = {name: [img for img in synthetic if img.augmentation == name] for name in sets}
    return [("real", real)] + [(f"synthetic: {name}", by_set[name]) for name in sets]


def _pick(images: list[FundusImage], count: int, seed: int) -> list[FundusImage]:
    def rank(image: FundusImage) -> bytes:
        return hashlib.sha256(f"{seed}/{image.id}".encode()).digest()

    return sorted(images, key=rank)[:count]


def _fill_cell(
    sheet: Image.Image,
    draw: ImageDraw.ImageDraw,
    store: ImageStore,
    images: list[FundusImage],
    origin: tuple[int, int],
    thumb: int,
    font: ImageFont.ImageFont | ImageFont.FreeTypeFont,
) -> None:
    x, y = origin
    if not images:
        draw.text((x, y + thumb // 2 - _text_height(font) // 2), "none", fill=_FAINT, font=font)
    for image in images:
        sheet.paste(_thumbnail(store, image, thumb), (x, y))
        x += thumb + _GAP


def _thumbnail(store: ImageStore, image: FundusImage, thumb: int) -> Image.Image:
    try:
        picture = decode_pil(store.get(image.id))
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise InputError(f"{store.location}: image {image.id} ({image.key}) cannot be read ({exc})") from None
    return ImageOps.pad(picture, (thumb, thumb), method=Image.Resampling.LANCZOS, color=(0, 0, 0))


def _row_label(grade: Grade) -> str:
    return f"{int(grade)} {grade.label}"


def _text_width(font: ImageFont.ImageFont | ImageFont.FreeTypeFont, text: str) -> int:
    left, _, right, _ = font.getbbox(text)
    return int(right - left)


def _text_height(font: ImageFont.ImageFont | ImageFont.FreeTypeFont) -> int:
    return int(font.getbbox("Ag")[3])


