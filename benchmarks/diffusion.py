"""Benchmark: diffusion training and sampling throughput, speed-up over DDPMPipeline, peak memory.

Run from the repository root: ``python benchmarks/diffusion.py [--profile quick]
[--resolutions 64,128] [--steps 6] [--threads 2] [--device auto] [--pipeline-images 2]``.

For each resolution it builds the profile's UNet at that resolution and measures
- training images/s: ``--steps`` optimisation steps of the real training loop (accelerate, AdamW,
  EMA) on random pixels after two warm-up steps (throughput does not depend on content);
- sampling images/s of medaug's class-conditional loop (DPM-Solver++, the recipe's steps, with
  guidance, and with guidance 1 = no unconditional pass), in ``generate_batch_size`` batches;
- peak resident memory (CPU) or peak CUDA memory of each phase.
At the first resolution it also times diffusers' stock ``DDPMPipeline`` (1000 steps) on the very
same UNet and weights (the null class as its label) and prints the speed-up of medaug's loop,
measured in the same run. Nothing is asserted: the figures are for reading.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
import torch
from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel
from rich.console import Console

from medaug.adapters.generators.diffusion.config import NULL_CLASS, DiffusionConfig, DiffusionRecipe
from medaug.adapters.generators.diffusion.model import count_parameters
from medaug.adapters.generators.diffusion.sampling import sample
from medaug.adapters.generators.diffusion.training import _Run
from medaug.adapters.torch_support import resolve_device


class NullLabelUNet(UNet2DModel):
    """The class-conditional UNet, answering label-less calls (as DDPMPipeline makes) as unconditional."""

    def forward(self, sample: torch.Tensor, timestep: Any, class_labels: Any = None, return_dict: bool = True) -> Any:
        if class_labels is None:
            class_labels = torch.full((sample.shape[0],), NULL_CLASS, device=sample.device)
        return super().forward(sample, timestep, class_labels, return_dict)


@contextmanager
def peak_memory(device: torch.device, into: dict[str, float]) -> Iterator[None]:
    """Record the phase's peak memory in MiB under ``into["peak_mib"]`` (RSS on CPU, CUDA on GPU)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        yield
        into["peak_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
        return
    process, peak, running = psutil.Process(), [psutil.Process().memory_info().rss], [True]

    def watch() -> None:
        while running[0]:
            peak[0] = max(peak[0], process.memory_info().rss)
            time.sleep(0.005)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield
    finally:
        running[0] = False
        watcher.join()
        into["peak_mib"] = peak[0] / 2**20


def timed(run: Callable[[], Any], device: torch.device) -> float:
    """Seconds one call of ``run`` takes (CUDA synchronised)."""
    started = time.perf_counter()
    run()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - started


def training_rate(recipe: DiffusionRecipe, device: torch.device, steps: int) -> tuple[float, _Run, float]:
    """Training images/s over ``steps`` steps after two warm-up steps, the run, and its peak MiB."""
    count = max(4 * recipe.batch_size, 64)
    data = torch.rand(count, 3, recipe.resolution, recipe.resolution).mul(2).sub(1)
    memory: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as root, peak_memory(device, memory):
        run = _Run(recipe, Path(root), 0, device, data, torch.arange(count) % 5)
        for step in range(2):
            run._optimisation_step(step)
        seconds = timed(lambda: [run._optimisation_step(s) for s in range(2, steps + 2)], device)
    return steps * recipe.batch_size / seconds, run, memory["peak_mib"]


def sampling_rate(
    unet: UNet2DModel, schedule: dict, recipe: DiffusionRecipe, count: int, guidance: float, batch: int | None = None
) -> dict:
    """medaug's loop: images/s and peak MiB for ``count`` images at ``guidance`` (batch: the recipe's)."""
    labels, seeds = [i % 5 for i in range(count)], list(range(count))
    kwargs = dict(sampler="dpmsolver++", steps=recipe.sample_steps, guidance_scale=guidance,
                  batch_size=batch or recipe.generate_batch_size)
    sample(unet, schedule, labels[:1], seeds[:1], **kwargs)  # warm-up
    memory: dict[str, float] = {}
    with peak_memory(unet.device, memory):
        seconds = timed(lambda: sample(unet, schedule, labels, seeds, **kwargs), unet.device)
    return {"images_s": count / seconds, "peak_mib": memory["peak_mib"]}


def pipeline_rate(unet: UNet2DModel, schedule: dict, count: int) -> float:
    """diffusers' DDPMPipeline (1000 steps) on the same UNet and weights: images/s."""
    same = NullLabelUNet.from_config(unet.config)
    same.load_state_dict(unet.state_dict())
    pipeline = DDPMPipeline(unet=same.to(unet.device).eval(), scheduler=DDPMScheduler.from_config(schedule))
    pipeline.set_progress_bar_config(disable=True)
    generator = torch.Generator().manual_seed(0)
    seconds = timed(lambda: pipeline(batch_size=count, generator=generator, num_inference_steps=1000,
                                     output_type="np"), unet.device)
    return count / seconds


def main() -> None:
    """Print the figures for each resolution, each as soon as it is measured."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--resolutions", default="64,128")
    parser.add_argument("--steps", type=int, default=6, help="timed training steps per resolution")
    parser.add_argument("--samples", type=int, default=8, help="images sampled per measurement")
    parser.add_argument("--pipeline-images", type=int, default=1, help="images for DDPMPipeline (0 = skip)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    console = Console(width=170)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    console.print(f"device {device}, torch threads {torch.get_num_threads()}, load average {load:.1f}, "
                  f"profile {args.profile}")
    for index, resolution in enumerate(int(r) for r in args.resolutions.split(",")):
        recipe = DiffusionConfig(profile=args.profile, resolution=resolution).resolve()
        rate, run, train_peak = training_rate(recipe, device, args.steps)
        unet, schedule = run.unet.eval(), dict(run.scheduler.config)
        console.print(f"{resolution} px, {count_parameters(unet) / 1e6:.2f}M parameters: training "
                      f"{rate:.2f} images/s (batch {recipe.batch_size}), peak memory {train_peak:.0f} MiB")
        rates = {}
        for guidance in (recipe.guidance_scale, 1.0):
            measured = sampling_rate(unet, schedule, recipe, args.samples, guidance)
            rates[guidance] = measured["images_s"]
            console.print(f"{resolution} px: sampling {measured['images_s']:.3f} images/s (DPM-Solver++ "
                          f"{recipe.sample_steps} steps, guidance {guidance:g}, batch {recipe.generate_batch_size}), "
                          f"peak memory {measured['peak_mib']:.0f} MiB")
        if index == 0 and args.pipeline_images:
            stock = pipeline_rate(unet, schedule, args.pipeline_images)
            console.print(f"{resolution} px: diffusers DDPMPipeline, 1000 steps, batch {args.pipeline_images}: "
                          f"{stock:.4f} images/s; medaug's loop is {rates[recipe.guidance_scale] / stock:.0f}x faster "
                          f"with guidance {recipe.guidance_scale:g}, {rates[1.0] / stock:.0f}x without")
            for guidance in (recipe.guidance_scale, 1.0):
                alike = sampling_rate(unet, schedule, recipe, args.pipeline_images, guidance, batch=args.pipeline_images)
                console.print(f"{resolution} px: at the pipeline's batch ({args.pipeline_images}), guidance {guidance:g}: "
                              f"{alike['images_s']:.3f} images/s, {alike['images_s'] / stock:.0f}x the pipeline")


if __name__ == "__main__":
    main()
