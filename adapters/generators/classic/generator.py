"""The classic generator: named torchvision.transforms.v2 operations applied to a real image."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as F

from medaug.adapters.generators.classic.config import ClassicConfig
from medaug.adapters.generators.classic.operations import build_operations, replay, run_operations
from medaug.adapters.png import decode_png, encode_png
from medaug.adapters.torch_support import resolve_device
from medaug.application.errors import GeneratorError
from medaug.application.ports import GenerationRequest, GenerationResult

_UNREADABLE = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)
"""What Pillow raises for bytes that are not a readable image."""


class ClassicGenerator:
    """ImageGenerator that derives each synthetic image from a real one with classic operations.

    The source is resized to the requested size, then the configured operations (a preset such
    as the thesis's flips and brightness increase, or a list of named operations) run with
    parameters drawn from a generator seeded by the request's seed. ``parameters`` record the
    recipe and every applied operation with the values used, so ``replay`` reproduces the image.

    Args:
        config: the preset or operations to apply.
        device: ``auto`` (CUDA when present), ``cpu`` or ``cuda``.
    """

    def __init__(self, config: ClassicConfig | None = None, *, device: str = "cpu") -> None:
        self._config = config or ClassicConfig()
        self._operations = build_operations(self._config.specs())
        self._device = resolve_device(device)

    @property
    def name(self) -> str:
        return "classic"

    @property
    def needs_source(self) -> bool:
        return True

    @property
    def batch_size(self) -> int:
        return self._config.batch_size

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """One augmented PNG per request, in order.

        Raises:
            GeneratorError: a request has no source, or its source is not a readable image.
        """
        return [self._generate_one(request) for request in requests]

    def replay(self, source: bytes, parameters: dict[str, Any]) -> bytes:
        """Rebuild an image from its source PNG and the ``parameters`` it was recorded with.

        Raises:
            GeneratorError: the source is unreadable or the parameters name an unknown operation.
        """
        image = self._load(source, int(parameters["size"]), "replayed source")
        return self._encode(replay(image, parameters["operations"]))

    def _generate_one(self, request: GenerationRequest) -> GenerationResult:
        if request.source is None:
            raise GeneratorError(f"classic: request {request.image_id} has no source image, which it needs")
        image = self._load(request.source, request.size, f"source {request.source_id} of {request.image_id}")
        gen = torch.Generator().manual_seed(request.seed)
        image, records = run_operations(self._operations, image, gen)
        parameters = {"preset": self._config.label, "size": request.size, "operations": records}
        return GenerationResult(image_id=request.image_id, data=self._encode(image), parameters=parameters)

    def _load(self, data: bytes, size: int, what: str) -> torch.Tensor:
        try:
            pixels = decode_png(data)
        except _UNREADABLE as exc:
            raise GeneratorError(f"classic: {what} is not a readable image ({exc})") from None
        image = torch.from_numpy(pixels).permute(2, 0, 1).contiguous().to(self._device)
        if tuple(image.shape[-2:]) != (size, size):
            image = F.resize(image, [size, size], interpolation=InterpolationMode.BILINEAR, antialias=True)
        return image

    @staticmethod
    def _encode(image: torch.Tensor) -> bytes:
        return encode_png(image.permute(1, 2, 0).cpu().numpy())
