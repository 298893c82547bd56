"""The domain's agreement and significance rules."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from medaug.domain.metrics import SIGNIFICANCE_LEVEL, is_significant, quadratic_weighted_kappa


@pytest.mark.parametrize("n", [3, 20, 103])
def test_kappa_agrees_with_scikit_learn(n: int) -> None:
    rng = np.random.default_rng(n)
    for _ in range(50):
        labels = rng.integers(0, 5, n)
        predicted = np.clip(labels + rng.integers(-2, 3, n), 0, 4)
        expected = cohen_kappa_score(labels, predicted, weights="quadratic", labels=[0, 1, 2, 3, 4])
        assert quadratic_weighted_kappa(labels.tolist(), predicted.tolist()) == pytest.approx(expected, abs=1e-12)


def test_kappa_edge_cases() -> None:
    assert quadratic_weighted_kappa([2, 2, 2], [2, 2, 2]) == 1.0
    assert quadratic_weighted_kappa([0, 0], [1, 1]) == 0.0
    assert quadratic_weighted_kappa([0, 4, 0, 4], [4, 0, 4, 0]) < 0


def test_kappa_rejects_what_is_not_a_grade() -> None:
    with pytest.raises(ValueError, match="outside"):
        quadratic_weighted_kappa([0, 5], [0, 1])
    with pytest.raises(ValueError, match="2 labels but 1"):
        quadratic_weighted_kappa([0, 1], [0])


def test_a_difference_is_significant_only_when_interval_and_test_agree() -> None:
    assert is_significant(0.01, (0.02, 0.10))
    assert is_significant(0.01, (-0.10, -0.02))
    assert not is_significant(0.01, (-0.01, 0.10))
    assert not is_significant(SIGNIFICANCE_LEVEL, (0.02, 0.10))
