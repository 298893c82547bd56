"""A folder on disk as an ImageStore: ``<root>/<split>/<grade>/<id>.png`` plus ``manifest.jsonl``."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path

import structlog
from pydantic import ValidationError

from medaug.adapters.files import write_atomic
from medaug.application.errors import StoreError
from medaug.domain import FundusImage, Grade, Origin, Split
from medaug.domain.images import storage_key

_log = structlog.get_logger(__name__)

MANIFEST = "manifest.jsonl"
_LOCK = ".manifest.lock"


class LocalImageStore:
    """ImageStore on a local folder.

    Pixels are written to a temporary file and renamed into place before the record is appended
    to the manifest (an append-only JSON-lines log of ``put`` and ``delete`` operations, fsynced
    under a file lock), so a crash never leaves a record without its image. A truncated last
    manifest line (a crash mid-append) is ignored. Several processes may write concurrently.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self._root = Path(root)
        self._records: dict[str, FundusImage] = {}
        self._manifest_offset = 0

    @property
    def root(self) -> Path:
        """The folder holding the store."""
        return self._root

    @property
    def location(self) -> str:
        return str(self._root)

    # -- writing -----------------------------------------------------------------------------

    def put(self, image: FundusImage, data: bytes, *, overwrite: bool = False) -> None:
        if image.key != storage_key(image.split, image.grade, image.id):
            raise StoreError(f"{image.id}: key {image.key!r} does not follow <split>/<grade>/<id>.png")
        with self._locked():
            self._refresh()
            if image.id in self._records and not overwrite:
                raise StoreError(f"{self.location}: image {image.id} already exists")
            previous = self._records.get(image.id)
            self._write_atomic(self._root / image.key, data)
            self._append({"op": "put", "record": image.model_dump(mode="json")})
            self._records[image.id] = image
            if previous is not None and previous.key != image.key:
                (self._root / previous.key).unlink(missing_ok=True)

    def delete(self, image_id: str) -> None:
        with self._locked():
            self._refresh()
            if image_id not in self._records:
                raise KeyError(image_id)
            record = self._records.pop(image_id)
            self._append({"op": "delete", "id": image_id})
            (self._root / record.key).unlink(missing_ok=True)

    # -- reading -----------------------------------------------------------------------------

    def get(self, image_id: str) -> bytes:
        record = self.record(image_id)
        path = self._root / record.key
        try:
            return path.read_bytes()
        except FileNotFoundError as exc:
            raise StoreError(f"{path}: image of record {image_id} is missing from the store") from exc
        except OSError as exc:
            raise StoreError(f"{path}: cannot read ({exc.strerror or exc})") from exc

    def record(self, image_id: str) -> FundusImage:
        self._refresh()
        try:
            return self._records[image_id]
        except KeyError:
            raise KeyError(image_id) from None

    def exists(self, image_id: str) -> bool:
        self._refresh()
        return image_id in self._records

    def list(
        self,
        *,
        split: Split | None = None,
        grade: Grade | None = None,
        origin: Origin | None = None,
        augmentation: str | None = None,
    ) -> list[FundusImage]:
        self._refresh()
        return [
            r
            for _, r in sorted(self._records.items())
            if (split is None or r.split is split)
            and (grade is None or r.grade == grade)
            and (origin is None or r.origin is origin)
            and (augmentation is None or r.augmentation == augmentation)
        ]

    # -- internals ---------------------------------------------------------------------------

    @property
    def _manifest(self) -> Path:
        return self._root / MANIFEST

    def _refresh(self) -> None:
        """Read manifest lines appended since the last look (by this or another process)."""
        try:
            with self._manifest.open("rb") as fh:
                size = os.fstat(fh.fileno()).st_size
                if size < self._manifest_offset:
                    self._records, self._manifest_offset = {}, 0
                if size == self._manifest_offset:
                    return
                fh.seek(self._manifest_offset)
                chunk = fh.read()
        except FileNotFoundError:
            self._records, self._manifest_offset = {}, 0
            return
        except OSError as exc:
            raise StoreError(f"{self._manifest}: cannot read manifest ({exc.strerror or exc})") from exc
        complete, _, _partial = chunk.rpartition(b"\n")
        if not complete and not chunk.endswith(b"\n"):
            return
        for number, line in enumerate(complete.split(b"\n"), start=1):
            if line.strip():
                self._apply(line, number)
        self._manifest_offset += len(complete) + 1

    def _apply(self, line: bytes, number: int) -> None:
        try:
            entry = json.loads(line)
        except ValueError:
            # A line cut short by a crash mid-append: its image was never acknowledged.
            _log.warning("manifest_line_skipped", manifest=str(self._manifest), line=number)
            return
        try:
            if entry["op"] == "put":
                record = FundusImage.model_validate(entry["record"])
                self._records[record.id] = record
            elif entry["op"] == "delete":
                self._records.pop(entry["id"], None)
        except (ValueError, KeyError, TypeError, ValidationError) as exc:
            raise StoreError(f"{self._manifest}: unreadable entry near line {number}: {exc}") from exc

    def _append(self, entry: dict[str, object]) -> None:
        line = json.dumps(entry, separators=(",", ":"), sort_keys=True).encode() + b"\n"
        try:
            with self._manifest.open("ab+") as fh:
                fh.seek(0, os.SEEK_END)
                if fh.tell() > 0:
                    fh.seek(-1, os.SEEK_END)
                    if fh.read(1) != b"\n":
                        # A crash mid-append left a partial line: close it so it is skipped.
                        fh.write(b"\n")
                fh.write(line)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise StoreError(f"{self._manifest}: cannot write manifest ({exc.strerror or exc})") from exc
        self._refresh()

    def _write_atomic(self, path: Path, data: bytes) -> None:
        try:
            write_atomic(path, data)
        except OSError as exc:
            raise StoreError(f"{path}: cannot write to the store ({exc.strerror or exc})") from exc

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            self._root.mkdir(parents=True, exist_ok=True)
            fh = (self._root / _LOCK).open("a")
        except OSError as exc:
            raise StoreError(f"{self._root}: cannot write to the store ({exc.strerror or exc})") from exc
        with fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
