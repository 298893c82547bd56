"""Memorisation: each image's nearest real training image, by pixels and by features.

Every fundus photograph shares a bright round field on black, vignetting and the orange of the
retina, so raw pixel correlation between two different patients is already about 0.99. The pixel
correlation here is taken on the fine structure instead (vessels, lesions, the optic disc's edge):
grayscale, minus a Gaussian blur, inside the field all training images share. On IDRiD at 64 px it
is at most about 0.64 between different patients and above 0.87 for flipped or brightened copies.
Training images are also compared mirrored, since a mirrored copy leaks the same patient. SSIM is
then computed with the few training images closest by that correlation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torchmetrics.functional.image import structural_similarity_index_measure
from torchvision.transforms.v2.functional import gaussian_blur

from medaug.domain import Grade
from medaug.domain.quality import NearestReal, QualityThresholds, SimilaritySummary

TRANSFORMS: tuple[str, ...] = ("identity", "hflip", "vflip", "rot180")
"""How training images are mirrored when ``flip_invariant`` (in this order)."""

_FIELD_LEVEL = 0.08
"""Mean gray level above which a pixel belongs to the field the training images share."""
_MIN_FIELD_SHARE = 0.1


def mirrored(images: torch.Tensor, transform: str) -> torch.Tensor:
    """``images`` (...xHxW) mirrored by ``transform`` (one of ``TRANSFORMS``)."""
    if transform == "hflip":
        return images.flip(-1)
    if transform == "vflip":
        return images.flip(-2)
    if transform == "rot180":
        return images.flip(-2, -1)
    return images


@dataclass(frozen=True)
class Match:
    """One image's nearest training image by pixels (index into the bank's ids) and its SSIM."""

    index: int
    transform: str
    correlation: float
    ssim: float


class SimilarityBank:
    """Real training images prepared for nearest-neighbour search by fine-structure correlation.

    Args:
        images: the training images, uint8 Nx3xSxS.
        sigma: the blur (pixels) removed to keep the fine structure.
        flip_invariant: also match mirrored training images.
    """

    def __init__(self, images: torch.Tensor, *, sigma: float, flip_invariant: bool) -> None:
        self.images = images.float().div(255.0)
        self.sigma = sigma
        self.transforms = TRANSFORMS if flip_invariant else TRANSFORMS[:1]
        self.field = _shared_field(self.images)
        self.structure = torch.cat([self.structure_of(mirrored(self.images, t)) for t in self.transforms])

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def structure_of(self, images: torch.Tensor) -> torch.Tensor:
        """Unit-norm, zero-mean fine-structure vectors of float images Nx3xSxS in [0, 1]."""
        gray = images.mean(dim=1, keepdim=True)
        size = int(4 * self.sigma) * 2 + 1
        detail = (gray - gaussian_blur(gray, [size, size], [self.sigma, self.sigma])) * self.field
        vectors = detail.flatten(1)
        vectors = vectors - vectors.mean(dim=1, keepdim=True)
        return nn.functional.normalize(vectors, dim=1)

    def nearest(self, images: torch.Tensor, *, candidates: int, batch: int = 256) -> list[Match]:
        """Each uint8 image's training image of highest fine-structure correlation, and the highest
        SSIM among its ``candidates`` best-correlated training images."""
        matches: list[Match] = []
        for start in range(0, images.shape[0], batch):
            chunk = images[start : start + batch].float().div(255.0)
            correlations = self.structure_of(chunk) @ self.structure.T
            top = correlations.topk(min(candidates, correlations.shape[1]), dim=1)
            ssim = self._ssim(chunk, top.indices)
            for row in range(chunk.shape[0]):
                best = int(top.indices[row, 0])
                matches.append(
                    Match(
                        index=best % len(self),
                        transform=self.transforms[best // len(self)],
                        correlation=float(top.values[row, 0]),
                        ssim=float(ssim[row].max()),
                    )
                )
        return matches

    def _ssim(self, images: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        count = indices.shape[1]
        targets = torch.stack(
            [mirrored(self.images[int(i) % len(self)], self.transforms[int(i) // len(self)]) for i in indices.flatten()]
        )
        preds = images.repeat_interleave(count, dim=0)
        values = structural_similarity_index_measure(preds, targets, data_range=1.0, reduction="none")
        return values.view(-1, count)


def _shared_field(images: torch.Tensor) -> torch.Tensor:
    """The pixels bright in the mean training image (the round field), shrunk by 2 pixels so its
    edge does not count as structure; the whole image when that field is too small to use."""
    mean = images.mean(dim=(0, 1))
    field = (mean > _FIELD_LEVEL).float()[None, None]
    field = -nn.functional.max_pool2d(-field, 5, stride=1, padding=2)
    if float(field.mean()) < _MIN_FIELD_SHARE:
        return torch.ones_like(field)
    return field


def nearest_by_features(features: torch.Tensor, real: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's highest cosine with a row of ``real`` and that row's index.

    Both sides are centred on ``real``'s mean first: what every fundus image shares would
    otherwise put every cosine near 1.
    """
    centre = real.double().mean(dim=0, keepdim=True)
    unit_real = nn.functional.normalize(real.double() - centre, dim=1)
    cosines = nn.functional.normalize(features.double() - centre, dim=1) @ unit_real.T
    best = cosines.max(dim=1)
    return best.values.float(), best.indices


def nearest_records(
    ids: Sequence[str],
    grades: Sequence[Grade],
    matches: Sequence[Match],
    cosines: torch.Tensor,
    cosine_indices: torch.Tensor,
    real_ids: Sequence[str],
    thresholds: QualityThresholds,
) -> list[NearestReal]:
    """One ``NearestReal`` per image, flagged by ``thresholds``, most similar first."""
    records = [
        NearestReal(
            image_id=image_id,
            grade=grade,
            pixel_id=real_ids[match.index],
            pixel_transform=match.transform,
            pixel_correlation=round(match.correlation, 6),
            ssim=round(match.ssim, 6),
            feature_id=real_ids[int(cosine_indices[i])],
            feature_cosine=round(float(cosines[i]), 6),
            flagged=is_near_copy(match.correlation, match.ssim, float(cosines[i]), thresholds),
        )
        for i, (image_id, grade, match) in enumerate(zip(ids, grades, matches, strict=True))
    ]
    return sorted(records, key=lambda r: (not r.flagged, -r.pixel_correlation, -r.ssim, r.image_id))


def is_near_copy(correlation: float, ssim: float, cosine: float, thresholds: QualityThresholds) -> bool:
    """Whether similarities this high mean a near-copy of a training image."""
    if correlation >= thresholds.pixel_correlation or ssim >= thresholds.ssim:
        return True
    return thresholds.feature_cosine is not None and cosine >= thresholds.feature_cosine


def summarise(records: Sequence[NearestReal]) -> SimilaritySummary:
    """Median, 95th percentile and maximum of each similarity, and the flagged count."""
    return SimilaritySummary(
        n=len(records),
        flagged=sum(r.flagged for r in records),
        correlation=_spread([r.pixel_correlation for r in records]),
        ssim=_spread([r.ssim for r in records]),
        cosine=_spread([r.feature_cosine for r in records]),
    )


def _spread(values: Sequence[float]) -> tuple[float, float, float]:
    if not values:
        return (0.0, 0.0, 0.0)
    tensor = torch.tensor(values, dtype=torch.float64)
    median, p95 = torch.quantile(tensor, torch.tensor([0.5, 0.95], dtype=torch.float64)).tolist()
    return (round(median, 6), round(p95, 6), round(float(tensor.max()), 6))
