"""What the trained generators' ``ImageGenerator`` adapters (DCGAN, diffusion, latent diffusion)
share: their settings, checkpoint folder and device, the newest checkpoint they sample from, and
the real image a variation request carries."""

from __future__ import annotations

from pathlib import Path
from typing import Generic, TypeVar

import torch

from medaug.adapters.generators.checkpointing import latest_checkpoint
from medaug.adapters.torch_support import png_to_tensor
from medaug.application.errors import GeneratorError, InputError
from medaug.application.ports import GenerationRequest

ConfigT = TypeVar("ConfigT")


class CheckpointedGenerator(Generic[ConfigT]):
    """An ImageGenerator that samples from the newest checkpoint under ``checkpoint_dir``.

    Args:
        config: the generator's settings (``generate_batch_size``; ``mode`` where it varies real
            images).
        checkpoint_dir: the trainer's checkpoint folder for this store.
        device: ``auto``, ``cpu`` or ``cuda``.
    """

    def __init__(self, config: ConfigT, checkpoint_dir: Path, *, device: str = "cpu") -> None:
        self._config = config
        self._root = Path(checkpoint_dir)
        self._device = device
        self._batch_size: int = config.resolve().generate_batch_size  # type: ignore[attr-defined]

    @property
    def needs_source(self) -> bool:
        """True in ``variation`` mode: each request carries the real image to vary (never for a
        generator without a ``mode``: its samples come from noise)."""
        return getattr(self._config, "mode", None) == "variation"

    @property
    def batch_size(self) -> int:
        """Images per sampling batch (``generate_batch_size``)."""
        return self._batch_size

    def _newest(self, what: str, generator: str) -> Path:
        """The newest checkpoint; ``GeneratorError`` saying there is no ``what`` when there is none."""
        path = latest_checkpoint(self._root)
        if path is None:
            raise GeneratorError(
                f"no {what} in {self._root}; train one with `medaug generator train {generator} --store STORE`"
            )
        return path


def source_tensor(request: GenerationRequest, resolution: int, generator: str) -> torch.Tensor:
    """The real image a variation ``request`` carries, as a tensor in [0, 1] of ``resolution``.

    Raises:
        GeneratorError: the request carries no source image.
        InputError: the source image cannot be decoded.
    """
    if request.source is None:
        raise GeneratorError(f"request {request.image_id}: {generator} variation mode needs a source image")
    try:
        return png_to_tensor(request.source, size=resolution)
    except (OSError, ValueError) as exc:
        raise InputError(f"source image {request.source_id} of {request.image_id}: cannot decode ({exc})") from None


