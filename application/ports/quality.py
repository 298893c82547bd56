"""Ports: Trust in synthetic images: quality analysis and the screen."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from medaug.application.ports.generation import GenerationRequest, GenerationResult
from medaug.application.ports.progress import ProgressSink
from medaug.application.ports.storage import ImageStore
from medaug.domain import FundusImage
from medaug.domain.quality import QualityReport


class QualityRequest(BaseModel):
    """The images one quality assessment compares.

    Attributes:
        augmentation: the augmentation set assessed.
        real: real training images: the reference distribution, the pool of photographs a
            near-copy could leak, and what the grading classifier learns from.
        synthetic: the set's synthetic images.
        held_out: real images never trained on (the test split): scored like the synthetic ones
            as the reference, and the test set of train-on-synthetic / test-on-real.
        val: real validation images, for the grading classifier's model selection (may be empty).
    """

    model_config = ConfigDict(frozen=True)

    augmentation: str
    real: tuple[FundusImage, ...]
    synthetic: tuple[FundusImage, ...]
    held_out: tuple[FundusImage, ...]
    val: tuple[FundusImage, ...] = ()


@runtime_checkable
class QualityAnalyzer(Protocol):
    """Measures how realistic synthetic images are, whether they carry their grade, and whether
    they are near-copies of training images, offline (no downloaded weights).

    Contract:
        - ``assess(request, store)`` reads pixels from ``store`` and returns a ``QualityReport``:
          FID, KID, precision/recall/density/coverage and diversity of the synthetic images
          against ``request.real``, overall and per grade, beside the same figures for
          ``request.held_out``; label fidelity from a classifier trained on ``request.real``
          only; every synthetic image's nearest real training image (pixels and features),
          most similar first, with near-copies flagged by the configured thresholds.
        - Never trains on ``held_out`` images; deterministic by its configured seed on CPU.
        - ``request.real`` and ``request.held_out`` empty raise ``ConfigError``; a figure that
          cannot be computed for too few images is None, never an error.
        - A model it trains may be cached and reused for the same real images and settings.
    """

    @property
    def feature_space(self) -> str: ...

    def assess(self, request: QualityRequest, store: ImageStore, *, progress: ProgressSink) -> QualityReport: ...


class ScreenVerdict(BaseModel):
    """Whether a generated image may be stored, and the scores that decided it.

    Attributes:
        accepted: True to store the image.
        reason: why it was rejected (one line), None when accepted.
        scores: the figures it was judged on (JSON-serialisable; kept in its provenance).
    """

    model_config = ConfigDict(frozen=True)

    accepted: bool
    reason: str | None = None
    scores: dict[str, Any] = Field(default_factory=dict)


@runtime_checkable
class SyntheticScreen(Protocol):
    """Judges generated images before they are stored (off-label images, near-copies).

    Contract:
        - ``screen(requests, results)`` returns one verdict per result, in order, for results that
          carry data (refused results are never passed); it writes nothing.
        - Deterministic: the same image and request give the same verdict.
        - ``name`` names the screen in provenance.
    """

    @property
    def name(self) -> str: ...

    def screen(
        self, requests: Sequence[GenerationRequest], results: Sequence[GenerationResult]
    ) -> list[ScreenVerdict]: ...
