"""The ledger of API calls and the cache of paid results, in the generator's work folder.

The ledger (``ledger.jsonl``) has one JSON line per upload attempt: which image left the
machine, for which synthetic image, with what outcome and estimated cost. It is the audit trail
of external uploads and the memory of the budget across runs. Paid images are written to
``results/`` (and extra images of a call to ``spares/``) before the ledger line and before the
next call, so a run killed at any point never pays for the same image twice.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from medaug.adapters import files
from medaug.application.errors import GeneratorError

Status = Literal["ok", "refused", "retry", "error"]


class LedgerEntry(BaseModel):
    """One upload attempt.

    Attributes:
        time: UTC time of the outcome.
        image_id: the synthetic image it was for.
        source_id: the real image that was uploaded.
        fingerprint: the request signature (source, grade, model, prompt, size...).
        status: ``ok``, ``refused`` (content policy), ``retry`` (transient, retried) or ``error``.
        attempt: 1 for the first attempt.
        request_id: the API's request id, when it answered.
        reason: why it was not ``ok`` (one line, secrets removed).
        images: images billed by this attempt.
        cost_usd: estimated cost of this attempt.
    """

    model_config = ConfigDict(frozen=True)

    time: str
    image_id: str
    source_id: str
    fingerprint: str
    status: Status
    attempt: int
    request_id: str | None = None
    reason: str | None = None
    images: int = 0
    cost_usd: float = 0.0
    model: str
    mode: str


def now() -> str:
    """The current UTC time, ISO 8601."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class Ledger:
    """Append-only JSON-lines ledger; a torn last line (a kill mid-write) is ignored on reading."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()

    @property
    def path(self) -> Path:
        """Where the ledger lives."""
        return self._path

    def entries(self) -> list[LedgerEntry]:
        """Every readable entry, oldest first."""
        if not self._path.is_file():
            return []
        entries = []
        for line in self._path.read_bytes().splitlines():
            with contextlib.suppress(ValueError):
                entries.append(LedgerEntry.model_validate_json(line))
        return entries

    def append(self, entry: LedgerEntry) -> None:
        """Append one entry with a single write, flushed to disk."""
        line = entry.model_dump_json().encode() + b"\n"
        with self._lock:
            try:
                self._path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    if os.fstat(fd).st_size and not _ends_with_newline(self._path):
                        line = b"\n" + line
                    os.write(fd, line)
                    os.fsync(fd)
                finally:
                    os.close(fd)
            except OSError as exc:
                raise GeneratorError(f"{self._path}: cannot write the openai ledger ({exc.strerror or exc})") from exc


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as fh:
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) == b"\n"


class ResultCache:
    """Paid images on disk: one result per synthetic image, and spares per request signature."""

    def __init__(self, root: Path) -> None:
        self._root = root

    def result(self, fingerprint: str, image_id: str, seed: int) -> tuple[bytes, dict[str, Any]] | None:
        """The image already paid for this request, with its parameters, if any."""
        png = self._result_path(fingerprint, image_id, seed)
        meta = png.with_suffix(".json")
        if not (png.is_file() and meta.is_file()):
            return None
        return png.read_bytes(), json.loads(meta.read_text())

    def put_result(self, fingerprint: str, image_id: str, seed: int, png: bytes, parameters: dict[str, Any]) -> None:
        """Keep a paid image for its request (parameters first, the image last: it marks completion)."""
        path = self._result_path(fingerprint, image_id, seed)
        write_atomic(path.with_suffix(".json"), json.dumps(parameters, sort_keys=True).encode())
        write_atomic(path, png)

    def add_spares(self, fingerprint: str, stem: str, images: list[bytes], parameters: dict[str, Any]) -> None:
        """Keep the extra images of a call for later requests with the same signature."""
        for index, png in enumerate(images):
            path = self._root / "spares" / fingerprint / f"{stem}-{index}.png"
            write_atomic(path.with_suffix(".json"), json.dumps(parameters, sort_keys=True).encode())
            write_atomic(path, png)

    def spare_count(self, fingerprint: str) -> int:
        """How many unused spares this signature has."""
        folder = self._root / "spares" / fingerprint
        return len(list(folder.glob("*.png"))) if folder.is_dir() else 0

    def claim_spare(self, fingerprint: str, image_id: str, seed: int) -> tuple[bytes, dict[str, Any]] | None:
        """Move one spare (oldest name first) to be the result of this request, if there is one."""
        folder = self._root / "spares" / fingerprint
        spares = sorted(folder.glob("*.png")) if folder.is_dir() else []
        if not spares:
            return None
        spare = spares[0]
        parameters = {**json.loads(spare.with_suffix(".json").read_text()), "spare": True}
        target = self._result_path(fingerprint, image_id, seed)
        write_atomic(target.with_suffix(".json"), json.dumps(parameters, sort_keys=True).encode())
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(spare, target)
        spare.with_suffix(".json").unlink(missing_ok=True)
        return target.read_bytes(), parameters

    def _result_path(self, fingerprint: str, image_id: str, seed: int) -> Path:
        return self._root / "results" / fingerprint / f"{image_id}.s{seed}.png"


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path`` and move it into place.

    Raises:
        GeneratorError: the folder cannot be written.
    """
    try:
        files.write_atomic(path, data)
    except OSError as exc:
        raise GeneratorError(f"{path}: cannot write openai results ({exc.strerror or exc})") from exc
