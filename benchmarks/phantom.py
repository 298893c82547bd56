"""Benchmark: phantom data-set drawing speed, and whether its grades are learnable at 64 px.

Speed: draws (and PNG-encodes, as ``PhantomSource.read`` does) images with the set's
IDRiD-like grade mix at several sizes in one thread, and prints images per second of wall and
CPU time. Learnability (``--learn``): preprocesses a phantom set to 64 px like an ingest does,
trains a small CNN for a few epochs on the training split and prints test accuracy,
balanced accuracy and quadratic weighted kappa (chance is about 0.2 balanced accuracy, 0 kappa).

Usage::

    python benchmarks/phantom.py [--images 100] [--sizes 64 128 256 512] [--learn] [--n 600] [--epochs 12]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from medaug.adapters.datasets.phantom import PhantomSource


def throughput(size: int, images: int) -> tuple[float, float]:
    """Images per second (wall, CPU) of ``PhantomSource.read`` at ``size``, IDRiD-like grades."""
    source = PhantomSource(images, seed=0, size=size)
    items = source.scan().items
    source.read(items[0])  # warm caches and imports
    wall, cpu = time.perf_counter(), time.process_time()
    for item in items:
        source.read(item)
    return len(items) / (time.perf_counter() - wall), len(items) / (time.process_time() - cpu)


def speed_table(sizes: list[int], images: int) -> Table:
    """One row per size."""
    table = Table(title=f"phantom: draw + PNG encode, {images} images, one thread")
    for column in ("size (frame)", "images/s (wall)", "images/s (CPU)"):
        table.add_column(column, justify="right")
    for size in sizes:
        wall, cpu = throughput(size, images)
        table.add_row(f"{size} ({round(size * 4 / 3)}x{size})", f"{wall:.1f}", f"{cpu:.1f}")
    return table


def learnability(n: int, epochs: int, seed: int) -> dict[str, float]:
    """Train a small CNN on a preprocessed 64-px phantom set; return test metrics."""
    import numpy as np
    import torch
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, cohen_kappa_score

    from medaug.adapters.imaging.preprocess import FundusPreprocessor
    from medaug.adapters.png import decode_png
    from medaug.adapters.torch_support import resolve_device, seed_everything
    from medaug.domain import Split

    torch.set_num_threads(2)
    generator = seed_everything(seed)
    device = resolve_device("auto")
    source, preprocessor = PhantomSource(n, seed=seed, size=64), FundusPreprocessor(size=64)
    items = source.scan().items
    pixels = np.stack([decode_png(preprocessor.preprocess(source.read(i), i.original_name)) for i in items])
    x = torch.from_numpy(pixels).permute(0, 3, 1, 2).float().div(255.0)
    y = torch.tensor([int(i.grade) for i in items])
    train = torch.tensor([i.split is Split.TRAIN for i in items])
    model = _small_cnn().to(device)
    optimiser = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    weights = 1.0 / torch.bincount(y[train], minlength=5).clamp(min=1).float()
    loss_fn = torch.nn.CrossEntropyLoss(weight=(weights / weights.sum() * 5).to(device))
    xs, ys = x[train], y[train]
    for _ in range(epochs):
        model.train()
        for batch in torch.randperm(len(xs), generator=generator).split(32):
            images = xs[batch]
            flip = torch.rand(len(batch), generator=generator) < 0.5
            images = torch.where(flip[:, None, None, None], images.flip(3), images)
            optimiser.zero_grad()
            loss_fn(model(images.to(device)), ys[batch].to(device)).backward()
            optimiser.step()
    model.eval()
    with torch.no_grad():
        predicted = model(x[~train].to(device)).argmax(1).cpu().numpy()
    truth = y[~train].numpy()
    return {
        "test images": float(len(truth)),
        "accuracy": accuracy_score(truth, predicted),
        "balanced accuracy": balanced_accuracy_score(truth, predicted),
        "quadratic kappa": cohen_kappa_score(truth, predicted, weights="quadratic"),
    }


def _small_cnn():  # type: ignore[no-untyped-def]
    from torch import nn

    def block(cin: int, cout: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2))

    return nn.Sequential(
        block(3, 16),
        block(16, 32),
        block(32, 64),
        block(64, 64),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Dropout(0.2),
        nn.Linear(64, 5),
    )


def main() -> None:
    """Print the speed table and, with ``--learn``, the learnability figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256, 512])
    parser.add_argument("--learn", action="store_true")
    parser.add_argument("--n", type=int, default=600)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    console = Console()
    console.print(speed_table(args.sizes, args.images))
    if args.learn:
        start = time.perf_counter()
        figures = learnability(args.n, args.epochs, args.seed)
        table = Table(title=f"small CNN on phantom n={args.n}, 64 px, {args.epochs} epochs")
        table.add_column("figure")
        table.add_column("value", justify="right")
        for name, value in figures.items():
            table.add_row(name, f"{value:.3f}" if value < 10 else f"{value:.0f}")
        table.add_row("seconds", f"{time.perf_counter() - start:.0f}")
        console.print(table)


if __name__ == "__main__":
    main()
