"""Stable Diffusion img2img with per-grade LoRA: the ``latent-diffusion`` generator."""
