"""The mode-collapse signal: how varied a grade's samples are, next to how varied its real images are.

A collapsing GAN makes (nearly) the same image whatever the latent. For each grade the signal
is the mean pairwise distance between samples of that grade, divided by the same measure over
the real training images of that grade: about 1 when the samples vary as much as the photographs,
near 0 when they are all alike. Distances are root-mean-square pixel differences in [-1, 1] at
the training resolution (``torch.pdist``); no pretrained feature network is needed, so nothing is
downloaded and the figure is comparable between runs of the same resolution.
"""

from __future__ import annotations

import math

import torch
from pydantic import BaseModel, ConfigDict

from medaug.domain.grades import ALL_GRADES


class GradeDiversity(BaseModel):
    """Diversity of one grade's samples against its real images.

    Attributes:
        real: mean pairwise RMS distance between the grade's real training images.
        generated: the same between samples of the grade.
        ratio: ``generated / real`` (None when the grade has fewer than two real images).
    """

    model_config = ConfigDict(frozen=True)

    real: float | None
    generated: float
    ratio: float | None


class DiversityReport(BaseModel):
    """The signal at one checkpoint: per grade, the worst ratio and the grades that look collapsed."""

    model_config = ConfigDict(frozen=True)

    step: int
    grades: dict[int, GradeDiversity]
    min_ratio: float | None
    collapsed: tuple[int, ...]


def mean_pairwise_distance(images: torch.Tensor) -> float:
    """Mean RMS distance over all pairs of ``N x C x H x W`` images (0 for fewer than two)."""
    if len(images) < 2:
        return 0.0
    flat = images.detach().float().flatten(1).cpu()
    return float(torch.pdist(flat).mean() / math.sqrt(flat.shape[1]))


def real_diversity(images: torch.Tensor, grades: torch.Tensor, limit: int = 256) -> dict[int, float | None]:
    """Mean pairwise distance of the real images of each grade (the first ``limit`` of each)."""
    found: dict[int, float | None] = {}
    for grade in ALL_GRADES:
        chosen = images[grades == int(grade)][:limit]
        found[int(grade)] = mean_pairwise_distance(chosen) if len(chosen) >= 2 else None
    return found


def diversity_report(
    step: int, samples: dict[int, torch.Tensor], real: dict[int, float | None], threshold: float
) -> DiversityReport:
    """Compare each grade's ``samples`` with its ``real`` diversity; flag ratios below ``threshold``."""
    grades: dict[int, GradeDiversity] = {}
    for grade, images in samples.items():
        generated, reference = mean_pairwise_distance(images), real.get(grade)
        ratio = generated / reference if reference else None
        grades[grade] = GradeDiversity(
            real=_round(reference), generated=round(generated, 5), ratio=_round(ratio)
        )
    ratios = [g.ratio for g in grades.values() if g.ratio is not None]
    collapsed = tuple(grade for grade, g in grades.items() if g.ratio is not None and g.ratio < threshold)
    return DiversityReport(step=step, grades=grades, min_ratio=min(ratios) if ratios else None, collapsed=collapsed)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 5)
