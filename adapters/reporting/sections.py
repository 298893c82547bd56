"""The report's own sections, built from an experiment result: overview, tables, figures, reproducibility."""

from __future__ import annotations

import math
from collections.abc import Sequence

from medaug.adapters.report_document import (
    Block,
    Bullets,
    Cell,
    Code,
    FigureBlock,
    Group,
    Lines,
    Section,
    Stat,
    Table,
    Text,
    Verdict,
)
from medaug.adapters.reporting import formatting as fmt
from medaug.adapters.reporting import plots
from medaug.adapters.reporting.formatting import count_test_images, one_image_sentence, redact, seed_count
from medaug.domain.experiment import CellResult, Comparison, ExperimentResult
from medaug.domain.experiment import Verdict as ComparisonVerdict
from medaug.domain.grades import ALL_GRADES

METRICS: tuple[tuple[str, str, bool], ...] = (
    ("accuracy", "accuracy (%)", True),
    ("balanced_accuracy", "balanced accuracy (%)", True),
    ("macro_f1", "macro-F1 (%)", True),
    ("quadratic_kappa", "quadratic kappa", False),
    ("loss", "loss", False),
)
"""(``summaries`` key = ``Metrics`` field, column title, shown as a percentage)."""

MIN_RELIABLE_SEEDS = 3


def overview_section(result: ExperimentResult) -> Section:
    """Who ran against whom, what one test image weighs, and the paired verdicts."""
    n = count_test_images(result)
    seeds = seed_count(result)
    section = Section("overview", "Overview")
    if seeds < MIN_RELIABLE_SEEDS:
        section.blocks.append(
            Text(
                f"Only {seeds} seed{'s' if seeds != 1 else ''} per cell: intervals from fewer than "
                f"{MIN_RELIABLE_SEEDS} seeds are unreliable.",
                "warning",
            )
        )
    section.blocks.append(Text(one_image_sentence(n)))
    majority = plots.majority_accuracy(result)
    if majority is not None:
        grade, count, total = majority
        section.blocks.append(
            Text(
                f"Always answering the most frequent test grade (grade {grade}, {count} of {total} "
                f"images) scores {100.0 * count / total:.2f}%: an accuracy near it means the classifier "
                "learned little."
            )
        )
    findings = finding_lines(result)
    if findings:
        section.blocks.append(Bullets(tuple(findings)))
    return section


def main_section(result: ExperimentResult, dpi: int) -> Section:
    """Table (1), arms x classifiers across seeds, and the bar chart."""
    headers = ("arm", "classifier", "seeds", *(title for _, title, _ in METRICS))
    rows = []
    for arm, classifier in fmt.pairs(result):
        stats = [fmt.stat(plots.summary_of(result, arm, classifier, key), pct) for key, _, pct in METRICS]
        # K-fold: one run per (repeat, seed), each pooling every fold's out-of-fold predictions.
        cells = result.cells_for(arm, classifier)
        runs = {(c.key.repeat, c.key.seed) if result.spec.protocol == "kfold" else c.key for c in cells}
        rows.append((arm, classifier, str(len(runs)), *stats))
    section = Section("results", "Results: arms x classifiers")
    if not rows:
        section.blocks.append(Text("No training run of this experiment has finished.", "warning"))
        return section
    section.blocks += [
        Table(headers, tuple(rows), "Mean ± standard deviation across seeds, with the 95% t-interval below."),
        FigureBlock(
            "figures/bar-chart.png",
            plots.bar_chart(result, dpi=dpi),
            "Accuracy and quadratic kappa: bars are means across seeds, error bars 95% intervals, "
            "dots single seeds; the dotted line is what always answering the most frequent grade scores.",
        ),
    ]
    return section


def comparison_section(result: ExperimentResult) -> Section:
    """Table (2): every arm against the baseline arm, on paired terms."""
    section = Section("comparisons", "Compared with the baseline arm")
    baseline = result.spec.baseline
    if baseline is None:
        section.blocks.append(Text("This experiment has no classic arm, so arms are not compared on paired terms."))
        return section
    if not result.verdicts():
        section.blocks.append(Text(f"Only the {baseline} arm ran: there is nothing to compare."))
        return section
    n = count_test_images(result)
    if result.spec.protocol == "kfold":
        section.blocks += _kfold_comparison_blocks(result, baseline, n)
        return section
    headers = (
        "arm", "classifier", "baseline", "mean difference (points)", "bootstrap 95% CI (points)", "McNemar p",
        "verdict", "per-seed difference (points, images)",
    )  # fmt: skip
    rows = tuple(
        _comparison_row(c, v, n, _seeds_of(result, c.arm, c.classifier))
        for c, v in zip(result.comparisons, result.verdicts(), strict=True)
    )
    section.blocks += [
        Table(headers, rows, f"Arm minus {baseline}, accuracy, on the same {n} test images seed by seed."),
        Text(
            "Significant means the paired-bootstrap 95% interval of the accuracy difference excludes 0 and the "
            "exact McNemar test on the pooled discordant test images gives p < 0.05. " + one_image_sentence(n),
            "note",
        ),
    ]
    return section


def _kfold_comparison_blocks(result: ExperimentResult, baseline: str, n: int) -> list[Block]:
    """The comparisons of a k-fold run, each answered by its primary test (the corrected t-test)."""
    headers = (
        "arm", "classifier", "baseline", "mean difference (points)", "corrected 95% CI (points)",
        "corrected t-test p", "verdict", "paired runs (repeat x fold x seed)",
    )  # fmt: skip
    rows = tuple(_verdict_row(v, n) for v in result.verdicts())
    return [
        Table(
            headers, rows, f"Arm minus {baseline}, accuracy, paired run by run; {n} images, each tested once per run."
        ),
        Text(
            "Significant means the Nadeau-Bengio corrected resampled t-test of the per-(repeat, fold, seed) accuracy "
            "differences gives a 95% interval that excludes 0 and p < 0.05; McNemar and the bootstrap on the pooled "
            "out-of-fold predictions are in the k-fold section. " + one_image_sentence(n),
            "note",
        ),
    ]


def _verdict_row(verdict: ComparisonVerdict, n: int) -> tuple[Cell, ...]:
    low, high = verdict.ci
    return (
        verdict.arm,
        verdict.classifier,
        verdict.baseline,
        Stat(fmt.points(verdict.difference), f"({fmt.images(verdict.difference, n)} on average)"),
        f"[{fmt.points(low)}, {fmt.points(high)}]",
        fmt.p_value(verdict.p_value),
        Verdict(verdict.significant),
        str(verdict.runs),
    )


def _comparison_row(
    comparison: Comparison, verdict: ComparisonVerdict, n: int, seeds: Sequence[int]
) -> tuple[Cell, ...]:
    differences = comparison.per_seed_differences
    names = [f"seed {s}" for s in seeds]
    if len(names) != len(differences):
        names = [f"#{i + 1}" for i in range(len(differences))]
    per_seed = tuple(
        f"{name}: {fmt.points(d)} ({fmt.images(d, n)})" for name, d in zip(names, differences, strict=True)
    )
    return (*_verdict_row(verdict, n)[:-1], Lines(per_seed) if per_seed else "n/a")


def _seeds_of(result: ExperimentResult, arm: str, classifier: str) -> list[int]:
    return [cell.key.seed for cell in result.cells_for(arm, classifier)]


def per_seed_section(result: ExperimentResult) -> Section:
    """Table (3): every cell, so a reader sees counts of test images behind each percentage."""
    headers = (
        "arm", "classifier", "seed", "correct / n", "accuracy (%)", "quadratic kappa", "loss",
        "epochs", "best epoch", "train images", "time",
    )  # fmt: skip
    rows = tuple(_seed_row(cell) for arm, classifier in fmt.pairs(result) for cell in result.cells_for(arm, classifier))
    if result.spec.protocol == "kfold":  # one row per fold of each seed: say which
        headers = (*headers[:3], "fold", *headers[3:])
        cells = [cell for arm, classifier in fmt.pairs(result) for cell in result.cells_for(arm, classifier)]
        folds = [f"f{cell.key.fold or 0}r{cell.key.repeat or 0}" for cell in cells]
        rows = tuple((*row[:3], fold, *row[3:]) for row, fold in zip(rows, folds, strict=True))
    return Section(
        "per-seed",
        "Per seed",
        [Text(one_image_sentence(count_test_images(result))), Table(headers, rows)],
    )


def _seed_row(cell: CellResult) -> tuple[Cell, ...]:
    m = cell.metrics
    correct = sum(cell.predictions.correct) if cell.predictions.image_ids else round(m.accuracy * m.n)
    return (
        cell.key.arm,
        cell.key.classifier,
        str(cell.key.seed),
        f"{correct}/{m.n}",
        fmt.pct(m.accuracy),
        fmt.num(m.quadratic_kappa),
        fmt.num(m.loss),
        str(len(cell.history)),
        "n/a" if cell.best_epoch is None else str(cell.best_epoch),
        str(cell.train_images),
        fmt.duration(cell.seconds),
    )


def reference_section(result: ExperimentResult) -> Section:
    """Table (4): published figures, shown for reference only."""
    n = count_test_images(result)
    rows = tuple(
        (ref.source, ref.classifier, ref.arm, fmt.pct(ref.accuracy), fmt.as_images(ref.accuracy, n))
        for ref in result.references
    )
    return Section(
        "references",
        "Published reference figures",
        [
            Text(
                "Published test accuracies, single seed, not comparable on paired terms: they come from another run "
                "on other hardware, without per-image predictions, so no interval or significance test applies.",
                "note",
            ),
            Table(("source", "classifier", "arm", "test accuracy (%)", "test images right"), rows),
        ],
    )


def per_grade_section(result: ExperimentResult) -> Section:
    """Table (5): precision and recall of each grade, mean across seeds."""
    support = _grade_support(result)
    headers = ("arm", "classifier", *(f"grade {int(g)} (n={support.get(int(g), 0)})" for g in ALL_GRADES))
    rows = []
    for arm, classifier in fmt.pairs(result):
        cells = result.cells_for(arm, classifier)
        rows.append((arm, classifier, *(_precision_recall(cells, g) for g in ALL_GRADES)))
    return Section(
        "per-grade",
        "Per-grade precision and recall",
        [Table(headers, tuple(rows), "Precision / recall in %, mean across seeds (0 where undefined).")],
    )


def _precision_recall(cells: Sequence[CellResult], grade: int) -> Cell:
    precision = fmt.mean([c.metrics.precision.get(grade, math.nan) for c in cells])
    recall = fmt.mean([c.metrics.recall.get(grade, math.nan) for c in cells])
    return Stat(f"P {fmt.pct(precision, 1)}", f"R {fmt.pct(recall, 1)}", " / ")


def _grade_support(result: ExperimentResult) -> dict[int, int]:
    if not result.cells:
        return {}
    labels = result.cells[0].predictions.labels
    return {int(g): labels.count(int(g)) for g in ALL_GRADES}


def confusion_section(result: ExperimentResult, dpi: int) -> Section:
    """(6) Confusion matrices: mean heat maps, summed counts, and each seed's matrix."""
    section = Section("confusion", "Confusion matrices")
    for classifier in plots.classifier_order(result):
        section.blocks.append(
            FigureBlock(
                f"figures/confusion-{fmt.slug(classifier)}.png",
                plots.confusion_matrices(result, classifier, dpi=dpi),
                f"{classifier}: confusion matrix per arm, mean over seeds (rows: true grade, columns: predicted).",
            )
        )
    summed = [_confusion_table(result.cells_for(a, c), f"{a} / {c}") for a, c in fmt.pairs(result)]
    per_seed = [
        _confusion_table([cell], f"{a} / {c}, seed {cell.key.seed}")
        for a, c in fmt.pairs(result)
        for cell in result.cells_for(a, c)
    ]
    section.blocks.append(Group("Counts summed over seeds", tuple(summed), tiled=True))
    section.blocks.append(Group("Counts per seed", tuple(per_seed), collapsed=True, tiled=True))
    return section


def _confusion_table(cells: Sequence[CellResult], title: str) -> Table:
    matrix = [[sum(cell.metrics.confusion[i][j] for cell in cells) for j in range(5)] for i in range(5)]
    rows = tuple((f"true {i}", *(str(v) for v in matrix[i]), str(sum(matrix[i]))) for i in range(5))
    seeds = f"{len(cells)} seed{'s' if len(cells) != 1 else ''}"
    headers = ("", *(f"pred {int(g)}" for g in ALL_GRADES), "total")
    return Table(headers, rows, f"{title} ({seeds}, {sum(map(sum, matrix))} predictions)")


def learning_section(result: ExperimentResult, dpi: int) -> Section:
    """(7) Learning curves per classifier."""
    section = Section("learning", "Learning curves")
    for classifier in plots.classifier_order(result):
        png = plots.learning_curves(result, classifier, dpi=dpi)
        if png is None:
            section.blocks.append(Text(f"{classifier}: no epoch was recorded.", "note"))
            continue
        section.blocks.append(
            FigureBlock(
                f"figures/learning-{fmt.slug(classifier)}.png",
                png,
                f"{classifier}: loss and accuracy per epoch, one row per arm and one colour per seed; solid lines "
                "training, dashed validation; thin vertical lines mark the chosen epoch.",
            )
        )
    return section


def reproducibility_section(result: ExperimentResult) -> Section:
    """(10) Everything needed to run the experiment again."""
    spec = result.spec
    facts = (
        ("experiment", spec.name),
        ("dataset", result.dataset),
        ("test images", str(count_test_images(result))),
        ("seeds", ", ".join(str(s) for s in spec.seeds)),
        ("plan seed", str(spec.plan_seed)),
        ("plan policy", spec.policy.describe()),
        ("validation fraction", f"{spec.val_fraction:g}"),
        ("classifiers", ", ".join(spec.classifiers)),
        ("started", result.started or "n/a"),
        ("finished", result.finished or "n/a"),
        ("duration", fmt.duration(result.seconds)),
    )
    arms = tuple(
        (a.name, ", ".join(a.generators) or "none (real images only)", fmt.options(a.options)) for a in spec.arms
    )
    tables = [Table(("", "value"), facts, "Run"), Table(("arm", "generators", "options"), arms, "Arms")]
    if result.environment:
        env = tuple((k, fmt.redact_value(k, v)) for k, v in sorted(result.environment.items()))
        tables.append(Table(("component", "version"), env, "Environment"))
    weights = sorted({(c.key.classifier, c.weights_sha256) for c in result.cells if c.weights_sha256})
    if weights:
        tables.append(Table(("classifier", "weights sha256 (over tensors)"), tuple(weights), "Pretrained weights"))
    blocks: list[Block] = [Group("Run, arms and environment", tuple(tables), tiled=True)]
    blocks.append(Text("Configuration (secrets redacted):", "p"))
    blocks.append(Code(redact(result.config_text) or "(no configuration text recorded)"))
    if result.artifacts:
        blocks.append(Table(("artifact", "path"), tuple(sorted(result.artifacts.items())), "Other files of the run"))
    return Section("reproduce", "Reproducibility", blocks)


def finding_lines(result: ExperimentResult) -> list[str]:
    """One sentence per comparison, from its verdict (the protocol's primary test): the headline of the report."""
    n = count_test_images(result)
    lines = []
    for v in result.verdicts():
        low, high = v.ci
        interval = "corrected 95% CI" if v.test == "corrected-t" else "bootstrap 95% CI"
        lines.append(
            f"{v.arm} vs {v.baseline} ({v.classifier}): {fmt.points(v.difference)} points of accuracy "
            f"({fmt.images(v.difference, n)} on average), {interval} [{fmt.points(low)}, {fmt.points(high)}], "
            f"{fmt.p_name(v)} {fmt.p_value(v.p_value)}: {Verdict(v.significant)}."
        )
    return lines
