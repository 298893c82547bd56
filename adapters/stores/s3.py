"""An S3-compatible bucket as an ImageStore (AWS S3, MinIO, Ceph, R2...).

Layout under ``s3://<bucket>/<prefix>/``, the same keys as the local store:

- ``<split>/<grade>/<id>.png``: the pixels, with their sha256 in the object's metadata;
- ``records/<id>.json``: one record object per image (``{"record": ..., "sha256": ..., "size": ...}``),
  since an S3 object cannot be appended to like the local ``manifest.jsonl``;
- ``manifest.jsonl``: only when ``export_manifest`` is called, a snapshot in the local store's
  format, so a plain copy of the prefix opens as a ``LocalImageStore``.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import structlog
from boto3.s3.transfer import TransferConfig
from pydantic import ValidationError

from medaug.adapters.stores.common import (
    IDENTITY,
    IdentifiedWriter,
    ReentrantWriter,
    StoreIdentity,
    check_key,
    matching,
    named,
)
from medaug.adapters.stores.config import MIB
from medaug.adapters.stores.local import MANIFEST
from medaug.adapters.stores.s3_client import NotFound, S3Client
from medaug.adapters.stores.s3_lease import NOT_IMPLEMENTED, Lease
from medaug.adapters.stores.s3_objects import S3Objects
from medaug.application.errors import ConfigError, StoreError
from medaug.domain import FundusImage, Grade, Origin, Split

_log = structlog.get_logger(__name__)


RECORDS = "records"
_SHA256 = "sha256"
@dataclass(frozen=True)
class _Entry:
    """A record as stored: the image record, the sha256 of its pixels, its object's ETag."""

    record: FundusImage
    sha256: str
    etag: str | None


class _ImageUnreadable(StoreError):
    """A record's image is missing or does not match its checksum."""


class S3ImageStore(S3Objects, IdentifiedWriter):
    """ImageStore on an S3-compatible bucket, with the same key layout as ``LocalImageStore``.

    A ``put`` uploads the image object first (multipart above ``multipart_threshold``), then its
    record object, so a reader never sees a record without its image; an image without a record
    (a crash in between) is invisible and rewritten by the next ``put``. ``delete`` removes the
    record first, then the image. Every image read is checked against the sha256 written with
    its record, so an ``overwrite`` interrupted between its two writes (new pixels under the old
    record) is reported as a checksum mismatch until it is redone, never returned as wrong
    pixels. Records are cached in memory by ETag: ``list`` lists the record objects and
    re-reads only those that changed. Retries with backoff are botocore's (see
    ``make_s3_client``); a request that still fails raises ``StoreError`` naming the object.

    The store's identity is ``store.json``, created with a conditional write (``If-None-Match:
    *``) so that two first writers agree on one id. The writer lock is a lease object,
    ``.writer.lease``, naming its holder and an expiry: taken with ``If-None-Match: *``, renewed
    by a background thread every third of ``lease_seconds`` with ``If-Match`` on its ETag, and
    taken over once expired (a holder killed without releasing it blocks writers for at most
    ``lease_seconds``). A server without conditional writes gets a best effort (read, then
    write), which two writers starting in the same instant can both pass.

    Args:
        client: a boto3 S3 client, e.g. from ``make_s3_client``.
        bucket: the bucket.
        prefix: the folder inside the bucket ("" for the bucket's root).
        multipart_threshold: objects above this size (bytes) are uploaded in parts.
        multipart_chunksize: the size of each part (bytes).
        max_workers: concurrent requests when reading many records or parts.
        lock_wait: seconds a second writing command waits for the lease before refusing.
        lease_seconds: how long a lease lasts without renewal.
    """

    def __init__(
        self,
        client: S3Client,
        *,
        bucket: str,
        prefix: str = "",
        multipart_threshold: int = 8 * MIB,
        multipart_chunksize: int = 8 * MIB,
        max_workers: int = 8,
        lock_wait: float = 0.0,
        lease_seconds: float = 120.0,
    ) -> None:
        if not bucket:
            raise ConfigError("an S3 store needs a bucket name")
        super().__init__(client, bucket=bucket, prefix=prefix)
        self._transfer = TransferConfig(
            multipart_threshold=multipart_threshold,
            multipart_chunksize=multipart_chunksize,
            max_concurrency=max_workers,
        )
        self._max_workers = max_workers
        self._entries: dict[str, _Entry] = {}
        self._identity: str | None = None
        self._lock_wait = lock_wait
        self._lease_seconds = lease_seconds
        self._reentrant = ReentrantWriter()
        self._lease: Any = None

    @contextlib.contextmanager
    def _exclusive(self, command: str) -> Iterator[None]:
        self.identity  # noqa: B018 - a store gets its identity when it is first written
        lease = Lease(self, command, wait=self._lock_wait, seconds=self._lease_seconds)
        lease.acquire()
        self._lease = lease
        try:
            yield
        finally:
            self._lease = None
            lease.release()

    def _stop_if_lost(self) -> None:
        """Refuse to write once this command's lease was taken over or removed (with the store)."""
        if self._lease is not None and self._lease.lost.is_set():
            raise StoreError(f"{self.location}: this command lost its writer lease (the store was removed, or "
                             "another writer took it over); stopped, nothing more written (run it again)")

    def claim_names(self, names: str) -> None:
        """Record or check how real images are named (see ``ImageStore``), in ``store.json``."""
        self.identity  # noqa: B018 - the identity document holds the claim
        key = self.object_key(IDENTITY)
        raw = self.read_object_or_none(key)
        if raw is None:
            raise StoreError(f"{self._url(key)}: store identity is missing (the store was removed?)")
        identity = StoreIdentity.parse(raw, self._url(key))
        claimed = named(identity, names, self.list(origin=Origin.REAL), self.location)
        if claimed is not None:
            self.put_plain(key, claimed)

    # -- writing -----------------------------------------------------------------------------

    def put(self, image: FundusImage, data: bytes, *, overwrite: bool = False) -> None:
        check_key(image)
        self._stop_if_lost()
        if self._identity is None:
            self._identity = self._read_or_create_identity()
        previous = self._load_or_none(image.id)
        if previous is not None and not overwrite:
            raise StoreError(f"{self.location}: image {image.id} already exists")
        checksum = hashlib.sha256(data).hexdigest()
        self._upload(self.object_key(image.key), data, checksum)
        etag = self._put_record(image, checksum, len(data))
        self._entries[image.id] = _Entry(image, checksum, etag)
        if previous is not None and previous.record.key != image.key:
            self._delete_object(self.object_key(previous.record.key))

    def delete(self, image_id: str) -> None:
        self._stop_if_lost()
        entry = self._load(image_id)
        self._delete_object(self._record_key(image_id))
        self._entries.pop(image_id, None)
        self._delete_object(self.object_key(entry.record.key))

    def export_manifest(self) -> str:
        """Write ``<prefix>/manifest.jsonl``, a snapshot of every record in the local store's format.

        A plain copy of the prefix (``aws s3 sync``, ``mc mirror``) then opens as a
        ``LocalImageStore``. The S3 store itself never reads this file.

        Returns:
            The ``s3://`` URL of the manifest.
        """
        lines = [
            json.dumps({"op": "put", "record": r.model_dump(mode="json")}, separators=(",", ":"), sort_keys=True)
            for r in self.list()
        ]
        key = self.object_key(MANIFEST)
        body = "".join(line + "\n" for line in lines).encode()
        with self._errors(key):
            self._client.put_object(Bucket=self._bucket, Key=key, Body=body, ContentType="application/x-ndjson")
        return self._url(key)

    # -- maintenance -------------------------------------------------------------------------

    def check(self, *, quick: bool = False) -> list[str]:
        """Unreadable record objects and records whose image is missing or of another checksum
        (every image read and hashed; ``quick`` compares only the checksum in its metadata)."""
        return [line for line, _ in self._survey(verify=not quick)]

    def repair(self) -> list[str]:
        """Move unreadable records to ``damaged/``, drop records without their image, re-export the manifest."""
        done: list[str] = []
        with self.writing("store repair"):
            for line, key in self._survey():
                if key is None:
                    continue
                if key.startswith(self.object_key(f"{RECORDS}/")):
                    target = self.object_key("damaged/" + key[len(self.object_key("")) :])
                    with self._errors(key):
                        self._client.copy_object(Bucket=self._bucket, Key=target,
                                                 CopySource={"Bucket": self._bucket, "Key": key})
                    self._delete_object(key)
                    done.append(f"{self._url(key)}: moved to {self._url(target)} ({line.split(': ', 1)[-1]})")
            self._entries.clear()
            done.append(f"{self.export_manifest()}: rebuilt from {len(self.list())} record objects")
        return done

    def _survey(self, *, verify: bool = True) -> list[tuple[str, str | None]]:
        """(problem, record object to set aside) for every damaged record or image."""
        found: list[tuple[str, str | None]] = []
        for image_id, _ in self._list_records():
            key = self._record_key(image_id)
            try:
                entry = self._load(image_id)
            except StoreError as exc:
                found.append((str(exc), key))
                continue
            except KeyError:
                continue
            image_key = self.object_key(entry.record.key)
            try:
                with self._errors(image_key):
                    head = self._client.head_object(Bucket=self._bucket, Key=image_key)
            except NotFound:
                found.append((f"{self._url(image_key)}: image of record {image_id} is missing", key))
                continue
            if head.get("Metadata", {}).get(_SHA256) not in (None, entry.sha256):
                found.append((f"{self._url(image_key)}: checksum differs from record {image_id}", key))
            elif verify:
                try:
                    self._read_image(entry)
                except _ImageUnreadable as exc:
                    found.append((str(exc), key))
        return found

    # -- reading -----------------------------------------------------------------------------

    def get(self, image_id: str) -> bytes:
        cached = self._entries.get(image_id)
        if cached is not None:
            # The cached record may be stale (another process overwrote or deleted the image):
            # on a miss, re-read the record before giving up.
            with contextlib.suppress(_ImageUnreadable):
                return self._read_image(cached)
        return self._read_image(self._load(image_id))

    def record(self, image_id: str) -> FundusImage:
        return self._load(image_id).record

    def exists(self, image_id: str) -> bool:
        key = self._record_key(image_id)
        try:
            with self._errors(key):
                self._client.head_object(Bucket=self._bucket, Key=key)
        except NotFound:
            self._entries.pop(image_id, None)
            return False
        return True

    def list(
        self,
        *,
        split: Split | None = None,
        grade: Grade | None = None,
        origin: Origin | None = None,
        augmentation: str | None = None,
    ) -> list[FundusImage]:
        self._refresh()
        return matching((e.record for _, e in sorted(self._entries.items())), split, grade, origin, augmentation)

    # -- objects -----------------------------------------------------------------------------

    def _record_key(self, image_id: str) -> str:
        return self.object_key(f"{RECORDS}/{image_id}.json")

    def _upload(self, key: str, data: bytes, checksum: str) -> None:
        extra = {"Metadata": {_SHA256: checksum}, "ContentType": "image/png"}
        with self._errors(key):
            if len(data) > self._transfer.multipart_threshold:
                self._client.upload_fileobj(
                    io.BytesIO(data), self._bucket, key, ExtraArgs=extra, Config=self._transfer
                )
            else:
                self._client.put_object(Bucket=self._bucket, Key=key, Body=data, **extra)

    def _put_record(self, image: FundusImage, checksum: str, size: int) -> str | None:
        key = self._record_key(image.id)
        body = json.dumps(
            {"record": image.model_dump(mode="json"), _SHA256: checksum, "size": size},
            separators=(",", ":"),
            sort_keys=True,
        ).encode()
        with self._errors(key):
            response = self._client.put_object(
                Bucket=self._bucket, Key=key, Body=body, ContentType="application/json"
            )
        return response.get("ETag")

    def _read_image(self, entry: _Entry) -> bytes:
        key = self.object_key(entry.record.key)
        try:
            with self._errors(key):
                data = self._client.get_object(Bucket=self._bucket, Key=key)["Body"].read()
        except NotFound:
            raise _ImageUnreadable(
                f"{self._url(key)}: image of record {entry.record.id} is missing from the store"
            ) from None
        actual = hashlib.sha256(data).hexdigest()
        if actual != entry.sha256:
            raise _ImageUnreadable(
                f"{self._url(key)}: checksum mismatch for image {entry.record.id} "
                f"(read sha256 {actual[:12]}..., recorded {entry.sha256[:12]}...)"
            )
        return data

    # -- records -----------------------------------------------------------------------------

    def _load(self, image_id: str) -> _Entry:
        """Read one record object afresh (and cache it); ``KeyError`` when there is none."""
        entry = self._load_or_none(image_id)
        if entry is None:
            raise KeyError(image_id)
        return entry

    def _load_or_none(self, image_id: str) -> _Entry | None:
        key = self._record_key(image_id)
        try:
            with self._errors(key):
                response = self._client.get_object(Bucket=self._bucket, Key=key)
                body = response["Body"].read()
        except NotFound:
            self._entries.pop(image_id, None)
            return None
        entry = self._parse_record(key, image_id, body, response.get("ETag"))
        self._entries[image_id] = entry
        return entry

    def _parse_record(self, key: str, image_id: str, body: bytes, etag: str | None) -> _Entry:
        try:
            document = json.loads(body)
            record = FundusImage.model_validate(document["record"])
            checksum = str(document[_SHA256])
        except (ValueError, KeyError, TypeError, ValidationError) as exc:
            problem = str(exc).splitlines()[0]
            raise StoreError(f"{self._url(key)}: unreadable record ({problem})") from None
        if record.id != image_id:
            raise StoreError(f"{self._url(key)}: record is for image {record.id}, not {image_id}")
        return _Entry(record, checksum, etag)

    def _refresh(self) -> None:
        """List the record objects; re-read only those new or changed since the last look."""
        listed = dict(self._list_records())
        changed = [i for i, etag in listed.items() if i not in self._entries or self._entries[i].etag != etag]
        for image_id in set(self._entries) - set(listed):
            del self._entries[image_id]
        self._load_many(changed)

    def _load_many(self, image_ids: list[str]) -> None:
        """Read many records concurrently into the cache (records deleted meanwhile drop out)."""
        if not image_ids:
            return
        with ThreadPoolExecutor(max_workers=self._max_workers) as pool:
            list(pool.map(self._load_or_none, image_ids))

    def _list_records(self) -> Iterable[tuple[str, str | None]]:
        prefix = self.object_key(f"{RECORDS}/")
        found: list[tuple[str, str | None]] = []
        with self._errors(prefix):
            for page in self._client.get_paginator("list_objects_v2").paginate(Bucket=self._bucket, Prefix=prefix):
                for obj in page.get("Contents", []):
                    name = obj["Key"][len(prefix) :]
                    if name.endswith(".json") and "/" not in name:
                        found.append((name.removesuffix(".json"), obj.get("ETag")))
        return found

    # -- identity and lease ------------------------------------------------------------------

    def _read_or_create_identity(self) -> str:
        key = self.object_key(IDENTITY)
        raw = self.read_object_or_none(key)
        if raw is None:
            code = self.put_conditional(key, StoreIdentity.new().to_bytes(), if_none_match=True)
            if code in NOT_IMPLEMENTED:
                self.put_plain(key, StoreIdentity.new().to_bytes())
            raw = self.read_object_or_none(key)
            if raw is None:
                raise StoreError(f"{self._url(key)}: store identity vanished right after it was written")
        return StoreIdentity.parse(raw, self._url(key)).id
