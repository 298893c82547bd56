"""Distribution metrics over features computed once: FID and KID (torchmetrics), PRDC, diversity.

Features are computed once per image by the feature space (``features.py``) and handed to
torchmetrics' ``FrechetInceptionDistance`` / ``KernelInceptionDistance`` through their custom
feature-extractor interface (``Precomputed`` passes them through), so images are never run
through a network twice and every per-grade subset reuses them.
"""

from __future__ import annotations

import math
import warnings

import torch
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from medaug.domain.quality import DistributionScores


class Precomputed(nn.Module):
    """A torchmetrics custom feature extractor whose "images" are already features (NxD).

    Args:
        width: the feature dimension D.
    """

    def __init__(self, width: int) -> None:
        super().__init__()
        self.num_features = width

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """The features unchanged."""
        return features


def fid(real: torch.Tensor, fake: torch.Tensor) -> float | None:
    """Fréchet distance between two feature sets (NxD, MxD); None with fewer than 2 on a side."""
    if real.shape[0] < 2 or fake.shape[0] < 2:
        return None
    metric = FrechetInceptionDistance(feature=Precomputed(real.shape[1]), reset_real_features=True)
    metric.update(real.double(), real=True)
    metric.update(fake.double(), real=False)
    value = float(metric.compute())
    return max(value, 0.0) if math.isfinite(value) else None


def kid(real: torch.Tensor, fake: torch.Tensor, *, subset_size: int, subsets: int, seed: int) -> tuple[float, float, int] | None:
    """Kernel distance (mean, std over ``subsets`` random subsets) and the subset size used.

    The subset size is fitted down to the smaller set, so tiny per-grade sets still get a figure;
    None with fewer than 2 images on a side. Subsets are drawn from ``seed``.
    """
    size = min(subset_size, real.shape[0], fake.shape[0])
    if size < 2:
        return None
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*will save all extracted features.*")
        metric = KernelInceptionDistance(feature=Precomputed(real.shape[1]), subset_size=size, subsets=subsets)
    metric.update(real.double(), real=True)
    metric.update(fake.double(), real=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mean, std = metric.compute()
    return float(mean), float(std), size


def kth_neighbour_distances(features: torch.Tensor, k: int) -> torch.Tensor:
    """Each point's distance to its ``k``-th nearest other point (NxD -> N)."""
    distances = torch.cdist(features, features)
    return distances.topk(k + 1, dim=1, largest=False).values[:, k]


def prdc(real: torch.Tensor, fake: torch.Tensor, k: int) -> tuple[float, float, float, float] | None:
    """Precision, recall, density and coverage (Naeem et al., ICML 2020) with ``k`` neighbours.

    A point is inside a set's manifold when it lies within the k-NN radius of one of its points.
    ``k`` is fitted down to sets with at most ``k`` points; None when a set has fewer than 2.

    Returns:
        ``(precision, recall, density, coverage)``.
    """
    k = min(k, real.shape[0] - 1, fake.shape[0] - 1)
    if k < 1:
        return None
    real, fake = real.double(), fake.double()
    real_radii = kth_neighbour_distances(real, k)
    fake_radii = kth_neighbour_distances(fake, k)
    between = torch.cdist(real, fake)
    inside_real = between < real_radii[:, None]
    precision = inside_real.any(dim=0).double().mean()
    recall = (between < fake_radii[None, :]).any(dim=1).double().mean()
    density = inside_real.sum(dim=0).double().mean() / k
    coverage = (between.min(dim=1).values < real_radii).double().mean()
    return float(precision), float(recall), float(density), float(coverage)


def diversity(features: torch.Tensor) -> float | None:
    """Mean pairwise cosine distance between the rows of ``features``; None below 2 rows."""
    n = features.shape[0]
    if n < 2:
        return None
    unit = nn.functional.normalize(features.double(), dim=1)
    total = unit.sum(dim=0)
    mean_cosine = (total.dot(total) - unit.square().sum()) / (n * (n - 1))
    return float(1.0 - mean_cosine)


def distribution_scores(
    real: torch.Tensor, images: torch.Tensor, *, kid_subset_size: int, kid_subsets: int, k: int, seed: int
) -> DistributionScores:
    """Every distribution metric of ``images`` against ``real`` (features, NxD and MxD)."""
    kernel = kid(real, images, subset_size=kid_subset_size, subsets=kid_subsets, seed=seed)
    manifold = prdc(real, images, k)
    precision, recall, density, coverage = manifold if manifold else (None, None, None, None)
    return DistributionScores(
        n_real=int(real.shape[0]),
        n_images=int(images.shape[0]),
        fid=fid(real, images),
        kid_mean=kernel[0] if kernel else None,
        kid_std=kernel[1] if kernel else None,
        kid_subset_size=kernel[2] if kernel else None,
        precision=precision,
        recall=recall,
        density=density,
        coverage=coverage,
        diversity=diversity(images),
    )
