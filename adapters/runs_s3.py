"""A run folder on S3 (``s3://bucket/prefix/runs/<name>``): the RunRepository of a cluster run.

Cells (``cells/<slug>.json``), ``results.json`` and the claim (``experiment.json``) are S3
objects, each ``put`` atomic; the claim is read-modified-written with conditional writes, so
two drivers starting at once cannot both extend it. What adapters write to local paths (the
feature cache, a cell's weights, generator checkpoints, the report) is written to a scratch
folder mirrored under the same prefix (see ``ScratchMirror``): pulled before the first cell is
read, pushed before each cell and the results are saved (a saved cell therefore implies its
weights and features are on S3) and every ``push_seconds`` in between.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from medaug.adapters.runs import CLAIM, RESULTS, RUN_FILES, merge_claim
from medaug.adapters.stores.s3_mirror import ScratchMirror
from medaug.adapters.stores.s3_objects import S3Objects
from medaug.application.errors import ConfigError, StoreError
from medaug.application.ports import ImageStore, ReportWriter
from medaug.domain.experiment import CellKey, CellResult, ExperimentResult

_PROBE = ".medaug-write-check"
_ATTEMPTS = 20


class S3RunFolder:
    """RunRepository on S3, with local files mirrored through ``mirror`` (None: nothing mirrored).

    Args:
        objects: the run folder's prefix.
        scratch: the local folder standing for the run folder (checkpoints, features, report).
        mirror: mirrors ``scratch`` (and generator checkpoints) under the work prefix.
        push_seconds: how often the mirror pushes in the background once the run is claimed.
    """

    def __init__(
        self, objects: S3Objects, scratch: Path, mirror: ScratchMirror | None = None, *, push_seconds: float = 30.0
    ) -> None:
        self._objects = objects
        self._scratch = Path(scratch)
        self._mirror = mirror
        self._push_seconds = push_seconds
        self._pulled = False

    @property
    def location(self) -> str:
        return self._objects.location

    @property
    def scratch(self) -> Path:
        """The local folder the report, features and weights are written to before they are pushed."""
        return self._scratch

    def check_writable(self) -> None:
        """Write and delete a probe object: a missing bucket or refused write is one line now, before any work.

        Raises:
            StoreError: naming the bucket and the problem.
        """
        key = self._objects.object_key(_PROBE)
        self._objects.put_plain(key, b"medaug write check\n")
        self._objects.delete_keys([key])

    def pull(self) -> None:
        """Bring the mirrored files (checkpoints, features) here, once; then push in the background."""
        if self._mirror is None or self._pulled:
            return
        self._mirror.pull()
        self._pulled = True
        self._mirror.push_every(self._push_seconds)

    def push(self) -> None:
        """Upload the finished local files now (each ``put`` atomic)."""
        if self._mirror is not None:
            self._mirror.push()

    def claim(self, fingerprint: str, arms: Mapping[str, str]) -> None:
        key = self._objects.object_key(CLAIM)
        for _ in range(_ATTEMPTS):
            raw, etag = self._objects.read_object_with_etag(key)
            held = self._held(raw)
            body = merge_claim(held, fingerprint, arms, self.location).encode()
            outcome = self._objects.put_conditional(key, body, if_none_match=etag is None, if_match=etag)
            if outcome.startswith("ok:"):
                break
            if outcome in {"501", "NotImplemented"}:
                self._objects.put_plain(key, body)
                break
        else:
            raise StoreError(f"{self.location}/{CLAIM}: changed by another run under {_ATTEMPTS} attempts")
        self.pull()

    def _held(self, raw: bytes | None) -> dict[str, Any] | None:
        if raw is None:
            return None
        try:
            held = json.loads(raw)
        except ValueError:
            held = None
        if not isinstance(held, dict) or not isinstance(held.get("arms"), dict):
            raise ConfigError(f"{self.location}/{CLAIM}: unreadable claim (not the JSON medaug writes); "
                              "pass --fresh to discard this run folder")
        return held

    def load_cell(self, key: CellKey) -> CellResult | None:
        self.pull()
        raw = self._objects.read_object_or_none(self._cell_key(key))
        if raw is None:
            return None
        try:
            return CellResult.model_validate_json(raw)
        except (ValidationError, ValueError):
            return None  # unreadable cell: it is simply run again

    def save_cell(self, cell: CellResult) -> None:
        self.push()  # the cell's weights and features first: a saved cell implies them
        self._objects.put_plain(self._cell_key(cell.key), cell.model_dump_json(indent=1).encode())

    def save_result(self, result: ExperimentResult) -> str:
        self.push()
        key = self._objects.object_key(RESULTS)
        self._objects.put_plain(key, result.model_dump_json(indent=1).encode())
        return f"{self.location}/{RESULTS}"

    def load_result(self) -> ExperimentResult:
        where = f"{self.location}/{RESULTS}"
        raw = self._objects.read_object_or_none(self._objects.object_key(RESULTS))
        if raw is None:
            raise ConfigError(f"{where}: no results.json here; run the experiment first")
        try:
            return ExperimentResult.model_validate_json(raw)
        except (ValidationError, ValueError) as exc:
            raise ConfigError(f"{where}: unreadable results ({str(exc).splitlines()[0]})") from None

    def checkpoint_path(self, slug: str) -> str:
        return str(self._scratch / "checkpoints" / f"{slug}.safetensors")

    def discard(self) -> None:
        """Delete the run folder (``--fresh``) on S3 and its scratch, refusing a prefix that holds no run."""
        keys = [key for key, _, _ in self._objects.list_keys("")]
        names = {key[len(self._objects.object_key("")) :].split("/", 1)[0] for key in keys}
        if keys and not names.intersection(RUN_FILES):
            raise ConfigError(
                f"{self.location}: not a run folder (no {CLAIM}, {RESULTS} or cells/); --fresh deletes nothing there"
            )
        self._objects.delete_keys(keys)
        shutil.rmtree(self._scratch, ignore_errors=True)

    def _cell_key(self, key: CellKey) -> str:
        return self._objects.object_key(f"cells/{key.slug}.json")


class MirroredReportWriter:
    """A report writer for an S3 run folder: the report is written to its scratch folder, then pushed."""

    def __init__(self, inner: ReportWriter, runs: S3RunFolder) -> None:
        self._inner = inner
        self._runs = runs

    def write(self, result: ExperimentResult, run_dir: str, store: ImageStore) -> list[str]:
        if run_dir != self._runs.location:
            return self._inner.write(result, run_dir, store)
        written = self._inner.write(result, str(self._runs.scratch), store)
        self._runs.push()
        scratch = str(self._runs.scratch)
        return [self._runs.location + path[len(scratch) :] if path.startswith(scratch) else path for path in written]


def open_s3_run_folder(
    client: Any, url: str, *, work_url: str | None, work_dir: Path, scratch_dir: Path, store_identity: str | None
) -> S3RunFolder:
    """The run folder at ``url`` (``s3://bucket/prefix``), checked writable.

    Inside the S3 work folder ``work_url`` its scratch is the work folder's local one
    (``work_dir``), whose mirror also pulls the generators of store ``store_identity``; elsewhere
    its scratch is ``scratch_dir/<bucket>/<prefix>``.
    """
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    runs = S3Objects(client, bucket=bucket, prefix=prefix)
    if work_url is not None and url.startswith(work_url + "/"):
        relative = url[len(work_url) + 1 :]
        work_bucket, _, work_prefix = work_url.removeprefix("s3://").partition("/")
        pulls = (relative, f"{relative}/*") + ((f"generators/*-{store_identity}*",) if store_identity else ())
        work_objects = S3Objects(client, bucket=work_bucket, prefix=work_prefix)
        mirror = ScratchMirror(work_objects, work_dir, ("generators", relative), pulls)
        scratch = work_dir / relative
    else:
        scratch = scratch_dir / bucket / prefix
        mirror = ScratchMirror(runs, scratch)
    folder = S3RunFolder(runs, scratch, mirror)
    folder.check_writable()
    return folder
