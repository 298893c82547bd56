"""The ``latent-diffusion`` ImageGenerator: Stable Diffusion with a per-grade LoRA, img2img
variations of real images (DA-Fusion, SDEdit) or text-to-image samples of a grade's prompt."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from medaug.adapters.generators.checkpointing import load_errors_as, load_tensor_files
from medaug.adapters.generators.latent_diffusion.base import (
    GENERATOR,
    check_base,
    load_base,
    out_of_memory,
    read_meta,
    weight_dtype,
)
from medaug.adapters.generators.latent_diffusion.components import add_grade_tokens, add_lora, load_lora
from medaug.adapters.generators.latent_diffusion.config import (
    GRADE_WORDS,
    SAMPLING_FIELDS,
    LatentDiffusionConfig,
    LatentDiffusionRecipe,
    recipe_from,
)
from medaug.adapters.generators.latent_diffusion.objective import pipeline, run_pipeline
from medaug.adapters.generators.sampling_support import CheckpointedGenerator, source_tensor
from medaug.adapters.torch_support import resolve_device, tensor_to_png
from medaug.adapters.weights import tensors_sha256
from medaug.application.errors import ConfigError
from medaug.application.ports import GenerationRequest, GenerationResult


class LatentDiffusionGenerator(CheckpointedGenerator[LatentDiffusionConfig]):
    """Makes fundus images with a pretrained Stable Diffusion and the store's per-grade LoRA.

    The base model (``config.weights`` or, when allowed, ``config.hub_id``) and the newest LoRA
    checkpoint under ``checkpoint_dir`` load on the first ``generate`` call. Requests are run in
    calls of ``generate_batch_size`` (the last padded), each image from its own seed, so its
    pixels depend on its seed, grade and source only.

    Args:
        config: the ``[generators.latent_diffusion]`` settings.
        checkpoint_dir: the LoRA trainer's checkpoint folder for this store (and scope).
        device: ``auto``, ``cpu`` or ``cuda``.
    """

    def __init__(self, config: LatentDiffusionConfig, checkpoint_dir: Path, *, device: str = "cpu") -> None:
        super().__init__(config, checkpoint_dir, device=device)
        self._loaded: tuple[Any, LatentDiffusionRecipe, dict[str, Any]] | None = None

    @property
    def name(self) -> str:
        """``latent-diffusion``."""
        return GENERATOR

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """One PNG of ``request.size`` per request, in order.

        Raises:
            GeneratorError: no LoRA trained yet, or a variation request without a source.
            ConfigError: weights that are not a Stable Diffusion folder, a LoRA of another base
                model, CUDA out of memory (naming the setting to lower).
            InputError: a source image cannot be decoded.
        """
        if not requests:
            return []
        made, recipe, common = self._load()
        results: list[GenerationResult] = []
        size = self._batch_size
        for first in range(0, len(requests), size):
            chunk = list(requests[first : first + size])
            padded = chunk + [chunk[-1]] * (size - len(chunk))
            try:
                images = self._images(made, recipe, padded)
            except torch.cuda.OutOfMemoryError:
                raise out_of_memory("generating", "generate_batch_size", size, recipe.resolution) from None
            results += [
                GenerationResult(image_id=r.image_id, data=tensor_to_png(image, size=r.size), parameters=self._for(r, recipe, common))
                for r, image in zip(chunk, images, strict=False)
            ]
        return results

    def _images(self, made: Any, recipe: LatentDiffusionRecipe, requests: list[GenerationRequest]) -> torch.Tensor:
        prompts = [recipe.grade_prompt(int(r.grade)) for r in requests]
        seeds = [r.seed for r in requests]
        options = dict(resolution=recipe.resolution, steps=recipe.sample_steps, guidance_scale=recipe.guidance_scale)
        if not self.needs_source:
            return run_pipeline(made, prompts, seeds, **options)
        sources = torch.stack([source_tensor(r, recipe.resolution, GENERATOR) for r in requests])
        return run_pipeline(made, prompts, seeds, sources=sources, strength=self._config.strength, **options)

    def _load(self) -> tuple[Any, LatentDiffusionRecipe, dict[str, Any]]:
        if self._loaded is None:
            checkpoint = self._newest("LoRA of the latent-diffusion generator", GENERATOR)
            meta = read_meta(checkpoint)
            recipe = recipe_from(
                {**meta.recipe.model_dump(), **self._config.overrides(SAMPLING_FIELDS)}, where=str(checkpoint)
            )
            source, local = self._config.weights_source()
            device = resolve_device(self._device)
            components, digest = load_base(source, local)
            check_base(meta, digest, source, checkpoint)
            with load_errors_as(f"{checkpoint}: cannot load the LoRA weights"):
                tensors = load_tensor_files(checkpoint, ("lora",) + (("tokens",) if meta.recipe.grade_tokens else ()))
            lora = tensors["lora"]
            if meta.recipe.grade_tokens:
                add_grade_tokens(components, GRADE_WORDS, learned=tensors["tokens"]["embeddings"])
            add_lora(components.unet, meta.recipe.lora_rank, meta.recipe.lora_alpha)
            try:
                load_lora(components.unet, lora, str(checkpoint / "lora.safetensors"))
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
            dtype = weight_dtype(meta.recipe.mixed_precision, device)
            for part in (components.unet, components.vae, components.text_encoder):
                part.to(device).eval()
                if dtype != torch.float32:
                    part.to(dtype)
            made = pipeline(components, variation=self.needs_source, sampler=recipe.sampler)
            common = {
                "weights": source,
                "weights_sha256": digest,
                "lora_checkpoint": checkpoint.name,
                "lora_sha256": tensors_sha256(lora)[:16],
                "lora_rank": meta.recipe.lora_rank,
            }
            self._loaded = (made, recipe, common)
        return self._loaded

    def _for(self, request: GenerationRequest, recipe: LatentDiffusionRecipe, common: dict[str, Any]) -> dict[str, Any]:
        parameters: dict[str, Any] = common | {
            "mode": self._config.mode,
            "prompt": recipe.grade_prompt(int(request.grade)),
            "sampler": recipe.sampler,
            "steps": recipe.sample_steps,
            "guidance": recipe.guidance_scale,
            "resolution": recipe.resolution,
            "batch_size": self._batch_size,
            "seed": request.seed,
            "grade": int(request.grade),
        }
        if self.needs_source:
            parameters |= {"strength": self._config.strength, "source": request.source_id}
        return parameters

