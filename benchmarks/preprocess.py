"""Benchmark: fundus preprocessing and ingest throughput on full-resolution IDRiD originals.

Preprocesses the four 4288x2848 originals of ``../shared/datasets/idrid-originals``, repeated to
``--images`` images, to 256 px: with and without JPEG draft decoding, in this process and on a
pool of ``--workers`` processes (pool start-up included, as an ingest would pay it). Then runs the
ingest itself (what ``medaug data ingest folder --workers N`` calls: reading, checksums, the pool,
the store's writes) on a folder of those images, and prints its throughput as a multiple of a
single-process full-size decode (draft off, one process), the figure the ingest is judged by.

Usage::

    python benchmarks/preprocess.py [--originals DIR] [--images 200] [--size 256] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from medaug.adapters.imaging.preprocess import FundusPreprocessor
from medaug.composition.bootstrap import IngestOptions, SourceSpec, bootstrap
from medaug.composition.settings import Settings

DEFAULT_ORIGINALS = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "idrid-originals"


def load_batch(folder: Path, count: int) -> list[tuple[bytes, str]]:
    """The JPEGs of ``folder`` repeated (in name order) to ``count`` ``(bytes, name)`` pairs."""
    files = sorted(folder.glob("*.jpg"))
    if not files:
        raise SystemExit(f"{folder}: no JPEG originals found")
    originals = [(path.read_bytes(), path.name) for path in files]
    return [originals[i % len(originals)] for i in range(count)]


def measure(batch: list[tuple[bytes, str]], size: int, draft: bool, workers: int) -> tuple[float, float]:
    """Images per second (wall clock) and this process's CPU milliseconds per image.

    The CPU figure does not suffer from other work on a shared machine; with a pool it only
    counts the parent's share (sending bytes, collecting PNGs).
    """
    preprocessor = FundusPreprocessor(size=size, draft=draft)
    start, cpu_start = time.perf_counter(), time.process_time()
    results = preprocessor.preprocess_many(batch, workers=workers)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    failures = [r for r in results if not isinstance(r, bytes)]
    if failures:
        raise SystemExit(f"preprocessing failed: {failures[0]}")
    return len(batch) / elapsed, 1000 * cpu / len(batch)


def ingest_rate(batch: list[tuple[bytes, str]], size: int, workers: int) -> float:
    """Images per second of the ingest service on a folder of ``batch`` (pool start and store writes included)."""
    with tempfile.TemporaryDirectory() as root:
        folder = Path(root) / "images"
        folder.mkdir()
        rows = ["image,grade"]
        for index, (raw, name) in enumerate(batch):
            (folder / f"{index:05d}-{name}").write_bytes(raw)
            rows.append(f"{index:05d}-{name},{index % 5}")
        (Path(root) / "labels.csv").write_text("\n".join(rows) + "\n")
        services = bootstrap(Settings(image_size=size, work_dir=Path(root) / "work"))
        spec = SourceSpec(kind="folder", path=folder, csv=Path(root) / "labels.csv")
        start = time.perf_counter()
        outcome = services.ingest(spec, store=str(Path(root) / "store"), options=IngestOptions(workers=workers))
        elapsed = time.perf_counter() - start
    if outcome.report.added != len(batch):
        raise SystemExit(f"ingest added {outcome.report.added} of {len(batch)} images")
    return len(batch) / elapsed


def main() -> None:
    """Run every configuration once and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--originals", type=Path, default=DEFAULT_ORIGINALS)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    batch = load_batch(args.originals, args.images)
    load = f"{os.getloadavg()[0]:.2f}"
    table = Table(title=f"preprocess {args.images} IDRiD originals -> {args.size} px")
    for column in ("draft decoding", "processes", "images/s", "parent CPU ms/image"):
        table.add_column(column, justify="right")
    rates = {}
    for draft in (True, False):
        for workers in (1, args.workers):
            rate, cpu_ms = measure(batch, args.size, draft, workers)
            rates[draft, workers] = rate
            table.add_row("on" if draft else "off", str(workers), f"{rate:.1f}", f"{cpu_ms:.1f}")
    Console().print(table)
    full_size = rates[False, 1]
    for workers in sorted({1, args.workers}):
        rate = ingest_rate(batch, args.size, workers)
        Console().print(f"ingest (folder -> store, --workers {workers}): {rate:.1f} images/s = "
                        f"{rate / full_size:.1f}x a single-process full-size decode ({full_size:.1f} images/s)")
    Console().print(f"load average before/after: {load} / {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
