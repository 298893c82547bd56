"""Checking and repairing a local store's manifest, images and leftovers (``medaug store check/repair``)."""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, UnidentifiedImageError

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
    checksums: dict[str, str] = field(default_factory=dict)
    damaged_images: dict[str, str] = field(default_factory=dict)
    """Images that differ from their recorded sha256 (or, without one, are no whole PNG): id -> why."""

    def problems(self, root: Path) -> list[str]:
        lines = list(self.damaged)
        lines += [f"{root / r.key}: image of record {r.id} is missing" for r in
                  (self.records[i] for i in self.missing_images)]
        lines += [f"{root / self.records[i].key}: image of record {i} is damaged ({why})"
                  for i, why in sorted(self.damaged_images.items())]
        lines += [f"{path}: image without a record (an interrupted write or a damaged manifest line)"
                  for path in self.orphan_images]
        lines += [f"{path}: temporary file left by an interrupted write" for path in self.temporaries]
        lines += [f"{path}: symbolic link inside the store (a store holds its own files)" for path in self.symlinks]
        return lines


def survey(root: Path, manifest: Path, apply_entry, *, verify: bool = True) -> Survey:  # type: ignore[no-untyped-def]
    """Read every manifest line (damaged ones noted, not fatal) and every file under ``root``;
    with ``verify``, read every image and compare it with its recorded sha256."""
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
                apply_entry(found.records, line, f"{manifest}:{number}", found.checksums)
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
    if verify:
        missing = set(found.missing_images)
        for image_id, record in sorted(found.records.items()):
            if image_id not in missing:
                problem = _image_problem((root / record.key).read_bytes(), found.checksums.get(image_id))
                if problem:
                    found.damaged_images[image_id] = problem
    return found


def _image_problem(data: bytes, sha256: str | None) -> str | None:
    """Why an image's bytes are not what was stored, or None."""
    if sha256 is not None:
        actual = hashlib.sha256(data).hexdigest()
        return None if actual == sha256 else f"sha256 {actual[:12]}... differs from the recorded {sha256[:12]}..."
    if not data:
        return "empty file"
    try:  # recorded before checksums were: the PNG must at least decode whole, CRCs included
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
        with Image.open(io.BytesIO(data)) as image:
            image.load()
    except (OSError, SyntaxError, ValueError, UnidentifiedImageError) as exc:
        return f"not a whole PNG: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
    return None


def _entry(record: FundusImage, sha256: str | None) -> dict[str, object]:
    entry: dict[str, object] = {"op": "put", "record": record.model_dump(mode="json")}
    if sha256 is not None:
        entry["sha256"] = sha256
    return entry


def rebuild(root: Path, manifest: Path, found: Survey) -> list[str]:
    """Write a compacted manifest of the intact records and remove what cannot be read."""
    done: list[str] = []
    dropped = set(found.missing_images) | set(found.damaged_images)
    keep = {i: r for i, r in found.records.items() if i not in dropped}
    lines = [json.dumps(_entry(r, found.checksums.get(i)), separators=(",", ":"), sort_keys=True)
             for i, r in sorted(keep.items())]
    if found.damaged or dropped:
        write_atomic(manifest, "".join(line + "\n" for line in lines))
        done.append(f"{manifest}: rebuilt from {len(keep)} intact records "
                    f"({len(found.damaged)} damaged line(s), {len(found.missing_images)} record(s) "
                    f"without an image and {len(found.damaged_images)} with a damaged one dropped)")
    for image_id in sorted(found.damaged_images):
        path = root / found.records[image_id].key
        path.unlink(missing_ok=True)
        done.append(f"{path}: damaged image removed (ingest or augment makes it again)")
    for path in found.orphan_images + found.temporaries + found.symlinks:
        path.unlink(missing_ok=True)
        done.append(f"{path}: removed")
    return done
