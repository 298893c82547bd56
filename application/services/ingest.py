"""Ingest: data-set source -> preprocessing -> store, resumable."""

from __future__ import annotations

import structlog
from pydantic import BaseModel, ConfigDict

from medaug.application.errors import InputError
from medaug.application.ports import DatasetSource, ImageStore, NullProgress, Preprocessor, ProgressSink, SourceItem
from medaug.application.services.splits import stratified_subset
from medaug.domain import FundusImage, Origin, Provenance
from medaug.domain.images import storage_key

_log = structlog.get_logger(__name__)


class IngestReport(BaseModel):
    """What an ingest did: images added, already present, skipped (with reasons), and the source's
    notices (images left out on purpose, counted: ungradable, unlabelled, beyond ``limit``)."""

    model_config = ConfigDict(frozen=True)

    added: int
    already_present: int
    skipped: tuple[str, ...] = ()
    notices: tuple[str, ...] = ()


def ingest(
    source: DatasetSource,
    preprocessor: Preprocessor,
    store: ImageStore,
    *,
    lenient: bool = False,
    progress: ProgressSink | None = None,
    limit: int | None = None,
    seed: int = 0,
) -> IngestReport:
    """Preprocess every image of ``source`` into ``store``; images already stored are skipped.

    In strict mode (the default) any problem in the labels stops the ingest before a single
    image is written, and an unreadable image stops it with a one-line ``InputError`` (images
    stored before it stay complete, and a re-run continues). With ``lenient=True`` each problem
    is reported as a skip instead.

    ``limit`` takes a subset of that many images, stratified by split and grade and drawn with
    ``seed`` (the same limit and seed always give the same subset, so a re-run adds nothing).

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
    notices = list(scan.notices)
    items = scan.items
    if limit is not None and limit < len(items):
        items = tuple(stratified_subset(items, limit, seed))
        notices.append(f"--limit {limit}: {len(items)} of {len(scan.items)} images taken, stratified by split "
                       f"and grade (seed {seed})")
    pending = [item for item in items if not store.exists(item.id)]
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
    report = IngestReport(
        added=added, already_present=len(items) - len(pending), skipped=tuple(skipped), notices=tuple(notices)
    )
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
        group=item.group,
    )
