"""Sync: copy one image store into another (folder <-> S3), verified by checksum, resumable."""

from __future__ import annotations

import hashlib
import json

import structlog
from pydantic import BaseModel, ConfigDict

from medaug.application.errors import ConfigError, StoreError
from medaug.application.ports import ImageStore, MaintainableStore, NullProgress, ProgressSink
from medaug.domain import FundusImage

_log = structlog.get_logger(__name__)


class SyncReport(BaseModel):
    """What a sync did.

    Attributes:
        source: the source store's location.
        destination: the destination store's location.
        copied: images written to the destination (new, or different there before).
        identical: images already in the destination with identical record and bytes.
        pruned: destination images not in the source that were deleted (with ``prune``).
        digest: the source's ``StoreDigest.digest``; the destination has the same one afterwards.
    """

    model_config = ConfigDict(frozen=True)

    source: str
    destination: str
    copied: int
    identical: int
    pruned: int = 0
    digest: str


class StoreDigest(BaseModel):
    """A fingerprint of a whole store: equal digests mean equal records and equal bytes.

    Attributes:
        location: the store's location.
        images: how many images it holds.
        digest: sha256 over every image's id, record and pixel sha256, in id order.
    """

    model_config = ConfigDict(frozen=True)

    location: str
    images: int
    digest: str


def sync_stores(
    source: ImageStore,
    destination: ImageStore,
    *,
    prune: bool = False,
    progress: ProgressSink | None = None,
) -> SyncReport:
    """Copy every image of ``source`` into ``destination``, checking each copy by reading it back.

    Images the destination already holds with the same record and the same bytes are skipped, so
    a sync stopped half-way continues where it stopped; images that differ are overwritten. With
    ``prune=True``, destination images absent from the source are deleted (a mirror).

    Raises:
        ConfigError: source and destination are the same store.
        StoreError: a store cannot be read or written, or a copy read back differs.
    """
    if source.location == destination.location:
        raise ConfigError(f"{source.location}: source and destination are the same store")
    if source.identity == destination.identity:
        raise ConfigError(
            f"{source.location} -> {destination.location}: source and destination are the same store "
            f"(id {source.identity}; a folder copied by hand keeps its id: delete its store.json to give it its own)"
        )
    progress = progress or NullProgress()
    with destination.writing(f"store sync from {source.location}"):
        return _sync(source, destination, prune=prune, progress=progress)


def _sync(source: ImageStore, destination: ImageStore, *, prune: bool, progress: ProgressSink) -> SyncReport:
    records = source.list()
    lines: list[str] = []
    copied = 0
    with progress.task(f"sync {source.location} -> {destination.location}", total=len(records)) as bar:
        for record in records:
            data = source.get(record.id)
            checksum = _sha256(data)
            if not _holds_identical(destination, record, checksum):
                _copy(destination, record, data, checksum)
                copied += 1
            lines.append(_digest_line(record, checksum))
            bar.advance()
    pruned = _prune(destination, {r.id for r in records}) if prune else 0
    report = SyncReport(
        source=source.location,
        destination=destination.location,
        copied=copied,
        identical=len(records) - copied,
        pruned=pruned,
        digest=_combine(lines),
    )
    _log.info("sync_done", **report.model_dump())
    return report


def store_digest(store: ImageStore, *, progress: ProgressSink | None = None) -> StoreDigest:
    """Read every image of ``store`` and fingerprint records and bytes (see ``StoreDigest``)."""
    progress = progress or NullProgress()
    records = store.list()
    lines: list[str] = []
    with progress.task(f"digest {store.location}", total=len(records)) as bar:
        for record in records:
            lines.append(_digest_line(record, _sha256(store.get(record.id))))
            bar.advance()
    return StoreDigest(location=store.location, images=len(records), digest=_combine(lines))


def _holds_identical(store: ImageStore, record: FundusImage, checksum: str) -> bool:
    if not store.exists(record.id):
        return False
    try:
        return store.record(record.id) == record and _sha256(store.get(record.id)) == checksum
    except KeyError:
        return False
    except StoreError as exc:
        # A damaged copy (missing pixels, bad checksum) is repaired by copying again.
        _log.warning("sync_recopy", destination=store.location, image=record.id, reason=str(exc))
        return False


def _copy(store: ImageStore, record: FundusImage, data: bytes, checksum: str) -> None:
    store.put(record, data, overwrite=True)
    read_back = _sha256(store.get(record.id))
    if read_back != checksum:
        raise StoreError(
            f"{store.location}: image {record.id} read back with sha256 {read_back[:12]}..., "
            f"expected {checksum[:12]}..."
        )
    if store.record(record.id) != record:
        raise StoreError(f"{store.location}: record of image {record.id} read back differs from the source")


def _prune(store: ImageStore, keep: set[str]) -> int:
    extra = [r.id for r in store.list() if r.id not in keep]
    for image_id in extra:
        store.delete(image_id)
    return len(extra)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _digest_line(record: FundusImage, checksum: str) -> str:
    record_json = json.dumps(record.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return f"{record.id} {checksum} {_sha256(record_json.encode())}\n"


def _combine(lines: list[str]) -> str:
    return _sha256("".join(sorted(lines)).encode())


def check_store(store: ImageStore, *, quick: bool = False) -> list[str]:
    """Problems of ``store``'s index, images and leftovers, one line each (empty: healthy);
    every image is compared with its recorded checksum unless ``quick``.

    Raises:
        ConfigError: the store cannot check itself.
    """
    return _maintainable(store).check(quick=quick)


def repair_store(store: ImageStore) -> list[str]:
    """Rebuild ``store``'s index from its intact records and images; one line per thing done.

    Raises:
        ConfigError: the store cannot repair itself.
        StoreError: another command holds the store's writer lock.
    """
    done = _maintainable(store).repair()
    _log.info("store_repaired", store=store.location, actions=len(done))
    return done


def _maintainable(store: ImageStore) -> MaintainableStore:
    if not isinstance(store, MaintainableStore):
        raise ConfigError(f"{store.location}: this kind of store cannot be checked or repaired")
    return store
