"""The report document as one self-contained HTML page: inline CSS, figures as data URIs."""

from __future__ import annotations

import base64
import html
from importlib import resources
from string import Template

from medaug.adapters.report_document import (
    Block,
    Bullets,
    Cell,
    Code,
    Document,
    FigureBlock,
    Lines,
    Section,
    Stat,
    Table,
    Text,
    Verdict,
)

_NUM_CLASS = ' class="num"'


def render_html(document: Document) -> str:
    """The report as one self-contained HTML page (inline CSS, figures as data URIs)."""
    template = Template(
        resources.files("medaug.adapters.reporting").joinpath("templates/report.html").read_text("utf-8")
    )
    toc = "".join(f'<li><a href="#{s.anchor}">{_e(s.title)}</a></li>' for s in document.sections)
    body = "\n".join(_html_section(s) for s in document.sections)
    return template.substitute(
        title=_e(document.title),
        subtitle=_e(document.subtitle),
        answer=f'<p class="answer">{_e(document.answer)}</p>' if document.answer else "",
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
    numeric = [table.is_numeric_column(i) for i in range(len(table.headers))]
    head = "".join(f"<th{_NUM_CLASS if numeric[i] else ''}>{_e(h)}</th>" for i, h in enumerate(table.headers))
    body = "".join(
        "<tr>" + "".join(_html_cell(cell, numeric[i]) for i, cell in enumerate(row)) + "</tr>" for row in table.rows
    )
    # The caption sits outside the scroll box, so it wraps to the page and stays in view while a wide table
    # scrolls sideways inside its own box (its first column sticks, see the template's CSS).
    caption = f"<figcaption>{_e(table.caption)}</figcaption>" if table.caption else ""
    label = f' aria-label="{_e(table.caption)}"' if table.caption else ""
    return (
        f'<figure class="table">{caption}<div class="table-wrap" role="region" tabindex="0"{label}>'
        f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div></figure>"
    )


def _html_cell(cell: Cell, numeric: bool) -> str:
    css = _NUM_CLASS if numeric else ""
    if isinstance(cell, Verdict):
        badge = "sig" if cell.significant else "nsig"
        return f'<td><span class="badge {badge}">{_e(str(cell))}</span></td>'
    if isinstance(cell, Lines):
        return f'<td class="lines{" num" if numeric else ""}">' + "<br>".join(_e(line) for line in cell.lines) + "</td>"
    if isinstance(cell, Stat):
        interval = f'<span class="ci">{_e(cell.interval)}</span>' if cell.interval else ""
        return f"<td{css}>{_e(cell.main)}{interval}</td>"
    return f"<td{css}>{_e(cell)}</td>"


def _e(text: str) -> str:
    return html.escape(text, quote=True)
