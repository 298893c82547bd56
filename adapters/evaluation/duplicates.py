"""Duplicate real images: identical decoded pixels, or near-identical downsampled pixels.

Stored PNGs of one photograph can differ in bytes (metadata), so exact copies are found by a
sha256 of the decoded pixels; re-encoded or re-sized copies by the distance of small thumbnails.
"""

from __future__ import annotations

import hashlib
import io
from collections import defaultdict
from collections.abc import Sequence

import numpy as np
from PIL import Image

from medaug.application.ports import ImageStore
from medaug.domain import FundusImage
from medaug.domain.kfold import DuplicateGroup

THUMBNAIL = 32
"""Side of the thumbnails compared for near copies (re-encodings and resizings of one photo
agree at this scale; two photographs of one eye, taken apart, do not)."""

NEAR_DISTANCE = 0.005
"""Root-mean-square pixel difference (0-1 scale) below which two thumbnails are near copies.
On IDRiD at 128 px the near copies lie below 0.0003 and the closest distinct photographs at
0.022 and above."""


class PixelDuplicateFinder:
    """DuplicateFinder: sha256 of the decoded RGB pixels (exact copies) and RMS distance of
    32x32 RGB thumbnails (near copies).

    Args:
        near_distance: thumbnails closer than this are near copies (0 finds exact copies only).
    """

    def __init__(self, near_distance: float = NEAR_DISTANCE) -> None:
        self.near_distance = near_distance

    def find(self, store: ImageStore, images: Sequence[FundusImage]) -> list[DuplicateGroup]:
        """Groups of copies among ``images`` (see ``DuplicateFinder``)."""
        ordered = sorted(images, key=lambda image: image.id)
        if len(ordered) < 2:
            return []
        pixels = [_decode(store.get(image.id)) for image in ordered]
        parent = list(range(len(ordered)))
        kind: dict[int, str] = {}
        distance: dict[int, float] = defaultdict(float)

        def root(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        def join(a: int, b: int, how: str, d: float) -> None:
            ra, rb = root(a), root(b)
            if ra == rb:  # already grouped (an exact copy is also within the near distance)
                return
            parent[max(ra, rb)] = min(ra, rb)
            r = root(a)
            kind[r] = "near" if "near" in (how, kind.get(ra), kind.get(rb)) else "exact"
            distance[r] = max(distance[ra], distance[rb], d)

        first: dict[str, int] = {}
        for index, image in enumerate(pixels):
            digest = hashlib.sha256(f"{image.size}".encode() + image.tobytes()).hexdigest()
            if digest in first:
                join(first[digest], index, "exact", 0.0)
            else:
                first[digest] = index
        if self.near_distance > 0:
            for a, b, d in _near_pairs(thumbnails(pixels), self.near_distance):
                join(a, b, "near", d)
        members: dict[int, list[int]] = defaultdict(list)
        for index in range(len(ordered)):
            members[root(index)].append(index)
        groups = [
            DuplicateGroup(
                image_ids=tuple(ordered[i].id for i in indices),
                grades=tuple(ordered[i].grade for i in indices),
                kind=kind.get(r, "exact"),  # type: ignore[arg-type]
                distance=round(distance[r], 6),
            )
            for r, indices in members.items()
            if len(indices) > 1
        ]
        return sorted(groups, key=lambda group: group.image_ids)


def _decode(blob: bytes) -> Image.Image:
    with Image.open(io.BytesIO(blob)) as image:
        return image.convert("RGB")


def thumbnails(images: Sequence[Image.Image]) -> np.ndarray:
    """N x (32*32*3) float thumbnails in [0, 1]."""
    out = np.empty((len(images), THUMBNAIL * THUMBNAIL * 3), dtype=np.float32)
    for index, image in enumerate(images):
        small = image.resize((THUMBNAIL, THUMBNAIL), Image.Resampling.BOX)
        out[index] = np.asarray(small, dtype=np.float32).ravel() / 255.0
    return out


def _near_pairs(thumbs: np.ndarray, limit: float) -> list[tuple[int, int, float]]:
    """Index pairs (a < b) whose thumbnails' RMS difference is below ``limit``."""
    dims = thumbs.shape[1]
    squares = (thumbs**2).sum(axis=1)
    pairs = []
    for start in range(0, len(thumbs), 256):
        block = thumbs[start : start + 256]
        sq = np.maximum(squares[start : start + 256, None] + squares[None, :] - 2 * block @ thumbs.T, 0.0)
        rms = np.sqrt(sq / dims)
        for a, b in zip(*np.nonzero(rms < limit), strict=True):
            a = int(a) + start
            if a < int(b):
                pairs.append((a, int(b), float(rms[a - start, b])))
    return pairs
