"""The ``diffusion`` ImageGenerator: grade-conditioned samples or SDEdit variations of real images."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from medaug.adapters.generators.diffusion.checkpoint import SamplingModel, load_sampling_model
from medaug.adapters.generators.diffusion.config import SAMPLING_FIELDS, DiffusionConfig, DiffusionRecipe, recipe_from
from medaug.adapters.generators.diffusion.distributed import process_device, shard, world_size
from medaug.adapters.generators.diffusion.sampling import keep_source_detail, sample, uses_bf16, vary
from medaug.adapters.generators.sampling_support import CheckpointedGenerator, source_tensor
from medaug.adapters.torch_support import png_to_tensor, resolve_device, tensor_to_png
from medaug.application.ports import GenerationRequest, GenerationResult


class DiffusionGenerator(CheckpointedGenerator[DiffusionConfig]):
    """Makes fundus images with the store's own trained diffusion model.

    The newest checkpoint under ``checkpoint_dir`` is loaded on the first ``generate`` call.
    Sampler, steps, guidance and batch size come from ``config`` where set there, else from the
    recipe the model was trained with. Images are made at the model's resolution and resized to
    each request's ``size``.

    Args:
        config: the ``[generators.diffusion]`` settings (``mode``, ``strength``, sampler...).
        checkpoint_dir: the trainer's checkpoint folder for this store.
        device: ``auto``, ``cpu`` or ``cuda``.
    """

    def __init__(self, config: DiffusionConfig, checkpoint_dir: Path, *, device: str = "cpu") -> None:
        super().__init__(config, checkpoint_dir, device=device)
        self._model: SamplingModel | None = None
        self._recipe: DiffusionRecipe | None = None

    @property
    def name(self) -> str:
        """``diffusion``."""
        return "diffusion"

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """One PNG of ``request.size`` per request, in order.

        Raises:
            GeneratorError: no trained model, or a variation request without a source.
            InputError: a source image cannot be decoded.
        """
        if not requests:
            return []
        model, recipe = self._load()
        if world_size() > 1:
            return shard(lambda part: self._generate(part, model, recipe), list(requests))
        return self._generate(list(requests), model, recipe)

    def _load(self) -> tuple[SamplingModel, DiffusionRecipe]:
        if self._model is None or self._recipe is None:
            path = self._newest("trained diffusion model", "diffusion")
            device = process_device() if world_size() > 1 else resolve_device(self._device)
            self._model = load_sampling_model(path, device)
            overrides = self._config.overrides(SAMPLING_FIELDS)
            self._recipe = recipe_from({**self._model.meta.recipe.model_dump(), **overrides}, where=str(path))
        return self._model, self._recipe

    def _generate(
        self, requests: list[GenerationRequest], model: SamplingModel, recipe: DiffusionRecipe
    ) -> list[GenerationResult]:
        if not requests:
            return []
        options = dict(
            sampler=recipe.sampler, steps=recipe.sample_steps, guidance_scale=recipe.guidance_scale,
            batch_size=self._batch_size, precision=recipe.sample_precision,
        )
        labels, seeds = [int(r.grade) for r in requests], [r.seed for r in requests]
        schedule = model.meta.schedule
        if self.needs_source:
            strength = self._config.strength
            sources = torch.stack([source_tensor(r, model.network.config.sample_size, "diffusion") for r in requests])
            output = vary(model.network, schedule, sources, labels, seeds, strength=strength, **options)
            images = output.images
            if self._config.source_detail_sigma is not None and output.timesteps:
                images = keep_source_detail(images, sources, self._config.source_detail_sigma)
        else:
            output = sample(model.network, schedule, labels, seeds, **options)
            images = output.images
        common = self._parameters(model, recipe, len(output.timesteps))
        return [
            GenerationResult(image_id=r.image_id, data=self._png(r, image), parameters=self._for(r, common))
            for r, image in zip(requests, images, strict=True)
        ]

    def _png(self, request: GenerationRequest, image: torch.Tensor) -> bytes:
        if self.needs_source and self._config.strength == 0 and request.source is not None:
            return tensor_to_png(png_to_tensor(request.source, size=request.size))
        return tensor_to_png(image, size=request.size)

    def _parameters(self, model: SamplingModel, recipe: DiffusionRecipe, denoised: int) -> dict[str, Any]:
        common: dict[str, Any] = {
            "mode": self._config.mode,
            "scheduler": recipe.sampler,
            "steps": recipe.sample_steps,
            "guidance": recipe.guidance_scale,
            "batch_size": self._batch_size,
            "precision": "bf16" if uses_bf16(recipe.sample_precision, model.network.device) else "fp32",
            "resolution": model.network.config.sample_size,
            "checkpoint": model.checkpoint,
            "checkpoint_step": model.meta.step,
            "weights_sha256": model.digest,
        }
        if model.meta.recipe.patch_size is not None:
            common["patch_size"] = model.meta.recipe.patch_size
        if self.needs_source:
            common |= {"strength": self._config.strength, "denoising_steps": denoised}
            if self._config.source_detail_sigma is not None:
                common["source_detail_sigma"] = self._config.source_detail_sigma
        return common

    def _for(self, request: GenerationRequest, common: dict[str, Any]) -> dict[str, Any]:
        specific: dict[str, Any] = {"seed": request.seed, "grade": int(request.grade)}
        if self.needs_source:
            specific["source"] = request.source_id
        return common | specific

