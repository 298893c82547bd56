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


def write_contact_sheet(
    store: ImageStore, out: Path, *, seed: int, per_cell: int = 4, augmentation: str | None = None
) -> Path:
    """Write a PNG contact sheet of ``store`` (grades x real/synthetic columns) to ``out``, atomically."""
    from medaug.adapters.reporting.contact_sheet import write_contact_sheet as write

    return write(store, out, per_cell=per_cell, augmentation=augmentation, seed=seed)


def build_run_folder(
    location: Path | str, settings: Settings | None = None, *, store_identity: str | None = None
) -> RunRepository:
    """The run folder of an experiment (cells, results, checkpoints): a local folder, or
    ``s3://bucket/prefix`` (see ``S3RunFolder``; its client from ``settings.store.s3``, by default
    the environment's settings), checked writable now.

    Args:
        store_identity: the experiment's store: an S3 run folder inside the S3 work folder then
            also pulls that store's generator checkpoints (a task that trains or samples them).
    """
    text = str(location)
    if text.startswith("s3:/"):  # also a URL that went through Path() ("s3:/bucket/...")
        url = "s3://" + text.removeprefix("s3:/").lstrip("/")
        return _s3_run_folder(url, settings or Settings(), store_identity)
    from medaug.adapters.runs import LocalRunFolder

    return LocalRunFolder(location)


def _s3_run_folder(url: str, settings: Settings, store_identity: str | None) -> RunRepository:
    """An S3 run folder; its scratch and mirror follow ``settings.work_url`` when the folder is inside it."""
    from medaug.adapters.runs_s3 import open_s3_run_folder
    from medaug.adapters.stores.s3_client import make_s3_client

    return open_s3_run_folder(
        make_s3_client(settings.store.s3), url, work_url=settings.work_url, work_dir=settings.work_dir,
        scratch_dir=settings.scratch_dir, store_identity=store_identity,
    )  # fmt: skip


def run_folder_location(settings: Settings, name: str, run_dir: Path | None = None) -> Path | str:
    """Where experiment ``name`` runs: ``run_dir``, or ``<work_dir>/runs/<name>`` (an ``s3://`` URL
    when the work folder is on S3)."""
    if run_dir is not None:
        return run_dir
    if settings.work_url is not None:
        return f"{settings.work_url}/runs/{name}"
    return settings.work_dir / "runs" / name


def report_writer_for(writer: ReportWriter, runs: RunRepository) -> ReportWriter:
    """``writer`` as it writes into ``runs``: through its scratch folder when the run folder is on S3."""
    from medaug.adapters.runs_s3 import MirroredReportWriter, S3RunFolder

    return MirroredReportWriter(writer, runs) if isinstance(runs, S3RunFolder) else writer


def discard_run_folder(runs: RunRepository, location: Path | str, within: Path | None) -> None:
    """``--fresh``: delete the run folder (see ``adapters.runs.discard_run_folder``, ``S3RunFolder.discard``)."""
    from medaug.adapters.runs import discard_run_folder as discard_local
    from medaug.adapters.runs_s3 import S3RunFolder

    if isinstance(runs, S3RunFolder):
        runs.discard()
    else:
        discard_local(location, within=within)


def build_report_writer(seed: int) -> ReportWriter:
    """The experiment report writer: ``report.html`` (self-contained), ``report.md`` and figures,
    with the synthetic images' quality section contributed by the quality adapter (``seed``:
    which images its contact sheets show)."""
    from medaug.adapters.quality.report_section import quality_sections
    from medaug.adapters.reporting.report import HtmlMarkdownReportWriter

    return HtmlMarkdownReportWriter(seed=seed, extra_sections=(quality_sections,))


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
