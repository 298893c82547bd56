"""The sentence that opens the report: the study's answer in plain words.

Which arm, by how much and with what certainty, read from the result's paired comparisons with
the baseline arm (their significance verdicts decide the wording, nothing is recomputed here).
"""

from __future__ import annotations

import math

from medaug.adapters.reporting import formatting as fmt
from medaug.adapters.reporting import plots
from medaug.domain.experiment import Comparison, ExperimentResult


def answer_sentence(result: ExperimentResult) -> str:
    """One sentence answering whether an arm beats the baseline arm, by how much, with what certainty."""
    baseline = result.spec.baseline
    if not result.cells:
        return "No training run of this experiment has finished, so it does not answer its question yet."
    if baseline is None:
        return _without_baseline(result)
    comparisons = [c for c in result.comparisons if math.isfinite(c.mean_difference)]
    if not comparisons:
        return f"Only the {baseline} arm has results, so there is nothing to compare it with yet."
    n = fmt.count_test_images(result)
    significant = [c for c in comparisons if c.significant]
    if not significant:
        best = max(comparisons, key=lambda c: c.mean_difference)
        which = "the largest gain" if best.mean_difference > 0 else "the closest"
        return (
            f"No arm differs significantly from the {baseline} arm: {which}, {best.arm} with {best.classifier}, "
            f"is {fmt.points(best.mean_difference)} points of test accuracy {_in_images(best, n)}, "
            f"which is not significant ({_certainty(best)})."
        )
    gains = [c for c in significant if c.mean_difference > 0]
    best = max(gains, key=lambda c: c.mean_difference) if gains else min(significant, key=lambda c: c.mean_difference)
    verb = "beats" if best.mean_difference > 0 else "falls behind"
    sentence = (
        f"The {best.arm} arm {verb} the {baseline} arm with {best.classifier} by "
        f"{abs(100.0 * best.mean_difference):.2f} points of test accuracy {_in_images(best, n)}, "
        f"a significant difference ({_certainty(best)})"
    )
    if len(comparisons) > 1:
        verb = "is" if len(significant) == 1 else "are"
        sentence += f"; {len(significant)} of the {len(comparisons)} comparisons with {baseline} {verb} significant"
    return sentence + "."


def _without_baseline(result: ExperimentResult) -> str:
    scored = [
        (summary.mean, arm, classifier)
        for arm in plots.arm_order(result)
        for classifier in plots.classifier_order(result)
        if (summary := plots.summary_of(result, arm, classifier, "accuracy")) is not None
        and math.isfinite(summary.mean)
    ]
    prefix = "This experiment has no classic arm to compare with, so no difference was tested for significance"
    if not scored:
        return prefix + "."
    accuracy, arm, classifier = max(scored)
    return f"{prefix}; the highest mean test accuracy is {fmt.pct(accuracy)}% ({arm} with {classifier})."


def _in_images(comparison: Comparison, n: int) -> str:
    seeds = len(comparison.per_seed_differences)
    over = {0: "", 1: ", on 1 seed"}.get(seeds, f", averaged over {seeds} seeds")
    if n <= 0:
        return f"({over.removeprefix(', ')})" if over else ""
    count = abs(comparison.mean_difference) * n
    images = f"{count:.0f}" if abs(count - round(count)) < 0.05 else f"{count:.1f}"
    return f"({images} of the {n} test images{over})"


def _certainty(comparison: Comparison) -> str:
    low, high = comparison.bootstrap_ci
    interval = f"bootstrap 95% interval [{fmt.points(low)}, {fmt.points(high)}] points"
    if not comparison.significant and low <= 0 <= high:
        interval += " includes 0"
    p = fmt.p_value(comparison.mcnemar_p)
    return f"{interval}, McNemar p {p if p.startswith('<') else f'= {p}'}"
