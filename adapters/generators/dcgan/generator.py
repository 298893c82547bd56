"""The ``dcgan`` ImageGenerator: grade-conditioned samples of the store's own trained DCGAN."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from medaug.adapters.generators.dcgan.checkpoint import SamplingModel, load_sampling_model
from medaug.adapters.generators.dcgan.config import DCGANConfig
from medaug.adapters.generators.dcgan.model import sample_images
from medaug.adapters.torch_support import torch_threads
from medaug.adapters.generators.sampling_support import CheckpointedGenerator
from medaug.adapters.torch_support import resolve_device, tensor_to_png
from medaug.application.ports import GenerationRequest, GenerationResult

UPSCALE = "bicubic-antialiased"


class DCGANGenerator(CheckpointedGenerator[DCGANConfig]):
    """Makes fundus images of a grade from noise with the store's trained class-conditional DCGAN.

    The newest checkpoint under ``checkpoint_dir`` is loaded on the first ``generate`` call.
    Each request's latent comes from ``torch.Generator().manual_seed(request.seed)`` alone and
    the generator runs in eval mode, so an image depends on its grade and seed only, whatever
    the batching. Images are made at the model's resolution (64 or 128 px) and resized to each
    request's ``size``.

    Args:
        config: the ``[generators.dcgan]`` settings (``generate_batch_size``, ``num_threads``).
        checkpoint_dir: the trainer's checkpoint folder for this store.
        device: ``auto``, ``cpu`` or ``cuda``.
    """

    def __init__(self, config: DCGANConfig, checkpoint_dir: Path, *, device: str = "cpu") -> None:
        super().__init__(config, checkpoint_dir, device=device)
        self._threads = config.num_threads
        self._model: SamplingModel | None = None

    @property
    def name(self) -> str:
        """``dcgan``."""
        return "dcgan"

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """One PNG of ``request.size`` per request, in order.

        Raises:
            GeneratorError: no trained model, or its checkpoint cannot be read.
        """
        if not requests:
            return []
        model = self._load()
        device = next(model.network.parameters()).device
        with torch_threads(self._threads):
            images = sample_images(
                model.network, [int(r.grade) for r in requests], [r.seed for r in requests],
                batch_size=self._batch_size, device=device,
            )
        common = self._parameters(model)
        return [
            GenerationResult(
                image_id=r.image_id,
                data=tensor_to_png(image, size=r.size),
                parameters=common | {"seed": r.seed, "grade": int(r.grade), "size": r.size},
            )
            for r, image in zip(requests, images, strict=True)
        ]

    def _load(self) -> SamplingModel:
        if self._model is None:
            path = self._newest("trained dcgan model", "dcgan")
            self._model = load_sampling_model(path, resolve_device(self._device))
        return self._model

    @staticmethod
    def _parameters(model: SamplingModel) -> dict[str, Any]:
        recipe = model.meta.recipe
        return {
            "model": "class-conditional DCGAN",
            "resolution": recipe.resolution,
            "latent_dim": recipe.latent_dim,
            "latent": "torch.randn(latent_dim, generator=torch.Generator().manual_seed(seed))",
            "upscale": UPSCALE,
            "checkpoint": model.checkpoint,
            "checkpoint_step": model.meta.step,
            "weights_sha256": model.digest,
            "training_seed": model.meta.seed,
        }
