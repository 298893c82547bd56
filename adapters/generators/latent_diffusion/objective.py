"""The LoRA training objective and the pipelines, on Stable Diffusion's components.

Like ``components``, depends only on torch, diffusers, transformers and peft. Training images are
encoded once (the VAE and the text encoder are frozen): each step draws latents from the cached
posterior (mean, std) and fits the UNet's noise prediction, as diffusers' LoRA scripts do.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from medaug.adapters.generators.latent_diffusion.components import Components


@torch.no_grad()
def latent_moments(vae: Any, pixels: torch.Tensor, *, batch: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """The VAE posterior's mean and std of ``pixels`` (``N x 3 x H x W`` in [-1, 1]), scaled.

    Both are multiplied by the VAE's ``scaling_factor``: a draw ``mean + std * noise`` is a
    latent as the UNet sees it.
    """
    scale = vae.config.scaling_factor
    means, stds = [], []
    parameter = next(vae.parameters())
    for first in range(0, len(pixels), batch):
        posterior = vae.encode(pixels[first : first + batch].to(parameter.device, parameter.dtype)).latent_dist
        means.append(posterior.mean.float() * scale)
        stds.append(posterior.std.float() * scale)
    return torch.cat(means), torch.cat(stds)


def denoising_loss(
    unet: Any, schedule: Any, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor, text: torch.Tensor
) -> torch.Tensor:
    """MSE between the UNet's prediction for the noised ``latents`` and its target (noise or velocity)."""
    noisy = schedule.add_noise(latents, noise, timesteps)
    if schedule.config.prediction_type == "v_prediction":
        target = schedule.get_velocity(latents, noise, timesteps)
    else:
        target = noise
    dtype = next(unet.parameters()).dtype
    prediction = unet(noisy.to(dtype), timesteps, encoder_hidden_states=text.to(dtype)).sample
    return F.mse_loss(prediction.float(), target.float())


def training_scheduler(components: Components) -> Any:
    """The DDPM noise process the base model was trained with."""
    from diffusers import DDPMScheduler

    return DDPMScheduler.from_config(components.schedule)


def pipeline(components: Components, *, variation: bool, sampler: str) -> Any:
    """A diffusers ``StableDiffusionImg2ImgPipeline`` (``variation``) or ``StableDiffusionPipeline``.

    No safety checker (it would need further weights, and fundus images are not its domain).
    """
    from diffusers import (
        DDIMScheduler,
        DPMSolverMultistepScheduler,
        PNDMScheduler,
        StableDiffusionImg2ImgPipeline,
        StableDiffusionPipeline,
    )

    kinds = {"ddim": DDIMScheduler, "dpmsolver++": DPMSolverMultistepScheduler, "pndm": PNDMScheduler}
    extra = {"algorithm_type": "dpmsolver++"} if sampler == "dpmsolver++" else {}
    scheduler = kinds[sampler].from_config(components.schedule, **extra)
    kind = StableDiffusionImg2ImgPipeline if variation else StableDiffusionPipeline
    made = kind(
        vae=components.vae, text_encoder=components.text_encoder, tokenizer=components.tokenizer,
        unet=components.unet, scheduler=scheduler, safety_checker=None, feature_extractor=None,
        requires_safety_checker=False,
    )
    made.set_progress_bar_config(disable=True)
    return made


def run_pipeline(
    made: Any,
    prompts: Sequence[str],
    seeds: Sequence[int],
    *,
    resolution: int,
    steps: int,
    guidance_scale: float,
    sources: torch.Tensor | None = None,
    strength: float = 1.0,
) -> torch.Tensor:
    """Images (``N x 3 x R x R`` in [0, 1], on the CPU) for ``prompts``, one seed each.

    Each image's noise comes from its own generator seeded by its seed, so its pixels depend on
    its seed, prompt and source, and on how many images share the call (pad calls to one size).

    Args:
        made: a pipeline from :func:`pipeline` (img2img when ``sources`` are given).
        sources: for img2img, ``N x 3 x R x R`` images in [0, 1].
        strength: for img2img, how far the sources are noised.
    """
    device = made.unet.device
    generators = [torch.Generator(device="cpu").manual_seed(int(seed)) for seed in seeds]
    options: dict[str, Any] = dict(
        prompt=list(prompts), num_inference_steps=steps, guidance_scale=guidance_scale, generator=generators,
        output_type="pt",
    )
    if sources is not None:
        options |= dict(image=sources.to(device), strength=strength)
    else:
        options |= dict(height=resolution, width=resolution)
    with torch.inference_mode():
        return made(**options).images.float().cpu().clamp(0, 1)
