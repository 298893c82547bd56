"""A local scratch folder mirrored, file by file, under an S3 prefix.

Adapters that write files locally (generator checkpoints, classifier feature caches, a cell's
weights, the report) keep doing so in a scratch folder; the mirror pushes each finished file
to S3 and pulls them on another machine before a task needs them, so a worker anywhere resumes
from what was saved.

The contract:

- Only finished files are pushed: a path with a hidden component (``.x.tmp``, the temporary
  names of ``write_atomic`` and of checkpoint folders before their rename) is never pushed.
- Each push uploads the folder's new or changed files (each ``put`` atomic) that its manifest
  does not already list with the same size and sha256 (another mirror of the same scratch, in an
  earlier task's process, may have pushed them), then records them
  in the folder's manifest object ``<folder>/.mirror.json`` (name -> size, sha256), updated with
  a conditional write so that workers pushing into one folder keep each other's entries.
- A pull downloads only what a manifest lists (a folder half pushed by a killed process is not
  seen), each file to a temporary name renamed into place; a folder missing locally is filled
  in a hidden temporary folder and renamed into place whole (checkpoint folders stay atomic).
- A file this mirror pushed and that later vanished locally (a pruned checkpoint) is removed
  from its manifest and from S3 at the next push.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path

import structlog

from medaug.adapters.stores.s3_objects import S3Objects
from medaug.application.errors import StoreError

_log = structlog.get_logger(__name__)

MANIFEST = ".mirror.json"
_ATTEMPTS = 20


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)


class ScratchMirror:
    """The folders ``subtrees`` of the local ``root`` mirrored under ``objects`` (same relative keys).

    Args:
        objects: the S3 prefix that holds the mirror (``root`` maps to its prefix).
        root: the local scratch folder.
        subtrees: folders of ``root`` that are pushed (``"."`` for all of it).
        pulls: which of their folders a pull brings here (``fnmatch`` patterns of folder paths,
            e.g. ``generators/*-<store id>*``: only one store's models); None: all of ``subtrees``.
    """

    def __init__(
        self, objects: S3Objects, root: Path, subtrees: Iterable[str] = (".",), pulls: Iterable[str] | None = None
    ) -> None:
        self._objects = objects
        self._root = Path(root)
        self._subtrees = tuple(subtrees)
        self._pulls = tuple(pulls) if pulls is not None else tuple(
            pattern
            for subtree in self._subtrees
            for pattern in (("*",) if subtree == "." else (subtree.strip("/"), f"{subtree.strip('/')}/*"))
        )
        self._lock = threading.RLock()
        self._known: dict[str, tuple[int, int]] = {}
        """Relative path -> (size, mtime_ns) of each file pushed or pulled by this mirror."""
        self._pushed: dict[str, set[str]] = {}
        """Folder -> names this mirror recorded in its manifest (the only ones it may remove)."""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def root(self) -> Path:
        """The local scratch folder."""
        return self._root

    # -- push ----------------------------------------------------------------------------------

    def push(self) -> int:
        """Upload every finished file new or changed since the last push; returns how many."""
        with self._lock:
            changed: dict[str, dict[str, dict[str, object]]] = {}
            present: dict[str, set[str]] = {}
            remote: dict[str, dict[str, dict[str, object]]] = {}
            for path in self._local_files():
                relative = path.relative_to(self._root)
                folder, name = relative.parent.as_posix(), relative.name
                present.setdefault(folder, set()).add(name)
                stat = path.stat()
                if self._known.get(relative.as_posix()) == (stat.st_size, stat.st_mtime_ns):
                    continue
                entry = {"size": stat.st_size, "sha256": _sha256(path)}
                if folder not in remote:
                    remote[folder] = self._remote_manifest(folder)
                # Another mirror on this machine (a task before this one, in another process) may
                # have pushed it already: S3 holds these bytes, so pushing them again is waste.
                if remote[folder].get(name) != entry:
                    self._objects.upload_file(path, self._key(relative.as_posix()))
                    changed.setdefault(folder, {})[name] = entry
                self._known[relative.as_posix()] = (stat.st_size, stat.st_mtime_ns)
            gone = {
                folder: names - present.get(folder, set())
                for folder, names in self._pushed.items()
                if names - present.get(folder, set())
            }
            for folder in sorted(set(changed) | set(gone)):
                self._update_manifest(folder, changed.get(folder, {}), gone.get(folder, set()))
                self._pushed.setdefault(folder, set()).update(changed.get(folder, {}))
                self._pushed[folder] -= gone.get(folder, set())
            if gone:
                keys = [self._key(f"{folder}/{name}") for folder, names in gone.items() for name in names]
                self._objects.delete_keys(keys)
                for folder, names in gone.items():
                    for name in names:
                        self._known.pop(f"{folder}/{name}", None)
            count = sum(len(files) for files in changed.values())
            if count:
                _log.info("scratch_pushed", files=count, to=self._objects.location)
            return count

    def _local_files(self) -> list[Path]:
        found: list[Path] = []
        for subtree in self._subtrees:
            base = self._root / subtree
            if not base.is_dir():
                continue
            for path in sorted(base.rglob("*")):
                if path.is_file() and not path.is_symlink() and not _hidden(path.relative_to(self._root)):
                    found.append(path)
        return found

    def _remote_manifest(self, folder: str) -> dict[str, dict[str, object]]:
        key = self._key(f"{folder}/{MANIFEST}")
        raw = self._objects.read_object_or_none(key)
        return self._parse(raw, key) if raw is not None else {}

    def _update_manifest(self, folder: str, added: dict[str, dict[str, object]], removed: set[str]) -> None:
        """Merge ``added`` into the folder's manifest and drop ``removed``, conditionally (retried on a race)."""
        key = self._key(f"{folder}/{MANIFEST}")
        for _ in range(_ATTEMPTS):
            raw, etag = self._objects.read_object_with_etag(key)
            entries = self._parse(raw, key) if raw is not None else {}
            entries.update(added)
            for name in removed:
                entries.pop(name, None)
            if not entries and etag is not None:  # every file of the folder gone: so is its manifest
                self._objects.delete_if_match(key, etag)
                return
            body = json.dumps(entries, indent=1, sort_keys=True).encode()
            outcome = (
                self._objects.put_conditional(key, body, if_match=etag)
                if etag is not None
                else self._objects.put_conditional(key, body, if_none_match=True)
            )
            if outcome.startswith("ok:"):
                return
            if outcome in {"501", "NotImplemented"}:
                self._objects.put_plain(key, body)
                return
        raise StoreError(f"s3://{self._objects.bucket}/{key}: manifest kept changing under {_ATTEMPTS} attempts")

    # -- pull ----------------------------------------------------------------------------------

    def pull(self) -> int:
        """Download every file a manifest lists that is missing here or differs; returns how many."""
        with self._lock:
            count = 0
            for folder, entries in self._remote_manifests():
                count += self._pull_folder(folder, entries)
            if count:
                _log.info("scratch_pulled", files=count, frm=self._objects.location)
            return count

    def _remote_manifests(self) -> list[tuple[str, dict[str, dict[str, object]]]]:
        found = []
        for pattern in self._pulls:
            listed = re.split(r"[*?\[]", pattern, maxsplit=1)[0] if pattern != "*" else ""
            for key, _, _ in self._objects.list_keys(listed):
                if not (key.endswith("/" + MANIFEST) or key == self._objects.object_key(MANIFEST)):
                    continue
                folder = key[len(self._objects.object_key("")) :].removesuffix(MANIFEST).strip("/") or "."
                if not fnmatch.fnmatchcase(folder, pattern) and folder != pattern:
                    continue
                raw = self._objects.read_object_or_none(key)
                if raw is not None:
                    found.append((folder, self._parse(raw, key)))
        unique = dict(found)  # patterns may overlap
        return sorted(unique.items(), key=lambda item: item[0].count("/"))

    def _pull_folder(self, folder: str, entries: dict[str, dict[str, object]]) -> int:
        local = self._root / folder
        wanted = [name for name, entry in entries.items() if not self._matches(local / name, entry)]
        if not wanted:
            return 0
        fresh = not local.exists()
        local.parent.mkdir(parents=True, exist_ok=True)
        target = Path(tempfile.mkdtemp(prefix=f".{local.name}.pull-", dir=local.parent)) if fresh else local
        try:
            for name in wanted:
                temp = target / f".{name}.pull.tmp"
                self._objects.download_file(self._key(f"{folder}/{name}"), temp)
                os.replace(temp, target / name)
            if fresh:
                os.replace(target, local)
        finally:
            if fresh and target.exists():
                shutil.rmtree(target, ignore_errors=True)
        for name in entries:
            path = local / name
            if path.is_file():
                stat = path.stat()
                self._known[(Path(folder) / name).as_posix()] = (stat.st_size, stat.st_mtime_ns)
        return len(wanted)

    @staticmethod
    def _matches(path: Path, entry: dict[str, object]) -> bool:
        if not path.is_file() or path.stat().st_size != entry.get("size"):
            return False
        return _sha256(path) == entry.get("sha256")

    # -- background pushes ---------------------------------------------------------------------

    def push_every(self, seconds: float) -> None:
        """Push in a background thread every ``seconds`` (once started, later calls do nothing)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._pusher, args=(seconds,), name="medaug-scratch-mirror", daemon=True)
        self._thread.start()

    def _pusher(self, seconds: float) -> None:
        while not self._stop.wait(seconds):
            try:
                self.push()
            except StoreError as exc:  # the next push (or the next explicit one) tries again
                _log.warning("scratch_push_failed", reason=str(exc))

    def stop(self) -> None:
        """Stop background pushes (a last ``push`` is the caller's)."""
        self._stop.set()

    # -- keys ----------------------------------------------------------------------------------

    def _key(self, relative: str) -> str:
        return self._objects.object_key(relative.removeprefix("./"))

    @staticmethod
    def _parse(raw: bytes, key: str) -> dict[str, dict[str, object]]:
        try:
            entries = json.loads(raw)
        except ValueError:
            entries = None
        if not isinstance(entries, dict):
            raise StoreError(f"{key}: unreadable scratch manifest (not a JSON object)")
        return entries
