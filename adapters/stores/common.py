"""What the local and S3 stores share: the store identity document and the writer lock's holder."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from medaug.application.errors import StoreError
from medaug.domain import FundusImage, Grade, Origin, Split
from medaug.domain.images import storage_key

IDENTITY = "store.json"
"""The identity document at the store's root, written once when the store is created."""

WRITER = ".writer"
"""Name (without ending) of the writer lock: ``.writer.lock`` (local) or ``.writer.lease`` (S3)."""


class StoreIdentity(BaseModel):
    """``store.json``: a random id given to a store when it is created, never changed after.

    Generator models, feature caches and run folders are keyed by this id, so a store is the same
    store however it is reached (relative path, absolute path, symlink), and two stores that share
    a path string from different folders are never confused.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    format: int = 1
    id: str = Field(min_length=8, pattern=r"^[0-9a-f]+$")
    created: str
    names: str | None = None
    """How real images are named: ``plain`` (the data set's names) or ``pseudonyms:<check>`` (a
    pseudonym of a fixed text, telling keys apart without revealing one); None until the first
    ingest claims it (``settle_names``)."""

    @classmethod
    def new(cls) -> StoreIdentity:
        return cls(id=uuid.uuid4().hex, created=datetime.now(UTC).isoformat(timespec="seconds"))

    def to_bytes(self) -> bytes:
        return json.dumps(self.model_dump(mode="json", exclude_none=True), sort_keys=True, indent=2).encode() + b"\n"

    @classmethod
    def parse(cls, raw: bytes, where: str) -> StoreIdentity:
        """Raises ``StoreError`` naming ``where`` when ``raw`` is not an identity document."""
        try:
            return cls.model_validate_json(raw)
        except (ValidationError, ValueError) as exc:
            problem = str(exc).splitlines()[0]
            raise StoreError(f"{where}: not a store identity document ({problem})") from None


class Holder(BaseModel):
    """Who holds a store's writer lock: enough to find and judge the other command."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    pid: int
    host: str
    command: str
    since: str
    expires: float | None = None
    """Unix time after which an S3 lease counts as abandoned (local locks die with their process)."""

    @classmethod
    def me(cls, command: str, ttl: float | None = None) -> Holder:
        return cls(
            pid=os.getpid(),
            host=socket.gethostname(),
            command=command,
            since=datetime.now(UTC).isoformat(timespec="seconds"),
            expires=None if ttl is None else time.time() + ttl,
        )

    def describe(self) -> str:
        return f"'{self.command}' (pid {self.pid} on {self.host}, since {self.since})"

    def to_bytes(self) -> bytes:
        return json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()

    @classmethod
    def parse_or_none(cls, raw: bytes) -> Holder | None:
        try:
            return cls.model_validate_json(raw)
        except (ValidationError, ValueError):
            return None


PLAIN = "plain"
PSEUDONYMS = "pseudonyms:"


def settle_names(recorded: str | None, wanted: str, real: list[FundusImage], location: str) -> str | None:
    """Check an ingest's naming ``wanted`` against the store's; the value to record, if new.

    A store made before names were recorded is judged by its real images: any with an original
    name is ``plain``; otherwise they are pseudonyms of an unknown key, and the first claim's
    key is recorded.

    Raises:
        StoreError: one line, when the ingest would name images differently from the store
            (every image added again under other ids, or real names added to a private store).
    """
    stored = recorded
    if recorded is None and real:
        named = any(r.provenance.original_name is not None for r in real)
        recorded = PLAIN if named else None
        if recorded is None and not wanted.startswith(PSEUDONYMS):
            recorded = PSEUDONYMS + "unknown-key"
    if recorded is None or recorded == wanted:
        return wanted if stored is None else None
    if recorded == PLAIN:
        raise StoreError(f"{location}: this store keeps the data sets' own names; a pseudonymised ingest would "
                         "add every image again under a pseudonym (use another store, or --keep-names)")
    if wanted == PLAIN:
        raise StoreError(f"{location}: this store is pseudonymised; ingest with --pseudonymise and its key "
                         "(without it every image would be added again under its real name)")
    raise StoreError(f"{location}: this store was pseudonymised with another key; ingest with the key it was "
                     "made with (another key would add every image again under new pseudonyms)")


def busy_message(location: str, holder: Holder | None, waited: float) -> str:
    """The one line a second writing command gets."""
    who = holder.describe() if holder is not None else "another command (holder unknown)"
    wait = f" (waited {waited:g} s)" if waited > 0 else ""
    expiry = ""
    if holder is not None and holder.expires is not None:
        expiry = f"; its lease lapses in {max(0, round(holder.expires - time.time()))} s if it was killed"
    return f"{location}: store is being written by {who}; try again when it finishes{wait}{expiry}"


def check_key(image: FundusImage) -> None:
    """Raises ``StoreError`` when ``image.key`` is not ``<split>/<grade>/<id>.png``."""
    if image.key != storage_key(image.split, image.grade, image.id):
        raise StoreError(f"{image.id}: key {image.key!r} does not follow <split>/<grade>/<id>.png")


def matching(
    records: Iterable[FundusImage],
    split: Split | None,
    grade: Grade | None,
    origin: Origin | None,
    augmentation: str | None,
) -> list[FundusImage]:
    """The records that ``ImageStore.list`` returns for these filters (None: any), in the given order."""
    return [
        r
        for r in records
        if (split is None or r.split is split)
        and (grade is None or r.grade == grade)
        and (origin is None or r.origin is origin)
        and (augmentation is None or r.augmentation == augmentation)
    ]


def named(identity: StoreIdentity, names: str, real: list[FundusImage], location: str) -> bytes | None:
    """The identity document to write once an ingest claims ``names`` (see ``settle_names``), or None
    when the store already records them."""
    new = settle_names(identity.names, names, real, location)
    return None if new is None else identity.model_copy(update={"names": new}).to_bytes()


class ReentrantWriter:
    """Makes a store's writer lock re-entrant within one store object: an inner ``writing()``
    (e.g. ``augment`` calling ``put`` helpers that also ask for it) neither waits for itself nor
    releases the outer hold."""

    def __init__(self) -> None:
        self._depth = 0

    @contextlib.contextmanager
    def hold(self, exclusive: Callable[[], AbstractContextManager[None]]) -> Iterator[None]:
        """Enter ``exclusive()`` (the store's real lock) unless this object already holds it."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        with exclusive():
            self._depth = 1
            try:
                yield
            finally:
                self._depth = 0


class IdentifiedWriter:
    """The store identity and writer lock as both stores show them: the identity read (or created)
    once and kept, the writer lock re-entrant within one store object.

    A store sets ``_identity`` (None) and ``_reentrant`` in its ``__init__`` and says how it reads
    or creates ``store.json`` (``_read_or_create_identity``) and takes its writer lock
    (``_exclusive``).
    """

    _identity: str | None
    _reentrant: ReentrantWriter

    @property
    def identity(self) -> str:
        """The id in ``store.json``, written now if the store has none yet.

        A local store that cannot be written (a read-only copy without ``store.json``) is named by
        its resolved path instead, prefixed ``path-``; an S3 store creates it with a conditional
        write, so that two first writers agree on one id.
        """
        if self._identity is None:
            self._identity = self._read_or_create_identity()
        return self._identity

    @contextlib.contextmanager
    def writing(self, command: str) -> Iterator[None]:
        """Hold the store's writer lock (local) or lease (S3) for ``command`` (re-entrant within
        this object)."""
        with self._reentrant.hold(lambda: self._exclusive(command)):
            yield

    def _read_or_create_identity(self) -> str:
        raise NotImplementedError

    def _exclusive(self, command: str) -> AbstractContextManager[None]:
        raise NotImplementedError
