"""Ingest: data-set source -> preprocessing -> store, resumable, with changed labels and pixels detected."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import structlog
from pydantic import BaseModel, ConfigDict

from medaug.application.errors import InputError
from medaug.application.ports import DatasetSource, ImageStore, NullProgress, Preprocessor, ProgressSink, SourceItem
from medaug.application.services.splits import stratified_subset
from medaug.domain import FundusImage, Origin, Provenance
from medaug.domain.images import storage_key

_log = structlog.get_logger(__name__)

SOURCE_SHA256 = "source_sha256"
"""Provenance parameter of a real image: the sha256 of its source file, to detect a replaced file."""

Pseudonymiser = Callable[[str], str]
"""Maps an image's id in its data set to the id it gets in the store (e.g. a keyed hash)."""


class IngestReport(BaseModel):
    """What an ingest did.

    Attributes:
        added: images new to the store.
        already_present: images already stored, unchanged.
        skipped: problems skipped in lenient mode, one line each.
        conflicts: stored images whose label or pixels changed in the source, one line each
            (applied with ``update``, otherwise left as stored).
        updated: conflicting images rewritten from the source (``update=True``).
        stale_removed: synthetic images derived from an updated image, removed so that the next
            augment run makes them again from the new one.
        mapping: pseudonym -> original id of every image seen (only when pseudonymising).
        notices: the source's notices (images left out on purpose, counted: ungradable,
            unlabelled, beyond ``limit``).
    """

    model_config = ConfigDict(frozen=True)

    added: int
    already_present: int
    skipped: tuple[str, ...] = ()
    conflicts: tuple[str, ...] = ()
    updated: int = 0
    stale_removed: int = 0
    mapping: dict[str, str] = {}
    notices: tuple[str, ...] = ()


def ingest(
    source: DatasetSource,
    preprocessor: Preprocessor,
    store: ImageStore,
    *,
    lenient: bool = False,
    update: bool = False,
    pseudonymise: Pseudonymiser | None = None,
    progress: ProgressSink | None = None,
    limit: int | None = None,
    seed: int = 0,
) -> IngestReport:
    """Preprocess every image of ``source`` into ``store``; images already stored are checked.

    In strict mode (the default) any problem in the labels stops the ingest before a single
    image is written, and an unreadable image stops it with a one-line ``InputError`` (images
    stored before it stay complete, and a re-run continues). With ``lenient=True`` each problem
    is reported as a skip instead.

    An image already stored is compared with the source: its grade and split, and the sha256 of
    its source file (recorded at ingest; for older records, the preprocessed pixels). A
    difference is a conflict: reported, and only with ``update=True`` applied, in which case the
    synthetic images derived from it are removed as stale (the next augment run regenerates them),
    before the image itself is rewritten: an update killed at any point leaves the conflict to
    be found and finished by the next ``update`` run, never a stale derived image.

    With ``pseudonymise``, every id becomes ``pseudonymise(id)`` and no original name is kept in
    the store (provenance included); the report's ``mapping`` is the only way back.

    ``limit`` takes a subset of that many images, stratified by split and grade and drawn with
    ``seed`` (the same limit and seed always give the same subset, so a re-run adds nothing).

    The ingest holds the store's writer lock.

    Raises:
        InputError: a labelling problem or an unreadable image, in strict mode.
        StoreError: another command holds the store's writer lock.
    """
    progress = progress or NullProgress()
    scan = source.scan()
    if scan.problems and not lenient:
        others = len(scan.problems) - 1
        more = f" (and {others} more problem{'s' if others > 1 else ''}; --lenient skips them)" if others else ""
        raise InputError(scan.problems[0] + more)
    notices = list(scan.notices)
    chosen = scan.items
    if limit is not None and limit < len(chosen):
        chosen = tuple(stratified_subset(chosen, limit, seed))
        notices.append(f"--limit {limit}: {len(chosen)} of {len(scan.items)} images taken, stratified by split "
                       f"and grade (seed {seed})")
    items = [_renamed(item, pseudonymise) for item in chosen] if pseudonymise else list(chosen)
    mapping = {new.id: old.id for new, old in zip(items, chosen, strict=True)} if pseudonymise else {}
    with store.writing(f"ingest {source.name}"):
        store.claim_names(naming(pseudonymise))
        run = _Ingest(source, preprocessor, store, lenient=lenient, private=pseudonymise is not None)
        with progress.task(f"ingest {source.name}", total=len(items)) as bar:
            for item in items:
                run.one(item, update=update)
                bar.advance()
    report = IngestReport(
        added=run.added,
        already_present=run.present,
        skipped=tuple(list(scan.problems) + run.skipped),
        conflicts=tuple(run.conflicts),
        updated=run.updated,
        stale_removed=run.stale_removed,
        mapping=mapping,
        notices=tuple(notices),
    )
    _log.info("ingest_done", source=source.name, added=report.added, present=report.already_present,
              skipped=len(report.skipped), conflicts=len(report.conflicts), updated=report.updated)
    return report


class _Ingest:
    """One ingest's work and counts."""

    def __init__(
        self, source: DatasetSource, preprocessor: Preprocessor, store: ImageStore, *, lenient: bool, private: bool
    ) -> None:
        self.source, self.preprocessor, self.store = source, preprocessor, store
        self.lenient, self.private = lenient, private
        self.added = self.present = self.updated = self.stale_removed = 0
        self.skipped: list[str] = []
        self.conflicts: list[str] = []

    def one(self, item: SourceItem, *, update: bool) -> None:
        stored = self.store.record(item.id) if self.store.exists(item.id) else None
        if stored is not None and stored.provenance.parameters.get(SOURCE_SHA256) is None and not _label_changed(
            stored, item
        ):
            # An older record without the source's checksum: compare preprocessed pixels instead.
            png = self._preprocess(item)
            if png is None or _sha256(png) == _sha256(self.store.get(item.id)):
                self.present += 1
                return
            self._conflict(item, stored, ["pixels changed"], png, update=update)
            return
        try:
            raw = self.source.read(item)
        except InputError as exc:
            self._skip_or_raise(exc)
            return
        checksum = _sha256(raw)
        if stored is None:
            png = self._preprocess(item, raw)
            if png is not None:
                self.store.put(_record(self.source.name, item, checksum, private=self.private), png)
                self.added += 1
            return
        changes = _changes(stored, item, checksum)
        if not changes:
            self.present += 1
            return
        self._conflict(item, stored, changes, None, update=update, raw=raw, checksum=checksum)

    def _conflict(
        self,
        item: SourceItem,
        stored: FundusImage,
        changes: list[str],
        png: bytes | None,
        *,
        update: bool,
        raw: bytes | None = None,
        checksum: str | None = None,
    ) -> None:
        self.conflicts.append(f"{item.id}: {', '.join(changes)}")
        if not update:
            return
        if raw is None:
            raw = self.source.read(item)
        checksum = checksum or _sha256(raw)
        png = png if png is not None else self._preprocess(item, raw)
        if png is None:
            return
        # What derives from the old image goes first: until the record is rewritten the conflict
        # stays visible, so a run killed anywhere in between is finished by the next --update.
        for derived in self.store.list(origin=Origin.SYNTHETIC):
            if item.id in derived.provenance.source_ids:
                self.store.delete(derived.id)
                self.stale_removed += 1
        self.store.put(_record(self.source.name, item, checksum, private=self.private), png, overwrite=True)
        self.updated += 1
        _log.info("ingest_updated", image=item.id, changes=changes)

    def _preprocess(self, item: SourceItem, raw: bytes | None = None) -> bytes | None:
        try:
            data = raw if raw is not None else self.source.read(item)
            return self.preprocessor.preprocess(data, item.original_name)
        except InputError as exc:
            self._skip_or_raise(exc)
            return None

    def _skip_or_raise(self, exc: InputError) -> None:
        if not self.lenient:
            raise exc
        self.skipped.append(str(exc))
        _log.warning("image_skipped", reason=str(exc))


def _label_changed(stored: FundusImage, item: SourceItem) -> bool:
    return stored.grade != item.grade or stored.split is not item.split


def _changes(stored: FundusImage, item: SourceItem, checksum: str) -> list[str]:
    changes = []
    if stored.grade != item.grade:
        changes.append(f"grade {int(stored.grade)} -> {int(item.grade)}")
    if stored.split is not item.split:
        changes.append(f"split {stored.split.value} -> {item.split.value}")
    if stored.provenance.parameters.get(SOURCE_SHA256) not in (None, checksum):
        changes.append("pixels changed (source sha256 differs)")
    return changes


def naming(pseudonymise: Pseudonymiser | None) -> str:
    """How an ingest names real images, as a store records it (``ImageStore.claim_names``):
    ``plain``, or ``pseudonyms:`` + the pseudonym of a fixed text (it tells keys apart and
    reveals none)."""
    return "plain" if pseudonymise is None else "pseudonyms:" + pseudonymise("medaug:pseudonym-key-check")


def _renamed(item: SourceItem, pseudonymise: Pseudonymiser) -> SourceItem:
    # The group is a patient's identifier too (e.g. EyePACS's patient number).
    group = pseudonymise(item.group) if item.group is not None else None
    return item.model_copy(update={"id": pseudonymise(item.id), "group": group})


def _record(source_name: str, item: SourceItem, checksum: str, *, private: bool) -> FundusImage:
    return FundusImage(
        id=item.id,
        key=storage_key(item.split, item.grade, item.id),
        grade=item.grade,
        split=item.split,
        origin=Origin.REAL,
        provenance=Provenance(
            generator=source_name,
            original_name=None if private else item.original_name,
            parameters={SOURCE_SHA256: checksum},
        ),
        group=item.group,
    )


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
