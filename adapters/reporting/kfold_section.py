"""Report sections of the k-fold protocol: pooled out-of-fold metrics with intervals, the
corrected resampled t-test per arm pair, the folds, and the copies found among the real images."""

from __future__ import annotations

import math

from medaug.adapters.report_document import Section, Stat, Table, Text
from medaug.domain.experiment import ExperimentResult
from medaug.domain.kfold import CorrectedTTest


def kfold_sections(result: ExperimentResult) -> list[Section]:
    """The k-fold summary (only for k-fold experiments) and the duplicates (whenever found)."""
    sections = []
    if result.spec.protocol == "kfold":
        sections.append(kfold_section(result))
    if result.duplicates:
        sections.append(duplicates_section(result))
    return sections


def kfold_section(result: ExperimentResult) -> Section:
    """Pooled out-of-fold metrics per arm and classifier, then each arm against the baseline."""
    spec = result.spec
    runs = spec.repeats * len(spec.seeds)
    section = Section("kfold", "K-fold: pooled out-of-fold results")
    section.blocks.append(Text(
        f"Stratified{' group-aware' if spec.duplicates == 'group' else ''} {spec.folds}-fold cross-validation, "
        f"{spec.repeats} repeat(s), seeds {', '.join(str(s) for s in spec.seeds)}, over {result.test_images} "
        f"labelled real images (fold seed {spec.plan_seed}). Each fold's augmentation plan and every generator that "
        "learns are made from that fold's training part only: no generator sees the fold's test images. "
        f"Every image is predicted once per repeat and seed: one image = {100 / max(result.test_images, 1):.2f} "
        "points of accuracy."
    ))
    rows = []
    for arm, per_classifier in result.summaries.items():
        for classifier, metrics in per_classifier.items():
            intervals = result.pooled_intervals.get(arm, {}).get(classifier, {})
            acc, kappa = metrics["accuracy"], metrics["quadratic_kappa"]
            rows.append((
                arm, classifier, str(acc.n),
                Stat(_pct(acc.mean), _interval(intervals.get("accuracy"), pct=True)),
                Stat(_num(kappa.mean), _interval(intervals.get("quadratic_kappa"), pct=False)),
                _pct(metrics["balanced_accuracy"].mean), _num(metrics["macro_f1"].mean),
            ))
    section.blocks.append(Table(
        ("arm", "classifier", "runs", "pooled accuracy % [bootstrap 95% CI]", "pooled kappa [bootstrap 95% CI]",
         "balanced accuracy %", "macro-F1"),
        tuple(rows),
        f"Metrics of the pooled out-of-fold predictions, mean over {runs} run(s) (repeat x seed); intervals "
        "resample the images.",
    ))
    if result.kfold_comparisons:
        section.blocks.append(Table(
            ("arm", "classifier", "baseline", "mean accuracy difference (points) [corrected 95% CI]",
             "corrected t (df), p", "kappa difference [bootstrap 95% CI]", "kappa corrected p", "McNemar p (pooled)",
             "verdict"),
            tuple(_comparison_row(c) for c in result.kfold_comparisons),
            "Paired differences per (repeat, fold, seed); primary test: "
            f"{result.kfold_comparisons[0].primary_test}.",
        ))
        first = result.kfold_comparisons[0].accuracy_test
        section.blocks.append(Text(
            "The primary test is the Nadeau-Bengio corrected resampled t-test: the variance of the J paired "
            f"differences is scaled by 1/J + n_test/n_train (here 1/{first.n} + {first.n_test:.1f}/{first.n_train:.1f}) "
            "because the folds' training sets overlap; a plain t-test would be too eager. Significant means its "
            "95% interval excludes 0 and p < 0.05. McNemar on the pooled out-of-fold outcomes and the bootstrap "
            "interval of the pooled kappa difference are shown beside it.",
            "note",
        ))
    sizes = ", ".join(f"{a.scope}: {len(a.test_ids)}" for a in result.folds)
    section.blocks.append(Text(f"Test images per fold: {sizes} (fold membership in results.json).", "note"))
    return section


def duplicates_section(result: ExperimentResult) -> Section:
    """Copies among the real images, their grades, and what the experiment did with them."""
    section = Section("duplicates", "Duplicate real images")
    conflicting = sum(1 for group in result.duplicates if group.conflicting)
    policy = result.spec.duplicates
    handling = (
        "kept in one fold (group-aware splitting)" if policy == "group" else "left out (conflicting groups entirely)"
    ) if result.spec.protocol == "kfold" else "listed only: a holdout experiment keeps the data set's published split"
    section.blocks.append(Text(
        f"{len(result.duplicates)} group(s) of copies found among the real images, {conflicting} with conflicting "
        f"grades; {handling}.",
        "warning" if conflicting else "p",
    ))
    rows = tuple(
        (", ".join(group.image_ids), ", ".join(str(int(g)) for g in group.grades), group.kind,
         "conflicting grades" if group.conflicting else "same grade")
        for group in result.duplicates
    )
    section.blocks.append(Table(("images", "grades", "kind", "labels"), rows))
    return section


def _comparison_row(c) -> tuple:  # type: ignore[no-untyped-def]
    test: CorrectedTTest = c.accuracy_test
    low, high = test.ci
    k_low, k_high = c.kappa_ci
    return (
        c.arm, c.classifier, c.baseline,
        Stat(_points(test.mean), f"[{_points(low)}, {_points(high)}]"),
        f"{test.t:.2f} ({test.df}), p={_p(test.p_value)}",
        Stat(f"{c.kappa_difference:+.3f}", f"[{k_low:+.3f}, {k_high:+.3f}]"),
        _p(c.kappa_test.p_value),
        _p(c.mcnemar_p),
        "significant" if c.significant else "not significant",
    )


def _interval(bounds: tuple[float, float] | None, *, pct: bool) -> str:
    if bounds is None:
        return ""
    low, high = bounds
    return f"[{_pct(low)}, {_pct(high)}]" if pct else f"[{_num(low)}, {_num(high)}]"


def _pct(value: float) -> str:
    return f"{100 * value:.2f}" if math.isfinite(value) else "n/a"


def _num(value: float) -> str:
    return f"{value:.3f}" if math.isfinite(value) else "n/a"


def _points(value: float) -> str:
    return f"{100 * value:+.2f}" if math.isfinite(value) else "n/a"


def _p(value: float) -> str:
    return "<0.001" if value < 0.001 else f"{value:.3f}"
