"""Benchmark: classic augmentation throughput (images/s) at 256 px, per preset.

Run from the repository root: ``python benchmarks/classic.py [--n 64] [--size 256] [--device auto]``.
It times ``ClassicGenerator.generate`` end to end (PNG decode, operations, PNG encode) on real
IDRiD photographs when ../shared is present, else on synthetic fundus-like images, and prints
one line per preset. Nothing is asserted: the figures are for reading.
"""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from medaug.adapters.generators.classic.config import ClassicConfig
from medaug.adapters.generators.classic.generator import ClassicGenerator
from medaug.adapters.png import encode_png
from medaug.application.ports import GenerationRequest
from medaug.domain import Grade

IDRID_TRAIN = (
    Path(__file__).resolve().parents[2] / "shared" / "datasets" / "idrid" / "B. Disease Grading"
    / "1. Original Images" / "a. Training Set"
)
TAXONOMY = [
    {"op": "rotation", "p": 0.5}, {"op": "shear", "p": 0.3}, {"op": "crop_and_scale", "p": 0.5},
    {"op": "translate", "p": 0.3}, {"op": "colour_shift", "p": 0.5}, {"op": "contrast", "p": 0.5},
    {"op": "blur", "p": 0.2}, {"op": "sharpen", "p": 0.2}, {"op": "gaussian_noise", "p": 0.2},
    {"op": "random_erasing", "p": 0.2},
]
CONFIGS = {
    "thesis": ClassicConfig(preset="thesis"),
    "randaugment": ClassicConfig(preset="randaugment"),
    "trivialaugment": ClassicConfig(preset="trivialaugment"),
    "taxonomy (10 ops, p<1)": ClassicConfig(operations=TAXONOMY),
}


def sources(size: int, count: int = 8) -> tuple[list[bytes], str]:
    """Source PNGs at ``size``: IDRiD photographs if present, else synthetic discs."""
    photos = sorted(IDRID_TRAIN.glob("*.jpg"))[:count]
    if photos:
        return [_square_png(Image.open(p).convert("RGB"), size) for p in photos], "IDRiD photographs"
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    disc = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 <= (0.45 * size) ** 2
    images = []
    for _ in range(count):
        pixels = np.zeros((size, size, 3), dtype=np.uint8)
        pixels[disc] = rng.integers(40, 220, (int(disc.sum()), 3))
        images.append(encode_png(pixels))
    return images, "synthetic discs"


def _square_png(image: Image.Image, size: int) -> bytes:
    buffer = io.BytesIO()
    image.resize((size, size), Image.Resampling.BICUBIC).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def throughput(generator: ClassicGenerator, images: list[bytes], n: int, size: int, repeats: int = 3) -> float:
    """Best images/s over ``repeats`` runs of ``n`` requests (in the generator's batches), after a warm-up.

    The best run is reported because other processes on a shared machine only ever slow a run down.
    """
    requests = [
        GenerationRequest(image_id=f"b{i}", grade=Grade(i % 5), seed=i, source_id=f"s{i % len(images)}",
                          source=images[i % len(images)], size=size)
        for i in range(n)
    ]
    generator.generate(requests[: generator.batch_size])
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for begin in range(0, n, generator.batch_size):
            generator.generate(requests[begin : begin + generator.batch_size])
        best = min(best, time.perf_counter() - start)
    return n / best


def main() -> None:
    """Print images/s per preset."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=64, help="images per preset")
    parser.add_argument("--size", type=int, default=256, help="output side in pixels")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per preset (the best is shown)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    images, kind = sources(args.size)
    print(f"classic generator, {args.n} images per preset at {args.size} px from {kind}, "
          f"torch {torch.__version__}, {args.threads} threads, device {args.device}, best of {args.repeats}")
    for name, config in CONFIGS.items():
        rate = throughput(ClassicGenerator(config, device=args.device), images, args.n, args.size, args.repeats)
        print(f"  {name:<24} {rate:7.1f} images/s")


if __name__ == "__main__":
    main()
