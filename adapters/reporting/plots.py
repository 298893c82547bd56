"""Figures of an experiment report, drawn on matplotlib's Agg canvas and returned as PNG bytes.

Figures are built on ``matplotlib.figure.Figure`` directly (never pyplot), so drawing needs no
display, keeps no global figure state and gives the same bytes for the same result.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from medaug.adapters.plotting import DPI, STYLE, figure_png
from medaug.domain.experiment import CellResult, ExperimentResult, Summary
from medaug.domain.grades import ALL_GRADES

_BAR_PANELS = (("accuracy", "accuracy (%)", 100.0), ("quadratic_kappa", "quadratic weighted kappa", 1.0))


def arm_order(result: ExperimentResult) -> list[str]:
    """Arms that have cells, in the order the experiment lists them (then any others)."""
    present = {c.key.arm for c in result.cells}
    listed = [a.name for a in result.spec.arms if a.name in present]
    return listed + sorted(present - set(listed))


def classifier_order(result: ExperimentResult) -> list[str]:
    """Classifiers that have cells, in the order the experiment lists them (then any others)."""
    present = {c.key.classifier for c in result.cells}
    listed = [c for c in result.spec.classifiers if c in present]
    return listed + sorted(present - set(listed))


def summary_of(result: ExperimentResult, arm: str, classifier: str, metric: str) -> Summary | None:
    """The across-seed summary of ``metric`` for one arm and classifier, if the result has it."""
    return result.summaries.get(arm, {}).get(classifier, {}).get(metric)


def majority_accuracy(result: ExperimentResult) -> tuple[int, int, int] | None:
    """``(grade, count, n)`` of the most frequent test grade: what always answering it scores."""
    if not result.cells:
        return None
    first = result.cells[0].key
    # K-fold: the first run's folds together, so every pooled test image counts once.
    run = [c for c in result.cells if c.key.model_copy(update={"fold": first.fold}) == first]
    labels = [label for cell in run for label in cell.predictions.labels]
    if not labels:
        return None
    counts = np.bincount(np.asarray(labels, dtype=int), minlength=len(ALL_GRADES))
    grade = int(np.argmax(counts))
    return grade, int(counts[grade]), len(labels)


def bar_chart(result: ExperimentResult, *, dpi: int = DPI) -> bytes:
    """Accuracy and quadratic kappa per classifier (groups) and arm (bars).

    Bars are across-seed means with their 95% interval as error bars; dots are single seeds. The
    accuracy panel marks what always answering the most frequent test grade would score.
    """
    arms, classifiers = arm_order(result), classifier_order(result)
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(max(5.0, 1.6 + 1.2 * len(arms) * len(classifiers)), 3.2))
        for index, (metric, label, scale) in enumerate(_BAR_PANELS):
            ax = fig.add_subplot(1, len(_BAR_PANELS), index + 1)
            _bar_panel(ax, result, arms, classifiers, metric, scale)
            ax.set_ylabel(label)
            if metric == "accuracy":
                _majority_line(ax, result)
        handles, labels = fig.axes[0].get_legend_handles_labels()
        if labels:
            fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 6), bbox_to_anchor=(0.5, 0.0))
        fig.tight_layout(rect=(0, 0.1, 1, 1))
        return figure_png(fig, dpi)


def _bar_panel(
    ax: Axes, result: ExperimentResult, arms: Sequence[str], classifiers: Sequence[str], metric: str, scale: float
) -> None:
    width = 0.8 / max(len(arms), 1)
    for a, arm in enumerate(arms):
        offset = (a - (len(arms) - 1) / 2) * width
        for c, classifier in enumerate(classifiers):
            cells = result.cells_for(arm, classifier)
            if not cells:
                continue
            values = [getattr(cell.metrics, metric) * scale for cell in cells]
            summary = summary_of(result, arm, classifier, metric)
            x = c + offset
            mean = summary.mean * scale if summary else _nanmean(values)
            ax.bar(x, mean, width * 0.9, color=_colour(a), label=arm if c == 0 else None)
            if summary is not None and len(cells) > 1:
                low, high = summary.ci_low * scale, summary.ci_high * scale
                ax.errorbar(x, mean, yerr=[[max(mean - low, 0)], [max(high - mean, 0)]], color="#222", capsize=3)
            jitter = np.linspace(-width * 0.2, width * 0.2, len(values)) if len(values) > 1 else [0.0]
            ax.scatter(x + np.asarray(jitter), values, s=9, color="#222", zorder=3, linewidths=0)
    ax.set_xticks(range(len(classifiers)), classifiers)


def _majority_line(ax: Axes, result: ExperimentResult) -> None:
    majority = majority_accuracy(result)
    if majority is None:
        return
    grade, count, n = majority
    share = 100.0 * count / n
    ax.axhline(share, color="#b03a2e", linestyle=":", linewidth=1.2, label=f"always grade {grade} ({share:.1f}%)")


def confusion_matrices(result: ExperimentResult, classifier: str, *, dpi: int = DPI) -> bytes:
    """One heat map per arm: the confusion matrix of ``classifier``, averaged over seeds."""
    arms = [arm for arm in arm_order(result) if result.cells_for(arm, classifier)]
    with matplotlib.rc_context({**STYLE, "axes.grid": False}):
        fig = Figure(figsize=(0.4 + 2.7 * len(arms), 2.9))
        for index, arm in enumerate(arms):
            ax = fig.add_subplot(1, len(arms), index + 1)
            _confusion_panel(ax, result.cells_for(arm, classifier))
            ax.set_title(f"{arm} ({len(result.cells_for(arm, classifier))} seeds)")
        fig.tight_layout()
        return figure_png(fig, dpi)


def mean_confusion(cells: Sequence[CellResult]) -> np.ndarray:
    """The element-wise mean of the cells' 5x5 confusion matrices."""
    return np.mean(np.asarray([cell.metrics.confusion for cell in cells], dtype=float), axis=0)


def _confusion_panel(ax: Axes, cells: Sequence[CellResult]) -> None:
    matrix = mean_confusion(cells)
    ax.imshow(matrix, cmap="Blues", vmin=0, vmax=max(float(matrix.max()), 1.0))
    grades = [str(int(g)) for g in ALL_GRADES]
    ax.set_xticks(range(len(grades)), grades)
    ax.set_yticks(range(len(grades)), grades)
    ax.set_xlabel("predicted grade")
    ax.set_ylabel("true grade")
    threshold = matrix.max() / 2
    for (i, j), value in np.ndenumerate(matrix):
        text = f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"
        ax.text(j, i, text, ha="center", va="center", fontsize=8, color="white" if value > threshold else "#222")


def learning_curves(result: ExperimentResult, classifier: str, *, dpi: int = DPI) -> bytes | None:
    """Loss and accuracy per epoch of ``classifier``: one row per arm, one colour per seed.

    Solid lines are training figures, dashed lines validation figures, thin vertical lines the
    chosen epoch. Returns None when no cell of the classifier recorded any epoch.
    """
    arms = [arm for arm in arm_order(result) if any(c.history for c in result.cells_for(arm, classifier))]
    if not arms:
        return None
    seeds = sorted({c.key.seed for arm in arms for c in result.cells_for(arm, classifier)})
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(7.0, 0.9 + 2.0 * len(arms)))
        for row, arm in enumerate(arms):
            loss_ax = fig.add_subplot(len(arms), 2, 2 * row + 1)
            acc_ax = fig.add_subplot(len(arms), 2, 2 * row + 2)
            for cell in result.cells_for(arm, classifier):
                _curve(loss_ax, acc_ax, cell, _colour(seeds.index(cell.key.seed)))
            for ax in (loss_ax, acc_ax):
                ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            loss_ax.set_title(f"{arm}: loss", loc="left")
            acc_ax.set_title(f"{arm}: accuracy (%)", loc="left")
            if row == len(arms) - 1:
                loss_ax.set_xlabel("epoch")
                acc_ax.set_xlabel("epoch")
        handles = [Line2D([], [], color=_colour(i), label=f"seed {s}") for i, s in enumerate(seeds)]
        handles += [Line2D([], [], color="#444", label="train"), Line2D([], [], color="#444", ls="--", label="val")]
        fig.legend(handles=handles, loc="upper center", ncol=len(handles), bbox_to_anchor=(0.5, 1.0))
        fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / fig.get_figheight()))
        return figure_png(fig, dpi)


def _curve(loss_ax: Axes, acc_ax: Axes, cell: CellResult, colour: str) -> None:
    epochs = [r.epoch for r in cell.history]
    loss_ax.plot(epochs, [r.train_loss for r in cell.history], color=colour)
    acc_ax.plot(epochs, [100.0 * r.train_accuracy for r in cell.history], color=colour)
    val = [r for r in cell.history if r.val_loss is not None or r.val_accuracy is not None]
    if val:
        loss_ax.plot([r.epoch for r in val], [_nan(r.val_loss) for r in val], color=colour, linestyle="--")
        acc_ax.plot([r.epoch for r in val], [100.0 * _nan(r.val_accuracy) for r in val], color=colour, linestyle="--")
    if cell.best_epoch is not None:
        for ax in (loss_ax, acc_ax):
            ax.axvline(cell.best_epoch, color=colour, linewidth=0.8, alpha=0.5)


def _colour(index: int) -> str:
    palette = matplotlib.colormaps["tab10"].colors
    return matplotlib.colors.to_hex(palette[index % len(palette)])


def _nan(value: float | None) -> float:
    return math.nan if value is None else value


def _nanmean(values: Sequence[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else 0.0
