"""The sentence that opens the report: the study's answer in plain words.

Which arm, by how much and with what certainty, read from the result's verdicts (one per
comparison with the baseline arm, from the protocol's primary test: McNemar with the paired
bootstrap for holdout, the corrected resampled t-test for k-fold); nothing is recomputed here.
"""

from __future__ import annotations

import math

from medaug.adapters.reporting import formatting as fmt
from medaug.adapters.reporting import plots
from medaug.domain.experiment import ExperimentResult, Verdict


def answer_sentence(result: ExperimentResult) -> str:
    """One sentence answering whether an arm beats the baseline arm, by how much, with what certainty."""
    baseline = result.spec.baseline
    if not result.cells:
        return "No training run of this experiment has finished, so it does not answer its question yet."
    if baseline is None:
        return _without_baseline(result)
    comparisons = [v for v in result.verdicts() if math.isfinite(v.difference)]
    if not comparisons:
        return f"Only the {baseline} arm has results, so there is nothing to compare it with yet."
    n = fmt.count_test_images(result)
    significant = [c for c in comparisons if c.significant]
    if not significant:
        best = max(comparisons, key=lambda c: c.difference)
        which = "the largest gain" if best.difference > 0 else "the closest"
        return (
            f"No arm differs significantly from the {baseline} arm: {which}, {best.arm} with {best.classifier}, "
            f"is {fmt.points(best.difference)} points of test accuracy {_in_images(best, n)}, "
            f"which is not significant ({_certainty(best)})."
        )
    gains = [c for c in significant if c.difference > 0]
    best = max(gains, key=lambda c: c.difference) if gains else min(significant, key=lambda c: c.difference)
    verb = "beats" if best.difference > 0 else "falls behind"
    sentence = (
        f"The {best.arm} arm {verb} the {baseline} arm with {best.classifier} by "
        f"{abs(100.0 * best.difference):.2f} points of test accuracy {_in_images(best, n)}, "
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


def _in_images(verdict: Verdict, n: int) -> str:
    runs, unit = verdict.runs, "seed" if verdict.test == "mcnemar-bootstrap" else "fold x seed run"
    over = {0: "", 1: f", on 1 {unit}"}.get(runs, f", averaged over {runs} {unit}s")
    if n <= 0:
        return f"({over.removeprefix(', ')})" if over else ""
    count = abs(verdict.difference) * n
    images = f"{count:.0f}" if abs(count - round(count)) < 0.05 else f"{count:.1f}"
    return f"({images} of the {n} test images{over})"


def _certainty(verdict: Verdict) -> str:
    low, high = verdict.ci
    interval = f"{fmt.interval_name(verdict)} [{fmt.points(low)}, {fmt.points(high)}] points"
    if not verdict.significant and low <= 0 <= high:
        interval += " includes 0"
    p = fmt.p_value(verdict.p_value)
    return f"{interval}, {fmt.p_name(verdict)} {p if p.startswith('<') else f'= {p}'}"
