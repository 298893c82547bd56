"""SklearnEvaluator: metrics against hand-computed values, summaries and paired comparisons."""

from __future__ import annotations

import math

import numpy as np
import pytest

from medaug.adapters.evaluation.evaluator import (
    SklearnEvaluator,
    mcnemar_exact,
)
from medaug.application.errors import InputError
from medaug.application.ports import Evaluator
from medaug.composition import factories
from medaug.domain import Grade
from medaug.domain.experiment import Predictions


def predictions(labels: list[int], predicted: list[int], probabilities: list[list[float]] | None = None) -> Predictions:
    """Predictions with one-hot-ish probabilities (0.6 on the prediction) unless given."""
    if probabilities is None:
        probabilities = [[0.6 if g == p else 0.1 for g in range(5)] for p in predicted]
    return Predictions(
        image_ids=tuple(f"img-{i}" for i in range(len(labels))),
        labels=tuple(labels),
        predicted=tuple(predicted),
        probabilities=tuple(tuple(row) for row in probabilities),
    )


@pytest.fixture
def evaluator() -> SklearnEvaluator:
    return SklearnEvaluator(resamples=2000, seed=0)


def test_is_an_evaluator_and_bootstrap_builds_it() -> None:
    assert isinstance(factories.build_evaluator(0), Evaluator)


def test_a_perfect_prediction(evaluator: SklearnEvaluator) -> None:
    metrics = evaluator.metrics(predictions([0, 1, 2, 2], [0, 1, 2, 2]))
    assert metrics.accuracy == 1.0 and metrics.balanced_accuracy == 1.0 and metrics.macro_f1 == 1.0
    assert metrics.quadratic_kappa == 1.0
    assert metrics.loss == pytest.approx(-math.log(0.6))
    assert len(metrics.confusion) == 5 and all(len(row) == 5 for row in metrics.confusion)
    assert metrics.confusion[3] == [0, 0, 0, 0, 0] and metrics.confusion[4] == [0, 0, 0, 0, 0]
    assert metrics.confusion[2][2] == 2
    assert metrics.precision[Grade(4)] == 0.0 and metrics.recall[Grade(3)] == 0.0


def test_a_perfect_prediction_of_a_single_grade_has_kappa_one(evaluator: SklearnEvaluator) -> None:
    assert evaluator.metrics(predictions([2, 2, 2], [2, 2, 2])).quadratic_kappa == 1.0


def test_metrics_match_hand_computed_values(evaluator: SklearnEvaluator) -> None:
    labels, predicted = [0, 0, 1, 2, 4], [0, 1, 1, 2, 3]
    metrics = evaluator.metrics(predictions(labels, predicted))
    assert metrics.n == 5
    assert metrics.accuracy == pytest.approx(3 / 5)
    # Recall per true grade present (0, 1, 2, 4): 1/2, 1, 1, 0.
    assert metrics.balanced_accuracy == pytest.approx((0.5 + 1 + 1 + 0) / 4)
    assert metrics.precision == {Grade(0): 1.0, Grade(1): 0.5, Grade(2): 1.0, Grade(3): 0.0, Grade(4): 0.0}
    assert metrics.recall == {Grade(0): 0.5, Grade(1): 1.0, Grade(2): 1.0, Grade(3): 0.0, Grade(4): 0.0}
    # F1 over the grades present in labels or predictions: 0:2/3, 1:2/3, 2:1, 3:0, 4:0.
    assert metrics.macro_f1 == pytest.approx((2 / 3 + 2 / 3 + 1 + 0 + 0) / 5)
    assert metrics.confusion == [
        [1, 1, 0, 0, 0],
        [0, 1, 0, 0, 0],
        [0, 0, 1, 0, 0],
        [0, 0, 0, 0, 0],
        [0, 0, 0, 1, 0],
    ]
    # Cross-entropy: the true grade has 0.6 where predicted right, 0.1 otherwise.
    assert metrics.loss == pytest.approx(-(3 * math.log(0.6) + 2 * math.log(0.1)) / 5)
    assert metrics.quadratic_kappa == pytest.approx(_kappa_by_hand(labels, predicted))


def _kappa_by_hand(labels: list[int], predicted: list[int]) -> float:
    observed = np.zeros((5, 5))
    for y, p in zip(labels, predicted, strict=True):
        observed[y, p] += 1
    expected = np.outer(observed.sum(1), observed.sum(0)) / observed.sum()
    weights = np.array([[(i - j) ** 2 / 16 for j in range(5)] for i in range(5)])
    return 1 - (weights * observed).sum() / (weights * expected).sum()


def test_bad_predictions_are_input_errors(evaluator: SklearnEvaluator) -> None:
    with pytest.raises(InputError, match="no predictions"):
        evaluator.metrics(predictions([], []))
    with pytest.raises(InputError, match="outside"):
        evaluator.metrics(predictions([0, 7], [0, 1], [[0.2] * 5, [0.2] * 5]))


def test_summarise_one_value_is_a_zero_width_interval(evaluator: SklearnEvaluator) -> None:
    summary = evaluator.summarise([0.42])
    assert (summary.n, summary.mean, summary.std, summary.ci_low, summary.ci_high) == (1, 0.42, 0.0, 0.42, 0.42)


def test_summarise_uses_the_t_interval(evaluator: SklearnEvaluator) -> None:
    summary = evaluator.summarise([1.0, 2.0, 3.0])
    half_width = 4.302652729911275 * 1.0 / math.sqrt(3)  # t(0.975, 2 dof) * s / sqrt(n)
    assert summary.mean == 2.0 and summary.std == pytest.approx(1.0)
    assert (summary.ci_low, summary.ci_high) == (pytest.approx(2 - half_width), pytest.approx(2 + half_width))


def test_summarise_identical_values_and_no_values(evaluator: SklearnEvaluator) -> None:
    same = evaluator.summarise([0.5, 0.5])
    assert (same.ci_low, same.ci_high) == (0.5, 0.5)
    assert evaluator.summarise([]).n == 0 and math.isnan(evaluator.summarise([float("nan")]).mean)


def test_mcnemar_exact_for_a_known_discordant_count() -> None:
    # 8 vs 2 discordant pairs: two-sided binomial p = 2 * P(X <= 2 | n=10, 1/2) = 2 * 56 / 1024.
    assert mcnemar_exact(8, 2) == pytest.approx(112 / 1024)
    assert mcnemar_exact(2, 8) == pytest.approx(112 / 1024)
    assert mcnemar_exact(0, 0) == 1.0


def _outcomes(correct: list[bool], labels: list[int]) -> Predictions:
    predicted = [y if ok else (y + 1) % 5 for y, ok in zip(labels, correct, strict=True)]
    return predictions(labels, predicted)


def test_compare_pairs_seeds_and_pools_discordant_images(evaluator: SklearnEvaluator) -> None:
    labels = [0, 1, 2, 3, 4] * 4
    base = [_outcomes([i % 2 == 0 for i in range(20)], labels), _outcomes([i % 4 == 0 for i in range(20)], labels)]
    arm = [_outcomes([True] * 20, labels), _outcomes([i % 2 == 0 for i in range(20)], labels)]
    comparison = evaluator.compare("diffusion", "classic", "cnn", arm, base)
    assert comparison.per_seed_differences == pytest.approx((0.5, 0.25))
    assert comparison.mean_difference == pytest.approx(0.375)
    # Seed 0: 10 arm-only wins; seed 1: 5 arm-only wins; no baseline-only wins.
    assert comparison.mcnemar_p == pytest.approx(mcnemar_exact(15, 0))
    low, high = comparison.bootstrap_ci
    assert low <= 0.375 <= high and low > 0
    assert comparison.significant
    assert (comparison.arm, comparison.baseline, comparison.classifier) == ("diffusion", "classic", "cnn")


def test_bootstrap_is_deterministic_by_seed() -> None:
    labels = [0, 1, 2, 3, 4] * 6
    rng = np.random.default_rng(5)
    arm = [_outcomes(list(rng.random(30) < 0.6), labels)]
    base = [_outcomes(list(rng.random(30) < 0.5), labels)]
    first = SklearnEvaluator(resamples=500, seed=1).compare("a", "b", "cnn", arm, base)
    again = SklearnEvaluator(resamples=500, seed=1).compare("a", "b", "cnn", arm, base)
    other = SklearnEvaluator(resamples=500, seed=2).compare("a", "b", "cnn", arm, base)
    assert first.bootstrap_ci == again.bootstrap_ci
    assert first.bootstrap_ci != other.bootstrap_ci


def test_identical_arms_are_not_significant(evaluator: SklearnEvaluator) -> None:
    labels = [0, 1, 2, 3, 4] * 2
    runs = [_outcomes([i % 3 == 0 for i in range(10)], labels)]
    comparison = evaluator.compare("a", "b", "cnn", runs, runs)
    assert comparison.mcnemar_p == 1.0 and comparison.bootstrap_ci == (0.0, 0.0)
    assert not comparison.significant


def test_unpaired_runs_are_input_errors(evaluator: SklearnEvaluator) -> None:
    labels = [0, 1, 2]
    run = predictions(labels, labels)
    shuffled = Predictions(image_ids=("img-2", "img-1", "img-0"), labels=(2, 1, 0), predicted=(2, 1, 0),
                           probabilities=run.probabilities)
    with pytest.raises(InputError, match="cannot pair"):
        evaluator.compare("a", "b", "cnn", [run, run], [run])
    with pytest.raises(InputError, match="same test images"):
        evaluator.compare("a", "b", "cnn", [run], [shuffled])
