"""Atomic file writes shared by every adapter that writes to disk."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def write_atomic(path: str | os.PathLike[str], data: bytes | str, *, mode: int = 0o644) -> Path:
    """Write ``data`` beside ``path`` under a temporary name, fsync it, then rename it into place.

    Readers see either the old file or the new one, never a half-written one, and a crash leaves
    at most a hidden ``.*.tmp`` file behind.

    Raises:
        OSError: the folder cannot be created or written (callers turn it into their own error).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)  # mkstemp makes files private; results are meant to be shared
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return target


def check_output_file(path: str | os.PathLike[str], what: str) -> None:
    """Check, before any work, that a file can later be written at ``path``.

    The path must not be a folder, and its nearest existing parent must be a writable folder
    (missing folders below it are created when the file is written).

    Raises:
        ConfigError: one line naming the path and the problem.
    """
    from medaug.application.errors import ConfigError

    target = Path(path)
    if target.is_dir():
        raise ConfigError(f"{target}: is a folder; {what} needs a file name (e.g. {target / 'model.safetensors'})")
    parent = target.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise ConfigError(f"{target}: cannot write {what} ({parent} is not a folder)")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"{target}: cannot write {what} (no write permission in {parent})")
