"""Where an ingest's full list of skipped problems is written (the terminal shows a summary)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from medaug.adapters.files import write_atomic
from medaug.application.errors import StoreError
from medaug.application.ports import ImageStore


def problems_folder(work_dir: Path, store: ImageStore, *, private: bool) -> Path:
    """``<store>/reports`` for a folder store; ``<work_dir>/reports/store-<identity>`` otherwise.

    A pseudonymised store never holds original names, and the problem lines name the source's
    files: its list is kept outside the store, like the pseudonym mapping.
    """
    root = getattr(store, "root", None)
    if root is not None and not private:
        return Path(root) / "reports"
    return work_dir / "reports" / f"store-{store.identity}"


def write_ingest_problems(
    work_dir: Path, store: ImageStore, source: str, problems: Sequence[str], *, private: bool
) -> Path | None:
    """Write every problem line to ``ingest-problems-<source>-<UTC time>.txt`` atomically (None when none).

    Raises:
        StoreError: the file cannot be written.
    """
    if not problems:
        return None
    folder = problems_folder(work_dir, store, private=private)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = folder / f"ingest-problems-{source}-{stamp}.txt"
    counter = 1
    while path.exists():
        counter += 1
        path = folder / f"ingest-problems-{source}-{stamp}-{counter}.txt"
    try:
        return write_atomic(path, "".join(line.replace("\n", " ") + "\n" for line in problems),
                            mode=0o600 if private else 0o644)
    except OSError as exc:
        raise StoreError(f"{path}: cannot write the list of skipped problems ({exc.strerror or exc})") from None
