"""``SyntheticScreen``: drop generated images that are off-label or near-copies of a training image.

The classifier-likelihood screen keeps a synthetic image only when a classifier trained on the real
training images gives its intended grade at least ``min_confidence`` (or, with ``keep_real``, at
least the per-grade threshold that keeps that share of held-out real images of the grade); the near-copy screen drops an
image whose fine-structure correlation or SSIM with a training image (or its mirror image) reaches
the memorisation thresholds. Both use the quality analyzer's cached grading CNN and pixel bank.
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog
import torch

from medaug.adapters.quality.analyzer import FundusQualityAnalyzer, Profile, Reference
from medaug.adapters.quality.config import ScreenConfig
from medaug.adapters.quality.similarity import Match, is_near_copy
from medaug.application.errors import ConfigError
from medaug.application.ports import (
    GenerationRequest,
    GenerationResult,
    ImageStore,
    NullProgress,
    ProgressSink,
    QualityRequest,
    ScreenVerdict,
)
from medaug.domain import FundusImage, Origin, Split
from medaug.domain.splits import split_validation

_log = structlog.get_logger(__name__)

CALIBRATION_FRACTION = 0.2
"""Share of the real training images held out to calibrate ``keep_real`` when a store has no validation split."""


class QualityScreen:
    """SyntheticScreen over a store's real images.

    The grading CNN is trained (or read from the analyzer's cache) on the store's real training
    split the first time an image is screened.

    Args:
        analyzer: supplies the grading CNN, the pixel bank and the thresholds.
        store: the store whose real training images are the reference.
        config: what to drop.
        progress: where the CNN's training reports progress.
        real: the real images the screen learns from and compares with (None: the store's real
            training split); a k-fold experiment passes one fold's training images, so neither
            the judge nor its calibration ever sees the fold's test images.

    Raises:
        ConfigError: the screen drops nothing (no ``min_confidence``, ``keep_real`` or ``drop_near_copies``).
    """

    def __init__(
        self,
        analyzer: FundusQualityAnalyzer,
        store: ImageStore,
        config: ScreenConfig,
        *,
        progress: ProgressSink | None = None,
        real: Sequence[FundusImage] | None = None,
    ) -> None:
        if not config.enabled:
            raise ConfigError("the synthetic-image screen needs min_confidence, keep_real or drop_near_copies")
        self._analyzer = analyzer
        self._store = store
        self._config = config
        self._progress = progress or NullProgress()
        self._reference: Reference | None = None
        self._thresholds: dict[int, float] | None = None
        self._real = tuple(real) if real is not None else None

    @property
    def name(self) -> str:
        return "quality"

    def screen(self, requests: Sequence[GenerationRequest], results: Sequence[GenerationResult]) -> list[ScreenVerdict]:
        """One verdict per result (see ``SyntheticScreen``).

        Raises:
            ConfigError: the store lacks real training or test images.
            InputError: a result is not a decodable image.
        """
        if not results:
            return []
        reference = self._real_side()
        found = self._analyzer.examine(reference, [r.data for r in results], [r.image_id for r in results])
        return [
            self._verdict(request, float(found.probabilities[i, int(request.grade)]), found.matches[i],
                          float(found.cosines[i]), reference.real.records[found.matches[i].index].id)
            for i, request in enumerate(requests)
        ]  # fmt: skip

    def _verdict(
        self, request: GenerationRequest, confidence: float, match: Match, cosine: float, nearest: str
    ) -> ScreenVerdict:
        thresholds = self._analyzer.config.thresholds
        scores = {
            "confidence": round(confidence, 4),
            "pixel_correlation": round(match.correlation, 4),
            "ssim": round(match.ssim, 4),
            "nearest": nearest,
        }
        minimum = self._threshold(int(request.grade))
        if minimum is not None:
            scores["threshold"] = round(minimum, 4)
        if minimum is not None and confidence < minimum:
            reason = f"confidence {confidence:.3f} in grade {int(request.grade)} is below {minimum:g}"
            return ScreenVerdict(accepted=False, reason=reason, scores=scores)
        if self._config.drop_near_copies and is_near_copy(match.correlation, match.ssim, cosine, thresholds):
            reason = f"near-copy of {nearest} (pixel correlation {match.correlation:.3f}, SSIM {match.ssim:.3f})"
            return ScreenVerdict(accepted=False, reason=reason, scores=scores)
        return ScreenVerdict(accepted=True, scores=scores)

    def _threshold(self, grade: int) -> float | None:
        if self._config.keep_real is None:
            return self._config.min_confidence
        if self._thresholds is None:
            self._thresholds = self._calibrate(self._config.keep_real)
        return self._thresholds.get(grade, self._thresholds[-1])

    def _calibrate(self, keep: float) -> dict[int, float]:
        """Per grade, the intended-grade confidence that ``keep`` of its held-out real images reach.

        The store's validation images are the held-out set. Without them, a stratified fifth of the
        real training images (patient groups kept whole, as for a validation split) is held out
        from a second judge, trained on the other four fifths,
        and graded by it: the test images never choose which synthetic images are kept. Key -1
        holds the threshold over all grades, for a grade without held-out images.
        """
        reference = self._real_side()
        val = self._store.list(split=Split.VAL, origin=Origin.REAL) if self._real is None else []
        if val:
            held_out = self._analyzer.profile(reference.classifier, reference.space, self._store, val)
        else:
            held_out = self._calibration_profile()
        grades = held_out.grades
        confidence = held_out.probabilities[torch.arange(len(grades)), grades].double()
        thresholds = {-1: float(torch.quantile(confidence, 1.0 - keep))}
        for grade in grades.unique().tolist():
            thresholds[int(grade)] = float(torch.quantile(confidence[grades == grade], 1.0 - keep))
        _log.info("screen_calibrated", keep_real=keep, held_out="val" if val else "train-fifth", thresholds=thresholds)
        return thresholds

    def _calibration_profile(self) -> Profile:
        """The held-out fifth of the real training images, graded by a judge trained on the rest."""
        rest, fifth = split_validation(self._training(), CALIBRATION_FRACTION, self._analyzer.seed)
        request = QualityRequest(augmentation="screen-calibration", real=tuple(rest), synthetic=(), held_out=tuple(fifth))
        return self._analyzer.reference(request, self._store, self._progress).held_out

    def _training(self) -> list[FundusImage]:
        if self._real is not None:
            return list(self._real)
        return self._store.list(split=Split.TRAIN, origin=Origin.REAL)

    def _real_side(self) -> Reference:
        if self._reference is None and self._real is not None:
            # Only predicted, never trained on: the held-out profile is a fifth of the given images.
            held_out = split_validation(list(self._real), CALIBRATION_FRACTION, self._analyzer.seed)[1]
            request = QualityRequest(augmentation="screen", real=self._real, synthetic=(), held_out=tuple(held_out))
            self._reference = self._analyzer.reference(request, self._store, self._progress)
        if self._reference is None:
            store = self._store
            real = store.list(split=Split.TRAIN, origin=Origin.REAL)
            held_out = store.list(split=Split.TEST, origin=Origin.REAL)
            if not real or not held_out:
                raise ConfigError(f"{store.location}: the synthetic-image screen needs real training and test images")
            request = QualityRequest(
                augmentation="screen", real=tuple(real), synthetic=(), held_out=tuple(held_out),
                val=tuple(store.list(split=Split.VAL, origin=Origin.REAL)),
            )  # fmt: skip
            self._reference = self._analyzer.reference(request, store, self._progress)
        return self._reference

