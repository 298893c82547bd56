"""Figures of a quality assessment (matplotlib's Agg canvas, returned as PNG bytes), and the files
``medaug quality`` writes: ``quality.json`` and the figures, each written atomically.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from medaug.adapters.files import write_atomic
from medaug.adapters.plotting import DPI, STYLE, figure_png
from medaug.adapters.quality.similarity import mirrored
from medaug.adapters.torch_support import png_to_tensor
from medaug.application.errors import MedaugError
from medaug.application.ports import ImageStore
from medaug.domain.grades import ALL_GRADES
from medaug.domain.quality import NearestReal, QualityReport

_SYNTHETIC, _REFERENCE = "#d95f02", "#1b9e77"


def similarity_histograms(report: QualityReport, *, dpi: int = DPI) -> bytes:
    """Nearest-training-image similarities of the synthetic images beside held-out real ones,
    with the near-copy thresholds."""
    panels = (
        ("pixel_correlation", "fine-structure pixel correlation", report.thresholds.pixel_correlation),
        ("ssim", "SSIM", report.thresholds.ssim),
        ("feature_cosine", f"feature cosine ({report.feature_space})", report.thresholds.feature_cosine),
    )
    with matplotlib.rc_context(STYLE):
        figure = Figure(figsize=(11, 3.2), dpi=dpi)
        for index, (field, title, threshold) in enumerate(panels):
            axes = figure.add_subplot(1, 3, index + 1)
            for records, label, colour in (
                (report.memorisation.nearest, f"{report.augmentation} (n={len(report.memorisation.nearest)})", _SYNTHETIC),
                (report.memorisation.reference_nearest, f"held-out real (n={len(report.memorisation.reference_nearest)})", _REFERENCE),
            ):  # fmt: skip
                values = [getattr(r, field) for r in records]
                if values:
                    axes.hist(values, bins=30, range=(min(0.0, min(values)), 1.0), density=True, alpha=0.55,
                              color=colour, label=label)
            if threshold is not None:
                axes.axvline(threshold, color="black", linestyle="--", linewidth=1, label="near-copy threshold")
            axes.set_title(title)
            axes.set_xlabel("similarity to the nearest training image")
            if index == 0:
                axes.legend(loc="upper left", fontsize=8)
        figure.suptitle(f"{report.augmentation}: how close each image is to a training photograph")
        return _png(figure)


def fidelity_chart(report: QualityReport, *, dpi: int = DPI) -> bytes:
    """Per grade: share graded as intended and mean confidence, synthetic beside held-out real."""
    grades = [g for g in ALL_GRADES if g in report.fidelity.per_grade]
    x = np.arange(len(grades))
    with matplotlib.rc_context(STYLE):
        figure = Figure(figsize=(9, 3.2), dpi=dpi)
        for index, (field, title) in enumerate((("agreement", "graded as intended (%)"), ("confidence", "mean confidence in the intended grade (%)"))):
            axes = figure.add_subplot(1, 2, index + 1)
            synthetic = [100 * getattr(report.fidelity.per_grade[g], field) for g in grades]
            held = [100 * getattr(report.reference_fidelity.per_grade[g], field) if g in report.reference_fidelity.per_grade else np.nan for g in grades]
            axes.bar(x - 0.2, synthetic, 0.4, color=_SYNTHETIC, label=report.augmentation)
            axes.bar(x + 0.2, held, 0.4, color=_REFERENCE, label="held-out real")
            axes.set_xticks(x, [f"grade {int(g)}" for g in grades])
            axes.set_ylim(0, 100)
            axes.set_title(title)
            if field == "confidence":
                axes.axhline(100 * report.thresholds.min_confidence, color="black", linestyle="--", linewidth=1)
            if index == 0:
                axes.legend(loc="upper right", fontsize=8)
        figure.suptitle(f"{report.augmentation}: label fidelity by a classifier trained on the real training images")
        return _png(figure)


def manifold_chart(reports: Mapping[str, QualityReport], *, dpi: int = DPI) -> bytes:
    """Precision, recall, density and coverage of every set beside held-out real images."""
    names = ["held-out real", *reports]
    metrics = ("precision", "recall", "density", "coverage")
    first = next(iter(reports.values()))
    rows = [first.reference, *(r.overall for r in reports.values())]
    x = np.arange(len(metrics))
    width = 0.8 / len(names)
    with matplotlib.rc_context(STYLE):
        figure = Figure(figsize=(8, 3.2), dpi=dpi)
        axes = figure.add_subplot(1, 1, 1)
        for index, (name, scores) in enumerate(zip(names, rows, strict=True)):
            values = [getattr(scores, m) if getattr(scores, m) is not None else np.nan for m in metrics]
            axes.bar(x + (index - (len(names) - 1) / 2) * width, values, width, label=name,
                     color=_REFERENCE if index == 0 else None)
        axes.set_xticks(x, list(metrics))
        axes.set_title(f"Against the real training images, in the {first.feature_space} feature space")
        highest = max([1.0, *(getattr(s, m) or 0.0 for s in rows for m in metrics)])
        axes.set_ylim(0, highest * 1.25)  # room for the legend above the bars
        axes.legend(fontsize=8, ncol=len(names), loc="upper center")
        return _png(figure)


def worst_pairs(report: QualityReport, store: ImageStore, *, count: int, thumb: int = 128, dpi: int = DPI) -> bytes | None:
    """The ``count`` synthetic images most similar to a training image, each beside that image
    (mirrored as it matched); None when there is none."""
    pairs = report.memorisation.worst(count)
    if not pairs:
        return None
    with matplotlib.rc_context({**STYLE, "axes.grid": False}):
        columns = min(4, len(pairs))
        rows = -(-len(pairs) // columns)
        figure = Figure(figsize=(columns * 3.2, rows * 2.3 + 0.4), dpi=dpi)
        for index, pair in enumerate(pairs):
            axes = figure.add_subplot(rows, columns, index + 1)
            axes.imshow(_side_by_side(pair, store, thumb))
            axes.set_axis_off()
            flag = "NEAR-COPY " if pair.flagged else ""
            axes.set_title(f"{flag}r={pair.pixel_correlation:.3f} SSIM={pair.ssim:.3f}\n{pair.image_id[:24]} | "
                           f"{pair.pixel_id[:20]} ({pair.pixel_transform})", fontsize=7)
        figure.suptitle(f"{report.augmentation}: synthetic image (left) and its nearest training image (right)")
        return _png(figure)


def _side_by_side(pair: NearestReal, store: ImageStore, thumb: int) -> np.ndarray:
    synthetic = png_to_tensor(store.get(pair.image_id), thumb)
    real = mirrored(png_to_tensor(store.get(pair.pixel_id), thumb), pair.pixel_transform)
    gap = np.ones((thumb, 4, 3))
    return np.concatenate([synthetic.permute(1, 2, 0).numpy(), gap, real.permute(1, 2, 0).numpy()], axis=1)


def write_quality_outputs(
    reports: Mapping[str, QualityReport], store: ImageStore, out: Path, *, worst: int = 8, dpi: int = DPI
) -> list[Path]:
    """Write ``quality.json`` and every figure of ``reports`` into ``out``; return the paths.

    Raises:
        MedaugError: a file cannot be written (naming it).
    """
    payload = {name: report.model_dump(mode="json") for name, report in reports.items()}
    files = {"quality.json": json.dumps(payload, indent=1).encode()}
    if reports:
        files["manifold.png"] = manifold_chart(reports, dpi=dpi)
    for name, report in reports.items():
        slug = slug_of(name)
        files[f"similarity-{slug}.png"] = similarity_histograms(report, dpi=dpi)
        files[f"fidelity-{slug}.png"] = fidelity_chart(report, dpi=dpi)
        pairs = worst_pairs(report, store, count=worst, dpi=dpi)
        if pairs is not None:
            files[f"worst-pairs-{slug}.png"] = pairs
    return [_write(out / name, data) for name, data in files.items()]


def _write(path: Path, data: bytes) -> Path:
    try:
        return write_atomic(path, data)
    except OSError as exc:
        raise MedaugError(f"{path}: cannot write ({exc.strerror or exc})") from exc


def slug_of(name: str) -> str:
    """A file-name-safe form of an augmentation set's name."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-") or "unnamed"


def _png(figure: Figure) -> bytes:
    FigureCanvasAgg(figure)
    figure.tight_layout()
    return figure_png(figure, figure.dpi)
