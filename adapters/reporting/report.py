"""The experiment report: a self-contained ``report.html``, a ``report.md`` and their figures.

The report is first built as a small document (sections of text, tables, figures, code), then
rendered twice: to HTML, with every figure inlined as a base64 data URI and the CSS inline so the
file opens offline, and to Markdown, with figures referenced as ``figures/<name>.png``.
"""

from __future__ import annotations

import base64
import html
import math
import re
import statistics
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from string import Template

import structlog

from medaug.adapters.files import write_atomic
from medaug.adapters.reporting import plots
from medaug.application.errors import MedaugError
from medaug.application.ports import ImageStore
from medaug.domain.experiment import CellResult, Comparison, ExperimentResult, Summary
from medaug.domain.grades import ALL_GRADES

_log = structlog.get_logger(__name__)

ContactSheet = Callable[..., bytes]
"""``contact_sheet(store, *, per_cell, augmentation, thumb) -> PNG bytes``."""

METRICS: tuple[tuple[str, str, bool], ...] = (
    ("accuracy", "accuracy (%)", True),
    ("balanced_accuracy", "balanced accuracy (%)", True),
    ("macro_f1", "macro-F1 (%)", True),
    ("quadratic_kappa", "quadratic kappa", False),
    ("loss", "loss", False),
)
"""(``summaries`` key = ``Metrics`` field, column title, shown as a percentage)."""

MIN_RELIABLE_SEEDS = 3
_SECRET_LINE = re.compile(r"(?im)^(\s*[\w.-]*(?:key|secret|token|password)[\w.-]*\s*=\s*)(?!\"\"|''|null\b)(\S.*)$")
_SECRET_NAME = re.compile(r"(?i)key|secret|token|password")
_NUM_CLASS = ' class="num"'
_NUMERIC = re.compile(r"^[<\[≈]?\s*[+\-]?(\d|n/a$)")


# -- the document --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stat:
    """A table cell holding a figure and, below it (on the same line in Markdown), its interval."""

    main: str
    interval: str = ""
    joiner: str = " "

    def __str__(self) -> str:
        return f"{self.main}{self.joiner}{self.interval}" if self.interval else self.main


@dataclass(frozen=True)
class Verdict:
    """A table cell saying whether a comparison is significant."""

    significant: bool

    def __str__(self) -> str:
        return "significant" if self.significant else "not significant"


@dataclass(frozen=True)
class Lines:
    """A table cell of several short lines (one per seed, say)."""

    lines: tuple[str, ...]

    def __str__(self) -> str:
        return "; ".join(self.lines)


Cell = str | Stat | Verdict | Lines


@dataclass(frozen=True)
class Table:
    """A table; ``caption`` is shown above it."""

    headers: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]
    caption: str = ""


@dataclass(frozen=True)
class Text:
    """A paragraph; ``kind`` is ``p``, ``warning``, ``key`` (a finding) or ``note``."""

    text: str
    kind: str = "p"


@dataclass(frozen=True)
class Bullets:
    """A list of findings, shown highlighted."""

    items: tuple[str, ...]


@dataclass(frozen=True)
class Code:
    """Preformatted text (configuration)."""

    text: str


@dataclass(frozen=True)
class FigureBlock:
    """A PNG figure written to ``path`` (relative to the run folder) and inlined in the HTML."""

    path: str
    data: bytes
    caption: str


@dataclass(frozen=True)
class Group:
    """A titled group of blocks; ``collapsed`` groups fold away and ``tiled`` ones sit side by side in HTML."""

    title: str
    blocks: tuple[Block, ...]
    collapsed: bool = False
    tiled: bool = False


Block = Table | Text | Bullets | Code | FigureBlock | Group


@dataclass
class Section:
    """A top-level section of the report, listed in the table of contents."""

    anchor: str
    title: str
    blocks: list[Block] = field(default_factory=list)


# -- the writer ----------------------------------------------------------------------------------


class HtmlMarkdownReportWriter:
    """``ReportWriter`` that writes ``report.html``, ``report.md`` and ``figures/*.png``.

    Args:
        dpi: resolution of the matplotlib figures.
        per_cell: images per grade and origin in each arm's contact sheet.
        thumb: side of each contact-sheet thumbnail in pixels.
        contact_sheet: the function that draws a contact sheet from a store (default:
            ``adapters.reporting.contact_sheet.contact_sheet``).
    """

    def __init__(
        self, *, dpi: int = plots.DPI, per_cell: int = 4, thumb: int = 96, contact_sheet: ContactSheet | None = None
    ) -> None:
        self._dpi = dpi
        self._per_cell = per_cell
        self._thumb = thumb
        self._contact_sheet = contact_sheet

    def write(self, result: ExperimentResult, run_dir: str, store: ImageStore) -> list[str]:
        """Write the report of ``result`` into ``run_dir`` and return the paths written.

        Raises:
            MedaugError: a file of the report cannot be written (the message names it).
        """
        run = Path(run_dir)
        sections = self._sections(result, store)
        written = [_write_atomic(run / figure.path, figure.data) for figure in _figures(sections)]
        title, subtitle = _title(result), _subtitle(result)
        written.append(_write_atomic(run / "report.md", render_markdown(title, subtitle, sections).encode()))
        written.append(_write_atomic(run / "report.html", render_html(title, subtitle, sections).encode()))
        _log.info("report_written", run_dir=str(run), files=len(written))
        return written

    def _sections(self, result: ExperimentResult, store: ImageStore) -> list[Section]:
        sections = [
            overview_section(result),
            main_section(result, self._dpi),
            comparison_section(result),
            per_seed_section(result),
        ]
        if result.references:
            sections.append(reference_section(result))
        sections += [
            per_grade_section(result),
            confusion_section(result, self._dpi),
            learning_section(result, self._dpi),
            self._contact_section(result, store),
            *_quality_sections(result, store, self._dpi),
            reproducibility_section(result),
        ]
        return sections

    def _contact_section(self, result: ExperimentResult, store: ImageStore) -> Section:
        section = Section("synthetic", "Synthetic images per arm")
        arms = [arm for arm in result.spec.arms if arm.augments]
        if not arms:
            section.blocks.append(Text("No arm of this experiment adds synthetic images.", "note"))
            return section
        for arm in arms:
            section.blocks.append(self._contact_block(arm.name, store))
        from medaug.adapters.reporting.acceptance import acceptance_blocks  # it builds on this module's blocks

        section.blocks += acceptance_blocks(result)
        return section

    def _contact_block(self, arm: str, store: ImageStore) -> Block:
        try:
            draw = self._contact_sheet or _default_contact_sheet()
            data = draw(store, per_cell=self._per_cell, augmentation=arm, thumb=self._thumb)
        except (MedaugError, KeyError, OSError, ValueError, ImportError) as exc:
            _log.warning("contact_sheet_unavailable", arm=arm, error=str(exc))
            return Text(f"Contact sheet of arm {arm} unavailable: {exc}", "note")
        caption = (
            f"Arm {arm}: sample training images, one row per grade; real images beside the arm's synthetic "
            f"ones ({self._per_cell} per grade and origin, column titles give the counts)."
        )
        return FigureBlock(f"figures/contact-{_slug(arm)}.png", data, caption)


def _quality_sections(result: ExperimentResult, store: ImageStore, dpi: int) -> list[Section]:
    """The synthetic images' quality per arm, when the run assessed it (see ``adapters.quality``)."""
    if not result.quality:
        return []
    from medaug.adapters.quality.report_section import quality_section  # it builds on this module's blocks

    return [quality_section(result, store, dpi=dpi)]


def _default_contact_sheet() -> ContactSheet:
    from medaug.adapters.reporting.contact_sheet import contact_sheet

    return contact_sheet


# -- sections ------------------------------------------------------------------------------------


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
    for arm, classifier in _pairs(result):
        stats = [_stat(plots.summary_of(result, arm, classifier, key), pct) for key, _, pct in METRICS]
        rows.append((arm, classifier, str(len(result.cells_for(arm, classifier))), *stats))
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
    if not result.comparisons:
        section.blocks.append(Text(f"Only the {baseline} arm ran: there is nothing to compare."))
        return section
    n = count_test_images(result)
    headers = (
        "arm", "classifier", "baseline", "mean difference (points)", "bootstrap 95% CI (points)", "McNemar p",
        "verdict", "per-seed difference (points, images)",
    )  # fmt: skip
    rows = tuple(_comparison_row(c, n, _seeds_of(result, c.arm, c.classifier)) for c in result.comparisons)
    section.blocks += [
        Table(headers, rows, f"Arm minus {baseline}, accuracy, on the same {n} test images seed by seed."),
        Text(
            "Significant means the paired-bootstrap 95% interval of the accuracy difference excludes 0 and the "
            "exact McNemar test on the pooled discordant test images gives p < 0.05. "
            + one_image_sentence(n),
            "note",
        ),
    ]
    return section


def _comparison_row(comparison: Comparison, n: int, seeds: Sequence[int]) -> tuple[Cell, ...]:
    differences = comparison.per_seed_differences
    names = [f"seed {s}" for s in seeds]
    if len(names) != len(differences):
        names = [f"#{i + 1}" for i in range(len(differences))]
    per_seed = tuple(f"{name}: {_points(d)} ({_images(d, n)})" for name, d in zip(names, differences, strict=True))
    low, high = comparison.bootstrap_ci
    return (
        comparison.arm,
        comparison.classifier,
        comparison.baseline,
        Stat(_points(comparison.mean_difference), f"({_images(comparison.mean_difference, n)} on average)"),
        f"[{_points(low)}, {_points(high)}]",
        _p_value(comparison.mcnemar_p),
        Verdict(comparison.significant),
        Lines(per_seed) if per_seed else "n/a",
    )


def _seeds_of(result: ExperimentResult, arm: str, classifier: str) -> list[int]:
    return [cell.key.seed for cell in result.cells_for(arm, classifier)]


def per_seed_section(result: ExperimentResult) -> Section:
    """Table (3): every cell, so a reader sees counts of test images behind each percentage."""
    headers = (
        "arm", "classifier", "seed", "correct / n", "accuracy (%)", "quadratic kappa", "loss",
        "epochs", "best epoch", "train images", "time",
    )  # fmt: skip
    rows = tuple(_seed_row(cell) for arm, classifier in _pairs(result) for cell in result.cells_for(arm, classifier))
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
        _pct(m.accuracy),
        _num(m.quadratic_kappa),
        _num(m.loss),
        str(len(cell.history)),
        "n/a" if cell.best_epoch is None else str(cell.best_epoch),
        str(cell.train_images),
        _duration(cell.seconds),
    )


def reference_section(result: ExperimentResult) -> Section:
    """Table (4): published figures, shown for reference only."""
    n = count_test_images(result)
    rows = tuple(
        (ref.source, ref.classifier, ref.arm, _pct(ref.accuracy), _as_images(ref.accuracy, n))
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
    for arm, classifier in _pairs(result):
        cells = result.cells_for(arm, classifier)
        rows.append((arm, classifier, *(_precision_recall(cells, g) for g in ALL_GRADES)))
    return Section(
        "per-grade",
        "Per-grade precision and recall",
        [Table(headers, tuple(rows), "Precision / recall in %, mean across seeds (0 where undefined).")],
    )


def _precision_recall(cells: Sequence[CellResult], grade: int) -> Cell:
    precision = _mean([c.metrics.precision.get(grade, math.nan) for c in cells])
    recall = _mean([c.metrics.recall.get(grade, math.nan) for c in cells])
    return Stat(f"P {_pct(precision, 1)}", f"R {_pct(recall, 1)}", " / ")


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
                f"figures/confusion-{_slug(classifier)}.png",
                plots.confusion_matrices(result, classifier, dpi=dpi),
                f"{classifier}: confusion matrix per arm, mean over seeds (rows: true grade, columns: predicted).",
            )
        )
    summed = [_confusion_table(result.cells_for(a, c), f"{a} / {c}") for a, c in _pairs(result)]
    per_seed = [
        _confusion_table([cell], f"{a} / {c}, seed {cell.key.seed}")
        for a, c in _pairs(result)
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
                f"figures/learning-{_slug(classifier)}.png",
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
        ("duration", _duration(result.seconds)),
    )
    arms = tuple((a.name, ", ".join(a.generators) or "none (real images only)", _options(a.options)) for a in spec.arms)
    tables = [Table(("", "value"), facts, "Run"), Table(("arm", "generators", "options"), arms, "Arms")]
    if result.environment:
        env = tuple((k, _redact_value(k, v)) for k, v in sorted(result.environment.items()))
        tables.append(Table(("component", "version"), env, "Environment"))
    blocks: list[Block] = [Group("Run, arms and environment", tuple(tables), tiled=True)]
    blocks.append(Text("Configuration (secrets redacted):", "p"))
    blocks.append(Code(redact(result.config_text) or "(no configuration text recorded)"))
    if result.artifacts:
        blocks.append(Table(("artifact", "path"), tuple(sorted(result.artifacts.items())), "Other files of the run"))
    return Section("reproduce", "Reproducibility", blocks)


# -- sentences -----------------------------------------------------------------------------------


def one_image_sentence(n: int) -> str:
    """The weight of a single test image, e.g. ``1 test image = 0.97 points of accuracy``."""
    if n <= 0:
        return "The number of test images is unknown."
    return (
        f"With {n} test images, 1 test image = {100.0 / n:.2f} points of accuracy: "
        "a difference of a few points is a few images."
    )


def finding_lines(result: ExperimentResult) -> list[str]:
    """One sentence per paired comparison, the headline of the report."""
    n = count_test_images(result)
    lines = []
    for c in result.comparisons:
        low, high = c.bootstrap_ci
        lines.append(
            f"{c.arm} vs {c.baseline} ({c.classifier}): {_points(c.mean_difference)} points of accuracy "
            f"({_images(c.mean_difference, n)} on average), bootstrap 95% CI [{_points(low)}, {_points(high)}], "
            f"McNemar p {_p_value(c.mcnemar_p)}: {Verdict(c.significant)}."
        )
    return lines


def count_test_images(result: ExperimentResult) -> int:
    """Number of test images (from the result, else from its cells)."""
    if result.test_images > 0:
        return result.test_images
    return result.cells[0].metrics.n if result.cells else 0


def seed_count(result: ExperimentResult) -> int:
    """The fewest seeds any arm x classifier cell group was run with."""
    counts = [len(result.cells_for(a, c)) for a, c in _pairs(result)]
    return min(counts) if counts else len(result.spec.seeds)


def redact(text: str) -> str:
    """Config text with the values of keys, secrets, tokens and passwords replaced by ``***``."""
    return _SECRET_LINE.sub(lambda m: f'{m.group(1)}"***"', text)


def _redact_value(name: str, value: str) -> str:
    return "***" if _SECRET_NAME.search(name) else value


# -- rendering -----------------------------------------------------------------------------------


def render_markdown(title: str, subtitle: str, sections: Sequence[Section]) -> str:
    """The report as Markdown; figures are linked as relative ``figures/...png`` paths."""
    out = [f"# {title}", "", subtitle, ""]
    out += [f"- [{s.title}](#{s.anchor})" for s in sections]
    for section in sections:
        out += ["", f"## {section.title}", ""]
        for block in section.blocks:
            out += _md_block(block, level=3)
    return "\n".join(out).rstrip() + "\n"


def _md_block(block: Block, level: int) -> list[str]:
    if isinstance(block, Text):
        prefix = {"warning": "> **Warning:** ", "key": "> ", "note": "_"}.get(block.kind, "")
        suffix = "_" if block.kind == "note" else ""
        return [f"{prefix}{block.text}{suffix}", ""]
    if isinstance(block, Table):
        return _md_table(block)
    if isinstance(block, Bullets):
        return [*(f"- {item}" for item in block.items), ""]
    if isinstance(block, Code):
        return ["```", block.text.rstrip("\n"), "```", ""]
    if isinstance(block, FigureBlock):
        return [f"![{Path(block.path).stem}]({block.path})", "", f"_{block.caption}_", ""]
    lines = [f"{'#' * level} {block.title}", ""]
    for inner in block.blocks:
        lines += _md_block(inner, level + 1)
    return lines


def _md_table(table: Table) -> list[str]:
    lines = [f"**{_md_cell(table.caption)}**", ""] if table.caption else []
    lines.append("| " + " | ".join(_md_cell(h) for h in table.headers) + " |")
    rules = ("---:" if _is_numeric_column(table, i) else "---" for i in range(len(table.headers)))
    lines.append("|" + "|".join(rules) + "|")
    for row in table.rows:
        lines.append("| " + " | ".join(_md_cell(_md_text(cell)) for cell in row) + " |")
    return [*lines, ""]


def _md_text(cell: Cell) -> str:
    return f"**{cell}**" if isinstance(cell, Verdict) and cell.significant else str(cell)


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_html(title: str, subtitle: str, sections: Sequence[Section]) -> str:
    """The report as one self-contained HTML page (inline CSS, figures as data URIs)."""
    template = Template(resources.files("medaug.adapters.reporting").joinpath("templates/report.html").read_text("utf-8"))
    toc = "".join(f'<li><a href="#{s.anchor}">{_e(s.title)}</a></li>' for s in sections)
    body = "\n".join(_html_section(s) for s in sections)
    return template.substitute(
        title=_e(title),
        subtitle=_e(subtitle),
        toc=f'<nav class="toc"><strong>Contents</strong><ol>{toc}</ol></nav>',
        body=body,
        footer="Written by medaug from this run's results.json; figures are also in figures/, the same "
        "content as Markdown in report.md.",
    )


def _html_section(section: Section) -> str:
    inner = "\n".join(_html_block(b) for b in section.blocks)
    return f'<section id="{_e(section.anchor)}">\n<h2>{_e(section.title)}</h2>\n{inner}\n</section>'


def _html_block(block: Block) -> str:
    if isinstance(block, Text):
        css = f' class="{block.kind}"' if block.kind != "p" else ""
        return f"<p{css}>{_e(block.text)}</p>"
    if isinstance(block, Table):
        return _html_table(block)
    if isinstance(block, Bullets):
        return '<ul class="key">' + "".join(f"<li>{_e(item)}</li>" for item in block.items) + "</ul>"
    if isinstance(block, Code):
        return f"<pre>{_e(block.text)}</pre>"
    if isinstance(block, FigureBlock):
        data = base64.b64encode(block.data).decode("ascii")
        return (
            f'<figure><img src="data:image/png;base64,{data}" alt="{_e(block.caption)}">'
            f"<figcaption>{_e(block.caption)}</figcaption></figure>"
        )
    inner = "\n".join(_html_block(b) for b in block.blocks)
    if block.tiled:
        inner = f'<div class="tiles">{inner}</div>'
    if block.collapsed:
        return f"<details><summary>{_e(block.title)}</summary>\n{inner}\n</details>"
    return f"<h3>{_e(block.title)}</h3>\n{inner}"


def _html_table(table: Table) -> str:
    numeric = [_is_numeric_column(table, i) for i in range(len(table.headers))]
    head = "".join(f"<th{_NUM_CLASS if numeric[i] else ''}>{_e(h)}</th>" for i, h in enumerate(table.headers))
    body = "".join(
        "<tr>" + "".join(_html_cell(cell, numeric[i]) for i, cell in enumerate(row)) + "</tr>" for row in table.rows
    )
    caption = f"<caption>{_e(table.caption)}</caption>" if table.caption else ""
    return f'<div class="table-wrap"><table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _html_cell(cell: Cell, numeric: bool) -> str:
    css = _NUM_CLASS if numeric else ""
    if isinstance(cell, Verdict):
        badge = "sig" if cell.significant else "nsig"
        return f'<td><span class="badge {badge}">{_e(str(cell))}</span></td>'
    if isinstance(cell, Lines):
        return f"<td{css}>" + "<br>".join(_e(line) for line in cell.lines) + "</td>"
    if isinstance(cell, Stat):
        interval = f'<span class="ci">{_e(cell.interval)}</span>' if cell.interval else ""
        return f"<td{css}>{_e(cell.main)}{interval}</td>"
    return f"<td{css}>{_e(cell)}</td>"


def _is_numeric_column(table: Table, index: int) -> bool:
    cells = [row[index] for row in table.rows if index < len(row)]
    return bool(cells) and all(
        isinstance(c, Stat) or (isinstance(c, str) and _NUMERIC.match(c) is not None) for c in cells
    )


def _e(text: str) -> str:
    return html.escape(text, quote=True)


# -- formatting ----------------------------------------------------------------------------------


def _title(result: ExperimentResult) -> str:
    return f"Experiment {result.spec.name} on {result.dataset}"


def _subtitle(result: ExperimentResult) -> str:
    arms = ", ".join(plots.arm_order(result)) or "no arm"
    classifiers = ", ".join(plots.classifier_order(result)) or "no classifier"
    seeds = len(result.spec.seeds)
    return (
        f"{count_test_images(result)} test images · arms: {arms} · classifiers: {classifiers} · "
        f"{seeds} seed{'s' if seeds != 1 else ''} · {result.finished or result.started or 'date unknown'}"
    )


def _pairs(result: ExperimentResult) -> list[tuple[str, str]]:
    return [
        (arm, classifier)
        for arm in plots.arm_order(result)
        for classifier in plots.classifier_order(result)
        if result.cells_for(arm, classifier)
    ]


def _stat(summary: Summary | None, pct: bool) -> Stat:
    if summary is None:
        return Stat("n/a")
    fmt = _pct if pct else _num
    if summary.n < 2:
        return Stat(fmt(summary.mean))
    return Stat(f"{fmt(summary.mean)} ± {fmt(summary.std)}", f"[{fmt(summary.ci_low)}, {fmt(summary.ci_high)}]")


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _pct(value: float | None, digits: int = 2) -> str:
    return f"{100.0 * value:.{digits}f}" if _finite(value) else "n/a"


def _num(value: float | None) -> str:
    return f"{value:.3f}" if _finite(value) else "n/a"


def _points(difference: float) -> str:
    return f"{100.0 * difference:+.2f}" if _finite(difference) else "n/a"


def _images(difference: float, n: int) -> str:
    if not _finite(difference) or n <= 0:
        return "n/a"
    images = difference * n
    if abs(images) < 0.05:
        return "0 images"
    whole = abs(images - round(images)) < 1e-6
    text = f"{images:+.0f}" if whole else f"{images:+.1f}"
    return f"{text} image{'' if whole and abs(round(images)) == 1 else 's'}"


def _as_images(accuracy: float, n: int) -> str:
    if n <= 0:
        return "n/a"
    count = round(accuracy * n)
    # Published percentages are rounded or truncated to 2 decimals: "≈" unless exactly count/n.
    return f"{count}/{n}" if abs(count / n - accuracy) < 5e-5 else f"≈ {count}/{n}"


def _p_value(p: float) -> str:
    if not _finite(p):
        return "n/a"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def _mean(values: Sequence[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return statistics.fmean(finite) if finite else math.nan


def _duration(seconds: float) -> str:
    if not _finite(seconds) or seconds <= 0:
        return "n/a"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def _options(options: dict[str, object]) -> str:
    return ", ".join(f"{k}={_redact_value(k, str(v))}" for k, v in sorted(options.items())) or "-"


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-") or "unnamed"


def _figures(sections: Sequence[Section]) -> Iterator[FigureBlock]:
    def walk(blocks: Sequence[Block]) -> Iterator[FigureBlock]:
        for block in blocks:
            if isinstance(block, FigureBlock):
                yield block
            elif isinstance(block, Group):
                yield from walk(block.blocks)

    for section in sections:
        yield from walk(section.blocks)


def _write_atomic(path: Path, data: bytes) -> str:
    try:
        write_atomic(path, data)
    except OSError as exc:
        raise MedaugError(f"{path}: cannot write the report ({exc.strerror or exc})") from exc
    return str(path)
