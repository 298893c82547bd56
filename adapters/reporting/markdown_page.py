"""The report document as Markdown, figures linked as relative ``figures/...png`` paths."""

from __future__ import annotations

from pathlib import Path

from medaug.adapters.report_document import Block, Bullets, Cell, Code, Document, FigureBlock, Table, Text, Verdict


def render_markdown(document: Document) -> str:
    """The report as Markdown; figures are linked as relative ``figures/...png`` paths."""
    out = [f"# {document.title}", "", document.subtitle, ""]
    if document.answer:
        out += [f"**{document.answer}**", ""]
    out += [f"- [{s.title}](#{s.anchor})" for s in document.sections]
    for section in document.sections:
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
    rules = ("---:" if table.is_numeric_column(i) else "---" for i in range(len(table.headers)))
    lines.append("|" + "|".join(rules) + "|")
    for row in table.rows:
        lines.append("| " + " | ".join(_md_cell(_md_text(cell)) for cell in row) + " |")
    return [*lines, ""]


def _md_text(cell: Cell) -> str:
    return f"**{cell}**" if isinstance(cell, Verdict) and cell.significant else str(cell)


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
