"""Report sections of the external test sets: one table per set (accuracy, kappa, balanced
accuracy, per-grade recall) and the paired comparisons against the baseline arm on it."""

from __future__ import annotations

import math

from medaug.adapters.report_document import Section, Stat, Table, Text
from medaug.domain.experiment import ExperimentResult, ExternalResult, Summary


def external_sections(result: ExperimentResult) -> list[Section]:
    """One section per external test set (none when the experiment has none)."""
    return [external_section(name, table) for name, table in result.external.items()]


def external_section(name: str, table: ExternalResult) -> Section:
    """An external set's results per arm and classifier, then arm-minus-baseline comparisons."""
    section = Section(f"external-{name}", f"External test set: {name}")
    section.blocks.append(Text(
        f"{table.description}: {table.images} images no classifier trained on, predicted by every trained cell "
        f"(one image = {100 / max(table.images, 1):.2f} points of accuracy)."
    ))
    rows = []
    for arm, per_classifier in table.summaries.items():
        for classifier, metrics in per_classifier.items():
            recall = table.recall.get(arm, {}).get(classifier, {})
            rows.append((
                arm, classifier, str(metrics["accuracy"].n),
                _stat(metrics["accuracy"], pct=True), _stat(metrics["quadratic_kappa"], pct=False),
                _stat(metrics["balanced_accuracy"], pct=True),
                *(f"{100 * recall[g]:.0f}" if g in recall else "n/a" for g in sorted(recall) or range(5)),
            ))
    section.blocks.append(Table(
        ("arm", "classifier", "runs", "accuracy %", "kappa", "balanced accuracy %",
         *(f"recall grade {g} %" for g in range(5))),
        tuple(rows),
        "Mean ± sd over the cells' runs [95% t-interval]; per-grade recall is the mean over runs.",
    ))
    if table.comparisons:
        section.blocks.append(Table(
            ("arm", "classifier", "baseline", "mean difference (points)", "bootstrap 95% CI (points)", "McNemar p",
             "verdict"),
            tuple(
                (c.arm, c.classifier, c.baseline, f"{100 * c.mean_difference:+.2f}",
                 f"[{100 * c.bootstrap_ci[0]:+.2f}, {100 * c.bootstrap_ci[1]:+.2f}]",
                 "<0.001" if c.mcnemar_p < 0.001 else f"{c.mcnemar_p:.3f}",
                 "significant" if c.significant else "not significant")
                for c in table.comparisons
            ),
            f"Arm minus baseline on {name}, paired run by run on the same images.",
        ))
    return section


def _stat(summary: Summary, *, pct: bool) -> Stat:
    scale = 100 if pct else 1
    digits = 2 if pct else 3
    if not math.isfinite(summary.mean):
        return Stat("n/a")
    main = f"{scale * summary.mean:.{digits}f} ± {scale * summary.std:.{digits}f}"
    return Stat(main, f"[{scale * summary.ci_low:.{digits}f}, {scale * summary.ci_high:.{digits}f}]" if summary.n > 1 else "")
