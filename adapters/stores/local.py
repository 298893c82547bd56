"""A folder on disk as an ImageStore: ``<root>/<split>/<grade>/<id>.png`` plus ``manifest.jsonl``."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import filelock
import structlog
from pydantic import ValidationError

from medaug.adapters.files import write_atomic
from medaug.adapters.stores.common import (
    IDENTITY,
    WRITER,
    Holder,
    IdentifiedWriter,
    ReentrantWriter,
    StoreIdentity,
    busy_message,
    check_key,
    matching,
    named,
)
from medaug.application.errors import StoreError
from medaug.domain import FundusImage, Grade, Origin, Split

_log = structlog.get_logger(__name__)

MANIFEST = "manifest.jsonl"
_LOCK = ".manifest.lock"


class LocalImageStore(IdentifiedWriter):
    """ImageStore on a local folder.

    Pixels are written to a temporary file and renamed into place before the record is appended
    to the manifest (an append-only JSON-lines log of ``put`` and ``delete`` operations, fsynced
    under a file lock), so a crash never leaves a record without its image. A truncated last
    manifest line (a crash mid-append) is invisible and cut off by the next append; any other
    damaged line stops reading with one line naming the manifest and the line number (``medaug
    store repair`` rebuilds it). Several processes may put concurrently; whole commands take the
    writer lock (``writing``), a ``filelock`` on ``.writer.lock`` released by the kernel when its
    process dies, with the holder described in ``.writer.json``.

    Args:
        root: the store's folder.
        lock_wait: seconds a second writing command waits for the writer lock before refusing.
    """

    def __init__(self, root: str | os.PathLike[str], *, lock_wait: float = 0.0) -> None:
        self._root = Path(root)
        self._records: dict[str, FundusImage] = {}
        self._manifest_offset = 0
        self._manifest_lines = 0
        self._identity: str | None = None
        self._lock_wait = lock_wait
        self._writer: filelock.BaseFileLock | None = None
        self._lock_inode: tuple[int, int] | None = None
        """(device, inode) of the writer lock file this object holds, while it holds it."""
        self._command = ""
        self._reentrant = ReentrantWriter()

    @property
    def root(self) -> Path:
        """The folder holding the store."""
        return self._root

    @property
    def location(self) -> str:
        return str(self._root)

    @contextlib.contextmanager
    def _exclusive(self, command: str) -> Iterator[None]:
        lock = self._acquire_writer()
        try:
            held = os.stat(self._root / f"{WRITER}.lock")
            self._lock_inode, self._command = (held.st_dev, held.st_ino), command
            write_atomic(self._root / f"{WRITER}.json", Holder.me(command).to_bytes())
            yield
        finally:
            self._lock_inode = None
            with contextlib.suppress(OSError):
                if self._still_mine() is None:
                    (self._root / f"{WRITER}.json").unlink(missing_ok=True)
            lock.release()

    def _still_mine(self) -> str | None:
        """Why this object may no longer write here (the folder removed or replaced, the writer
        lock file gone or another one), or None."""
        if self._identity is None or self._identity.startswith("path-"):
            return None
        path = self._root / IDENTITY
        try:
            current = StoreIdentity.parse(path.read_bytes(), str(path)).id
        except (OSError, StoreError):
            return f"{path} is gone"
        if current != self._identity:
            return f"{path} now names another store"
        if self._lock_inode is not None:
            try:
                lock = os.stat(self._root / f"{WRITER}.lock")
            except OSError:
                return "its writer lock file is gone"
            if (lock.st_dev, lock.st_ino) != self._lock_inode:
                return "its writer lock file was replaced"
        return None

    def _stop_if_lost(self) -> None:
        """Refuse to write into a store folder that was removed or replaced under this command."""
        why = self._still_mine()
        if why is not None:
            command = f"'{self._command}' " if self._command else ""
            raise StoreError(f"{self._root}: the store was removed or replaced while {command}was writing ({why}); "
                             "stopped, nothing more written (run the command again)")

    def claim_names(self, names: str) -> None:
        """Record or check how real images are named (see ``ImageStore``), in ``store.json``."""
        self.identity  # noqa: B018 - the identity document holds the claim
        path = self._root / IDENTITY
        with self._locked():
            try:
                identity = StoreIdentity.parse(path.read_bytes(), str(path))
            except FileNotFoundError:
                raise StoreError(f"{path}: store identity is missing (the store folder was removed?)") from None
            self._refresh()
            claimed = named(identity, names, self.list(origin=Origin.REAL), self.location)
            if claimed is not None:
                self._write_atomic(path, claimed)

    # -- writing -----------------------------------------------------------------------------

    def put(self, image: FundusImage, data: bytes, *, overwrite: bool = False) -> None:
        check_key(image)
        self._stop_if_lost()
        with self._locked(create=self._identity is None):
            self._stop_if_lost()
            self._refresh()
            if image.id in self._records and not overwrite:
                raise StoreError(f"{self.location}: image {image.id} already exists")
            previous = self._records.get(image.id)
            self._write_atomic(self._root / image.key, data)
            digest = hashlib.sha256(data).hexdigest()
            self._append({"op": "put", "record": image.model_dump(mode="json"), "sha256": digest})
            self._records[image.id] = image
            if previous is not None and previous.key != image.key:
                (self._root / previous.key).unlink(missing_ok=True)

    def delete(self, image_id: str) -> None:
        self._stop_if_lost()
        with self._locked(create=self._identity is None):
            self._stop_if_lost()
            self._refresh()
            if image_id not in self._records:
                raise KeyError(image_id)
            record = self._records.pop(image_id)
            self._append({"op": "delete", "id": image_id})
            (self._root / record.key).unlink(missing_ok=True)

    # -- maintenance -------------------------------------------------------------------------

    def check(self, *, quick: bool = False) -> list[str]:
        """Problems of the manifest, images and leftovers, one line each (see ``MaintainableStore``).

        Every image is read and compared with the sha256 its manifest line records (images put
        before checksums were recorded must decode as a whole PNG); ``quick`` skips that.
        """
        from medaug.adapters.stores.local_repair import survey

        return survey(self._root, self._manifest, apply_entry, verify=not quick).problems(self._root)

    def repair(self) -> list[str]:
        """Rebuild the manifest from intact records and images; remove leftovers (see ``MaintainableStore``)."""
        from medaug.adapters.stores.local_repair import rebuild, survey

        with self.writing("store repair"), self._locked():
            done = rebuild(self._root, self._manifest, survey(self._root, self._manifest, apply_entry, verify=True))
            self._records, self._manifest_offset, self._manifest_lines = {}, 0, 0
        return done

    # -- reading -----------------------------------------------------------------------------

    def get(self, image_id: str) -> bytes:
        record = self.record(image_id)
        path = self._root / record.key
        if path.is_symlink() or any(p.is_symlink() for p in path.parents if self._root in p.parents):
            raise StoreError(f"{path}: image of record {image_id} is a symbolic link; a store holds its own files")
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
        return matching((r for _, r in sorted(self._records.items())), split, grade, origin, augmentation)

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
                    self._records, self._manifest_offset, self._manifest_lines = {}, 0, 0
                if size == self._manifest_offset:
                    return
                fh.seek(self._manifest_offset)
                chunk = fh.read()
        except FileNotFoundError:
            self._records, self._manifest_offset, self._manifest_lines = {}, 0, 0
            return
        except OSError as exc:
            raise StoreError(f"{self._manifest}: cannot read manifest ({exc.strerror or exc})") from exc
        complete, _, _partial = chunk.rpartition(b"\n")
        if not complete and not chunk.endswith(b"\n"):
            return
        for number, line in enumerate(complete.split(b"\n"), start=self._manifest_lines + 1):
            if line.strip():
                apply_entry(self._records, line, f"{self._manifest}:{number}")
        self._manifest_offset += len(complete) + 1
        self._manifest_lines += complete.count(b"\n") + 1

    def _append(self, entry: dict[str, object]) -> None:
        line = json.dumps(entry, separators=(",", ":"), sort_keys=True).encode() + b"\n"
        try:
            with self._manifest.open("rb+" if self._manifest.exists() else "wb+") as fh:
                _cut_partial_line(fh)
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

    def _read_or_create_identity(self) -> str:
        path = self._root / IDENTITY
        try:
            return StoreIdentity.parse(path.read_bytes(), str(path)).id
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StoreError(f"{path}: cannot read ({exc.strerror or exc})") from exc
        try:
            with self._locked():
                if not path.exists():
                    write_atomic(path, StoreIdentity.new().to_bytes())
            return StoreIdentity.parse(path.read_bytes(), str(path)).id
        except (OSError, StoreError) as exc:
            resolved = str(self._root.resolve())
            _log.warning("store_identity_unwritable", store=resolved, reason=str(exc))
            return "path-" + hashlib.sha256(resolved.encode()).hexdigest()[:16]

    def _acquire_writer(self) -> filelock.BaseFileLock:
        try:
            self._root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"{self._root}: cannot write to the store ({exc.strerror or exc})") from exc
        self.identity  # noqa: B018 - a store gets its identity when it is first written
        lock = filelock.FileLock(self._root / f"{WRITER}.lock", timeout=self._lock_wait)
        try:
            lock.acquire()
        except filelock.Timeout:
            holder = None
            with contextlib.suppress(OSError):
                holder = Holder.parse_or_none((self._root / f"{WRITER}.json").read_bytes())
            raise StoreError(busy_message(self.location, holder, self._lock_wait)) from None
        except OSError as exc:
            raise StoreError(f"{self._root}: cannot write to the store ({exc.strerror or exc})") from exc
        return lock

    @contextlib.contextmanager
    def _locked(self, *, create: bool = True) -> Iterator[None]:
        try:
            if create:  # an existing store's folder is never made again (it was removed: see _stop_if_lost)
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


def apply_entry(
    records: dict[str, FundusImage], line: bytes, where: str, checksums: dict[str, str] | None = None
) -> None:
    """Apply one manifest line to ``records`` (and the sha256 it records to ``checksums``);
    ``StoreError`` naming ``where`` (file:line) if damaged."""
    try:
        entry = json.loads(line)
    except ValueError:
        raise StoreError(f"{where}: damaged manifest line (not JSON); run 'medaug store repair'") from None
    try:
        if entry["op"] == "put":
            record = FundusImage.model_validate(entry["record"])
            records[record.id] = record
            if checksums is not None:
                checksums.pop(record.id, None)
                if isinstance(entry.get("sha256"), str):
                    checksums[record.id] = entry["sha256"]
        elif entry["op"] == "delete":
            records.pop(str(entry["id"]), None)
            if checksums is not None:
                checksums.pop(str(entry["id"]), None)
        else:
            raise ValueError(f"unknown op {entry['op']!r}")
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "record"
        raise StoreError(f"{where}: invalid record ({field}: {first['msg']}); run 'medaug store repair'") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise StoreError(f"{where}: damaged manifest line ({exc}); run 'medaug store repair'") from None


def _cut_partial_line(fh) -> None:  # type: ignore[no-untyped-def]
    """Position ``fh`` at the end, first cutting off a last line left unfinished by a crash.

    Its image was never acknowledged, and cutting it (rather than closing it with a newline)
    keeps every complete line of the manifest valid.
    """
    size = fh.seek(0, os.SEEK_END)
    if size == 0:
        return
    fh.seek(-1, os.SEEK_END)
    if fh.read(1) == b"\n":
        return
    fh.seek(0)
    keep = fh.read().rfind(b"\n") + 1
    fh.truncate(keep)
    fh.seek(keep)
