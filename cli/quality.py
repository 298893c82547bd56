"""``medaug quality``: are synthetic images realistic, on-label, and not copies of a patient's photograph?"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import typer
from rich.table import Table

from medaug.cli.common import StoreOption, console, handle_errors, services
from medaug.domain.quality import DistributionScores, GradeFidelity, QualityReport

_Figure = Callable[[float], str]


@handle_errors
def quality(
    store: str = StoreOption,
    generator: str = typer.Option(None, "--generator", "-g", help="Only augmentation sets this generator made images for."),
    augmentation: str = typer.Option(None, "--augmentation", "-a", help="Only this augmentation set (e.g. classic)."),
    out: Path = typer.Option(None, "--out", "-o", help="Folder for quality.json and the plots (default: <work_dir>/quality/store-*)."),
) -> None:
    """Measure augmentation sets against the real images: FID, KID, precision, recall, density,
    coverage, diversity, label fidelity, train-on-synthetic accuracy and near-copies of training
    images, each beside the same figure for held-out real images; writes quality.json and plots."""
    outcome = services().assess_quality(store=store, generator=generator, augmentation=augmentation, out=out)
    for report in outcome.reports.values():
        console.print(summary_table(report))
        console.print(grade_table(report))
        console.print(memorisation_line(report), highlight=False, soft_wrap=True)
        if report.shortcut is not None:
            console.print(shortcut_line(report), highlight=False, soft_wrap=True)
    for path in outcome.written:
        console.print(f"wrote {path}", highlight=False, soft_wrap=True)


def shortcut_line(report: QualityReport) -> str:
    """The shortcut check in one sentence: separability, the share per grade, and the verdict."""
    check = report.shortcut
    assert check is not None
    if check.auc is None:
        separability = "too few images or sources to test whether they can be told from real ones"
    else:
        separability = (
            f"told from real training images with AUC {check.auc:.3f} (95% {check.auc_low:.3f}-{check.auc_high:.3f}, "
            f"p {check.p_value:.2g}; {check.folds} folds grouped by source)"
        )
    shares = ", ".join(f"grade {int(g)} {100 * v:.0f}%" for g, v in check.share.items())
    dependence = "n/a" if check.chi2_p is None else f"{check.chi2_p:.2g}"
    verdict = (
        "SHORTCUT: separable and unevenly spread over the grades, so looking synthetic tells a grader the grade"
        if check.flagged else
        "grade-dependent share (a shortcut if a generator's images were separable)" if check.grade_dependent else
        "no shortcut"
    )
    return (f"{report.augmentation}: synthetic images {separability}; synthetic share {shares} "
            f"(independence of origin and grade p {dependence}): {verdict}.")


def summary_table(report: QualityReport) -> Table:
    """The set's figures beside held-out real images' (the score of a perfect generator)."""
    s = report.overall
    table = Table(
        title=f"{report.augmentation} ({', '.join(report.generators) or 'no generator'}): {s.n_images} synthetic images "
        f"vs {s.n_real} real training images, {report.feature_space} features",
        title_justify="left",
    )
    for column in ("figure", "synthetic", "held-out real", "better"):
        table.add_column(column, justify="left" if column == "figure" else "right")
    for name, synthetic, held, better in _rows(report):
        table.add_row(name, synthetic, held, better)
    return table


def _rows(report: QualityReport) -> list[tuple[str, str, str, str]]:
    s, r = report.overall, report.reference
    f, rf = report.fidelity, report.reference_fidelity
    memo = report.memorisation
    return [
        ("FID", _num(s.fid, 2), _num(r.fid, 2), "lower"),
        ("KID (mean ± std)", _kid(s), _kid(r), "lower"),
        ("precision", _pct(s.precision), _pct(r.precision), "higher"),
        ("recall", _pct(s.recall), _pct(r.recall), "higher"),
        ("density", _num(s.density, 3), _num(r.density, 3), "about 1"),
        ("coverage", _pct(s.coverage), _pct(r.coverage), "higher"),
        ("diversity (real training: " + _num(report.real_diversity, 3) + ")", _num(s.diversity, 3), _num(r.diversity, 3), "as real"),
        ("graded as intended", _pct(f.overall.agreement), _pct(rf.overall.agreement), "higher"),
        ("mean confidence in intended grade", _pct(f.overall.confidence), _pct(rf.overall.confidence), "higher"),
        (f"confidence below {report.thresholds.min_confidence:g}", _share(f.overall), _share(rf.overall), "lower"),
        ("train on it, test on real: accuracy", _pct(f.tstr_accuracy), _pct(rf.tstr_accuracy), "higher"),
        ("train on it, test on real: kappa", _num(f.tstr_kappa, 3), _num(rf.tstr_kappa, 3), "higher"),
        ("near-copies of training images", _flagged(memo.summary.flagged, memo.summary.n),
         _flagged(memo.reference.flagged, memo.reference.n) if memo.reference else "n/a", "0"),
    ]  # fmt: skip


def grade_table(report: QualityReport) -> Table:
    """Per grade: synthetic figure / held-out real figure."""
    table = Table(title=f"{report.augmentation} per grade (synthetic / held-out real)", title_justify="left")
    for column in ("grade", "real", "images", "FID", "KID", "precision", "coverage", "as intended", "confidence",
                   "near-copies"):
        table.add_column(column, justify="left" if column == "grade" else "right", no_wrap=True)
    flagged = {g: 0 for g in report.per_grade}
    for item in report.memorisation.nearest:
        if item.flagged:
            flagged[item.grade] = flagged.get(item.grade, 0) + 1
    for grade in report.grades():
        s, r = report.per_grade[grade], report.reference_per_grade.get(grade)
        fs, fr = report.fidelity.per_grade.get(grade), report.reference_fidelity.per_grade.get(grade)
        table.add_row(
            f"{int(grade)} {grade.label}",
            str(s.n_real),
            f"{s.n_images} / {r.n_images if r else 0}",
            _pair(s.fid, r.fid if r else None, lambda v: f"{v:.2f}"),
            _pair(s.kid_mean, r.kid_mean if r else None, lambda v: f"{v:.4f}"),
            _pair(s.precision, r.precision if r else None, _pct),
            _pair(s.coverage, r.coverage if r else None, _pct),
            _pair(fs.agreement if fs else None, fr.agreement if fr else None, _pct),
            _pair(fs.confidence if fs else None, fr.confidence if fr else None, _pct),
            str(flagged.get(grade, 0)),
        )
    return table


def memorisation_line(report: QualityReport) -> str:
    """One sentence on near-copies: the closest pair and how held-out real images compare."""
    memo = report.memorisation
    t = report.thresholds
    text = (
        f"{report.augmentation}: {memo.summary.flagged} of {memo.summary.n} synthetic images are near-copies of a "
        f"training image (fine-structure pixel correlation >= {t.pixel_correlation:g} or SSIM >= {t.ssim:g}); "
        f"median / max correlation {memo.summary.correlation[0]:.3f} / {memo.summary.correlation[2]:.3f}"
    )
    if memo.reference is not None:
        text += (
            f", held-out real images {memo.reference.correlation[0]:.3f} / {memo.reference.correlation[2]:.3f} "
            f"({memo.reference.flagged} of {memo.reference.n} flagged)"
        )
    worst = memo.worst(1)
    if worst:
        w = worst[0]
        text += f". Closest: {w.image_id} ~ {w.pixel_id} ({w.pixel_transform}), r={w.pixel_correlation:.3f}, SSIM={w.ssim:.3f}."
    return text


def _pair(synthetic: float | None, held: float | None, fmt: _Figure) -> str:
    return f"{_or_na(synthetic, fmt)} / {_or_na(held, fmt)}"


def _or_na(value: float | None, fmt: _Figure) -> str:
    return "n/a" if value is None else fmt(value)


def _num(value: float | None, digits: int) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _kid(scores: DistributionScores) -> str:
    if scores.kid_mean is None:
        return "n/a"
    return f"{scores.kid_mean:.4f} ± {scores.kid_std or 0:.4f} (subsets of {scores.kid_subset_size})"


def _share(fidelity: GradeFidelity) -> str:
    return f"{fidelity.below_threshold}/{fidelity.n}"


def _flagged(count: int, total: int) -> str:
    return f"{count}/{total}"
