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
measured in the same run.

Then (``--fid-train-steps`` > 0) it trains the profile's model at ``--fid-resolution`` on phantom
fundus images for that many steps and, for each ``--samplers`` entry (``NAME:STEPS[:PRECISION]``; the first is the reference), prints side
by side its speed-up over the pipeline and the FID of ``--fid-images`` samples against the real
images in the project's feature space (frozen EfficientNet-Lite0 pooled features, projected on
the real images' principal components, as the quality report does), with a bootstrap 95 %
interval. Nothing is asserted: the figures are for reading.
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


class FixedLabelUNet(UNet2DModel):
    """The class-conditional UNet, answering label-less calls with the grades in ``labels`` (one per image of
    the batch), so that DDPMPipeline samples the same grades as medaug's loop (without guidance: it has none)."""

    labels: torch.Tensor | None = None

    def forward(self, sample: torch.Tensor, timestep: Any, class_labels: Any = None, return_dict: bool = True) -> Any:
        if class_labels is None and self.labels is not None:
            class_labels = self.labels.to(sample.device)
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
    kwargs = dict(sampler=recipe.sampler, steps=recipe.sample_steps, guidance_scale=guidance,
                  batch_size=batch or recipe.generate_batch_size, precision=recipe.sample_precision)
    sample(unet, schedule, labels[:1], seeds[:1], **kwargs)  # warm-up
    memory: dict[str, float] = {}
    with peak_memory(unet.device, memory):
        seconds = timed(lambda: sample(unet, schedule, labels, seeds, **kwargs), unet.device)
    return {"images_s": count / seconds, "peak_mib": memory["peak_mib"]}


def pipeline_fits(unet: UNet2DModel) -> bool:
    """DDPMPipeline feeds the model its own output: only a UNet with as many channels in as out fits
    (a patch profile's coordinate channels make 5 in, 3 out)."""
    return unet.config.in_channels == unet.config.out_channels


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


def pipeline_samples(unet: UNet2DModel, schedule: dict, labels: list[int], batch: int = 64) -> tuple[torch.Tensor, float]:
    """diffusers' DDPMPipeline (1000 steps) sampling the grades ``labels`` on the same weights: the images
    (N x 3 x R x R in [0, 1]) and images/s."""
    same = FixedLabelUNet.from_config(unet.config)
    same.load_state_dict(unet.state_dict())
    pipeline = DDPMPipeline(unet=same.to(unet.device).eval(), scheduler=DDPMScheduler.from_config(schedule))
    pipeline.set_progress_bar_config(disable=True)
    generator, chunks = torch.Generator().manual_seed(0), []
    started = time.perf_counter()
    for first in range(0, len(labels), batch):
        same.labels = torch.tensor(labels[first:first + batch])
        output = pipeline(batch_size=len(same.labels), generator=generator, num_inference_steps=1000, output_type="np")
        chunks.append(torch.from_numpy(output.images).permute(0, 3, 1, 2).float())
    return torch.cat(chunks), len(labels) / (time.perf_counter() - started)


def phantom_images(count: int, resolution: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` phantom fundus images at ``resolution`` in [-1, 1] and their grades."""
    from medaug.adapters.datasets.phantom import PhantomSource
    from medaug.adapters.imaging.preprocess import FundusPreprocessor
    from medaug.adapters.png import decode_png

    source, preprocessor = PhantomSource(count, seed=seed, size=resolution), FundusPreprocessor(resolution)
    items = source.scan().items
    pixels = torch.stack([torch.from_numpy(decode_png(preprocessor.preprocess(source.read(item), item.id))).permute(2, 0, 1)
                          for item in items])
    return pixels.float().div(127.5).sub(1), torch.tensor([int(item.grade) for item in items])


def trained_unet(recipe: DiffusionRecipe, device: torch.device, steps: int, data: torch.Tensor, labels: torch.Tensor):  # type: ignore[no-untyped-def]
    """The recipe's UNet trained ``steps`` steps on ``data`` (EMA weights), and its schedule."""
    from medaug.adapters.generators.diffusion.model import unet_from_config

    recipe = recipe.model_copy(update={"train_steps": steps, "warmup_steps": min(recipe.warmup_steps, steps // 10)})
    with tempfile.TemporaryDirectory() as root:
        run = _Run(recipe, Path(root), 0, device, data, labels)
        for step in range(steps):
            run._optimisation_step(step)
        unet = unet_from_config(dict(run.unet.config))
        unet.load_state_dict(run._ema_state_dict())
    return unet.to(device).eval(), dict(run.scheduler.config)


class FeatureSpace:
    """The project's fidelity feature space: frozen EfficientNet-Lite0 features on the real images' top PCs."""

    def __init__(self, real: torch.Tensor, device: torch.device, components: int = 16) -> None:
        from medaug.adapters.trainers.backbone import FrozenFeatures, load_backbone

        self._features = FrozenFeatures(load_backbone("efficientnet-lite0"), 224, None, device=device)
        pooled = self._pooled(real)
        self._mean = pooled.mean(dim=0)
        _, _, vectors = torch.linalg.svd(pooled - self._mean, full_matrices=False)
        self._basis = vectors[:components].T
        self.real = self.project(real)

    def _pooled(self, images: torch.Tensor) -> torch.Tensor:
        return self._features.compute(images.mul(255).round().clamp(0, 255).to(torch.uint8)).double()

    def project(self, images: torch.Tensor) -> torch.Tensor:
        """Features of ``images`` (N x 3 x R x R in [0, 1])."""
        return (self._pooled(images) - self._mean) @ self._basis

    def fid(self, images: torch.Tensor, resamples: int = 200) -> tuple[float, float, float]:
        """FID of ``images`` against the real images and its bootstrap 95 % interval (both sets resampled)."""
        from medaug.adapters.quality.metrics import fid

        fake = self.project(images)
        rng = torch.Generator().manual_seed(0)
        draws = []
        for _ in range(resamples):
            real_pick = torch.randint(0, len(self.real), (len(self.real),), generator=rng)
            fake_pick = torch.randint(0, len(fake), (len(fake),), generator=rng)
            draws.append(fid(self.real[real_pick], fake[fake_pick]) or 0.0)
        low, high = torch.tensor(draws, dtype=torch.float64).quantile(torch.tensor([0.025, 0.975], dtype=torch.float64)).tolist()
        return fid(self.real, fake) or 0.0, low, high


def sampler_quality(args: argparse.Namespace, recipe: DiffusionRecipe, device: torch.device, stock: float,
                    console: Console, untrained: UNet2DModel, untrained_schedule: dict) -> None:
    """Train briefly, then each sampler's speed-up over the pipeline and FID, side by side
    (``--fid-train-steps 0``: the speed-ups alone, on the untrained model)."""
    if args.fid_train_steps:
        smaller = {"channels": [int(c) for c in args.fid_channels.split(",")], "attention_levels": 0} if args.fid_channels else {}
        recipe = DiffusionConfig(profile=args.profile, resolution=args.fid_resolution, **smaller).resolve()
    data, labels = phantom_images(args.fid_real, recipe.resolution)
    unet, schedule, space = untrained, untrained_schedule, None
    if args.fid_train_steps:
        started = time.perf_counter()
        unet, schedule = trained_unet(recipe, device, args.fid_train_steps, data, labels)
        console.print(f"trained {args.fid_train_steps} steps on {len(data)} phantom images in "
                      f"{time.perf_counter() - started:.0f} s; FID of {args.fid_images} samples (guidance "
                      f"{recipe.guidance_scale:g}) against {len(data)} real images, 95 % bootstrap interval")
        space = FeatureSpace(data.add(1).div(2), device)
        stock = pipeline_rate(unet, schedule, args.pipeline_images or 1) if pipeline_fits(unet) else float("nan")
        if pipeline_fits(unet):
            console.print(f"{recipe.resolution} px: diffusers DDPMPipeline, 1000 steps, on the trained model: "
                          f"{stock:.4f} images/s")
    count = args.fid_images
    wanted = [int(labels[i % len(labels)]) for i in range(count)]
    for entry in args.samplers.split(","):
        name, steps, precision = (entry.split(":") + ["fp32"])[:3]
        kwargs = dict(sampler=name, steps=int(steps), guidance_scale=recipe.guidance_scale,
                      batch_size=recipe.generate_batch_size, precision=precision)
        sample(unet, schedule, wanted[:1], [0], **kwargs)  # warm-up
        started = time.perf_counter()
        images = sample(unet, schedule, wanted, list(range(10_000, 10_000 + count)), **kwargs).images
        rate = count / (time.perf_counter() - started)
        quality = ""
        if space is not None:
            value, low, high = space.fid(images)
            quality = f" | FID {value:.2f} [{low:.2f}, {high:.2f}]"
        console.print(f"{name} {steps:>4} steps {precision}: {rate:.3f} images/s = {rate / stock:.0f}x the 1000-step "
                      f"DDPMPipeline{quality}")
    if space is not None and args.pipeline_fid and pipeline_fits(unet):
        images, rate = pipeline_samples(unet, schedule, wanted)
        value, low, high = space.fid(images)
        console.print(f"DDPMPipeline 1000 steps fp32 (same grades, no guidance, batch 64): {rate:.3f} images/s | "
                      f"FID {value:.2f} [{low:.2f}, {high:.2f}]")


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
    parser.add_argument("--fid-train-steps", type=int, default=300, help="training steps before the FID (0 = skip)")
    parser.add_argument("--fid-resolution", type=int, default=32, help="resolution of the model trained for the FID")
    parser.add_argument("--fid-channels", default="", help="UNet channels of that model, without attention "
                        "(e.g. 16,32,64, the built-in experiment's; default: the profile's)")
    parser.add_argument("--fid-images", type=int, default=64, help="samples per sampler for the FID")
    parser.add_argument("--fid-real", type=int, default=200, help="real phantom images (training and FID)")
    parser.add_argument("--pipeline-fid", action="store_true",
                        help="also sample the FID's images with the 1000-step DDPMPipeline and print its FID")
    parser.add_argument("--samplers", default="dpmsolver++:20:fp32,dpmsolver++:10:fp32,unipc:10:fp32,unipc:10:auto",
                        help="NAME:STEPS[:PRECISION] entries compared side by side (speed-up and FID)")
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
            console.print(f"{resolution} px: sampling {measured['images_s']:.3f} images/s ({recipe.sampler} "
                          f"{recipe.sample_steps} steps, guidance {guidance:g}, batch {recipe.generate_batch_size}), "
                          f"peak memory {measured['peak_mib']:.0f} MiB")
        if index == 0 and args.pipeline_images and not pipeline_fits(unet):
            console.print(f"{resolution} px: DDPMPipeline skipped: profile {args.profile} has "
                          f"{unet.config.in_channels} channels in, {unet.config.out_channels} out (use --profile quick)")
        elif index == 0 and args.pipeline_images:
            stock = pipeline_rate(unet, schedule, args.pipeline_images)
            console.print(f"{resolution} px: diffusers DDPMPipeline, 1000 steps, batch {args.pipeline_images}: "
                          f"{stock:.4f} images/s; medaug's loop is {rates[recipe.guidance_scale] / stock:.0f}x faster "
                          f"with guidance {recipe.guidance_scale:g}, {rates[1.0] / stock:.0f}x without")
            for guidance in (recipe.guidance_scale, 1.0):
                alike = sampling_rate(unet, schedule, recipe, args.pipeline_images, guidance, batch=args.pipeline_images)
                console.print(f"{resolution} px: at the pipeline's batch ({args.pipeline_images}), guidance {guidance:g}: "
                              f"{alike['images_s']:.3f} images/s, {alike['images_s'] / stock:.0f}x the pipeline")
            sampler_quality(args, recipe, device, stock, console, unet, schedule)
        elif index == 0 and args.fid_train_steps:  # the FID's model gets its own pipeline figure
            sampler_quality(args, recipe, device, float("nan"), console, unet, schedule)


if __name__ == "__main__":
    main()
