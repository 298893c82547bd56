"""Trust in synthetic images: how realistic they are, whether they carry their grade, and whether
they are near-copies of a patient's photograph.

Every figure is computed against the real training images (the distribution a generator learns
from and the photographs it could leak) and is shown beside the same figure for held-out real
images (the test split), which is what a perfect generator would score.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from medaug.domain.grades import ALL_GRADES, Grade


class QualityThresholds(BaseModel):
    """When a synthetic image counts as a near-copy, and how confident its grade must be.

    Attributes:
        pixel_correlation: flag an image whose fine-structure pixel correlation with a training
            image (or its mirror image) reaches this value.
        ssim: flag an image whose SSIM with that training image reaches this value.
        feature_cosine: flag an image whose feature cosine with a training image reaches this
            value; None leaves feature similarity out of the flag (images of one grade are close
            in a grading network's feature space without being copies).
        min_confidence: the classifier's probability of the intended grade below which a
            synthetic image counts as off-label (and the screen drops it).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    pixel_correlation: float = Field(default=0.8, gt=0, le=1)
    ssim: float = Field(default=0.95, gt=0, le=1)
    feature_cosine: float | None = Field(default=None, gt=0, le=1)
    min_confidence: float = Field(default=0.3, ge=0, le=1)


class DistributionScores(BaseModel):
    """How close a set of images is to the real training images, in a feature space.

    Attributes:
        n_real: real training images compared with.
        n_images: images of the set.
        fid: Fréchet distance (lower is better); None with fewer than 2 images on a side.
        kid_mean, kid_std: kernel distance over random subsets (lower is better).
        kid_subset_size: the subset size used (fitted to small sets: at most 50).
        precision: share of the set inside the real images' k-NN manifold (realism).
        recall: share of real images inside the set's k-NN manifold (variety covered).
        density: how many real neighbourhoods contain each image, over k (about 1 for real data).
        coverage: share of real images with an image of the set in their k-NN ball.
        diversity: mean pairwise cosine distance between the set's features.
    """

    model_config = ConfigDict(frozen=True)

    n_real: int
    n_images: int
    fid: float | None = None
    kid_mean: float | None = None
    kid_std: float | None = None
    kid_subset_size: int | None = None
    precision: float | None = None
    recall: float | None = None
    density: float | None = None
    coverage: float | None = None
    diversity: float | None = None


class GradeFidelity(BaseModel):
    """How a classifier trained on real images grades one grade's images.

    Attributes:
        n: images of the grade.
        agreement: share graded as their intended (or true) grade.
        confidence: mean probability the classifier gives the intended grade.
        below_threshold: images whose confidence is below ``min_confidence``.
    """

    model_config = ConfigDict(frozen=True)

    n: int
    agreement: float
    confidence: float
    below_threshold: int = 0


class LabelFidelity(BaseModel):
    """Whether images carry the grade they are labelled with.

    Attributes:
        overall: over every image.
        per_grade: per intended grade.
        tstr_accuracy, tstr_kappa: a classifier trained on the set alone, tested on the real test
            images (for held-out real images: trained on the real training images); None when
            not computed.
    """

    model_config = ConfigDict(frozen=True)

    overall: GradeFidelity
    per_grade: dict[Grade, GradeFidelity] = Field(default_factory=dict)
    tstr_accuracy: float | None = None
    tstr_kappa: float | None = None


class NearestReal(BaseModel):
    """One image's most similar real training image, by pixels and by features.

    Attributes:
        image_id: the image compared.
        grade: its (intended) grade.
        pixel_id: the training image with the highest fine-structure pixel correlation.
        pixel_transform: how that image was mirrored to match (``identity``, ``hflip``...).
        pixel_correlation: that correlation.
        ssim: the highest SSIM with the few training images closest by that correlation
            (mirrored as they matched).
        feature_id: the training image with the highest feature cosine.
        feature_cosine: that cosine, with the features centred on the training images' mean.
        flagged: a near-copy by the thresholds.
    """

    model_config = ConfigDict(frozen=True)

    image_id: str
    grade: Grade
    pixel_id: str
    pixel_transform: str = "identity"
    pixel_correlation: float
    ssim: float
    feature_id: str
    feature_cosine: float
    flagged: bool = False


class SimilaritySummary(BaseModel):
    """The distribution of nearest-training-image similarities of a set of images.

    Attributes:
        n: images.
        flagged: near-copies by the thresholds.
        correlation, ssim, cosine: median, 95th percentile and maximum of each similarity.
    """

    model_config = ConfigDict(frozen=True)

    n: int
    flagged: int
    correlation: tuple[float, float, float]
    ssim: tuple[float, float, float]
    cosine: tuple[float, float, float]


class Memorisation(BaseModel):
    """Near-copies of training images among the synthetic images.

    Attributes:
        summary: the synthetic images' similarity distribution.
        reference: the same for held-out real images (other patients: what "not a copy" scores).
        nearest: every synthetic image's nearest training image, most similar first.
        reference_nearest: every held-out real image's nearest training image, most similar first.
    """

    model_config = ConfigDict(frozen=True)

    summary: SimilaritySummary
    reference: SimilaritySummary | None = None
    nearest: tuple[NearestReal, ...] = ()
    reference_nearest: tuple[NearestReal, ...] = ()

    def worst(self, count: int) -> list[NearestReal]:
        """The ``count`` synthetic images most similar to a training image."""
        return list(self.nearest[:count])


class ShortcutCheck(BaseModel):
    """Could a grader learn "looks synthetic" as a sign of a grade? Two questions, one flag.

    Separability: a classifier two-sample test of real versus synthetic training images in the
    grader's feature space (logistic regression, out-of-fold scores over folds grouped by source
    image, so a variation and its source never sit on both sides). Dependence: how the arm's
    synthetic share of the training images varies over the grades (a chi-square test of
    independence of origin and grade). An arm whose images are separable *and* whose synthetic
    share depends on the grade hands its grader a shortcut.

    Attributes:
        n_real, n_synthetic: images compared.
        folds: the grouped folds.
        auc: out-of-fold ROC AUC of real vs synthetic (0.5 = indistinguishable); None when too
            few images or groups.
        auc_low, auc_high: its 95 % bootstrap interval (resampling source groups).
        p_value: one-sided Mann-Whitney p of the out-of-fold scores (synthetic above real).
        share: per grade, synthetic images / all training images of the grade.
        chi2, chi2_p: the chi-square test of independence of origin and grade (None when only
            one grade has images).
        separable: ``auc_low`` above ``SEPARABLE_AUC``.
        grade_dependent: ``chi2_p`` below ``DEPENDENCE_P`` and the shares differ by more than
            ``SHARE_SPREAD``.
        policy: the plan policy that set the shares, when known.
    """

    model_config = ConfigDict(frozen=True)

    SEPARABLE_AUC: ClassVar[float] = 0.6
    DEPENDENCE_P: ClassVar[float] = 0.01
    SHARE_SPREAD: ClassVar[float] = 0.1

    n_real: int
    n_synthetic: int
    folds: int = 0
    auc: float | None = None
    auc_low: float | None = None
    auc_high: float | None = None
    p_value: float | None = None
    share: dict[Grade, float] = Field(default_factory=dict)
    chi2: float | None = None
    chi2_p: float | None = None
    policy: str | None = None

    @property
    def separable(self) -> bool:
        """The synthetic images can be told from real ones (AUC's lower bound above 0.6)."""
        return self.auc_low is not None and self.auc_low > self.SEPARABLE_AUC

    @property
    def grade_dependent(self) -> bool:
        """The synthetic share differs between grades (significantly and by more than 10 points)."""
        spread = max(self.share.values()) - min(self.share.values()) if self.share else 0.0
        return self.chi2_p is not None and self.chi2_p < self.DEPENDENCE_P and spread > self.SHARE_SPREAD

    @property
    def flagged(self) -> bool:
        """Separable and grade-dependent: "looks synthetic" tells the grader something about the grade."""
        return self.separable and self.grade_dependent


class QualityReport(BaseModel):
    """The quality of one augmentation set's synthetic images, beside held-out real images.

    Attributes:
        augmentation: the augmentation set (experiment arm).
        generators: generators that made its images.
        feature_space: where distances are measured (``fundus-cnn`` penultimate layer or
            ``inception``).
        classifier_accuracy: the real-trained grading classifier's accuracy on held-out images.
        overall: the synthetic images against the real training images.
        per_grade: the same per grade.
        reference: held-out real images against the real training images.
        reference_per_grade: the same per grade.
        fidelity: label fidelity of the synthetic images.
        reference_fidelity: the same for held-out real images (their true grades).
        memorisation: near-copies of training images.
        real_diversity: the real training images' own diversity, for scale.
        thresholds: the thresholds the flags and counts used.
        seconds: time the assessment took.
        shortcut: the shortcut check (separable and grade-dependent synthetic images), when run.
    """

    model_config = ConfigDict(frozen=True)

    augmentation: str
    generators: tuple[str, ...] = ()
    feature_space: str
    classifier_accuracy: float | None = None
    overall: DistributionScores
    per_grade: dict[Grade, DistributionScores] = Field(default_factory=dict)
    reference: DistributionScores
    reference_per_grade: dict[Grade, DistributionScores] = Field(default_factory=dict)
    fidelity: LabelFidelity
    reference_fidelity: LabelFidelity
    memorisation: Memorisation
    real_diversity: float | None = None
    thresholds: QualityThresholds = QualityThresholds()
    seconds: float = 0.0
    shortcut: ShortcutCheck | None = None

    @property
    def flagged(self) -> int:
        """Synthetic images flagged as near-copies."""
        return self.memorisation.summary.flagged

    def grades(self) -> list[Grade]:
        """Grades with synthetic images, in order."""
        return [g for g in ALL_GRADES if g in self.per_grade]


class ScreenAcceptance(BaseModel):
    """How a likelihood screen treated one grade's generated images (from their provenance).

    Attributes:
        grade: the intended grade.
        judged: images the screen judged (accepted ones, their rejected predecessors, and every
            attempt of a job left unfilled).
        accepted: images it accepted (the ones stored).
        threshold: the confidence threshold the grade was judged against, when one was used.
    """

    model_config = ConfigDict(frozen=True)

    grade: Grade
    judged: int = Field(ge=0)
    accepted: int = Field(ge=0)
    threshold: float | None = None

    @property
    def rate(self) -> float:
        """Share of judged images accepted (0 when none was judged)."""
        return self.accepted / self.judged if self.judged else 0.0
