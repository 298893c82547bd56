"""Evaluator on scikit-learn metrics and scipy statistics."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
from scipy import stats
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    log_loss,
    precision_score,
    recall_score,
)

from medaug.adapters.evaluation.resampling import corrected_resampled_t_test, resampled_metric
from medaug.application.errors import InputError
from medaug.domain import Grade
from medaug.domain.experiment import Comparison, Metrics, Predictions, Summary
from medaug.domain.grades import ALL_GRADES
from medaug.domain.kfold import CorrectedTTest
from medaug.domain.metrics import is_significant, quadratic_weighted_kappa

GRADES = [int(g) for g in ALL_GRADES]
_CHUNK = 500


class SklearnEvaluator:
    """Evaluator: scikit-learn metrics, t-intervals, exact McNemar and a seeded paired bootstrap.

    Args:
        resamples: bootstrap resamples of the test images.
        seed: seed of the bootstrap (same seed, same interval).
        confidence: level of the intervals.
    """

    def __init__(self, resamples: int = 10_000, *, seed: int, confidence: float = 0.95) -> None:
        self.resamples = resamples
        self.seed = seed
        self.confidence = confidence

    def metrics(self, predictions: Predictions) -> Metrics:
        """Accuracy, balanced accuracy, macro-F1, quadratic kappa, cross-entropy, per-grade
        precision and recall (0 where undefined) and the 5x5 confusion matrix.

        Raises:
            InputError: there are no predictions, or a label or prediction is outside 0-4.
        """
        y, predicted, probabilities = _arrays(predictions)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # sklearn warns about grades absent from y or predicted
            precision = precision_score(y, predicted, labels=GRADES, average=None, zero_division=0)
            recall = recall_score(y, predicted, labels=GRADES, average=None, zero_division=0)
            return Metrics(
                n=len(y),
                accuracy=float(accuracy_score(y, predicted)),
                balanced_accuracy=float(balanced_accuracy_score(y, predicted)),
                macro_f1=float(f1_score(y, predicted, average="macro", zero_division=0)),
                quadratic_kappa=quadratic_weighted_kappa(y.tolist(), predicted.tolist()),
                loss=float(log_loss(y, probabilities, labels=GRADES)),
                precision={Grade(g): float(v) for g, v in zip(GRADES, precision, strict=True)},
                recall={Grade(g): float(v) for g, v in zip(GRADES, recall, strict=True)},
                confusion=confusion_matrix(y, predicted, labels=GRADES).tolist(),
            )

    def summarise(self, values: Sequence[float]) -> Summary:
        """Mean, sample standard deviation and t-interval of the finite ``values``.

        One value gives a zero-width interval at it; no finite value gives NaNs with ``n = 0``.
        """
        finite = np.asarray([v for v in values if math.isfinite(v)], dtype=np.float64)
        n = int(finite.size)
        if n == 0:
            return Summary(n=0, mean=math.nan, std=math.nan, ci_low=math.nan, ci_high=math.nan)
        mean = float(finite.mean())
        std = float(finite.std(ddof=1)) if n > 1 else 0.0
        if std == 0.0:
            return Summary(n=n, mean=mean, std=std, ci_low=mean, ci_high=mean)
        low, high = stats.t.interval(self.confidence, n - 1, loc=mean, scale=std / math.sqrt(n))
        return Summary(n=n, mean=mean, std=std, ci_low=float(low), ci_high=float(high))

    def compare(
        self,
        arm: str,
        baseline: str,
        classifier: str,
        arm_predictions: Sequence[Predictions],
        baseline_predictions: Sequence[Predictions],
    ) -> Comparison:
        """Paired comparison of ``arm`` with ``baseline``, seed by seed, on the same test images.

        Raises:
            InputError: the lists are empty or differ in length, or two paired runs did not
                predict the same images with the same labels.
        """
        arm_correct, base_correct = _paired_outcomes(arm, baseline, arm_predictions, baseline_predictions)
        per_seed = arm_correct.mean(axis=1) - base_correct.mean(axis=1)
        p_value = mcnemar_exact(int((arm_correct & ~base_correct).sum()), int((~arm_correct & base_correct).sum()))
        low, high = self.bootstrap_interval((arm_correct.astype(np.float64) - base_correct).mean(axis=0))
        return Comparison(
            arm=arm,
            baseline=baseline,
            classifier=classifier,
            per_seed_differences=tuple(float(d) for d in per_seed),
            mean_difference=float(per_seed.mean()),
            mcnemar_p=p_value,
            bootstrap_ci=(low, high),
            significant=is_significant(p_value, (low, high)),
        )

    def corrected_t_test(self, differences: Sequence[float], *, n_train: float, n_test: float) -> CorrectedTTest:
        """Nadeau-Bengio corrected resampled t-test (see ``resampling.corrected_resampled_t_test``)."""
        return corrected_resampled_t_test(differences, n_train=n_train, n_test=n_test, confidence=self.confidence)

    def metric_interval(self, metric: str, runs: Sequence[Predictions]) -> tuple[float, float]:
        """Bootstrap interval (over images) of ``metric`` averaged over the aligned ``runs``.

        Raises:
            InputError: no runs, or runs that did not predict the same images.
        """
        labels, predicted = _aligned(runs, "runs")

        def averaged(idx: np.ndarray) -> np.ndarray:
            return np.mean([resampled_metric(metric, labels, p, idx) for p in predicted], axis=0)

        return self._percentiles(averaged, labels.size)

    def difference_interval(
        self, metric: str, arm_runs: Sequence[Predictions], baseline_runs: Sequence[Predictions]
    ) -> tuple[float, float]:
        """Paired bootstrap interval (images resampled jointly) of the arm's averaged ``metric``
        minus the baseline's.

        Raises:
            InputError: no runs, or runs that did not predict the same images.
        """
        labels, both = _aligned([*arm_runs, *baseline_runs], "runs")
        ours, theirs = both[: len(arm_runs)], both[len(arm_runs) :]

        def difference(idx: np.ndarray) -> np.ndarray:
            arm = np.mean([resampled_metric(metric, labels, p, idx) for p in ours], axis=0)
            base = np.mean([resampled_metric(metric, labels, p, idx) for p in theirs], axis=0)
            return arm - base

        return self._percentiles(difference, labels.size)

    def _percentiles(self, statistic, n: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
        rng = np.random.default_rng(self.seed)
        values = np.empty(self.resamples, dtype=np.float64)
        for start in range(0, self.resamples, _CHUNK):
            count = min(_CHUNK, self.resamples - start)
            values[start : start + count] = statistic(rng.integers(0, n, size=(count, n)))
        tail = (1.0 - self.confidence) / 2 * 100
        low, high = np.percentile(values, [tail, 100 - tail])
        return float(low), float(high)

    def bootstrap_interval(self, differences: np.ndarray) -> tuple[float, float]:
        """Percentile interval of the mean of per-image ``differences`` over seeded resamples of the images."""
        n = differences.size
        rng = np.random.default_rng(self.seed)
        means = np.empty(self.resamples, dtype=np.float64)
        for start in range(0, self.resamples, _CHUNK):
            count = min(_CHUNK, self.resamples - start)
            means[start : start + count] = differences[rng.integers(0, n, size=(count, n))].mean(axis=1)
        tail = (1.0 - self.confidence) / 2 * 100
        low, high = np.percentile(means, [tail, 100 - tail])
        return float(low), float(high)


def mcnemar_exact(arm_only: int, baseline_only: int) -> float:
    """Exact (binomial) McNemar p-value from the discordant counts; 1 when there is none."""
    discordant = arm_only + baseline_only
    if discordant == 0:
        return 1.0
    return float(stats.binomtest(arm_only, discordant, 0.5).pvalue)


def _arrays(predictions: Predictions) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if not predictions.image_ids:
        raise InputError("no predictions to evaluate")
    y = np.asarray(predictions.labels, dtype=np.int64)
    predicted = np.asarray(predictions.predicted, dtype=np.int64)
    for name, values in (("label", y), ("prediction", predicted)):
        bad = values[(values < 0) | (values > 4)]
        if bad.size:
            raise InputError(f"{name} {int(bad[0])} is outside the grades 0-4")
    probabilities = np.asarray(predictions.probabilities, dtype=np.float64)
    if probabilities.shape != (len(y), len(GRADES)):
        raise InputError(f"probabilities have shape {probabilities.shape}, expected ({len(y)}, {len(GRADES)})")
    return y, predicted, probabilities / probabilities.sum(axis=1, keepdims=True)


def _aligned(runs: Sequence[Predictions], what: str) -> tuple[np.ndarray, list[np.ndarray]]:
    """Labels and each run's predicted grades, checked to cover the same images in one order."""
    if not runs or not runs[0].image_ids:
        raise InputError(f"no {what} to resample")
    reference = runs[0]
    for index, run in enumerate(runs):
        if run.image_ids != reference.image_ids or run.labels != reference.labels:
            raise InputError(f"run {index} did not predict the same images as run 0")
    return np.asarray(reference.labels, dtype=np.int64), [np.asarray(r.predicted, dtype=np.int64) for r in runs]


def _paired_outcomes(
    arm: str, baseline: str, arm_predictions: Sequence[Predictions], baseline_predictions: Sequence[Predictions]
) -> tuple[np.ndarray, np.ndarray]:
    """Correctness matrices (seeds x images) of both arms, checked to be paired."""
    if not arm_predictions or len(arm_predictions) != len(baseline_predictions):
        raise InputError(
            f"cannot pair {arm} ({len(arm_predictions)} runs) with {baseline} ({len(baseline_predictions)} runs)"
        )
    reference = arm_predictions[0]
    for index, (ours, theirs) in enumerate(zip(arm_predictions, baseline_predictions, strict=True)):
        for name, other in ((arm, ours), (baseline, theirs)):
            if other.image_ids != reference.image_ids or other.labels != reference.labels:
                raise InputError(f"run {index} of {name} did not predict the same test images as run 0 of {arm}")
    if not reference.image_ids:
        raise InputError(f"{arm} and {baseline} have no test predictions to compare")
    arm_correct = np.asarray([p.correct for p in arm_predictions], dtype=bool)
    base_correct = np.asarray([p.correct for p in baseline_predictions], dtype=bool)
    return arm_correct, base_correct
