"""PNG <-> array conversions shared by every pixel-handling adapter."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def encode_png(pixels: np.ndarray | Image.Image) -> bytes:
    """Encode an HxWx3 uint8 array (or a PIL image) as an RGB PNG without metadata."""
    image = pixels if isinstance(pixels, Image.Image) else Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8))
    if image.mode != "RGB":
        image = image.convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def decode_png(data: bytes) -> np.ndarray:
    """Decode PNG (or any Pillow-readable) bytes to an HxWx3 uint8 array."""
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()


def decode_pil(data: bytes) -> Image.Image:
    """Decode bytes to an RGB PIL image (fully loaded)."""
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB")
