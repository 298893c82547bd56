"""An ordinal head on frozen features: ridge regression of the grade, cut by thresholds tuned for kappa.

Grades are ordered, and quadratic kappa punishes a grade off by two four times as much as one off by
one: a regression of the grade number, cut into five grades at thresholds chosen to maximise
quadratic kappa, is what the strongest DR graders do (the "optimised rounder" of the Kaggle
APTOS/EyePACS solutions). Everything that is chosen is chosen on the training side only:

- the ridge penalty (one of ``config.ordinal_alphas``) and the four thresholds come from
  out-of-fold predictions of inner folds over the training rows (stratified by grade, grouped by
  source image so that a flip view or a synthetic image never sits in another inner fold than its
  source; only real rows are scored);
- the final regression is then refitted on every training row.

Probabilities come from a cumulative-logit link around the thresholds, with the spread of the
out-of-fold residuals as its scale (for log loss and AUC; the grade is the thresholded score).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.special import expit
from sklearn.linear_model import Ridge
from sklearn.model_selection import StratifiedGroupKFold

from medaug.adapters.trainers.network import NUM_GRADES

START = np.arange(NUM_GRADES - 1, dtype=np.float64) + 0.5
"""Thresholds before tuning: halfway between grades."""


def cut(scores: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Grades of regression ``scores`` cut at ascending ``thresholds`` (grade k below threshold k)."""
    return np.searchsorted(np.sort(thresholds), scores, side="right").astype(np.int64)


def kappa(labels: np.ndarray, predicted: np.ndarray) -> float:
    """Quadratic weighted kappa over the five grades (0 when it is undefined: one grade on both sides)."""
    labels, predicted = np.asarray(labels, dtype=np.int64), np.asarray(predicted, dtype=np.int64)
    observed = np.bincount(labels * NUM_GRADES + predicted, minlength=NUM_GRADES**2).reshape(NUM_GRADES, NUM_GRADES)
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / max(len(labels), 1)
    denominator = float((_WEIGHTS * expected).sum())
    return 0.0 if denominator == 0 else 1.0 - float((_WEIGHTS * observed).sum()) / denominator


_WEIGHTS = np.subtract.outer(np.arange(NUM_GRADES), np.arange(NUM_GRADES)).astype(np.float64) ** 2


def tune_thresholds(scores: np.ndarray, labels: np.ndarray, *, candidates: int = 200, rounds: int = 6) -> np.ndarray:
    """Four ascending thresholds maximising quadratic kappa of ``cut(scores)`` against ``labels``.

    Kappa is piecewise constant in the thresholds, so gradient-free simplex searches stall on its
    plateaus; this is a coordinate search instead: each threshold in turn moves to the best of up to
    ``candidates`` cut points (midpoints between neighbouring scores) between its neighbours, until a
    round changes nothing. Ties keep the point nearest the current threshold, so the result is
    deterministic.
    """
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels, dtype=np.int64)
    distinct = np.unique(scores)
    points = (distinct[1:] + distinct[:-1]) / 2 if len(distinct) > 1 else distinct
    if len(points) > candidates:
        points = np.quantile(points, np.linspace(0, 1, candidates))
    thresholds = START.copy()
    best = kappa(labels, cut(scores, thresholds))
    for _ in range(rounds):
        changed = False
        for k in range(len(thresholds)):
            low = thresholds[k - 1] if k > 0 else -np.inf
            high = thresholds[k + 1] if k + 1 < len(thresholds) else np.inf
            for point in sorted(points[(points > low) & (points < high)], key=lambda p: abs(p - thresholds[k])):
                trial = thresholds.copy()
                trial[k] = point
                value = kappa(labels, cut(scores, trial))
                if value > best + 1e-12:
                    best, thresholds, changed = value, trial, True
        if not changed:
            break
    return thresholds


@dataclass(frozen=True)
class OrdinalHead:
    """A fitted ordinal head: standardisation, ridge weights, thresholds and the link's scale."""

    mean: np.ndarray
    std: np.ndarray
    coef: np.ndarray
    intercept: float
    thresholds: np.ndarray
    scale: float
    alpha: float
    inner_kappa: float
    """Quadratic kappa of the tuned thresholds on the inner folds' out-of-fold predictions."""

    def scores(self, features: torch.Tensor | np.ndarray) -> np.ndarray:
        """The regressed grade of each feature row (a float per row)."""
        x = _numpy(features)
        return ((x - self.mean) / self.std) @ self.coef + self.intercept

    def grades(self, features: torch.Tensor | np.ndarray) -> np.ndarray:
        """The predicted grade of each feature row."""
        return cut(self.scores(features), self.thresholds)

    def probabilities(self, features: torch.Tensor | np.ndarray) -> np.ndarray:
        """N x 5 probabilities of a cumulative-logit link: P(grade <= k) = sigmoid((t_k - score) / s)."""
        scores = self.scores(features)
        cumulative = expit((self.thresholds[None, :] - scores[:, None]) / self.scale)
        cumulative = np.concatenate([np.zeros((len(scores), 1)), cumulative, np.ones((len(scores), 1))], axis=1)
        probabilities = np.clip(np.diff(cumulative, axis=1), 1e-6, None)
        return probabilities / probabilities.sum(axis=1, keepdims=True)

    def tensors(self) -> dict[str, torch.Tensor]:
        """Everything needed to predict again, as tensors (for a safetensors checkpoint)."""
        return {
            "mean": torch.as_tensor(self.mean, dtype=torch.float32),
            "std": torch.as_tensor(self.std, dtype=torch.float32),
            "coef": torch.as_tensor(self.coef, dtype=torch.float32),
            "intercept": torch.tensor([self.intercept], dtype=torch.float32),
            "thresholds": torch.as_tensor(self.thresholds, dtype=torch.float32),
            "scale": torch.tensor([self.scale], dtype=torch.float32),
        }


def fit_ordinal_head(
    features: torch.Tensor | np.ndarray,
    labels: Sequence[int] | np.ndarray,
    groups: Sequence[str],
    scored: Sequence[bool] | np.ndarray,
    *,
    alphas: Sequence[float],
    inner_folds: int,
    seed: int,
) -> OrdinalHead:
    """Fit the ordinal head on training rows.

    Args:
        features: N x D training rows (every view of every training image).
        labels: the grade of each row.
        groups: the source image of each row (a real image's own id; a synthetic image's source),
            kept in one inner fold.
        scored: whether a row's out-of-fold prediction counts when tuning (real, unflipped rows).
        alphas: ridge penalties to choose from (on standardised features).
        inner_folds: inner folds for the out-of-fold predictions (fewer where a grade is rarer).
        seed: the inner folds' shuffle.

    Raises:
        ValueError: no rows, or fewer than two grades.
    """
    x = _numpy(features)
    y = np.asarray(labels, dtype=np.int64)
    mask = np.asarray(scored, dtype=bool)
    if len(y) == 0 or len(np.unique(y)) < 2:
        raise ValueError("the ordinal head needs training rows of at least two grades")
    mean = x.mean(axis=0)
    std = np.clip(x.std(axis=0), 1e-6, None)
    z = (x - mean) / std
    out_of_fold = _out_of_fold(z, y, np.asarray(groups), mask, alphas, inner_folds, seed)
    best: tuple[float, float, np.ndarray, np.ndarray] | None = None
    for alpha, predictions in out_of_fold.items():
        thresholds = tune_thresholds(predictions[mask], y[mask])
        score = kappa(y[mask], cut(predictions[mask], thresholds))
        if best is None or score > best[0] + 1e-9:
            best = (score, alpha, thresholds, predictions)
    assert best is not None
    score, alpha, thresholds, predictions = best
    residual = float(np.std(predictions[mask] - y[mask])) if mask.any() else 1.0
    model = Ridge(alpha=alpha).fit(z, y.astype(np.float64))
    return OrdinalHead(
        mean=mean, std=std, coef=model.coef_.astype(np.float64), intercept=float(model.intercept_),
        thresholds=thresholds, scale=max(residual * np.sqrt(3.0) / np.pi, 0.05), alpha=alpha, inner_kappa=score,
    )  # fmt: skip


def _out_of_fold(
    z: np.ndarray, y: np.ndarray, groups: np.ndarray, mask: np.ndarray, alphas: Sequence[float], folds: int, seed: int
) -> dict[float, np.ndarray]:
    """Out-of-fold regressed grades of every row, per penalty."""
    counts = np.bincount(y[mask], minlength=NUM_GRADES) if mask.any() else np.bincount(y)
    splits = int(min(folds, max(2, counts[counts > 0].min())))
    splitter = StratifiedGroupKFold(n_splits=splits, shuffle=True, random_state=seed)
    predictions = {float(a): np.zeros(len(y)) for a in alphas}
    for train, held in splitter.split(z, y, groups):
        for alpha in alphas:
            model = Ridge(alpha=float(alpha)).fit(z[train], y[train].astype(np.float64))
            predictions[float(alpha)][held] = model.predict(z[held])
    return predictions


def _numpy(values: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        return values.detach().cpu().double().numpy()
    return np.asarray(values, dtype=np.float64)
