"""Ingest: data-set source -> preprocessing -> store, resumable, with changed labels and pixels detected."""

from __future__ import annotations

import hashlib
import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

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
    seed: int,
    workers: int = 1,
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

    ``workers`` > 1 decodes and preprocesses on a pool of that many processes when there are
    enough images to pay for its start (the preprocessor must then be picklable); records are
    looked up, files read and results written here, in the items' order, so the store ends up
    byte for byte the same whatever the number of workers.

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
    with store.writing(f"ingest {source.name}"), _pool(workers, len(items)) as pool:
        store.claim_names(naming(pseudonymise))
        run = _Ingest(source, preprocessor, store, lenient=lenient, update=update, private=pseudonymise is not None)
        size = _WINDOW_PER_WORKER * workers if pool is not None else 1
        with progress.task(f"ingest {source.name}", total=len(items)) as bar:
            ready: _Window | None = None
            for start in range(0, len(items), size):
                # why: the next window's files are read and decoded while this one is written.
                window = run.plan(items[start : start + size], pool)
                if ready is not None:
                    bar.advance(run.apply(ready))
                ready = window
            if ready is not None:
                bar.advance(run.apply(ready))
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


_WINDOW_PER_WORKER = 16
"""Images handed to each worker per window: enough to keep every process busy, few enough that
a strict ingest's error stops it soon after the bad image."""


@dataclass
class _Pending:
    """One image's outcome once its stored record and source file are known.

    ``action``: ``present`` (stored, unchanged), ``skip`` (``error`` is why), ``conflict`` (a
    change left as stored: ``changes``), ``add`` (new), ``compare`` (an older record without the
    source's checksum: its pixels decide; ``legacy``) or ``update`` (a change applied, ``update=True``).
    """

    item: SourceItem
    action: str
    stored: FundusImage | None = None
    raw: bytes | None = None
    checksum: str | None = None
    changes: tuple[str, ...] = ()
    error: InputError | None = None
    legacy: bool = False

    @property
    def needs_pixels(self) -> bool:
        return self.action in ("add", "compare", "update")


@dataclass
class _Window:
    """A window of items planned, and their PNGs (or the errors preprocessing raised), in order."""

    pending: list[_Pending]
    pngs: Iterator[bytes | InputError]


class _Ingest:
    """One ingest's work and counts.

    Items go through in windows. ``plan`` looks each item's record up and reads and checksums
    its file, in order, without changing anything, and starts preprocessing the images the
    window needs (on the pool when there is one); ``apply`` then writes and counts, in item
    order. So the store receives the same writes in the same order whatever the number of workers.
    """

    def __init__(
        self,
        source: DatasetSource,
        preprocessor: Preprocessor,
        store: ImageStore,
        *,
        lenient: bool,
        update: bool,
        private: bool,
    ) -> None:
        self.source, self.preprocessor, self.store = source, preprocessor, store
        self.lenient, self.update, self.private = lenient, update, private
        self.added = self.present = self.updated = self.stale_removed = 0
        self.skipped: list[str] = []
        self.conflicts: list[str] = []

    def plan(self, items: Sequence[SourceItem], pool: Executor | None) -> _Window:
        """Look up and read ``items``; start preprocessing those that need pixels."""
        pending = [self._plan(item) for item in items]
        jobs = [(self.preprocessor, p.raw, p.item.original_name) for p in pending if p.needs_pixels]
        if pool is None or len(jobs) < 2:
            return _Window(pending, (_preprocess_one(*job) for job in jobs))
        return _Window(pending, pool.map(_preprocess_one, *zip(*jobs, strict=True)))

    def apply(self, window: _Window) -> int:
        """Write and count a planned window, in order; returns its number of items.

        Raises:
            InputError: an unreadable or undecodable image, in strict mode.
        """
        for work in window.pending:
            self._apply(work, next(window.pngs) if work.needs_pixels else None)
        return len(window.pending)

    def _plan(self, item: SourceItem) -> _Pending:
        stored = self.store.record(item.id) if self.store.exists(item.id) else None
        # An older record without the source's checksum: its preprocessed pixels are compared.
        legacy = stored is not None and stored.provenance.parameters.get(SOURCE_SHA256) is None and not _label_changed(
            stored, item
        )
        try:
            raw = self.source.read(item)
        except InputError as exc:
            return _Pending(item, "skip", stored=stored, error=exc, legacy=legacy)
        if legacy:
            return _Pending(item, "compare", stored=stored, raw=raw, legacy=True)
        checksum = _sha256(raw)
        if stored is None:
            return _Pending(item, "add", raw=raw, checksum=checksum)
        changes = tuple(_changes(stored, item, checksum))
        if not changes:
            return _Pending(item, "present", stored=stored)
        return _Pending(item, "update" if self.update else "conflict", stored=stored, raw=raw, checksum=checksum,
                        changes=changes)

    def _apply(self, work: _Pending, png: bytes | InputError | None) -> None:
        item = work.item
        error = png if isinstance(png, InputError) else work.error
        if work.action in ("conflict", "update"):
            self.conflicts.append(f"{item.id}: {', '.join(work.changes)}")
        if error is not None:
            self._skip_or_raise(error)
            if work.legacy:
                self.present += 1  # an older record whose source cannot be used now stays as it is
            return
        if work.action == "present":
            self.present += 1
        elif work.action == "add" and isinstance(png, bytes):
            self.store.put(_record(self.source.name, item, work.checksum or "", private=self.private), png)
            self.added += 1
        elif work.action == "compare" and isinstance(png, bytes):
            if _sha256(png) == _sha256(self.store.get(item.id)):
                self.present += 1
                return
            self.conflicts.append(f"{item.id}: pixels changed")
            if self.update:
                self._overwrite(item, png, _sha256(work.raw or b""), ("pixels changed",))
        elif work.action == "update" and isinstance(png, bytes):
            self._overwrite(item, png, work.checksum or "", work.changes)

    def _overwrite(self, item: SourceItem, png: bytes, checksum: str, changes: tuple[str, ...]) -> None:
        # What derives from the old image goes first: until the record is rewritten the conflict
        # stays visible, so a run killed anywhere in between is finished by the next --update.
        for derived in self.store.list(origin=Origin.SYNTHETIC):
            if item.id in derived.provenance.source_ids:
                self.store.delete(derived.id)
                self.stale_removed += 1
        self.store.put(_record(self.source.name, item, checksum, private=self.private), png, overwrite=True)
        self.updated += 1
        _log.info("ingest_updated", image=item.id, changes=list(changes))

    def _skip_or_raise(self, exc: InputError) -> None:
        if not self.lenient:
            raise exc
        self.skipped.append(str(exc))
        _log.warning("image_skipped", reason=str(exc))


def _preprocess_one(preprocessor: Preprocessor, raw: bytes | None, name: str) -> bytes | InputError:
    """One image's PNG, or the ``InputError`` it raised (returned, so a pool passes it back in order)."""
    try:
        return preprocessor.preprocess(raw or b"", name)
    except InputError as exc:
        return exc


_POOL_MIN_ITEMS = 32
"""Below this many images a pool's start (about a second) costs more than it saves."""


@contextmanager
def _pool(workers: int, items: int) -> Iterator[Executor | None]:
    """A pool of ``workers`` processes for preprocessing, or None when one process does."""
    if workers <= 1 or items < _POOL_MIN_ITEMS:
        yield None
        return
    # why spawn: a forked copy of a process holding threads (torch's pools) may deadlock.
    with ProcessPoolExecutor(max_workers=min(workers, items), mp_context=multiprocessing.get_context("spawn")) as pool:
        try:
            yield pool
        except BaseException:
            pool.shutdown(cancel_futures=True)  # a strict ingest's error need not wait for the next window
            raise


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
