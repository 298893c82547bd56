"""Pixels in and out of the images API: uploads within its limits, results at the working size."""

from __future__ import annotations

import base64
import binascii
import io

from PIL import Image, UnidentifiedImageError

from medaug.adapters.png import decode_pil, encode_png
from medaug.application.errors import GeneratorError, InputError

EDIT_MAX_BYTES = 50 * 1024 * 1024 - 1
"""GPT Image edit inputs must be smaller than 50 MB."""

VARIATION_MAX_BYTES = 4 * 1024 * 1024 - 1
"""Legacy variation inputs must be square PNGs smaller than 4 MB."""


def prepare_upload(png: bytes, name: str, *, max_side: int, max_bytes: int) -> bytes:
    """The source image as a square RGB PNG of at most ``max_side`` pixels and ``max_bytes``.

    Raises:
        InputError: the source cannot be decoded (naming ``name``).
    """
    try:
        image = _square(decode_pil(png))
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise InputError(f"{name}: source image cannot be decoded for upload ({exc})") from None
    side = min(image.width, max_side)
    while True:
        if image.width != side:
            image = image.resize((side, side), Image.Resampling.LANCZOS)
        data = encode_png(image)
        if len(data) <= max_bytes or side <= 16:
            return data
        side //= 2


def decode_b64_image(b64: str, where: str) -> bytes:
    """The API's base64 image as the bytes it sent (checked to be an image, not re-encoded).

    Raises:
        GeneratorError: the data is not a decodable image (naming ``where``).
    """
    try:
        raw = base64.b64decode(b64, validate=True)
        with Image.open(io.BytesIO(raw)) as image:
            image.verify()
        return raw
    except (binascii.Error, UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise GeneratorError(f"{where}: the API returned an undecodable image ({exc})") from None


def to_working_size(png: bytes, size: int) -> bytes:
    """A centre-cropped square PNG of ``size`` x ``size`` pixels."""
    image = _square(decode_pil(png))
    if image.width != size:
        image = image.resize((size, size), Image.Resampling.LANCZOS)
    return encode_png(image)


def _square(image: Image.Image) -> Image.Image:
    if image.width == image.height:
        return image
    side = min(image.width, image.height)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    return image.crop((left, top, left + side, top + side))
