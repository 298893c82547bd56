"""Benchmark: DCGAN training and sampling throughput (images/s) at 64 and 128 px.

Run from the repository root: ``python benchmarks/dcgan.py [--profile quick] [--steps 10]
[--device auto] [--threads 1,2]``. For each thread count and resolution it builds the profile's networks, times
``--steps`` optimisation steps (one discriminator and one generator update on a batch of real
images, DiffAugment included) after two warm-up steps, then times sampling (``sample_images`` in
``generate_batch_size`` batches) and the full ``generate`` path (sampling, upscaling to
``--size`` and PNG encoding). Training images come from random pixels: throughput does not depend
on content. Nothing is asserted: the figures are for reading.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from medaug.adapters.generators.dcgan.checkpoint import latest_checkpoint
from medaug.adapters.generators.dcgan.config import DCGANConfig, DCGANRecipe
from medaug.adapters.generators.dcgan.generator import DCGANGenerator
from medaug.adapters.generators.dcgan.model import count_parameters, sample_images
from medaug.adapters.generators.dcgan.training import _Run
from medaug.adapters.torch_support import resolve_device
from medaug.application.ports import GenerationRequest
from medaug.domain import Grade


def training_rate(recipe: DCGANRecipe, device: torch.device, steps: int, root: Path) -> tuple[float, _Run]:
    """Real images per second over ``steps`` optimisation steps (after two warm-up steps)."""
    count = max(2 * recipe.batch_size, 64)
    data = torch.rand(count, 3, recipe.resolution, recipe.resolution).mul(2).sub(1)
    labels = torch.arange(count) % 5
    run = _Run(recipe, root, 0, device, data, labels, total=steps + 2)
    for step in range(2):
        run._optimisation_step(step)
    _sync(device)
    started = time.perf_counter()
    for step in range(2, steps + 2):
        run._optimisation_step(step)
    _sync(device)
    return steps * recipe.batch_size / (time.perf_counter() - started), run


def sampling_rate(run: _Run, count: int) -> float:
    """Generator-only images per second (eval mode, ``generate_batch_size`` batches)."""
    sampler = run._sampling_generator()
    seeds = list(range(count))
    sample_images(sampler, [0] * 4, seeds[:4], batch_size=run.recipe.generate_batch_size, device=run.device)
    started = time.perf_counter()
    sample_images(sampler, [s % 5 for s in seeds], seeds, batch_size=run.recipe.generate_batch_size, device=run.device)
    _sync(run.device)
    return count / (time.perf_counter() - started)


def generate_rate(run: _Run, root: Path, config: DCGANConfig, count: int, size: int) -> float:
    """End-to-end ``DCGANGenerator.generate`` images per second (PNG at ``size`` px)."""
    if latest_checkpoint(root) is None:
        run._checkpoint()
    generator = DCGANGenerator(config, root, device=str(run.device))
    requests = [GenerationRequest(image_id=f"b{i}", grade=Grade(i % 5), seed=i, size=size) for i in range(count)]
    generator.generate(requests[:2])
    started = time.perf_counter()
    for start in range(0, count, generator.batch_size):
        generator.generate(requests[start : start + generator.batch_size])
    return count / (time.perf_counter() - started)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    """Print training, sampling and generate throughput per resolution."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--resolutions", default="64,128")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--samples", type=int, default=128)
    parser.add_argument("--size", type=int, default=256, help="side of the generated PNGs")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", default="1,2", help="torch CPU thread counts to compare")
    args = parser.parse_args()
    device = resolve_device(args.device)
    for threads in (int(t) for t in args.threads.split(",")):
        torch.set_num_threads(threads)
        print(f"device {device}, {torch.get_num_threads()} threads, profile {args.profile}")
        for resolution in (int(r) for r in args.resolutions.split(",")):
            measure(args, device, resolution)


def measure(args: argparse.Namespace, device: torch.device, resolution: int) -> None:
    """Print one line of figures for ``resolution`` at the current torch thread count."""
    config = DCGANConfig(
        profile=args.profile, resolution=resolution, sheet_per_grade=0, diversity_samples=2,
        num_threads=torch.get_num_threads(),
    )
    recipe = config.resolve()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        train, run = training_rate(recipe, device, args.steps, root)
        sample = sampling_rate(run, args.samples)
        end_to_end = generate_rate(run, root, config, args.samples, args.size)
    print(
        f"{resolution:>4} px  G {count_parameters(run.generator) / 1e6:.2f} M, D "
        f"{count_parameters(run.discriminator) / 1e6:.2f} M params, batch {recipe.batch_size}: "
        f"train {train:7.1f} img/s ({train / recipe.batch_size:.2f} steps/s)  "
        f"sample {sample:7.1f} img/s  generate->{args.size}px PNG {end_to_end:6.1f} img/s"
    )


if __name__ == "__main__":
    main()
