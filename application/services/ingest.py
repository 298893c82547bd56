"""Ingest: data-set source -> preprocessing -> store, resumable."""

from __future__ import annotations

import structlog
from pydantic import BaseModel, ConfigDict

from medaug.application.errors import InputError
from medaug.application.ports import DatasetSource, ImageStore, NullProgress, Preprocessor, ProgressSink, SourceItem
from medaug.domain import FundusImage, Origin, Provenance
from medaug.domain.images import storage_key

_log = structlog.get_logger(__name__)


class IngestReport(BaseModel):
    """What an ingest did: images added, already present, and skipped (with reasons)."""

    model_config = ConfigDict(frozen=True)

    added: int
    already_present: int
    skipped: tuple[str, ...] = ()


def ingest(
    source: DatasetSource,
    preprocessor: Preprocessor,
    store: ImageStore,
    *,
    lenient: bool = False,
    progress: ProgressSink | None = None,
) -> IngestReport:
    """Preprocess every image of ``source`` into ``store``; images already stored are skipped.

    In strict mode (the default) any problem in the labels stops the ingest before a single
    image is written, and an unreadable image stops it with a one-line ``InputError`` (images
    stored before it stay complete, and a re-run continues). With ``lenient=True`` each problem
    is reported as a skip instead.

    Raises:
        InputError: a labelling problem or an unreadable image, in strict mode.
    """
    progress = progress or NullProgress()
    scan = source.scan()
    if scan.problems and not lenient:
        others = len(scan.problems) - 1
        more = f" (and {others} more problem{'s' if others > 1 else ''}; --lenient skips them)" if others else ""
        raise InputError(scan.problems[0] + more)
    skipped = list(scan.problems)
    pending = [item for item in scan.items if not store.exists(item.id)]
    added = 0
    with progress.task(f"ingest {source.name}", total=len(pending)) as bar:
        for item in pending:
            try:
                png = preprocessor.preprocess(source.read(item), item.original_name)
            except InputError as exc:
                if not lenient:
                    raise
                skipped.append(str(exc))
                _log.warning("image_skipped", reason=str(exc))
                bar.advance()
                continue
            store.put(_record(source.name, item), png)
            added += 1
            bar.advance()
    report = IngestReport(added=added, already_present=len(scan.items) - len(pending), skipped=tuple(skipped))
    _log.info("ingest_done", source=source.name, added=report.added, present=report.already_present,
              skipped=len(report.skipped))
    return report


def _record(source_name: str, item: SourceItem) -> FundusImage:
    return FundusImage(
        id=item.id,
        key=storage_key(item.split, item.grade, item.id),
        grade=item.grade,
        split=item.split,
        origin=Origin.REAL,
        provenance=Provenance(generator=source_name, original_name=item.original_name),
    )
