"""What every command shares: logging, devices, progress, output files, run folders and reports.

Adapters are imported inside the factories: nothing heavy loads until a service needs it.
"""

from __future__ import annotations

import sys
from pathlib import Path

from medaug.application.ports import (
    ImageStore,
    ProgressSink,
    ReportWriter,
    RunRepository,
)
from medaug.composition.settings import Settings, device_of


def check_output_file(path: Path, what: str) -> None:
    """Refuse, before any work, an output path that cannot be written (a folder, no permission)."""
    from medaug.adapters.files import check_output_file as check

    check(path, what)


def configure_logging(settings: Settings) -> None:
    """structlog as the settings ask (readable in a terminal, JSON otherwise)."""
    from medaug.adapters.logging import configure_logging as configure

    configure(settings.log_format, settings.log_level)


def run_environment(settings: Settings) -> dict[str, str]:
    """Versions, machine and device of this run, for the report's reproducibility section."""
    from medaug.adapters.torch_support import describe_device, environment

    return {**environment(), "device": describe_device(device_of(settings))}


def write_contact_sheet(store: ImageStore, out: Path, *, per_cell: int = 4, augmentation: str | None = None) -> Path:
    """Write a PNG contact sheet of ``store`` (grades x real/synthetic columns) to ``out``, atomically."""
    from medaug.adapters.reporting.contact_sheet import write_contact_sheet as write

    return write(store, out, per_cell=per_cell, augmentation=augmentation)


def build_run_folder(location: Path) -> RunRepository:
    """The run folder of an experiment (cells, results, checkpoints), on the local file system."""
    from medaug.adapters.runs import LocalRunFolder

    return LocalRunFolder(location)


def build_report_writer() -> ReportWriter:
    """The experiment report writer: ``report.html`` (self-contained), ``report.md`` and figures,
    with the synthetic images' quality section contributed by the quality adapter."""
    from medaug.adapters.quality.report_section import quality_sections
    from medaug.adapters.reporting.report import HtmlMarkdownReportWriter

    return HtmlMarkdownReportWriter(extra_sections=(quality_sections,))


def build_progress(enabled: bool = True, interactive: bool | None = None) -> ProgressSink:
    """Rich bars when stderr is a terminal, periodic log lines when it is not, or nothing.

    Args:
        enabled: False shows no progress at all.
        interactive: whether stderr is a terminal; None asks stderr.
    """
    from medaug.application.ports import NullProgress

    if not enabled:
        return NullProgress()
    from medaug.adapters.progress import LogProgress, RichProgress

    if interactive is None:
        interactive = sys.stderr.isatty()
    return RichProgress() if interactive else LogProgress()
