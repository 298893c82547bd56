"""The rules that judge predictions: agreement with the grader and when a difference counts.

Pure Python on purpose: these definitions are what every adapter and report must agree on, so
they live with the domain rather than in whichever library computes the bulk metrics.
"""

from __future__ import annotations

from collections.abc import Sequence

from medaug.domain.grades import ALL_GRADES

SIGNIFICANCE_LEVEL = 0.05
"""A paired difference is called significant only below this p-value (two-sided)."""


def quadratic_weighted_kappa(labels: Sequence[int], predicted: Sequence[int]) -> float:
    """Cohen's kappa with quadratic weights over the grades 0-4 (the DR grading standard).

    1 for a perfect prediction, even when only one grade occurs; 0 when the expected
    disagreement is zero otherwise (a constant answer to a constant truth is no agreement).

    Raises:
        ValueError: the sequences differ in length or hold a value outside the grades.
    """
    if len(labels) != len(predicted):
        raise ValueError(f"{len(labels)} labels but {len(predicted)} predictions")
    grades = [int(g) for g in ALL_GRADES]
    k = len(grades)
    for value in (*labels, *predicted):
        if value not in grades:
            raise ValueError(f"grade {value} is outside 0-{k - 1}")
    if list(labels) == list(predicted):
        return 1.0
    n = len(labels)
    observed = [[0] * k for _ in range(k)]
    for truth, guess in zip(labels, predicted, strict=True):
        observed[truth][guess] += 1
    truth_totals = [sum(row) for row in observed]
    guess_totals = [sum(observed[i][j] for i in range(k)) for j in range(k)]
    weight = [[(i - j) ** 2 / (k - 1) ** 2 for j in range(k)] for i in range(k)]
    disagreement = sum(weight[i][j] * observed[i][j] for i in range(k) for j in range(k)) / n
    expected = sum(weight[i][j] * truth_totals[i] * guess_totals[j] for i in range(k) for j in range(k)) / n**2
    if expected == 0:
        return 0.0
    return 1.0 - disagreement / expected


def is_significant(p_value: float, interval: tuple[float, float]) -> bool:
    """The house rule for a paired difference: its interval excludes 0 and its test agrees."""
    low, high = interval
    return (low > 0 or high < 0) and p_value < SIGNIFICANCE_LEVEL
