"""Checking and repairing a local store's manifest, images and leftovers (``medaug store check/repair``)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from medaug.adapters.files import write_atomic
from medaug.application.errors import StoreError
from medaug.domain import FundusImage


@dataclass
class Survey:
    """What a local store holds on disk, compared with what its manifest says."""

    records: dict[str, FundusImage] = field(default_factory=dict)
    damaged: list[str] = field(default_factory=list)
    missing_images: list[str] = field(default_factory=list)
    orphan_images: list[Path] = field(default_factory=list)
    temporaries: list[Path] = field(default_factory=list)
    symlinks: list[Path] = field(default_factory=list)

    def problems(self, root: Path) -> list[str]:
        lines = list(self.damaged)
        lines += [f"{root / r.key}: image of record {r.id} is missing" for r in
                  (self.records[i] for i in self.missing_images)]
        lines += [f"{path}: image without a record (an interrupted write or a damaged manifest line)"
                  for path in self.orphan_images]
        lines += [f"{path}: temporary file left by an interrupted write" for path in self.temporaries]
        lines += [f"{path}: symbolic link inside the store (a store holds its own files)" for path in self.symlinks]
        return lines


def survey(root: Path, manifest: Path, apply_entry) -> Survey:  # type: ignore[no-untyped-def]
    """Read every manifest line (damaged ones noted, not fatal) and every file under ``root``."""
    found = Survey()
    try:
        raw = manifest.read_bytes() if manifest.exists() else b""
    except OSError as exc:
        raise StoreError(f"{manifest}: cannot read manifest ({exc.strerror or exc})") from exc
    lines = raw.split(b"\n")
    unfinished = lines.pop() if lines else b""
    for number, line in enumerate(lines, start=1):
        if line.strip():
            try:
                apply_entry(found.records, line, f"{manifest}:{number}")
            except StoreError as exc:
                found.damaged.append(str(exc))
    if unfinished.strip():
        found.damaged.append(f"{manifest}:{len(lines) + 1}: unfinished last line (a write interrupted); "
                             "run 'medaug store repair'")
    keys = {r.key for r in found.records.values()}
    for path in sorted(root.rglob("*")) if root.is_dir() else []:
        relative = path.relative_to(root).as_posix()
        if path.is_symlink():
            found.symlinks.append(path)
        elif path.name.endswith(".tmp") and path.is_file():
            found.temporaries.append(path)
        elif path.suffix == ".png" and path.is_file() and relative not in keys:
            found.orphan_images.append(path)
    found.missing_images = sorted(
        i for i, r in found.records.items() if not (root / r.key).is_file() or (root / r.key).is_symlink()
    )
    return found


def rebuild(root: Path, manifest: Path, found: Survey) -> list[str]:
    """Write a compacted manifest of the intact records and remove what cannot be read."""
    done: list[str] = []
    keep = {i: r for i, r in found.records.items() if i not in found.missing_images}
    lines = [json.dumps({"op": "put", "record": r.model_dump(mode="json")}, separators=(",", ":"), sort_keys=True)
             for _, r in sorted(keep.items())]
    if found.damaged or found.missing_images:
        write_atomic(manifest, "".join(line + "\n" for line in lines))
        done.append(f"{manifest}: rebuilt from {len(keep)} intact records "
                    f"({len(found.damaged)} damaged line(s) and {len(found.missing_images)} record(s) "
                    "without an image dropped)")
    for path in found.orphan_images + found.temporaries + found.symlinks:
        path.unlink(missing_ok=True)
        done.append(f"{path}: removed")
    return done
