"""``QualityAnalyzer``: realism, label fidelity and memorisation of synthetic fundus images, offline."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import structlog
import torch

from medaug.adapters.image_tensors import ImageTensors, shared_cache
from medaug.adapters.quality.config import QualityConfig
from medaug.adapters.quality.features import InceptionFeatures
from medaug.adapters.quality.judge import Judge, JudgeMaker
from medaug.adapters.quality.metrics import distribution_scores, diversity
from medaug.adapters.quality.shortcut import shortcut_check
from medaug.adapters.quality.similarity import Match, SimilarityBank, nearest_by_features, nearest_records, summarise
from medaug.adapters.torch_support import png_to_tensor, resolve_device, torch_threads
from medaug.application.errors import ConfigError, InputError
from medaug.application.ports import ImageStore, NullProgress, ProgressSink, QualityRequest
from medaug.domain import FundusImage, Grade
from medaug.domain.grades import ALL_GRADES
from medaug.domain.metrics import quadratic_weighted_kappa
from medaug.domain.quality import (
    DistributionScores,
    GradeFidelity,
    LabelFidelity,
    Memorisation,
    NearestReal,
    QualityReport,
)

_log = structlog.get_logger(__name__)

_INCEPTION_SIZE = 299


@dataclass(frozen=True)
class Profile:
    """What the analyzer knows of a set of images: grades, classifier scores, features."""

    records: tuple[FundusImage, ...]
    probabilities: torch.Tensor
    features: torch.Tensor

    @property
    def grades(self) -> torch.Tensor:
        return torch.tensor([int(r.grade) for r in self.records], dtype=torch.long)

    def scaled(self, scale: float) -> Profile:
        """The same profile with its features divided by ``scale``."""
        return Profile(records=self.records, probabilities=self.probabilities, features=self.features / scale)

    def of_grade(self, grade: Grade) -> torch.Tensor:
        """The features of the images of ``grade``."""
        return self.features[self.grades == int(grade)]


@dataclass(frozen=True)
class Reference:
    """The real side of every assessment on one store: classifier, profiles and the pixel bank."""

    classifier: Judge
    space: Judge
    """Whose features distances are measured in (the classifier itself unless ``features`` names another)."""
    real: Profile
    held_out: Profile
    bank: SimilarityBank
    scale: float = 1.0
    """What features are divided by: the real training features' spread (see ``_spread``)."""


class FundusQualityAnalyzer:
    """QualityAnalyzer in a judge's feature space (or Inception's), with no downloaded weights.

    Args:
        config: feature space, judge, thresholds, metric options.
        judges: the judge makers by name (``efficientnet-lite0``, ``fundus-cnn``); those named by
            ``config.classifier`` and ``config.features`` must be among them.
        cache_dir: where a judge's checkpoints may be cached (one folder per store).
        seed: the seed of the judges and of KID's subsets (``config.seed`` wins when set).
        device: ``auto`` (CUDA when present), ``cpu`` or ``cuda``.
        images: decoded-image cache (the process-wide one by default).

    Raises:
        ConfigError: a judge the configuration names is not given.
    """

    def __init__(
        self,
        config: QualityConfig | None = None,
        *,
        judges: Mapping[str, JudgeMaker],
        cache_dir: Path,
        seed: int,
        device: str = "cpu",
        images: ImageTensors | None = None,
    ) -> None:
        self.config = config or QualityConfig()
        self.cache_dir = Path(cache_dir)
        self.seed = self.config.seed if self.config.seed is not None else seed
        self.device = resolve_device(device)
        self.images = images or ImageTensors(shared_cache())
        self._inception = InceptionFeatures(self.config.inception_weights) if self.config.features == "inception" else None
        wanted = {self.config.classifier} | ({self.config.features} - {"inception"})
        missing = sorted(wanted - set(judges))
        if missing:
            raise ConfigError(f"quality: no judge {', '.join(missing)} available; known: {', '.join(sorted(judges))}")
        self._judges = dict(judges)
        self._references: dict[tuple[str, ...], Reference] = {}

    @property
    def feature_space(self) -> str:
        return self.config.features

    # -- the port ------------------------------------------------------------------------------

    def assess(self, request: QualityRequest, store: ImageStore, *, progress: ProgressSink | None = None) -> QualityReport:
        """Score ``request.synthetic`` and, as the reference, ``request.held_out`` (see ``QualityAnalyzer``).

        Raises:
            ConfigError: no real training or held-out images.
            InputError: a stored image cannot be decoded.
        """
        progress = progress or NullProgress()
        if not request.real or not request.held_out:
            raise ConfigError(f"{store.location}: quality needs real training and held-out (test) images")
        started = time.perf_counter()
        with torch_threads(self.config.num_threads):
            reference = self.reference(request, store, progress)
            synthetic = self.profile(reference.classifier, reference.space, store, request.synthetic).scaled(reference.scale)
            report = QualityReport(
                augmentation=request.augmentation,
                generators=tuple(sorted({r.provenance.generator for r in request.synthetic})),
                feature_space=self.feature_space,
                classifier_accuracy=_accuracy(reference.held_out),
                overall=self._scores(reference.real.features, synthetic.features),
                per_grade=self._per_grade(reference.real, synthetic),
                reference=self._scores(reference.real.features, reference.held_out.features),
                reference_per_grade=self._per_grade(reference.real, reference.held_out, grades=_grades_of(synthetic)),
                fidelity=self._fidelity(synthetic, tstr=self._tstr(request, store, progress)),
                reference_fidelity=self._fidelity(reference.held_out, tstr=_accuracy_kappa(reference.held_out)),
                memorisation=self._memorisation(reference, synthetic, store),
                real_diversity=diversity(reference.real.features),
                thresholds=self.config.thresholds,
                shortcut=shortcut_check(
                    reference.real.records, reference.real.features.numpy(), synthetic.records,
                    synthetic.features.numpy(), seed=self.seed,
                ),
                seconds=time.perf_counter() - started,
            )
        return report

    # -- the real side -------------------------------------------------------------------------

    def reference(self, request: QualityRequest, store: ImageStore, progress: ProgressSink) -> Reference:
        """The judge, real and held-out profiles and pixel bank of a store (computed once)."""
        key = (store.identity, *(f"{part}:{r.id}" for part in ("real", "val", "held_out") for r in getattr(request, part)))
        if key not in self._references:
            classifier = self._fit(self.config.classifier, store, request, progress)
            space = classifier
            if self.config.features not in (self.config.classifier, "inception"):
                space = self._fit(self.config.features, store, request, progress)
            bank = SimilarityBank(
                self.images.load(store, request.real, self.config.similarity_size),
                sigma=self.config.highpass_sigma,
                flip_invariant=self.config.flip_invariant,
            )
            real = self.profile(classifier, space, store, request.real)
            scale = 1.0 if self._inception is not None else _spread(real.features)
            self._references[key] = Reference(
                classifier=classifier,
                space=space,
                real=real.scaled(scale),
                held_out=self.profile(classifier, space, store, request.held_out).scaled(scale),
                bank=bank,
                scale=scale,
            )
        return self._references[key]

    def _fit(self, name: str, store: ImageStore, request: QualityRequest, progress: ProgressSink) -> Judge:
        return self._judges[name].fit(
            store, request.real, val=request.val, test=request.held_out, seed=self.seed, progress=progress
        )

    def profile(self, classifier: Judge, space: Judge, store: ImageStore, records: Sequence[FundusImage]) -> Profile:
        """The judge's probabilities and the feature space's features of stored images (unscaled)."""
        probabilities, features = classifier.profile(store, records)
        if space is not classifier:
            features = space.profile(store, records)[1]
        if self._inception is not None:
            features = self._inception_features(store, records)
        return Profile(records=tuple(records), probabilities=probabilities, features=features)

    def _inception_features(self, store: ImageStore, records: Sequence[FundusImage], batch: int = 32) -> torch.Tensor:
        assert self._inception is not None
        parts = []
        for start in range(0, len(records), batch):
            images = self.images.load(store, records[start : start + batch], _INCEPTION_SIZE)
            parts.append(self._inception(images.to(self.device)).cpu())
        return torch.cat(parts) if parts else torch.empty(0, 2048)

    # -- the figures ---------------------------------------------------------------------------

    def _scores(self, real: torch.Tensor, images: torch.Tensor) -> DistributionScores:
        c = self.config
        return distribution_scores(
            real, images, kid_subset_size=c.kid_subset_size, kid_subsets=c.kid_subsets, k=c.prdc_k, seed=self.seed
        )

    def _per_grade(self, real: Profile, images: Profile, grades: Sequence[Grade] | None = None) -> dict[Grade, DistributionScores]:
        chosen = grades if grades is not None else _grades_of(images)
        return {g: self._scores(real.of_grade(g), images.of_grade(g)) for g in chosen}

    def _fidelity(self, images: Profile, *, tstr: tuple[float, float] | None) -> LabelFidelity:
        grades = images.grades
        per_grade = {g: self._grade_fidelity(images.probabilities[grades == int(g)], g) for g in _grades_of(images)}
        intended = images.probabilities.gather(1, grades[:, None])[:, 0]
        overall = GradeFidelity(
            n=len(images.records),
            agreement=float((images.probabilities.argmax(dim=1) == grades).double().mean()),
            confidence=float(intended.double().mean()),
            below_threshold=int((intended < self.config.thresholds.min_confidence).sum()),
        )
        return LabelFidelity(
            overall=overall,
            per_grade=per_grade,
            tstr_accuracy=tstr[0] if tstr else None,
            tstr_kappa=tstr[1] if tstr else None,
        )

    def _grade_fidelity(self, probabilities: torch.Tensor, grade: Grade) -> GradeFidelity:
        intended = probabilities[:, int(grade)]
        return GradeFidelity(
            n=int(probabilities.shape[0]),
            agreement=float((probabilities.argmax(dim=1) == int(grade)).double().mean()),
            confidence=float(intended.double().mean()),
            below_threshold=int((intended < self.config.thresholds.min_confidence).sum()),
        )

    def _tstr(self, request: QualityRequest, store: ImageStore, progress: ProgressSink) -> tuple[float, float] | None:
        if not self.config.tstr:
            return None
        predictions = self._judges[self.config.classifier].train_and_predict(
            store, request.synthetic, test=request.held_out, seed=self.seed, progress=progress
        )
        return _agreement(predictions.labels, predictions.predicted)

    def _memorisation(self, reference: Reference, synthetic: Profile, store: ImageStore) -> Memorisation:
        nearest = self.nearest(reference, synthetic, store)
        held_out = self.nearest(reference, reference.held_out, store)
        return Memorisation(
            summary=summarise(nearest), reference=summarise(held_out), nearest=tuple(nearest),
            reference_nearest=tuple(held_out),
        )  # fmt: skip

    def nearest(self, reference: Reference, images: Profile, store: ImageStore) -> list[NearestReal]:
        """Every image's nearest real training image, flagged, most similar first."""
        pixels = self.images.load(store, images.records, self.config.similarity_size)
        matches = reference.bank.nearest(pixels, candidates=self.config.ssim_candidates)
        cosines, indices = nearest_by_features(images.features, reference.real.features)
        return nearest_records(
            [r.id for r in images.records], [r.grade for r in images.records], matches, cosines, indices,
            [r.id for r in reference.real.records], self.config.thresholds,
        )  # fmt: skip


    def examine(self, reference: Reference, images: Sequence[bytes], names: Sequence[str]) -> Examination:
        """Grade probabilities, nearest training images and feature cosines of PNG images not in a store.

        Args:
            reference: the store's real side (from ``reference``).
            images: PNG bytes, any size.
            names: the images' names, for errors.

        Raises:
            InputError: an image cannot be decoded (naming it).
        """
        with torch_threads(self.config.num_threads):
            probabilities, features = reference.classifier.scores(_decode(images, names, reference.classifier.size))
            if reference.space is not reference.classifier:
                features = reference.space.scores(_decode(images, names, reference.space.size))[1]
            if self._inception is not None:
                features = self._inception(_decode(images, names, _INCEPTION_SIZE).to(self.device)).cpu()
            matches = reference.bank.nearest(
                _decode(images, names, self.config.similarity_size), candidates=self.config.ssim_candidates
            )
            cosines, indices = nearest_by_features(features / reference.scale, reference.real.features)
        return Examination(probabilities=probabilities, matches=matches, cosines=cosines,
                           feature_ids=[reference.real.records[int(i)].id for i in indices])


@dataclass(frozen=True)
class Examination:
    """What ``FundusQualityAnalyzer.examine`` found for each image, in order."""

    probabilities: torch.Tensor
    matches: list[Match]
    cosines: torch.Tensor
    feature_ids: list[str]


def _decode(images: Sequence[bytes], names: Sequence[str], size: int | None) -> torch.Tensor:
    """PNG bytes -> uint8 Nx3xSxS, exactly as stored images are decoded (``decode_image``)."""
    tensors = []
    for data, name in zip(images, names, strict=True):
        try:
            tensors.append(png_to_tensor(data, size).mul_(255.0).round_().to(torch.uint8))
        except (OSError, ValueError, SyntaxError) as exc:
            raise InputError(f"{name}: cannot decode generated image ({exc})") from None
    return torch.stack(tensors) if tensors else torch.empty(0, 3, size or 1, size or 1, dtype=torch.uint8)


def _spread(features: torch.Tensor) -> float:
    """The real features' root-mean-square deviation per dimension.

    A network's activations have an arbitrary scale; dividing by this puts FID and KID in units of
    the real images' own spread, so figures from different feature spaces are comparable (Inception
    features are left raw, to stay comparable with published FIDs).
    """
    if features.shape[0] < 2:
        return 1.0
    spread = float((features.double() - features.double().mean(dim=0)).square().mean().sqrt())
    return spread if spread > 1e-12 else 1.0


def _grades_of(images: Profile) -> list[Grade]:
    present = {int(g) for g in images.grades.tolist()}
    return [g for g in ALL_GRADES if int(g) in present]


def _accuracy(images: Profile) -> float:
    return float((images.probabilities.argmax(dim=1) == images.grades).double().mean())


def _accuracy_kappa(images: Profile) -> tuple[float, float]:
    return _agreement(images.grades.tolist(), images.probabilities.argmax(dim=1).tolist())


def _agreement(labels: Sequence[int], predicted: Sequence[int]) -> tuple[float, float]:
    """Accuracy and quadratic weighted kappa over the five grades."""
    accuracy = float(np.mean(np.asarray(labels) == np.asarray(predicted))) if len(labels) else 0.0
    return accuracy, quadratic_weighted_kappa(labels, predicted)

