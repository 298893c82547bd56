"""Statistics for resampled evaluations: the corrected resampled t-test and bootstrap intervals
of agreement metrics over images (vectorised: thousands of resamples of a few hundred images)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

from medaug.domain.kfold import CorrectedTTest

GRADES = 5
_QUADRATIC = (np.subtract.outer(np.arange(GRADES), np.arange(GRADES)) ** 2) / (GRADES - 1) ** 2


def corrected_resampled_t_test(
    differences: Sequence[float], *, n_train: float, n_test: float, confidence: float = 0.95
) -> CorrectedTTest:
    """Nadeau and Bengio's (2003) corrected resampled t-test of J paired differences.

    ``t = mean / sqrt((1/J + n_test/n_train) * s^2)`` with ``s^2`` the sample variance of the
    differences and J - 1 degrees of freedom; the interval uses the same corrected standard error.
    With J = 1 or equal differences there is no variance: t is 0 (or infinite for a non-zero
    mean), p is 1 (or 0) and the interval has zero width.

    Raises:
        ValueError: no differences, or non-positive ``n_train`` / ``n_test``.
    """
    values = np.asarray(differences, dtype=np.float64)
    if values.size == 0:
        raise ValueError("no paired differences to test")
    if n_train <= 0 or n_test <= 0:
        raise ValueError(f"n_train ({n_train}) and n_test ({n_test}) must be positive")
    j = int(values.size)
    mean = float(values.mean())
    # Equal differences (up to rounding) have no variance, not a tiny one that makes t explode.
    equal = bool(np.allclose(values, values[0], rtol=0.0, atol=1e-12))
    variance = 0.0 if j == 1 or equal else float(values.var(ddof=1))
    scale = math.sqrt((1.0 / j + n_test / n_train) * variance)
    df = max(j - 1, 1)
    if scale == 0.0:
        t = 0.0 if mean == 0.0 else math.copysign(math.inf, mean)
        p = 1.0 if mean == 0.0 else 0.0
        ci = (mean, mean)
    else:
        t = mean / scale
        p = float(2 * stats.t.sf(abs(t), df))
        half = float(stats.t.ppf(0.5 + confidence / 2, df)) * scale
        ci = (mean - half, mean + half)
    return CorrectedTTest(
        n=j, mean=mean, std=math.sqrt(variance), t=t, df=df, p_value=p, ci=ci, n_train=n_train, n_test=n_test
    )


def resampled_kappa(labels: np.ndarray, predicted: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Quadratic weighted kappa of each resample: ``indices`` is (resamples x n) into the images.

    Matches ``medaug.domain.metrics.quadratic_weighted_kappa`` (1 for perfect agreement, 0 when
    no disagreement is expected).
    """
    count, n = indices.shape
    cells = labels[indices] * GRADES + predicted[indices] + (np.arange(count) * GRADES * GRADES)[:, None]
    observed = np.bincount(cells.ravel(), minlength=count * GRADES * GRADES).reshape(count, GRADES, GRADES)
    observed = observed.astype(np.float64)
    rows, cols = observed.sum(axis=2), observed.sum(axis=1)
    expected = rows[:, :, None] * cols[:, None, :] / n
    disagreement = (observed * _QUADRATIC).sum(axis=(1, 2))
    chance = (expected * _QUADRATIC).sum(axis=(1, 2))
    perfect = disagreement == 0
    with np.errstate(divide="ignore", invalid="ignore"):
        kappa = np.where(chance > 0, 1.0 - disagreement / chance, 0.0)
    return np.where(perfect, 1.0, kappa)


def resampled_metric(metric: str, labels: np.ndarray, predicted: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """``accuracy`` or ``quadratic_kappa`` of one run on each resample of the images."""
    if metric == "accuracy":
        return (labels == predicted)[indices].mean(axis=1)
    if metric == "quadratic_kappa":
        return resampled_kappa(labels, predicted, indices)
    raise ValueError(f"no resampled form of metric {metric!r}; use accuracy or quadratic_kappa")
