"""Resampling protocols: k-fold assignments, duplicate images and the corrected paired test.

A k-fold experiment trains every cell once per (repeat, fold) on the fold's training part and
predicts its test part; pooled over the folds, every labelled real image is predicted once per
(repeat, seed). These records say which image was tested where, which real images are copies of
each other, and how two arms compare over the folds.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from medaug.domain.grades import Grade

Protocol = Literal["holdout", "kfold"]
DuplicatePolicy = Literal["group", "drop"]

PRIMARY_KFOLD_TEST = "Nadeau-Bengio corrected resampled t-test"
"""The test a k-fold comparison is judged by (its interval and p-value decide significance)."""


class FoldAssignment(BaseModel):
    """The test part of one fold of one repeat (the training part is every other image)."""

    model_config = ConfigDict(frozen=True)

    repeat: int
    fold: int
    test_ids: tuple[str, ...]
    train_count: int

    @property
    def scope(self) -> str:
        """Short name of the fold, used in augmentation-set and generator names (``f0r0``)."""
        return f"f{self.fold}r{self.repeat}"


class DuplicateGroup(BaseModel):
    """Real images that are copies of each other.

    Attributes:
        image_ids: the images, in id order.
        grades: their grades, aligned with ``image_ids``.
        kind: ``exact`` (identical stored bytes) or ``near`` (near-identical pixels).
        distance: the largest pixel distance within the group (0 for exact copies).
    """

    model_config = ConfigDict(frozen=True)

    image_ids: tuple[str, ...]
    grades: tuple[Grade, ...]
    kind: Literal["exact", "near"]
    distance: float = 0.0

    @property
    def conflicting(self) -> bool:
        """True when the copies carry different grades (a labelling error in the data set)."""
        return len(set(self.grades)) > 1


class CorrectedTTest(BaseModel):
    """Nadeau and Bengio's corrected resampled t-test of paired differences.

    The J differences come from overlapping training sets, so their plain variance understates
    the uncertainty; it is scaled by ``1/J + n_test/n_train`` instead of ``1/J``.

    Attributes:
        n: the number of paired differences (J).
        mean: their mean.
        std: their sample standard deviation.
        t: the corrected t statistic (0 when every difference is equal).
        df: degrees of freedom (J - 1).
        p_value: two-sided p-value.
        ci: 95% interval of the mean difference with the corrected variance.
        n_train: training images per fold (mean over folds).
        n_test: test images per fold (mean over folds).
    """

    model_config = ConfigDict(frozen=True)

    n: int
    mean: float
    std: float
    t: float
    df: int
    p_value: float
    ci: tuple[float, float]
    n_train: float
    n_test: float


class FoldDifference(BaseModel):
    """An arm minus the baseline on one (repeat, fold, seed): accuracy and quadratic kappa."""

    model_config = ConfigDict(frozen=True)

    repeat: int
    fold: int
    seed: int
    accuracy: float
    quadratic_kappa: float


class KFoldComparison(BaseModel):
    """An arm against the baseline for one classifier over every fold, repeat and seed.

    Attributes:
        differences: the paired differences per (repeat, fold, seed).
        accuracy_test: the corrected t-test of the accuracy differences (the primary test).
        kappa_test: the corrected t-test of the quadratic-kappa differences.
        mcnemar_p: exact McNemar test on the pooled out-of-fold outcomes of every (repeat, seed).
        accuracy_ci: paired-bootstrap 95% interval of the pooled accuracy difference (over images).
        kappa_difference: pooled out-of-fold kappa of the arm minus the baseline's (mean over runs).
        kappa_ci: paired-bootstrap 95% interval of that kappa difference (over images).
        primary_test: the test that decides ``significant``.
        significant: the primary test's interval excludes 0 and its p-value is below the level.
    """

    model_config = ConfigDict(frozen=True)

    arm: str
    baseline: str
    classifier: str
    differences: tuple[FoldDifference, ...]
    accuracy_test: CorrectedTTest
    kappa_test: CorrectedTTest
    mcnemar_p: float
    accuracy_ci: tuple[float, float]
    kappa_difference: float
    kappa_ci: tuple[float, float]
    primary_test: str = PRIMARY_KFOLD_TEST
    significant: bool
