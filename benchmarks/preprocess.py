"""Benchmark: fundus preprocessing throughput on full-resolution IDRiD originals.

Preprocesses the four 4288x2848 originals of ``../shared/datasets/idrid-originals``, repeated to
100 images, to 256 px: with and without JPEG draft decoding, in this process and on a pool of
two processes (pool start-up included, as an ingest would pay it). Prints images per second.

Usage::

    python benchmarks/preprocess.py [--originals DIR] [--images 100] [--size 256] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from medaug.adapters.imaging.preprocess import FundusPreprocessor

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


def main() -> None:
    """Run every configuration once and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--originals", type=Path, default=DEFAULT_ORIGINALS)
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    batch = load_batch(args.originals, args.images)
    load = f"{os.getloadavg()[0]:.2f}"
    table = Table(title=f"preprocess {args.images} IDRiD originals -> {args.size} px")
    for column in ("draft decoding", "processes", "images/s", "parent CPU ms/image"):
        table.add_column(column, justify="right")
    for draft in (True, False):
        for workers in (1, args.workers):
            rate, cpu_ms = measure(batch, args.size, draft, workers)
            table.add_row("on" if draft else "off", str(workers), f"{rate:.1f}", f"{cpu_ms:.1f}")
    Console().print(table)
    Console().print(f"load average before/after: {load} / {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
