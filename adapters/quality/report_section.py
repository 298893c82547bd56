"""The experiment report's quality section: one block of tables and figures per augmenting arm.

Built from ``ExperimentResult.quality`` (computed after the run, see ``medaug.application.services.experiment_job``)
with the shared report document blocks (``adapters.report_document``), so it renders to HTML and Markdown
like the rest. The composition root hands :func:`quality_sections` to the report writer as a section builder.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import structlog

from medaug.adapters.plotting import DPI
from medaug.adapters.quality import plots
from medaug.adapters.report_document import Block, FigureBlock, Group, Section, Table, Text
from medaug.application.errors import MedaugError
from medaug.application.ports import ImageStore
from medaug.domain.experiment import ExperimentResult
from medaug.domain.grades import ALL_GRADES
from medaug.domain.quality import DistributionScores, GradeFidelity, LabelFidelity, QualityReport, SimilaritySummary

_log = structlog.get_logger(__name__)


def quality_sections(result: ExperimentResult, store: ImageStore, *, dpi: int = DPI) -> Sequence[Section]:
    """``SectionBuilder`` of the report: the quality section when the run assessed quality, else none."""
    return [quality_section(result, store, dpi=dpi)] if result.quality else []


def quality_section(result: ExperimentResult, store: ImageStore, *, dpi: int = DPI, worst: int = 8) -> Section:
    """Realism, label fidelity and memorisation of each arm's synthetic images, beside held-out real images."""
    section = Section("quality", "Quality of the synthetic images")
    if not result.quality:
        section.blocks.append(Text("The quality of the synthetic images was not assessed in this run.", "note"))
        return section
    first = next(iter(result.quality.values()))
    section.blocks += [
        Text(
            f"Measured in the {first.feature_space} feature space against the real training images; each figure "
            "is shown beside the same figure for held-out real images (the test split), which is what a perfect "
            "generator would score. Label fidelity uses a classifier (the judge: by default a linear probe on the frozen EfficientNet-Lite0) trained on the real training images only; "
            f"it grades held-out real images right {_pct(first.classifier_accuracy)} of the time. Overall figures "
            "also compare the mix of grades (synthetic sets are balanced, real ones are not); per-grade figures "
            "compare like with like.",
            "note",
        ),
        overview_table(result.quality),
        FigureBlock("figures/quality-manifold.png", plots.manifold_chart(result.quality, dpi=dpi),
                    "Precision, recall, density and coverage of each arm's synthetic images and of held-out real "
                    "images, against the real training images."),
    ]  # fmt: skip
    section.blocks += shortcut_blocks(result)
    for arm, report in result.quality.items():
        section.blocks.append(arm_group(arm, report, store, dpi=dpi, worst=worst))
    return section


def shortcut_blocks(result: ExperimentResult) -> list[Block]:
    """The shortcut check of every arm (a table) and a warning per arm that hands its grader one."""
    checks = {arm: report.shortcut for arm, report in result.quality.items() if report.shortcut is not None}
    if not checks:
        return []
    policy = result.spec.policy.describe()
    externals = sorted(result.external)
    rows = []
    for arm, check in checks.items():
        shares = " / ".join(f"{100 * check.share[g]:.0f}" if g in check.share else "-" for g in ALL_GRADES)
        interval = "n/a" if check.auc_low is None else f"[{check.auc_low:.3f}, {check.auc_high:.3f}]"
        verdict = "SHORTCUT" if check.flagged else ("separable" if check.separable else "") + (
            " grade-dependent" if check.grade_dependent else "")
        rows.append((
            arm, check.policy or policy, f"{check.n_real} / {check.n_synthetic}", _num(check.auc, 3), interval,
            _p(check.p_value), shares, _p(check.chi2_p), verdict.strip() or "no",
            *(_external_difference(result, name, arm) for name in externals),
        ))  # fmt: skip
    headers = ("arm", "plan policy", "real / synthetic", "AUC real vs synthetic", "95% interval", "p",
               "synthetic share % (grades 0/1/2/3/4)", "share vs grade p", "flag",
               *(f"Δ kappa vs {result.spec.baseline or 'none'} on {name}" for name in externals))  # fmt: skip
    blocks: list[Block] = [Table(
        headers, tuple(rows),
        "Shortcut check. AUC: logistic regression telling the arm's synthetic training images from the real ones in "
        "the grader's feature space, out of fold over folds grouped by source image (0.5 = indistinguishable; "
        "interval: bootstrap over source images; p: one-sided Mann-Whitney of the out-of-fold scores). Share: the "
        "synthetic share of each grade's training images; its p: chi-square test of independence of origin and "
        "grade. An arm whose images are separable (interval above 0.6) and whose share depends on the grade "
        "(p < 0.01, shares more than 10 points apart) is flagged: looking synthetic tells its grader the grade.",
    )]  # fmt: skip
    for arm, check in checks.items():
        if check.flagged:
            blocks.append(Text(
                f"Arm {arm} hands its grader a shortcut: its synthetic images are told from real ones with "
                f"AUC {check.auc:.3f}, and the plan ({check.policy or policy}) puts them unevenly over the grades. "
                "Its gains (or losses) on this test set may not transfer; use an equal-share plan "
                "(policy = { kind = \"equal-share\", share = ... }) and check an external set.", "warning"))
        elif check.grade_dependent:
            blocks.append(Text(
                f"Arm {arm}'s synthetic share depends on the grade (plan {check.policy or policy}); its images "
                "are not separable from real ones here, but a generator whose images are would hand the grader a "
                "shortcut.", "note"))
    return blocks


def _external_difference(result: ExperimentResult, name: str, arm: str) -> str:
    external = result.external[name]
    baseline = result.spec.baseline or "none"
    try:
        classifier = next(iter(external.summaries[arm]))
        ours = external.summaries[arm][classifier]["quadratic_kappa"].mean
        theirs = external.summaries[baseline][classifier]["quadratic_kappa"].mean
    except (KeyError, StopIteration):
        return "n/a"
    return f"{ours - theirs:+.3f}"


def _p(value: float | None) -> str:
    if value is None:
        return "n/a"
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def overview_table(reports: dict[str, QualityReport]) -> Table:
    """One row per arm, and the held-out real images' row first."""
    headers = (
        "images", "FID", "KID", "precision", "recall", "density", "coverage", "diversity",
        "graded as intended", "confidence", "TSTR accuracy", "TSTR kappa", "near-copies",
    )  # fmt: skip
    first = next(iter(reports.values()))
    rows = [("held-out real", *_figures(first.reference, first.reference_fidelity, first.memorisation.reference))]
    for arm, report in reports.items():
        rows.append((arm, *_figures(report.overall, report.fidelity, report.memorisation.summary)))
    return Table(
        ("arm", *headers),
        tuple(rows),
        "Against the real training images. TSTR: the same kind of classifier trained on the arm's synthetic images alone, tested on the "
        "real test images (held-out real row: trained on the real training images). Near-copies: images whose "
        "fine-structure pixel correlation or SSIM with a training image passes the thresholds.",
    )


def _figures(scores: DistributionScores, fidelity: LabelFidelity, similarity: SimilaritySummary | None) -> tuple[str, ...]:
    near = f"{similarity.flagged}/{similarity.n}" if similarity is not None else "n/a"
    return (
        str(scores.n_images), _num(scores.fid, 2), _kid(scores), _pct(scores.precision), _pct(scores.recall),
        _num(scores.density, 2), _pct(scores.coverage), _num(scores.diversity, 3), _pct(fidelity.overall.agreement),
        _pct(fidelity.overall.confidence), _pct(fidelity.tstr_accuracy), _num(fidelity.tstr_kappa, 3), near,
    )  # fmt: skip


def arm_group(arm: str, report: QualityReport, store: ImageStore, *, dpi: int, worst: int) -> Group:
    """One arm's per-grade table, similarity histograms, label fidelity and worst pairs."""
    blocks: list[Block] = [grade_table(report), Text(memorisation_sentence(report))]
    slug = plots.slug_of(arm)
    figures: list[tuple[str, Callable[[], bytes | None], str]] = [
        (f"figures/quality-similarity-{slug}.png", lambda: plots.similarity_histograms(report, dpi=dpi),
         "Similarity of each image to its nearest training image; dashed lines are the near-copy thresholds."),
        (f"figures/quality-fidelity-{slug}.png", lambda: plots.fidelity_chart(report, dpi=dpi),
         "Per grade: share graded as intended and mean confidence in the intended grade."),
        (f"figures/quality-worst-{slug}.png", lambda: plots.worst_pairs(report, store, count=worst, dpi=dpi),
         "The synthetic images most similar to a training image (left), each beside that image (right)."),
    ]  # fmt: skip
    for path, draw, caption in figures:
        blocks.append(_figure(path, draw, caption))
    return Group(f"Arm {arm}", tuple(blocks))


def grade_table(report: QualityReport) -> Table:
    """Per grade: synthetic figure / held-out real figure."""
    flagged: dict[int, int] = {}
    for item in report.memorisation.nearest:
        flagged[int(item.grade)] = flagged.get(int(item.grade), 0) + int(item.flagged)
    rows = []
    for grade in report.grades():
        s, r = report.per_grade[grade], report.reference_per_grade.get(grade)
        fs, fr = report.fidelity.per_grade.get(grade), report.reference_fidelity.per_grade.get(grade)
        rows.append((
            f"grade {int(grade)} ({grade.label})",
            f"{s.n_images} / {r.n_images if r else 0}",
            f"{_num(s.fid, 2)} / {_num(r.fid if r else None, 2)}",
            f"{_pct(s.precision)} / {_pct(r.precision if r else None)}",
            f"{_pct(s.coverage)} / {_pct(r.coverage if r else None)}",
            f"{_agreement(fs)} / {_agreement(fr)}",
            f"{flagged.get(int(grade), 0)}",
        ))  # fmt: skip
    headers = ("grade", "images", "FID", "precision", "coverage", "graded as intended", "near-copies")
    return Table(headers, tuple(rows), f"{report.augmentation} per grade: synthetic / held-out real.")


def memorisation_sentence(report: QualityReport) -> str:
    """Near-copies in one sentence, with held-out real images for scale."""
    memo, t = report.memorisation, report.thresholds
    text = (
        f"{memo.summary.flagged} of {memo.summary.n} synthetic images are near-copies of a training image "
        f"(fine-structure pixel correlation ≥ {t.pixel_correlation:g} or SSIM ≥ {t.ssim:g}); their correlation with "
        f"the nearest training image has median {memo.summary.correlation[0]:.3f} and maximum "
        f"{memo.summary.correlation[2]:.3f}"
    )
    if memo.reference is not None:
        text += (
            f", against {memo.reference.correlation[0]:.3f} and {memo.reference.correlation[2]:.3f} for held-out real "
            f"images of other patients ({memo.reference.flagged} of {memo.reference.n} flagged)"
        )
    return text + "."


def _figure(path: str, draw: Callable[[], bytes | None], caption: str) -> Block:
    try:
        data = draw()
    except (MedaugError, KeyError, OSError, ValueError) as exc:
        _log.warning("quality_figure_unavailable", figure=path, error=str(exc))
        return Text(f"Figure unavailable: {exc}", "note")
    if data is None:
        return Text("No synthetic image to show.", "note")
    return FigureBlock(path, data, caption)


def _agreement(fidelity: GradeFidelity | None) -> str:
    return "n/a" if fidelity is None else _pct(fidelity.agreement)


def _num(value: float | None, digits: int) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _kid(scores: DistributionScores) -> str:
    return "n/a" if scores.kid_mean is None else f"{scores.kid_mean:.4f} ± {scores.kid_std or 0:.4f}"
