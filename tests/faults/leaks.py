"""Search every file a command wrote for strings that must never be there (secrets, patient names)."""

from __future__ import annotations

import gzip
from collections.abc import Iterable
from pathlib import Path


def files_containing(root: Path, needles: Iterable[str]) -> dict[str, list[str]]:
    """``{file: [needles found]}`` over every file below ``root`` (bytes, also gunzipped, and
    UTF-16/escaped JSON forms), so a leak in a database, an archive or a log is found too."""
    wanted = [n for n in needles if n]
    found: dict[str, list[str]] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
        data = path.read_bytes()
        if data[:2] == b"\x1f\x8b":
            try:
                data += gzip.decompress(data)
            except OSError:
                pass
        hits = [n for n in wanted if any(form in data for form in _forms(n))]
        if hits:
            found[str(path.relative_to(root))] = hits
    return found


def _forms(needle: str) -> tuple[bytes, ...]:
    return (needle.encode(), needle.encode("utf-16-le"), needle.lower().encode(), needle.upper().encode())
