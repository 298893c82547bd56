"""The experiment report: a self-contained ``report.html``, a ``report.md`` and their figures.

The report is first assembled as a small document (``adapters.report_document``): the answer in one
sentence, then sections of text, tables, figures and code — this package's own, and those that other
adapters contribute through the ``SectionBuilder``s the composition root hands the writer. It is then
rendered twice: to HTML, with every figure inlined as a base64 data URI and the CSS inline so the
file opens offline, and to Markdown, with figures referenced as ``figures/<name>.png``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import structlog

from medaug.adapters.files import write_atomic
from medaug.adapters.plotting import DPI
from medaug.adapters.report_document import Block, Document, FigureBlock, Section, SectionBuilder, Text
from medaug.adapters.reporting import plots, sections
from medaug.adapters.reporting.acceptance import acceptance_blocks
from medaug.adapters.reporting.answer import answer_sentence
from medaug.adapters.reporting.external_section import external_sections
from medaug.adapters.reporting.formatting import count_test_images, slug
from medaug.adapters.reporting.html_page import render_html
from medaug.adapters.reporting.kfold_section import kfold_sections
from medaug.adapters.reporting.markdown_page import render_markdown
from medaug.application.errors import MedaugError
from medaug.application.ports import ImageStore
from medaug.domain.experiment import ExperimentResult

_log = structlog.get_logger(__name__)

ContactSheet = Callable[..., bytes]
"""``contact_sheet(store, *, per_cell, augmentation, thumb) -> PNG bytes``."""


class HtmlMarkdownReportWriter:
    """``ReportWriter`` that writes ``report.html``, ``report.md`` and ``figures/*.png``.

    Args:
        seed: picks the images of each contact sheet.
        dpi: resolution of the matplotlib figures.
        per_cell: images per grade and origin in each arm's contact sheet.
        thumb: side of each contact-sheet thumbnail in pixels.
        contact_sheet: the function that draws a contact sheet from a store (default:
            ``adapters.reporting.contact_sheet.contact_sheet``).
        extra_sections: sections other adapters contribute (the synthetic images' quality, say),
            placed after the contact sheets and before the reproducibility appendix.
    """

    def __init__(
        self,
        *,
        seed: int,
        dpi: int = DPI,
        per_cell: int = 4,
        thumb: int = 96,
        contact_sheet: ContactSheet | None = None,
        extra_sections: Sequence[SectionBuilder] = (),
    ) -> None:
        self._seed = seed
        self._dpi = dpi
        self._per_cell = per_cell
        self._thumb = thumb
        self._contact_sheet = contact_sheet
        self._extra_sections = tuple(extra_sections)

    def write(self, result: ExperimentResult, run_dir: str, store: ImageStore) -> list[str]:
        """Write the report of ``result`` into ``run_dir`` and return the paths written.

        Raises:
            MedaugError: a file of the report cannot be written (the message names it).
        """
        run = Path(run_dir)
        document = self.document(result, store)
        written = [_write_atomic(run / figure.path, figure.data) for figure in document.figures()]
        written.append(_write_atomic(run / "report.md", render_markdown(document).encode()))
        written.append(_write_atomic(run / "report.html", render_html(document).encode()))
        _log.info("report_written", run_dir=str(run), files=len(written))
        return written

    def document(self, result: ExperimentResult, store: ImageStore) -> Document:
        """The report of ``result`` as a document, before rendering."""
        return Document(_title(result), _subtitle(result), answer_sentence(result), self._sections(result, store))

    def _sections(self, result: ExperimentResult, store: ImageStore) -> list[Section]:
        out = [
            sections.overview_section(result),
            sections.main_section(result, self._dpi),
            sections.comparison_section(result),
            sections.per_seed_section(result),
        ]
        out += [*kfold_sections(result), *external_sections(result)]
        if result.references:
            out.append(sections.reference_section(result))
        out += [
            sections.per_grade_section(result),
            sections.confusion_section(result, self._dpi),
            sections.learning_section(result, self._dpi),
            self._contact_section(result, store),
        ]
        for builder in self._extra_sections:
            out += builder(result, store, dpi=self._dpi)
        out.append(sections.reproducibility_section(result))
        return out

    def _contact_section(self, result: ExperimentResult, store: ImageStore) -> Section:
        section = Section("synthetic", "Synthetic images per arm")
        arms = [arm for arm in result.spec.arms if arm.augments]
        if not arms:
            section.blocks.append(Text("No arm of this experiment adds synthetic images.", "note"))
            return section
        for arm in arms:
            section.blocks.append(self._contact_block(arm.name, store))
        section.blocks += acceptance_blocks(result)
        return section

    def _contact_block(self, arm: str, store: ImageStore) -> Block:
        try:
            draw = self._contact_sheet or _default_contact_sheet()
            data = draw(store, per_cell=self._per_cell, augmentation=arm, thumb=self._thumb, seed=self._seed)
        except (MedaugError, KeyError, OSError, ValueError, ImportError) as exc:
            _log.warning("contact_sheet_unavailable", arm=arm, error=str(exc))
            return Text(f"Contact sheet of arm {arm} unavailable: {exc}", "note")
        caption = (
            f"Arm {arm}: sample training images, one row per grade; real images beside the arm's synthetic "
            f"ones ({self._per_cell} per grade and origin, column titles give the counts)."
        )
        return FigureBlock(f"figures/contact-{slug(arm)}.png", data, caption)


def _default_contact_sheet() -> ContactSheet:
    from medaug.adapters.reporting.contact_sheet import contact_sheet

    return contact_sheet


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


def _write_atomic(path: Path, data: bytes) -> str:
    try:
        write_atomic(path, data)
    except OSError as exc:
        raise MedaugError(f"{path}: cannot write the report ({exc.strerror or exc})") from exc
    return str(path)
