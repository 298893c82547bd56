"""Class-conditional sampling with classifier-free guidance over diffusers schedulers.

diffusers' pipelines take no class labels, so this is the loop: start from seeded noise (or from
a noised source image, SDEdit), and at each timestep of the chosen scheduler ask the UNet for the
conditional and unconditional predictions, mix them by the guidance scale and let the scheduler
step. Every image owns a ``torch.Generator`` seeded from its request, and the UNet always sees
batches of the same size (the last one padded), so an image's pixels depend on its seed and on
``batch_size`` only, never on which other images share its batch.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torchvision.transforms.v2.functional as TF
from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler, UNet2DModel, UniPCMultistepScheduler
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils import BaseOutput

from medaug.adapters.generators.diffusion.config import NULL_CLASS, NUM_CLASSES, SamplePrecision, SamplerName
from medaug.adapters.generators.diffusion.model import with_coordinates
from medaug.application.errors import ConfigError

_SCHEDULE_KEYS = ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "trained_betas", "prediction_type")

# Why these options: the model works in pixel space on [-1, 1], so the predicted clean image is
# clipped to that range at every step (DDPM/DDIM ``clip_sample``, DPM-Solver++ ``thresholding``
# with a maximum of 1). With epsilon prediction an under-trained model's x0 estimate at high noise
# (its epsilon error divided by a tiny alpha) explodes into colour noise; v-prediction (the
# default) avoids most of it and the clipping catches the rest. "trailing" spacing starts at the
# last training step, so the first step sees the noise level the model was trained on.
SAMPLER_OPTIONS: dict[str, dict[str, Any]] = {
    "dpmsolver++": {
        "algorithm_type": "dpmsolver++",
        "solver_order": 2,
        "thresholding": True,
        "sample_max_value": 1.0,
        "timestep_spacing": "trailing",
        "final_sigmas_type": "zero",
        "lower_order_final": True,
    },
    # UniPC (Zhao et al. 2023): a predictor-corrector multistep solver, good at 10 steps or fewer.
    "unipc": {
        "solver_order": 2,
        "predict_x0": True,
        "solver_type": "bh2",
        "thresholding": True,
        "sample_max_value": 1.0,
        "timestep_spacing": "trailing",
        "final_sigmas_type": "zero",
        "lower_order_final": True,
    },
    "ddim": {"clip_sample": True, "set_alpha_to_one": True, "timestep_spacing": "trailing"},
    "ddpm": {"clip_sample": True, "timestep_spacing": "trailing", "variance_type": "fixed_small"},
}

_SCHEDULERS: dict[str, type[SchedulerMixin]] = {
    "dpmsolver++": DPMSolverMultistepScheduler,
    "unipc": UniPCMultistepScheduler,
    "ddim": DDIMScheduler,
    "ddpm": DDPMScheduler,
}


@dataclass
class DiffusionSampleOutput(BaseOutput):
    """Images made by :func:`sample` or :func:`vary`.

    Attributes:
        images: ``N x 3 x R x R`` float tensor in [0, 1], on the CPU, in request order.
        timesteps: the training timesteps the scheduler visited (empty when nothing was denoised).
    """

    images: torch.Tensor
    timesteps: list[int]


def make_scheduler(
    name: SamplerName, schedule: dict[str, Any], options: dict[str, Any] | None = None
) -> SchedulerMixin:
    """A fresh sampling scheduler over the training noise schedule.

    Args:
        name: ``dpmsolver++`` (default choice), ``unipc``, ``ddim`` or ``ddpm``.
        schedule: the training scheduler's config (betas, timesteps, prediction type).
        options: scheduler arguments overriding ``SAMPLER_OPTIONS[name]``.

    Raises:
        ConfigError: unknown sampler name.
    """
    if name not in _SCHEDULERS:
        raise ConfigError(f"unknown sampler {name!r}; choose one of: {', '.join(_SCHEDULERS)}")
    base = {key: schedule[key] for key in _SCHEDULE_KEYS if key in schedule}
    return _SCHEDULERS[name](**{**base, **SAMPLER_OPTIONS[name], **(options or {})})


def sample(
    unet: UNet2DModel,
    schedule: dict[str, Any],
    labels: Sequence[int],
    seeds: Sequence[int],
    *,
    sampler: SamplerName = "dpmsolver++",
    steps: int = 20,
    guidance_scale: float = 2.0,
    batch_size: int = 8,
    options: dict[str, Any] | None = None,
    precision: SamplePrecision = "fp32",
) -> DiffusionSampleOutput:
    """Sample one image per (label, seed) from pure noise.

    Args:
        unet: the class-conditional model (its device and dtype are used).
        schedule: the training scheduler's config.
        labels: grade 0-4 per image, or ``NULL_CLASS`` for an unconditional sample.
        seeds: one seed per image.
        sampler: ``dpmsolver++``, ``unipc``, ``ddim`` or ``ddpm``.
        steps: denoising steps.
        guidance_scale: classifier-free guidance (1 = conditional only, 0 = unconditional).
        batch_size: UNet batch; part of what makes the pixels reproducible.
        options: scheduler arguments overriding the defaults (see ``make_scheduler``).
        precision: the UNet's arithmetic: ``fp32``, ``bf16`` (autocast) or ``auto`` (see
            ``DiffusionRecipe.sample_precision``).

    Raises:
        ConfigError: mismatched inputs or an invalid step count, label or guidance.
    """
    _check(labels, seeds, steps, guidance_scale, batch_size)
    process = _Process(make=lambda: make_scheduler(sampler, schedule, options), steps=steps, guidance=guidance_scale,
                       bf16=uses_bf16(precision, unet.device))
    return _run(unet, process, labels, seeds, batch_size, clean=None, skip=0)


def vary(
    unet: UNet2DModel,
    schedule: dict[str, Any],
    sources: torch.Tensor,
    labels: Sequence[int],
    seeds: Sequence[int],
    *,
    strength: float,
    sampler: SamplerName = "dpmsolver++",
    steps: int = 20,
    guidance_scale: float = 2.0,
    batch_size: int = 8,
    options: dict[str, Any] | None = None,
    precision: SamplePrecision = "fp32",
) -> DiffusionSampleOutput:
    """SDEdit variations: noise each source to ``strength`` and denoise it towards its label.

    ``strength`` 0 returns the sources unchanged; 1 starts from pure noise. Only the last
    ``round(steps * strength)`` of the ``steps`` timesteps are run.

    Args:
        unet: the class-conditional model.
        schedule: the training scheduler's config.
        sources: ``N x 3 x R x R`` float tensor in [0, 1] at the model's resolution.
        labels: the grade to denoise each source towards (usually its own).
        seeds: one seed per image.
        strength: in [0, 1].
        sampler: ``dpmsolver++``, ``ddim`` or ``ddpm``.
        steps: the denoising steps a full-strength variation would take.
        guidance_scale: classifier-free guidance.
        batch_size: UNet batch; part of what makes the pixels reproducible.
        options: scheduler arguments overriding the defaults.
        precision: as in :func:`sample`.

    Raises:
        ConfigError: strength outside [0, 1], sources of the wrong shape, or as in :func:`sample`.
    """
    _check(labels, seeds, steps, guidance_scale, batch_size)
    if not 0.0 <= strength <= 1.0:
        raise ConfigError(f"variation strength {strength} must be between 0 and 1")
    resolution = unet.config.sample_size
    if sources.ndim != 4 or tuple(sources.shape[1:]) != (3, resolution, resolution) or len(sources) != len(labels):
        raise ConfigError(
            f"variation sources have shape {tuple(sources.shape)}, expected {len(labels)}x3x{resolution}x{resolution}"
        )
    skip = steps - min(round(steps * strength), steps)
    if skip == steps:
        return DiffusionSampleOutput(images=sources.detach().float().cpu().clone(), timesteps=[])
    process = _Process(make=lambda: make_scheduler(sampler, schedule, options), steps=steps, guidance=guidance_scale,
                       bf16=uses_bf16(precision, unet.device))
    return _run(unet, process, labels, seeds, batch_size, clean=sources.float() * 2.0 - 1.0, skip=skip)


def keep_source_detail(images: torch.Tensor, sources: torch.Tensor, sigma: float) -> torch.Tensor:
    """Variations with their sources' fine detail: ``blur(images) + sources - blur(sources)``, in [0, 1].

    A Gaussian of ``sigma`` pixels splits an image into a coarse part (illumination, colour,
    background, the disc's glow) and a fine part (vessels, microaneurysms, haemorrhages,
    exudates, and an under-trained model's grain). The coarse part comes from the variation, the
    fine part from its source, so a lesion the grade depends on is never redrawn.

    Args:
        images: ``N x 3 x R x R`` variations in [0, 1].
        sources: their sources, same shape.
        sigma: the Gaussian's standard deviation in pixels at ``R``.
    """
    if images.shape != sources.shape:
        raise ConfigError(f"variations {tuple(images.shape)} and sources {tuple(sources.shape)} differ in shape")
    kernel = 2 * math.ceil(3 * sigma) + 1
    kernel = min(kernel, 2 * ((images.shape[-1] - 1) // 2) + 1)

    def blur(x: torch.Tensor) -> torch.Tensor:
        return TF.gaussian_blur(x, [kernel, kernel], [sigma, sigma])

    images, sources = images.float(), sources.float()
    return (blur(images) + sources - blur(sources)).clamp_(0, 1)


def _check(labels: Sequence[int], seeds: Sequence[int], steps: int, guidance: float, batch_size: int) -> None:
    if len(labels) != len(seeds):
        raise ConfigError(f"{len(labels)} labels but {len(seeds)} seeds")
    if not 1 <= steps <= 1000:
        raise ConfigError(f"sampling steps {steps} must be between 1 and 1000")
    if guidance < 0:
        raise ConfigError(f"guidance scale {guidance} must not be negative")
    if batch_size < 1:
        raise ConfigError(f"sampling batch size {batch_size} must be at least 1")
    bad = [label for label in labels if not 0 <= int(label) < NUM_CLASSES]
    if bad:
        raise ConfigError(f"class label {bad[0]} is outside 0-{NUM_CLASSES - 1}")


def uses_bf16(precision: SamplePrecision, device: torch.device) -> bool:
    """Whether sampling at ``precision`` on ``device`` runs the UNet under bf16 autocast.

    ``auto`` picks bf16 only where it is native (measured on an AVX-512 BF16 CPU: 1.7x the
    fp32 speed for the quick model at 64 px); elsewhere bf16 is emulated and slower.
    """
    if precision != "auto":
        return precision == "bf16"
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


@dataclass(frozen=True)
class _Process:
    make: Callable[[], SchedulerMixin]
    steps: int
    guidance: float
    bf16: bool = False


def _run(
    unet: UNet2DModel,
    process: _Process,
    labels: Sequence[int],
    seeds: Sequence[int],
    batch_size: int,
    *,
    clean: torch.Tensor | None,
    skip: int,
) -> DiffusionSampleOutput:
    images: list[torch.Tensor] = []
    visited: list[int] = []
    for first in range(0, len(labels), batch_size):
        chunk = list(range(first, min(first + batch_size, len(labels))))
        padded = chunk + [chunk[-1]] * (batch_size - len(chunk))
        generators = [torch.Generator().manual_seed(int(seeds[i])) for i in padded]
        start = None if clean is None else clean[padded]
        x, visited = _denoise(unet, process, [int(labels[i]) for i in padded], generators, start, skip)
        images.append(x[: len(chunk)])
    resolution = unet.config.sample_size
    empty = torch.empty(0, 3, resolution, resolution)
    return DiffusionSampleOutput(images=torch.cat(images) if images else empty, timesteps=visited)


@torch.inference_mode()
def _denoise(
    unet: UNet2DModel,
    process: _Process,
    labels: list[int],
    generators: list[torch.Generator],
    clean: torch.Tensor | None,
    skip: int,
) -> tuple[torch.Tensor, list[int]]:
    device, dtype, resolution = unet.device, unet.dtype, unet.config.sample_size
    scheduler = process.make()
    scheduler.set_timesteps(process.steps, device=device)
    timesteps = scheduler.timesteps[skip * scheduler.order :]
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(skip * scheduler.order)
    noise = torch.stack([torch.randn((3, resolution, resolution), generator=g) for g in generators]).to(device)
    if clean is None:
        x = noise * scheduler.init_noise_sigma
    else:
        x = scheduler.add_noise(clean.to(device), noise, timesteps[:1].repeat(len(labels)))
    cond = torch.tensor(labels, device=device)
    # why: stochastic schedulers (DDPM) draw each image's step noise from its own generator; the
    # deterministic ones (UniPC) take none.
    extra = {"generator": generators} if "generator" in inspect.signature(scheduler.step).parameters else {}
    for t in timesteps:
        model_input = scheduler.scale_model_input(x, t).to(dtype)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=process.bf16):
            prediction = _guided(unet, model_input, t, cond, process.guidance).float()
        x = scheduler.step(prediction, t, x, **extra).prev_sample
    return (x / 2 + 0.5).clamp(0, 1).cpu(), [int(t) for t in timesteps]


def _guided(unet: UNet2DModel, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, guidance: float) -> torch.Tensor:
    x = with_coordinates(unet, x)
    if guidance == 1.0:
        return unet(x, t, cond).sample
    null = torch.full_like(cond, NULL_CLASS)
    both = unet(torch.cat([x, x]), t, torch.cat([cond, null])).sample
    conditional, unconditional = both.chunk(2)
    return unconditional + guidance * (conditional - unconditional)
