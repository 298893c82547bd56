"""``medaug data ingest --workers N``: a pool of processes writes the very store one process writes."""

from __future__ import annotations

import io
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from medaug.adapters.stores.local import LocalImageStore
from medaug.application.services import ingest as ingest_service
from medaug.cli.app import app

runner = CliRunner()

IMAGES = 40
BROKEN = {13, 27}


def fundus_jpeg(seed: int, width: int = 120, height: int = 90) -> bytes:
    """A disc on black whose colour and position vary with ``seed``."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    pixels = rng.integers(0, 8, (height, width, 3), dtype=np.uint8)
    centre = (width // 2 + seed % 7 - 3, height // 2 + seed % 5 - 2)
    pixels[(xx - centre[0]) ** 2 + (yy - centre[1]) ** 2 <= 35**2] = (120 + 3 * seed, 80, 30 + seed)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def make_folder(root: Path) -> tuple[Path, Path]:
    """40 labelled JPEGs, two of them cut short, in a folder with its CSV."""
    folder = root / "images"
    folder.mkdir(parents=True)
    rows = ["image,grade,split"]
    for index in range(IMAGES):
        raw = fundus_jpeg(index)
        (folder / f"eye{index:02d}.jpg").write_bytes(raw[: len(raw) // 3] if index in BROKEN else raw)
        rows.append(f"eye{index:02d}.jpg,{index % 5},{'test' if index % 4 == 0 else 'train'}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return folder, root / "labels.csv"


def ingest(folder: Path, csv: Path, store: Path, workers: int, *extra: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, ["-q", "data", "ingest", "folder", str(folder), "--csv", str(csv), "--store", str(store),
                               "--size", "48", "--split-column", "split", "--workers", str(workers), *extra])


def said(text: str) -> list[str]:
    """What the command told the user (structured log lines, which carry times, left out)."""
    return [line for line in text.splitlines() if not line.startswith("{")]


def contents(store: Path) -> tuple[bytes, dict[str, bytes]]:
    """The store's manifest and every image's bytes, by id."""
    images = LocalImageStore(store)
    return (store / "manifest.jsonl").read_bytes(), {r.id: images.get(r.id) for r in images.list()}


def test_two_workers_write_the_same_store_as_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pools: list[int] = []

    class CountedPool(ProcessPoolExecutor):
        def __init__(self, max_workers: int, **kwargs: Any) -> None:
            pools.append(max_workers)
            super().__init__(max_workers, **kwargs)

    monkeypatch.setattr(ingest_service, "ProcessPoolExecutor", CountedPool)
    folder, csv = make_folder(tmp_path / "data")
    one, two = tmp_path / "one", tmp_path / "two"
    first = ingest(folder, csv, one, 1, "--lenient")
    assert pools == []
    second = ingest(folder, csv, two, 2, "--lenient")
    assert pools == [2]
    assert first.exit_code == 0 and second.exit_code == 0, first.output + second.output
    assert f"{IMAGES - len(BROKEN)} added, 0 already present, {len(BROKEN)} skipped" in " ".join(second.stdout.split())
    manifest, images = contents(one)
    assert len(images) == IMAGES - len(BROKEN)
    assert contents(two) == (manifest, images)
    assert said(first.stderr) == said(second.stderr) != []


def test_a_strict_pooled_ingest_stops_at_the_first_bad_image_keeping_those_before(tmp_path: Path) -> None:
    folder, csv = make_folder(tmp_path / "data")
    one, two = tmp_path / "one", tmp_path / "two"
    first, second = ingest(folder, csv, one, 1), ingest(folder, csv, two, 2)
    assert first.exit_code != 0 and second.exit_code != 0
    assert "eye13.jpg: truncated or corrupt image" in " ".join(second.stderr.split())
    assert said(first.stderr) == said(second.stderr) != []
    assert contents(two) == contents(one)
    assert sorted(contents(two)[1]) == [f"folder-eye{i:02d}" for i in range(13)]
