"""Benchmark: classifier training throughput, the ResNet50 feature cache, EfficientNet-Lite0.

Run from the repository root: ``python benchmarks/classifiers.py [--threads 2] [--device auto]
[--cnn-images 200] [--resnet-images 60] [--effnet-images 60] [--only efficientnet]``. It builds a throwaway store of fundus-like discs and
times, end to end through ``train_and_predict``:

- the proposed CNN (default architecture) at 64 and 256 px: training images/s (the epochs only)
  and the wall time of the whole run, with the time 80 epochs of 500 images would take;
- a frozen ResNet50 (``weights = "none"``, 224 px): seconds per epoch with and without the feature
  cache, and the run times (the cached run includes computing the features once);
- EfficientNet-Lite0 (384 px from 512 px images by default) in its three modes side by side, each
  in its own child process: frozen (pooled features cached, ordinal head), partial (maps before
  stage 7 cached, the rest trained) and full fine-tuning (whole network, online flips): the wall
  time of a first cell (nothing cached) and of a second one (another seed), the training images/s
  of the epochs (for frozen: of the head's fit), backbone passes and the peak resident memory;
- the process's peak resident memory.

Nothing is asserted: the figures are for reading.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

from medaug.adapters.png import encode_png
from medaug.adapters.stores.local import LocalImageStore
from medaug.adapters.trainers.cnn import CNNTrainer
from medaug.adapters.trainers.config import CNNConfig, EfficientNetConfig, EfficientNetPartialConfig, ResNetConfig
from medaug.adapters.image_tensors import ImageTensors
from medaug.adapters.trainers.efficientnet import EfficientNetTrainer
from medaug.adapters.trainers.resnet import ResNetTrainer
from medaug.application.ports import NullProgress, TrainingOutcome, TrainingRequest
from medaug.domain import FundusImage, Grade, Origin, Provenance, Split
from medaug.domain.images import storage_key


def disc_png(size: int, rng: np.random.Generator) -> bytes:
    """A noisy reddish disc on black, roughly the look of a preprocessed fundus photograph."""
    yy, xx = np.mgrid[:size, :size]
    inside = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 <= (0.47 * size) ** 2
    pixels = np.zeros((size, size, 3), dtype=np.uint8)
    base = np.array([170, 80, 40]) + rng.integers(-30, 30, 3)
    pixels[inside] = np.clip(base + rng.normal(0, 12, (int(inside.sum()), 3)), 0, 255).astype(np.uint8)
    return encode_png(pixels)


def build_store(root: Path, size: int, n_train: int, n_test: int) -> tuple[LocalImageStore, TrainingRequest]:
    """A store of ``n_train`` + ``n_test`` discs at ``size`` px, grades round-robin."""
    store = LocalImageStore(root)
    rng = np.random.default_rng(0)
    records: dict[Split, list[FundusImage]] = {Split.TRAIN: [], Split.TEST: []}
    for split, count in ((Split.TRAIN, n_train), (Split.TEST, n_test)):
        for index in range(count):
            grade = Grade(index % 5)
            image_id = f"{split.value}-{index:05d}"
            record = FundusImage(id=image_id, key=storage_key(split, grade, image_id), grade=grade, split=split,
                                 origin=Origin.REAL, provenance=Provenance(generator="benchmark"))
            store.put(record, disc_png(size, rng))
            records[split].append(record)
    return store, TrainingRequest(train=tuple(records[Split.TRAIN]), test=tuple(records[Split.TEST]), seed=0)


def timed(trainer: CNNTrainer | ResNetTrainer | EfficientNetTrainer, request: TrainingRequest, store: LocalImageStore) -> tuple[TrainingOutcome, float]:
    """The outcome of one run and its wall time in seconds."""
    started = time.perf_counter()
    outcome = trainer.train_and_predict(request, store, progress=NullProgress())
    return outcome, time.perf_counter() - started


def bench_cnn(root: Path, size: int, images: int, epochs: int, device: str, threads: int) -> None:
    """Print the CNN's training throughput at ``size`` px."""
    store, request = build_store(root / f"cnn-{size}", size, images, 20)
    config = CNNConfig(epochs=epochs, device=device, num_threads=threads)
    timed(CNNTrainer(config.model_copy(update={"epochs": 1}), device=device, images=ImageTensors()), request, store)  # warm-up
    outcome, wall = timed(CNNTrainer(config, device=device, images=ImageTensors()), request, store)
    ips = outcome.images_per_second
    print(f"cnn {size:>3} px: {ips:8.1f} training images/s ({images} images x {epochs} epochs, run {wall:.1f} s); "
          f"80 epochs x 500 images ~ {80 * 500 / ips / 60:.1f} min", flush=True)


def bench_resnet(root: Path, images: int, epochs: int, device: str, threads: int) -> None:
    """Print a frozen ResNet50's epoch time with and without the feature cache."""
    store, request = build_store(root / "resnet", 224, images, 20)
    results = {}
    for cache in (True, False):
        config = ResNetConfig(epochs=epochs, weights="none", feature_cache=cache, device=device, num_threads=threads)
        outcome, wall = timed(ResNetTrainer(config, device=device, images=ImageTensors()), request, store)
        epoch_seconds = images / outcome.images_per_second
        results[cache] = epoch_seconds
        label = "with cache   " if cache else "without cache"
        print(f"resnet50 224 px frozen, {label}: {epoch_seconds:7.2f} s/epoch ({images} images), "
              f"run {wall:.1f} s for {epochs} epochs", flush=True)
    print(f"resnet50 feature cache: epochs {results[False] / results[True]:.0f}x faster", flush=True)


def _efficientnet_mode(root: str, mode: str, size: int, store_size: int, images: int, epochs: int, device: str,
                       threads: int) -> dict[str, float]:
    """One EfficientNet-Lite0 mode in this (child) process: a cold cell (nothing cached), a warm one
    (another seed: cached features or maps), the epochs' images/s and the process's peak memory."""
    torch.set_num_threads(threads)
    folder = Path(root)
    store, request = build_store(folder / f"store-{mode}", store_size, images, 16)
    configs = {
        "frozen": EfficientNetConfig(head="ordinal", input_size=size, device=device, num_threads=threads),
        "partial": EfficientNetPartialConfig(input_size=size, epochs=epochs, device=device, num_threads=threads),
        "finetune": EfficientNetConfig(input_size=size, epochs=epochs, device=device, num_threads=threads),
    }
    trainer = EfficientNetTrainer("efficientnet-lite0", configs[mode], name=f"efficientnet-lite0-{mode}", device=device,
                                  feature_dir=folder / f"features-{mode}", images=ImageTensors())
    cold, cold_wall = timed(trainer, request, store)
    warm, warm_wall = cold, cold_wall
    if mode != "finetune":  # nothing is cached when fine-tuning: a second cell costs as much as the first
        warm, warm_wall = timed(trainer, request.model_copy(update={"seed": 1}), store)
    backbone_passes = trainer.features.computed if trainer.features is not None else trainer._loop.frozen_images
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024 if sys.platform != "darwin" else 1024**2)
    return {"cold": cold_wall, "warm": warm_wall, "epoch_ips": warm.images_per_second,
            "passes": float(backbone_passes), "peak": peak}


def bench_efficientnet(root: Path, images: int, size: int, store_size: int, epochs: int, device: str,
                       threads: int) -> None:
    """Print frozen, partial and full fine-tuning of EfficientNet-Lite0 side by side: each mode runs
    in its own child process, so that its peak resident memory is its own."""
    context = multiprocessing.get_context("spawn")
    rows = {}
    for mode in ("frozen", "partial", "finetune"):
        with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            rows[mode] = pool.submit(_efficientnet_mode, str(root), mode, size, store_size, images, epochs, device,
                                     threads).result()
    train = images
    print(f"efficientnet-lite0 at {size} px from {store_size} px images, {train} training + 16 test images, "
          f"{threads} threads (frozen: ordinal head; partial: stage 7 on, {epochs} epochs; finetune: {epochs} epochs)")
    print(f"{'mode':<9} {'cold cell s':>11} {'warm cell s':>11} {'train img/s':>11} {'cell img/s':>10} "
          f"{'backbone passes':>15} {'peak MiB':>9}")
    for mode, row in rows.items():
        # cell img/s: training images over the warm cell's wall time (a new seed of a known fold)
        print(f"{mode:<9} {row['cold']:11.1f} {row['warm']:11.1f} {row['epoch_ips']:11.1f} "
              f"{train / row['warm']:10.1f} {int(row['passes']):15d} {row['peak']:9.0f}", flush=True)


def main(argv: list[str] | None = None) -> None:
    """Parse options and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--cnn-images", type=int, default=200)
    parser.add_argument("--resnet-images", type=int, default=60)
    parser.add_argument("--effnet-images", type=int, default=60, help="training images")
    parser.add_argument("--effnet-size", type=int, default=384, help="input size of the backbone")
    parser.add_argument("--effnet-store-size", type=int, default=512)
    parser.add_argument("--effnet-epochs", type=int, default=2)
    parser.add_argument("--only", choices=["cnn", "resnet50", "efficientnet"], default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, device {args.device}", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        if args.only in (None, "cnn"):
            bench_cnn(root, 64, args.cnn_images * 2, 3, args.device, args.threads)
            bench_cnn(root, 256, args.cnn_images // 2, 1, args.device, args.threads)
        if args.only in (None, "resnet50"):
            bench_resnet(root, args.resnet_images, 2, args.device, args.threads)
        if args.only in (None, "efficientnet"):
            bench_efficientnet(root, args.effnet_images, args.effnet_size, args.effnet_store_size, args.effnet_epochs,
                               args.device, args.threads)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024 if sys.platform != "darwin" else 1024**2)
    print(f"peak resident memory: {peak:.0f} MiB", flush=True)


if __name__ == "__main__":
    main()
