"""An ordinal head on frozen features: the expected grade of a softmax regression, cut at thresholds
tuned for quadratic kappa.

Grades are ordered, and quadratic kappa punishes a grade off by two four times as much as one off by
one: a continuous grade score cut into five grades at thresholds chosen to maximise quadratic kappa
is what the strongest DR graders do (the "optimised rounder" of the Kaggle APTOS/EyePACS
solutions). The score here is the expected grade (sum of k * P(k)) of an L2-penalised multinomial
logistic regression on standardised features (scikit-learn, L-BFGS). Measured on IDRiD (frozen
lite0 at 384 px from 512 px, real images, outer 5-fold): argmax of the same regression gave
kappa 0.777 (65.3 % accuracy), a ridge regression of the grade with tuned thresholds 0.769, the
expected grade cut halfway 0.795 and cut at tuned thresholds 0.806-0.817 (accuracy 53-58 %: the
thresholds trade accuracy for kappa).

Kappa-optimal thresholds trade accuracy for kappa; ``objective`` tunes them (and chooses the penalty
and class weighting) for ``kappa``, ``accuracy`` or their sum ``accuracy+kappa`` instead.

Everything that is chosen is chosen on the training side only: the penalty (one of ``cs``), the
class weighting (one of ``class_weights``: ``none`` or ``balanced``, scikit-learn's) and the
four thresholds come from out-of-fold predictions of inner folds over the training rows
(stratified by grade, grouped by source image so that a flip view or a synthetic image never sits in
another inner fold than its source; only real rows are scored); the final regression is then
refitted on every training row.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold
from threadpoolctl import threadpool_limits

from medaug.adapters.trainers.network import NUM_GRADES

START = np.arange(NUM_GRADES - 1, dtype=np.float64) + 0.5
"""Thresholds before tuning: halfway between grades."""
GRADES = np.arange(NUM_GRADES, dtype=np.float64)


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

Objective = Literal["kappa", "accuracy", "accuracy+kappa"]
OBJECTIVES: tuple[str, ...] = ("kappa", "accuracy", "accuracy+kappa")
ClassWeight = Literal["none", "balanced"]


def objective_value(labels: np.ndarray, predicted: np.ndarray, objective: Objective = "kappa") -> float:
    """What the thresholds, penalty and class weighting are chosen for: quadratic kappa, accuracy
    (a fraction) or their sum (both goals weighed the same).

    Raises:
        ValueError: an unknown objective (naming the valid ones).
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"ordinal objective {objective!r}: valid values are {', '.join(OBJECTIVES)}")
    value = 0.0
    if objective in ("kappa", "accuracy+kappa"):
        value += kappa(labels, predicted)
    if objective in ("accuracy", "accuracy+kappa"):
        value += float(np.mean(np.asarray(labels) == np.asarray(predicted))) if len(labels) else 0.0
    return value


def tune_thresholds(
    scores: np.ndarray, labels: np.ndarray, *, objective: Objective = "kappa", candidates: int = 200, rounds: int = 6
) -> np.ndarray:
    """Four ascending thresholds maximising ``objective`` (quadratic kappa by default) of
    ``cut(scores)`` against ``labels``.

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
    objective_value(labels[:0], labels[:0], objective)  # an unknown objective fails before any work
    thresholds = START.copy()
    best = objective_value(labels, cut(scores, thresholds), objective)
    for _ in range(rounds):
        changed = False
        for k in range(len(thresholds)):
            low = thresholds[k - 1] if k > 0 else -np.inf
            high = thresholds[k + 1] if k + 1 < len(thresholds) else np.inf
            for point in sorted(points[(points > low) & (points < high)], key=lambda p: abs(p - thresholds[k])):
                trial = thresholds.copy()
                trial[k] = point
                value = objective_value(labels, cut(scores, trial), objective)
                if value > best + 1e-12:
                    best, thresholds, changed = value, trial, True
        if not changed:
            break
    return thresholds


@dataclass(frozen=True)
class OrdinalHead:
    """A fitted ordinal head: standardisation, the softmax regression and the tuned thresholds."""

    mean: np.ndarray
    std: np.ndarray
    model: LogisticRegression
    thresholds: np.ndarray
    c: float
    inner_kappa: float
    """Quadratic kappa of the tuned thresholds on the inner folds' out-of-fold predictions."""
    class_weight: ClassWeight = "none"
    inner_accuracy: float = 0.0
    """Accuracy of the tuned thresholds on the inner folds' out-of-fold predictions."""

    def probabilities(self, features: torch.Tensor | np.ndarray) -> np.ndarray:
        """N x 5 probabilities of the softmax regression (grades absent from training get 0)."""
        return _probabilities(self.model, (_numpy(features) - self.mean) / self.std)

    def scores(self, features: torch.Tensor | np.ndarray) -> np.ndarray:
        """The expected grade of each feature row."""
        return self.probabilities(features) @ GRADES

    def grades(self, features: torch.Tensor | np.ndarray) -> np.ndarray:
        """The predicted grade of each feature row: its expected grade cut at the thresholds."""
        return cut(self.scores(features), self.thresholds)

    def tensors(self) -> dict[str, torch.Tensor]:
        """Everything needed to predict again, as tensors (for a safetensors checkpoint)."""
        arrays = {"mean": self.mean, "std": self.std, "coef": self.model.coef_, "intercept": self.model.intercept_,
                  "thresholds": self.thresholds}
        tensors = {name: torch.tensor(np.ascontiguousarray(value), dtype=torch.float32) for name, value in arrays.items()}
        return tensors | {"classes": torch.tensor(np.asarray(self.model.classes_), dtype=torch.int64)}


def fit_ordinal_head(
    features: torch.Tensor | np.ndarray,
    labels: Sequence[int] | np.ndarray,
    groups: Sequence[str],
    scored: Sequence[bool] | np.ndarray,
    *,
    cs: Sequence[float],
    inner_folds: int,
    seed: int,
    objective: Objective = "kappa",
    class_weights: Sequence[ClassWeight] = ("none",),
) -> OrdinalHead:
    """Fit the ordinal head on training rows.

    Args:
        features: N x D training rows (every view of every training image).
        labels: the grade of each row.
        groups: the source image of each row (a real image's own id; a synthetic image's source),
            kept in one inner fold.
        scored: whether a row's out-of-fold prediction counts when tuning (real, unflipped rows).
        cs: inverse L2 penalties (scikit-learn's ``C``) to choose from on the inner folds.
        inner_folds: inner folds for the out-of-fold predictions (fewer where a grade is rarer).
        seed: the inner folds' shuffle.
        objective: what the thresholds, the penalty and the class weighting are chosen for on the
            inner folds: ``kappa``, ``accuracy`` or ``accuracy+kappa``.
        class_weights: class weightings to choose from: ``none`` or ``balanced`` (each grade
            weighed by the inverse of its frequency).

    Raises:
        ValueError: no rows, fewer than two grades, or an unknown objective or class weighting.
    """
    objective_value(np.zeros(0, np.int64), np.zeros(0, np.int64), objective)
    if not class_weights or any(w not in ("none", "balanced") for w in class_weights):
        raise ValueError(f"ordinal class weights {list(class_weights)}: valid values are none, balanced")
    x = _numpy(features)
    y = np.asarray(labels, dtype=np.int64)
    mask = np.asarray(scored, dtype=bool)
    if len(y) == 0 or len(np.unique(y)) < 2:
        raise ValueError("the ordinal head needs training rows of at least two grades")
    mean = x.mean(axis=0)
    std = np.clip(x.std(axis=0), 1e-6, None)
    z = (x - mean) / std
    best: tuple[float, tuple[float, ClassWeight], np.ndarray, np.ndarray] | None = None
    settings = [(float(c), w) for w in class_weights for c in cs]
    for setting, predictions in _out_of_fold(z, y, np.asarray(groups), mask, settings, inner_folds, seed).items():
        thresholds = tune_thresholds(predictions[mask], y[mask], objective=objective)
        inner_grades = cut(predictions[mask], thresholds)
        score = objective_value(y[mask], inner_grades, objective)
        if best is None or score > best[0] + 1e-9:
            best = (score, setting, thresholds, inner_grades)
    assert best is not None
    _, (c, weight), thresholds, inner_grades = best
    return OrdinalHead(mean=mean, std=std, model=_logistic(z, y, c, weight), thresholds=thresholds, c=c,
                       inner_kappa=kappa(y[mask], inner_grades), class_weight=weight,
                       inner_accuracy=float(np.mean(inner_grades == y[mask])))


def _logistic(z: np.ndarray, y: np.ndarray, c: float, class_weight: ClassWeight = "none") -> LogisticRegression:
    # One BLAS thread: the products are small, and on a busy machine every multi-threaded one waits
    # for a descheduled thread (measured on IDRiD, 413 x 2560 rows, 2 shared cores: 11 s a fit with
    # the default threads, 0.4 s with one).
    with warnings.catch_warnings(), threadpool_limits(limits=1):
        warnings.simplefilter("ignore", ConvergenceWarning)  # a few hundred L-BFGS steps are plenty here
        weights = "balanced" if class_weight == "balanced" else None
        return LogisticRegression(C=c, max_iter=300, class_weight=weights).fit(z, y)


def _probabilities(model: LogisticRegression, z: np.ndarray) -> np.ndarray:
    probabilities = np.zeros((len(z), NUM_GRADES))
    probabilities[:, model.classes_] = model.predict_proba(z)
    return probabilities


def _out_of_fold(
    z: np.ndarray, y: np.ndarray, groups: np.ndarray, mask: np.ndarray,
    settings: Sequence[tuple[float, ClassWeight]], folds: int, seed: int,
) -> dict[tuple[float, ClassWeight], np.ndarray]:
    """Out-of-fold expected grades of every row, per (penalty, class weighting)."""
    counts = np.bincount(y[mask] if mask.any() else y, minlength=NUM_GRADES)
    splits = int(min(folds, max(2, counts[counts > 0].min())))
    splitter = StratifiedGroupKFold(n_splits=splits, shuffle=True, random_state=seed)
    predictions = {setting: np.zeros(len(y)) for setting in settings}
    for train, held in splitter.split(z, y, groups):
        if len(np.unique(y[train])) < 2:
            continue
        for setting in settings:
            predictions[setting][held] = _probabilities(_logistic(z[train], y[train], *setting), z[held]) @ GRADES
    return predictions


def _numpy(values: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        return values.detach().cpu().double().numpy()
    return np.asarray(values, dtype=np.float64)
