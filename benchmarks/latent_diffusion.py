"""Benchmark: LoRA training and img2img variation throughput of the latent-diffusion generator.

Run from the repository root::

    python benchmarks/latent_diffusion.py                       # tiny components, CPU
    python benchmarks/latent_diffusion.py --device cuda --size sd15 --json sd15.json

``--size sd15`` builds Stable Diffusion 1.5's real architecture from its configs (UNet2DCondition
860 M parameters, the KL autoencoder, the CLIP ViT-L/14 text encoder) with random weights, so the
figures are real speed figures without the weights (throughput does not depend on their values).
It measures, after warm-up:

- LoRA training images/s: ``--steps`` optimisation steps of batch ``--batch`` of the trainer's
  objective (latents drawn from cached VAE moments, UNet with LoRA rank ``--rank`` on the
  attention projections, AdamW on the LoRA weights; bf16/fp16 autocast and gradient
  checkpointing on CUDA unless switched off);
- VAE encoding images/s (done once per training run, for the cache);
- variation images/s: ``StableDiffusionImg2ImgPipeline`` at ``--strength`` of ``--sample-steps``
  DPM-Solver++ steps with classifier-free guidance, ``--batch`` images per call;
- sample images/s: ``StableDiffusionPipeline``, same steps and guidance;
- peak CUDA memory of each phase (GPU only).

Imports only torch, diffusers, transformers, peft and the two modules of
``adapters/generators/latent_diffusion`` it measures (no settings, logging or store code), so it
runs where medaug itself is not installed. Nothing is asserted; the figures are for reading.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]


def _project() -> tuple[Any, Any]:
    """The latent-diffusion modules, from the installed medaug or straight from this checkout."""
    try:
        from medaug.adapters.generators.latent_diffusion import components, objective
    except ModuleNotFoundError:
        for name, folder in (("medaug", ROOT), ("medaug.adapters", ROOT / "adapters"),
                             ("medaug.adapters.generators", ROOT / "adapters" / "generators")):
            module = types.ModuleType(name)
            module.__path__ = [str(folder)]
            sys.modules[name] = module
        from medaug.adapters.generators.latent_diffusion import components, objective
    return components, objective


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(device: torch.device, run: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Seconds per call of ``run`` over ``repeats`` calls (after one warm-up call), and peak MiB."""
    run()
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()
    for _ in range(repeats):
        run()
    _sync(device)
    seconds = (time.perf_counter() - started) / repeats
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else float("nan")
    return seconds, peak


def _dtype(precision: str, device: torch.device) -> torch.dtype:
    if device.type != "cuda" or precision == "no":
        return torch.float32
    if precision == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Every figure of one configuration, as a dict."""
    components_module, objective = _project()
    device = torch.device(args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    resolution = args.resolution or components_module.NATIVE_RESOLUTION[args.size]
    dtype = _dtype(args.precision, device)
    folder = Path(tempfile.mkdtemp(prefix="medaug-latent-bench-"))
    started = time.perf_counter()
    parts = components_module.build_components(args.size, folder, seed=0)
    built = time.perf_counter() - started
    unet_parameters = sum(p.numel() for p in parts.unet.parameters())
    for part in (parts.unet, parts.vae, parts.text_encoder):
        part.requires_grad_(False)
        part.to(device, dtype)
    batch, figures = args.batch, {}
    pixels = torch.rand(batch, 3, resolution, resolution, device=device)

    moments: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    seconds, peak = _timed(device, lambda: moments.__setitem__("m", objective.latent_moments(parts.vae, pixels * 2 - 1, batch=batch)), args.repeats)
    figures["encode"] = {"images_per_s": batch / seconds, "peak_mib": peak}

    schedule = objective.training_scheduler(parts)
    with torch.no_grad():
        text = components_module.encode_prompts(parts, ["a fundus photograph with moderate diabetic retinopathy"] * batch, device).float()
    torch.manual_seed(0)
    components_module.add_lora(parts.unet, args.rank)
    trainable = [p for p in parts.unet.parameters() if p.requires_grad]
    for parameter in trainable:
        parameter.data = parameter.data.float()
    checkpointing = args.gradient_checkpointing == "on" or (args.gradient_checkpointing == "auto" and device.type == "cuda")
    if checkpointing:
        parts.unet.enable_gradient_checkpointing()
    optimizer = torch.optim.AdamW(trainable, lr=1e-4)
    scaler = torch.amp.GradScaler(enabled=dtype == torch.float16)
    mean, std = moments["m"]

    def train_step() -> None:
        latents = mean + std * torch.randn_like(mean)
        noise = torch.randn_like(latents)
        timesteps = torch.randint(0, 1000, (batch,), device=device)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            loss = objective.denoising_loss(parts.unet, schedule, latents, noise, timesteps, text)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)

    parts.unet.train()
    seconds, peak = _timed(device, train_step, args.steps)
    figures["train"] = {"images_per_s": batch / seconds, "steps_per_s": 1 / seconds, "peak_mib": peak}
    parts.unet.eval()

    prompts = ["a fundus photograph with moderate diabetic retinopathy"] * batch
    seeds = list(range(batch))
    options = dict(resolution=resolution, steps=args.sample_steps, guidance_scale=args.guidance)
    vary = objective.pipeline(parts, variation=True, sampler="dpmsolver++")
    sources = torch.rand(batch, 3, resolution, resolution)
    seconds, peak = _timed(device, lambda: objective.run_pipeline(vary, prompts, seeds, sources=sources, strength=args.strength, **options), args.repeats)
    figures["variation"] = {"images_per_s": batch / seconds, "peak_mib": peak}
    sample = objective.pipeline(parts, variation=False, sampler="dpmsolver++")
    seconds, peak = _timed(device, lambda: objective.run_pipeline(sample, prompts, seeds, **options), args.repeats)
    figures["sample"] = {"images_per_s": batch / seconds, "peak_mib": peak}
    return {
        "size": args.size, "device": str(device), "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "dtype": str(dtype).removeprefix("torch."), "resolution": resolution, "batch": batch, "rank": args.rank,
        "gradient_checkpointing": checkpointing, "sample_steps": args.sample_steps, "strength": args.strength,
        "guidance": args.guidance, "train_steps_timed": args.steps, "repeats": args.repeats,
        "threads": torch.get_num_threads(), "unet_parameters": unet_parameters,
        "lora_parameters": sum(p.numel() for p in trainable), "build_seconds": round(built, 2),
        "torch": torch.__version__, "python": platform.python_version(), "figures": figures,
    }


def _table(result: dict[str, Any]) -> str:
    head = (f"latent-diffusion {result['size']} on {result['gpu'] or result['device']} ({result['dtype']}, "
            f"{result['resolution']} px, batch {result['batch']}, LoRA rank {result['rank']}, "
            f"{result['sample_steps']} sampler steps, strength {result['strength']}, guidance {result['guidance']}, "
            f"UNet {result['unet_parameters'] / 1e6:.1f} M, LoRA {result['lora_parameters'] / 1e6:.2f} M parameters)")
    rows = [f"{'phase':<12}{'images/s':>12}{'peak MiB':>12}"]
    for phase, figure in result["figures"].items():
        rows.append(f"{phase:<12}{figure['images_per_s']:>12.3f}{figure['peak_mib']:>12.0f}")
    return "\n".join([head, *rows])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=("tiny", "sd15"), default="tiny")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--resolution", type=int, default=None, help="default: 32 (tiny) or 512 (sd15)")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=10, help="timed LoRA training steps (after one warm-up)")
    parser.add_argument("--repeats", type=int, default=2, help="timed pipeline calls (after one warm-up)")
    parser.add_argument("--sample-steps", type=int, default=25)
    parser.add_argument("--strength", type=float, default=0.5)
    parser.add_argument("--guidance", type=float, default=5.0)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--precision", default="auto", choices=("auto", "no", "fp16", "bf16"))
    parser.add_argument("--gradient-checkpointing", default="auto", choices=("auto", "on", "off"))
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    result = measure(args)
    print(_table(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
