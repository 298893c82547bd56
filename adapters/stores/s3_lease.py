"""The writer lease of an S3 store: a ``.writer.lease`` object naming its holder and an expiry."""

from __future__ import annotations

import threading
import time
from typing import Protocol

import structlog

from medaug.adapters.stores.common import WRITER, Holder, busy_message
from medaug.application.errors import StoreError

_log = structlog.get_logger(__name__)

NOT_IMPLEMENTED = frozenset({"501", "NotImplemented"})

_HELD: set[str] = set()
"""Leases this process holds now (``bucket/key``): a lease naming this process that is not among
them was left by a release that failed (the server was unreachable) and is taken over."""


class LeasedObjects(Protocol):
    """What a lease needs of its store (``S3ImageStore``): conditional writes of one object."""

    @property
    def location(self) -> str: ...

    @property
    def bucket(self) -> str: ...

    def object_key(self, relative: str) -> str: ...

    def put_conditional(
        self, key: str, body: bytes, *, if_none_match: bool = False, if_match: str | None = None
    ) -> str: ...

    def put_plain(self, key: str, body: bytes) -> str | None: ...

    def read_object_with_etag(self, key: str) -> tuple[bytes | None, str | None]: ...

    def delete_if_match(self, key: str, etag: str | None) -> None: ...


class Lease:
    """The S3 writer lease of one store held by one command (see ``S3ImageStore``)."""

    def __init__(self, store: LeasedObjects, command: str, *, wait: float, seconds: float) -> None:
        self._store = store
        self._wait = wait
        self._seconds = seconds
        self._command = command
        self._key = store.object_key(f"{WRITER}.lease")
        self._etag: str | None = None
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self.lost = threading.Event()
        """Set when a renewal found the lease taken or gone: the holder must stop writing."""

    def acquire(self) -> None:
        deadline = time.monotonic() + self._wait
        while True:
            holder = self._try_take()
            if holder is None:
                break
            if time.monotonic() >= deadline:
                raise StoreError(busy_message(self._store.location, holder, self._wait))
            time.sleep(min(0.5, max(0.05, deadline - time.monotonic())))
        _HELD.add(self._name)
        self._renewer = threading.Thread(target=self._renew, name="medaug-s3-lease", daemon=True)
        self._renewer.start()

    def release(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=10)
        _HELD.discard(self._name)
        self._store.delete_if_match(self._key, self._etag)

    def _left_by_this_process(self, holder: Holder) -> bool:
        mine = Holder.me(self._command)
        return holder.pid == mine.pid and holder.host == mine.host and self._name not in _HELD

    @property
    def _name(self) -> str:
        return f"{self._store.bucket}/{self._key}"

    def _body(self) -> bytes:
        return Holder.me(self._command, ttl=self._seconds).to_bytes()

    def _try_take(self) -> Holder | None:
        """Take the lease if free or expired; otherwise return its live holder."""
        code = self._store.put_conditional(self._key, self._body(), if_none_match=True)
        if code.startswith("ok:"):
            self._etag = code[3:]
            return None
        raw, etag = self._store.read_object_with_etag(self._key)
        if raw is None:
            return self._try_take() if code not in NOT_IMPLEMENTED else self._take_unconditionally()
        holder = Holder.parse_or_none(raw)
        if holder is not None and (holder.expires or 0) > time.time() and not self._left_by_this_process(holder):
            return holder
        _log.warning("s3_lease_expired", store=self._store.location, holder=holder.describe() if holder else None)
        if code in NOT_IMPLEMENTED:
            return self._take_unconditionally()
        taken = self._store.put_conditional(self._key, self._body(), if_match=etag)
        if taken.startswith("ok:"):
            self._etag = taken[3:]
            return None
        return holder or Holder.me("another command", ttl=0)

    def _take_unconditionally(self) -> None:
        self._etag = self._store.put_plain(self._key, self._body())

    def _gone(self) -> bool:
        """Whether the lease object no longer exists (False when that cannot be told now)."""
        try:
            return self._store.read_object_with_etag(self._key)[0] is None
        except StoreError:
            return False

    def _renew(self) -> None:
        while not self._stop.wait(self._seconds / 3):
            try:
                code = self._store.put_conditional(self._key, self._body(), if_match=self._etag)
            except StoreError as exc:
                if self._gone():  # S3 answers a conditional write on a missing object with NoSuchKey
                    _log.warning("s3_lease_lost", store=self._store.location, reason="lease object removed")
                    self.lost.set()
                    return
                _log.warning("s3_lease_not_renewed", store=self._store.location, reason=str(exc))
                continue
            if code.startswith("ok:"):
                self._etag = code[3:]
            elif code in NOT_IMPLEMENTED:
                self._take_unconditionally()
            else:
                _log.warning("s3_lease_lost", store=self._store.location)
                self.lost.set()
                return
