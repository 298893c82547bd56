"""Benchmark: classifier training throughput, the ResNet50 feature cache, EfficientNet-Lite0.

Run from the repository root: ``python benchmarks/classifiers.py [--threads 2] [--device auto]
[--cnn-images 200] [--resnet-images 60] [--effnet-images 48] [--only efficientnet]``. It builds a throwaway store of fundus-like discs and
times, end to end through ``train_and_predict``:

- the proposed CNN (default architecture) at 64 and 256 px: training images/s (the epochs only)
  and the wall time of the whole run, with the time 80 epochs of 500 images would take;
- a frozen ResNet50 (``weights = "none"``, 224 px): seconds per epoch with and without the feature
  cache, and the run times (the cached run includes computing the features once);
- EfficientNet-Lite0 at its default input size (240 px from 256 px images): frozen feature
  extraction images/s (first run, features computed and cached) and the head-only run time once
  they are cached; fine-tuning training images/s (whole network, online flips, channels-last);
- the process's peak resident memory.

Nothing is asserted: the figures are for reading.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from medaug.adapters.png import encode_png
from medaug.adapters.stores.local import LocalImageStore
from medaug.adapters.trainers.cnn import CNNTrainer
from medaug.adapters.trainers.config import CNNConfig, EfficientNetConfig, ResNetConfig
from medaug.adapters.trainers.data import ImageTensors
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
    timed(CNNTrainer(config.model_copy(update={"epochs": 1}), images=ImageTensors()), request, store)  # warm-up
    outcome, wall = timed(CNNTrainer(config, images=ImageTensors()), request, store)
    ips = outcome.images_per_second
    print(f"cnn {size:>3} px: {ips:8.1f} training images/s ({images} images x {epochs} epochs, run {wall:.1f} s); "
          f"80 epochs x 500 images ~ {80 * 500 / ips / 60:.1f} min", flush=True)


def bench_resnet(root: Path, images: int, epochs: int, device: str, threads: int) -> None:
    """Print a frozen ResNet50's epoch time with and without the feature cache."""
    store, request = build_store(root / "resnet", 224, images, 20)
    results = {}
    for cache in (True, False):
        config = ResNetConfig(epochs=epochs, weights="none", feature_cache=cache, device=device, num_threads=threads)
        outcome, wall = timed(ResNetTrainer(config, images=ImageTensors()), request, store)
        epoch_seconds = images / outcome.images_per_second
        results[cache] = epoch_seconds
        label = "with cache   " if cache else "without cache"
        print(f"resnet50 224 px frozen, {label}: {epoch_seconds:7.2f} s/epoch ({images} images), "
              f"run {wall:.1f} s for {epochs} epochs", flush=True)
    print(f"resnet50 feature cache: epochs {results[False] / results[True]:.0f}x faster", flush=True)


def bench_efficientnet(root: Path, images: int, device: str, threads: int) -> None:
    """Print EfficientNet-Lite0's frozen feature throughput and fine-tuning throughput at 240 px."""
    store, request = build_store(root / "effnet", 256, images, 16)
    frozen = EfficientNetConfig(mode="frozen", device=device, num_threads=threads)
    trainer = EfficientNetTrainer("efficientnet-lite0", frozen, feature_dir=root / "effnet-features")
    assert trainer.features is not None
    outcome, wall = timed(trainer, request, store)
    computed = trainer.features.computed
    print(f"efficientnet-lite0 240 px frozen: {computed / wall:6.2f} images/s feature extraction "
          f"({computed} images, run {wall:.1f} s incl. the head)", flush=True)
    _, cached = timed(trainer, request.model_copy(update={"seed": 1}), store)
    print(f"efficientnet-lite0 frozen, features cached: run {cached:.2f} s (head only, "
          f"{trainer.features.computed - computed} images recomputed)", flush=True)
    finetune = EfficientNetConfig(mode="finetune", epochs=1, device=device, num_threads=threads)
    tuned = EfficientNetTrainer("efficientnet-lite0", finetune, name="efficientnet-lite0-finetune", images=ImageTensors())
    outcome, wall = timed(tuned, request, store)
    ips = outcome.images_per_second
    print(f"efficientnet-lite0 240 px finetune: {ips:6.2f} training images/s (whole network, 1 epoch of {images}, "
          f"run {wall:.1f} s); 15 epochs x 413 images ~ {15 * 413 / ips / 60:.0f} min", flush=True)


def main(argv: list[str] | None = None) -> None:
    """Parse options and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--cnn-images", type=int, default=200)
    parser.add_argument("--resnet-images", type=int, default=60)
    parser.add_argument("--effnet-images", type=int, default=48)
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
            bench_efficientnet(root, args.effnet_images, args.device, args.threads)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024 if sys.platform != "darwin" else 1024**2)
    print(f"peak resident memory: {peak:.0f} MiB", flush=True)


if __name__ == "__main__":
    main()
