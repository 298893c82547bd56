"""Ports: Generators of synthetic images, and their training."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from medaug.application.ports.progress import ProgressSink
from medaug.application.ports.storage import PngBytes
from medaug.domain import Grade


class GenerationRequest(BaseModel):
    """One image a generator must make.

    Attributes:
        image_id: id the result will be stored under.
        grade: the grade to make.
        seed: the seed that makes the result reproducible.
        source_id: the real image it derives from, if any.
        source: that image's PNG bytes, if any.
        size: the side of the square output in pixels.
    """

    model_config = ConfigDict(frozen=True)

    image_id: str
    grade: Grade
    seed: int
    source_id: str | None = None
    source: PngBytes | None = None
    size: int


class GenerationResult(BaseModel):
    """A generated image and the parameters that made it (recorded in its provenance).

    ``refused`` says why a generator declined the request (e.g. a paid service's content-policy
    refusal); ``data`` is then empty and the service stores nothing for it.
    """

    model_config = ConfigDict(frozen=True)

    image_id: str
    data: PngBytes
    parameters: dict[str, Any] = Field(default_factory=dict)
    refused: str | None = None


@runtime_checkable
class ImageGenerator(Protocol):
    """Makes synthetic fundus images of a given grade, optionally from a real source image.

    Contract:
        - ``name`` identifies the generator in provenance (``"classic"``, ``"diffusion"``...).
        - ``needs_source``: True when every request must carry ``source`` bytes.
        - ``batch_size``: how many requests the service should pass per ``generate`` call.
        - ``generate`` returns one result per request, in order, each a ``size`` x ``size`` RGB
          PNG (or, for a request it declines, a result with ``refused`` set and no data). The same request (same seed) gives the same pixels; different seeds differ.
          ``parameters`` are JSON-serialisable and enough to reproduce the image.
        - A generator that needs training and has none raises ``GeneratorError`` saying how to
          train it; a request the generator cannot honour raises ``GeneratorError``.
    """

    @property
    def name(self) -> str: ...

    @property
    def needs_source(self) -> bool: ...

    @property
    def batch_size(self) -> int: ...

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]: ...


class CostEstimate(BaseModel):
    """What generating some images would cost with a paid generator, before anything is sent.

    Attributes:
        requests: images asked for.
        reused: of those, how many earlier paid results (or spares) serve at no cost.
        refused: of those, how many were refused before and are skipped without a call.
        calls: API calls that would be made.
        images: images that would be billed (``calls`` x images per call).
        usd: estimated cost in US dollars.
        notes: one-line remarks (budget stops, privacy gate...).
    """

    model_config = ConfigDict(frozen=True)

    requests: int
    reused: int = 0
    refused: int = 0
    calls: int = 0
    images: int = 0
    usd: float = 0.0
    notes: tuple[str, ...] = ()


@runtime_checkable
class CostEstimating(Protocol):
    """A generator that calls a paid service and can say what requests would cost.

    Contract: ``estimate`` sends nothing and writes nothing; it counts the calls ``generate``
    would make for ``requests`` (``source`` bytes may be absent) and their estimated price.
    """

    def estimate(self, requests: Sequence[GenerationRequest]) -> CostEstimate: ...


class LabelledImage(BaseModel):
    """A stored image with its grade, as handed to trainers."""

    model_config = ConfigDict(frozen=True)

    image_id: str
    grade: Grade
    data: PngBytes


class GeneratorTrainingResult(BaseModel):
    """What training a generator produced.

    Attributes:
        generator: the generator's name.
        checkpoint: where the weights were written (a folder or file path).
        steps: optimisation steps done in total (including earlier resumed runs).
        seconds: wall time of this run.
        final_loss: the last (smoothed) training loss, if any.
        metrics: any further figures (images/s, diversity...), JSON-serialisable.
    """

    model_config = ConfigDict(frozen=True)

    generator: str
    checkpoint: str
    steps: int
    seconds: float
    final_loss: float | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)


@runtime_checkable
class GeneratorTrainer(Protocol):
    """Trains a generator (DCGAN, diffusion...) on real training images.

    Contract:
        - ``train`` fits the model on ``images`` (real training-split images only, with their
          grades), writes safetensors checkpoints (plus a config file) to the trainer's
          checkpoint folder as it goes, and returns where they are.
        - With ``resume=True`` a run killed earlier continues from its last checkpoint; a run
          that already reached its configured length returns at once.
        - Deterministic by the configured seed (on CPU).
        - Reports progress (loss, images/s) through ``progress``.
        - Bad configuration or empty input raises ``ConfigError`` before any work.
    """

    @property
    def name(self) -> str: ...

    def train(
        self, images: Sequence[LabelledImage], *, progress: ProgressSink, resume: bool = True
    ) -> GeneratorTrainingResult: ...
