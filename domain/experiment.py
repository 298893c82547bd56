"""Experiments: arms x classifiers x seeds, their results and the comparisons between arms."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from medaug.domain.grades import Grade
from medaug.domain.kfold import (
    PRIMARY_KFOLD_TEST,
    DuplicateGroup,
    DuplicatePolicy,
    FoldAssignment,
    KFoldComparison,
    Protocol,
)
from medaug.domain.plan import PlanPolicy
from medaug.domain.quality import QualityReport, ScreenAcceptance

NO_AUGMENTATION = "none"


class Arm(BaseModel):
    """One way of building the training set.

    Attributes:
        name: unique name, also the augmentation-set name in the store (``classic``...).
        generators: generators that fill the plan (several = a mixture, jobs alternate);
            empty for the ``none`` arm (real images only).
        options: per-arm generator overrides, e.g. ``{"mode": "variation", "strength": 0.5}``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    generators: tuple[str, ...] = ()
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name_is_safe(cls, value: str) -> str:
        if not value or not all(c.isalnum() or c in "_-" for c in value):
            raise ValueError(f"arm name {value!r} must be letters, digits, '_' or '-'")
        return value

    @model_validator(mode="after")
    def _none_has_no_generator(self) -> Arm:
        if self.name == NO_AUGMENTATION and self.generators:
            raise ValueError("arm 'none' trains on real images only and takes no generator")
        if self.name != NO_AUGMENTATION and not self.generators:
            raise ValueError(f"arm {self.name!r} needs at least one generator")
        return self

    @property
    def augments(self) -> bool:
        """False for the real-images-only arm."""
        return bool(self.generators)


class CellKey(BaseModel):
    """One training run: an arm, a classifier and a seed, and in a k-fold experiment the fold
    and repeat (both None in a holdout experiment)."""

    model_config = ConfigDict(frozen=True)

    arm: str
    classifier: str
    seed: int
    fold: int | None = None
    repeat: int | None = None

    @property
    def slug(self) -> str:
        """File-system name of the cell, e.g. ``classic__cnn__s0`` (holdout, unchanged so old run
        folders resume) or ``classic__cnn__s0__f2r0`` (fold 2 of repeat 0)."""
        base = f"{self.arm}__{self.classifier}__s{self.seed}"
        return base if self.fold is None else f"{base}__f{self.fold}r{self.repeat or 0}"


class EpochRecord(BaseModel):
    """Learning-curve point: losses and accuracies after one epoch."""

    model_config = ConfigDict(frozen=True)

    epoch: int
    train_loss: float
    train_accuracy: float
    val_loss: float | None = None
    val_accuracy: float | None = None


class Metrics(BaseModel):
    """Evaluation of one classifier on one image set.

    ``confusion[i][j]`` counts images of true grade i predicted as grade j.
    """

    model_config = ConfigDict(frozen=True)

    n: int
    accuracy: float
    balanced_accuracy: float
    macro_f1: float
    quadratic_kappa: float
    loss: float
    precision: dict[Grade, float]
    recall: dict[Grade, float]
    confusion: list[list[int]]


class Predictions(BaseModel):
    """Per-image predictions on the test split (kept for paired statistics)."""

    model_config = ConfigDict(frozen=True)

    image_ids: tuple[str, ...]
    labels: tuple[int, ...]
    predicted: tuple[int, ...]
    probabilities: tuple[tuple[float, ...], ...]

    @model_validator(mode="after")
    def _lengths_match(self) -> Predictions:
        n = len(self.image_ids)
        if not (len(self.labels) == len(self.predicted) == len(self.probabilities) == n):
            raise ValueError("predictions: image_ids, labels, predicted and probabilities differ in length")
        return self

    @property
    def correct(self) -> tuple[bool, ...]:
        """Whether each image was graded right."""
        return tuple(p == y for p, y in zip(self.predicted, self.labels, strict=True))


class CellResult(BaseModel):
    """Everything one training run produced."""

    model_config = ConfigDict(frozen=True)

    key: CellKey
    metrics: Metrics
    predictions: Predictions
    history: tuple[EpochRecord, ...]
    best_epoch: int | None = None
    train_images: int
    seconds: float
    checkpoint: str | None = None
    external: dict[str, Predictions] = Field(default_factory=dict)
    """Predictions on each external test set, by set name."""
    external_metrics: dict[str, Metrics] = Field(default_factory=dict)
    """Metrics on each external test set, by set name."""
    weights_sha256: str | None = None
    """sha256 of the pretrained weights the classifier started from (over their tensors), if any."""


class Summary(BaseModel):
    """A metric across seeds: mean, standard deviation and 95% interval."""

    model_config = ConfigDict(frozen=True)

    n: int
    mean: float
    std: float
    ci_low: float
    ci_high: float

    def within(self, low: float, high: float) -> Summary:
        """This summary with its interval clipped to the metric's possible range ``[low, high]``.

        A t-interval over few seeds can reach past what the metric can take (a kappa above 1);
        the clipped interval is the one worth printing. NaNs stay NaN.
        """
        return self.model_copy(
            update={"ci_low": min(max(self.ci_low, low), high), "ci_high": max(min(self.ci_high, high), low)}
            if self.n
            else {}
        )


# The values each summarised metric can take (loss has no upper bound).
METRIC_RANGES: dict[str, tuple[float, float]] = {
    "accuracy": (0.0, 1.0),
    "balanced_accuracy": (0.0, 1.0),
    "macro_f1": (0.0, 1.0),
    "quadratic_kappa": (-1.0, 1.0),
    "loss": (0.0, float("inf")),
}


class Comparison(BaseModel):
    """An arm against the baseline arm for one classifier, on paired terms.

    Attributes:
        per_seed_differences: arm minus baseline accuracy, seed by seed.
        mean_difference: their mean.
        mcnemar_p: exact McNemar test on the pooled paired test-image outcomes.
        bootstrap_ci: 95% paired-bootstrap interval of the accuracy difference over test images.
        significant: True when the interval excludes 0 and p < 0.05.
    """

    model_config = ConfigDict(frozen=True)

    arm: str
    baseline: str
    classifier: str
    metric: str = "accuracy"
    per_seed_differences: tuple[float, ...]
    mean_difference: float
    mcnemar_p: float
    bootstrap_ci: tuple[float, float]
    significant: bool


HOLDOUT_PRIMARY_TEST = "exact McNemar test with a paired bootstrap interval"
"""The test a holdout comparison is judged by (k-fold: ``kfold.PRIMARY_KFOLD_TEST``)."""


class Verdict(BaseModel):
    """The answer to one comparison (an arm against the baseline, one classifier), from the
    protocol's primary test: what the report's sentence, its tables and tracking all read.

    Attributes:
        test: ``mcnemar-bootstrap`` (holdout) or ``corrected-t`` (k-fold: Nadeau-Bengio).
        difference: the arm's accuracy minus the baseline's (a fraction), mean over paired runs.
        ci: the primary test's 95% interval of that difference.
        p_value: the primary test's p-value.
        significant: the interval excludes 0 and p is below the level.
        runs: the paired runs the difference is the mean of (seeds; k-fold: repeat x fold x seed).
    """

    model_config = ConfigDict(frozen=True)

    arm: str
    baseline: str
    classifier: str
    test: str
    difference: float
    ci: tuple[float, float]
    p_value: float
    significant: bool
    runs: int

    @property
    def test_name(self) -> str:
        """The primary test in words."""
        return PRIMARY_KFOLD_TEST if self.test == "corrected-t" else HOLDOUT_PRIMARY_TEST


class ReferenceResult(BaseModel):
    """A published figure shown for reference (e.g. the thesis's test accuracies)."""

    model_config = ConfigDict(frozen=True)

    source: str
    classifier: str
    arm: str
    accuracy: float


THESIS_REFERENCES: tuple[ReferenceResult, ...] = (
    ReferenceResult(source="thesis (2023)", classifier="cnn", arm="traditional", accuracy=0.3301),
    ReferenceResult(source="thesis (2023)", classifier="cnn", arm="DALL-E 2 variations", accuracy=0.4078),
    ReferenceResult(source="thesis (2023)", classifier="resnet50", arm="traditional", accuracy=0.4174),
    ReferenceResult(source="thesis (2023)", classifier="resnet50", arm="DALL-E 2 variations", accuracy=0.5340),
)


class ExperimentSpec(BaseModel):
    """What an experiment runs: arms x classifiers x seeds on one data set with one plan policy."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = "experiment"
    arms: tuple[Arm, ...]
    classifiers: tuple[str, ...]
    seeds: tuple[int, ...]
    policy: PlanPolicy
    plan_seed: int = 0
    val_fraction: float = Field(default=0.0, ge=0.0, lt=0.5)
    baseline: str | None = None
    """The arm every other arm is compared with (paired, per classifier); None compares nothing."""
    protocol: Protocol = "holdout"
    """``holdout``: train on the store's training split, test on its test split. ``kfold``:
    stratified (and group-aware) k-fold over every labelled real image, ``repeats`` times."""
    folds: int = Field(default=5, ge=2, le=50)
    repeats: int = Field(default=1, ge=1, le=20)
    duplicates: DuplicatePolicy = "group"
    """Real images found to be copies: ``group`` keeps them in one fold, ``drop`` leaves them out
    (k-fold only; a holdout experiment lists them but keeps the published split)."""

    @model_validator(mode="after")
    def _well_formed(self) -> ExperimentSpec:
        names = [arm.name for arm in self.arms]
        if not names:
            raise ValueError("an experiment needs at least one arm")
        if len(set(names)) != len(names):
            raise ValueError(f"arm names must be unique, got {names}")
        if not self.classifiers:
            raise ValueError("an experiment needs at least one classifier")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError("an experiment needs one or more distinct seeds")
        if self.baseline is not None and self.baseline not in names:
            raise ValueError(f"baseline {self.baseline!r} is not one of the arms {names}")
        return self

    def cells(self) -> list[CellKey]:
        """Every run in a stable order: arm-major (holdout), or fold by fold, arm-major within a
        fold (k-fold)."""
        if self.protocol == "holdout":
            return [
                CellKey(arm=arm.name, classifier=c, seed=s)
                for arm in self.arms
                for c in self.classifiers
                for s in self.seeds
            ]
        return [key for repeat in range(self.repeats) for fold in range(self.folds) for key in self.fold_cells(repeat, fold)]

    def fold_cells(self, repeat: int, fold: int) -> list[CellKey]:
        """The runs of one fold of one repeat, arm-major."""
        return [
            CellKey(arm=arm.name, classifier=c, seed=s, fold=fold, repeat=repeat)
            for arm in self.arms
            for c in self.classifiers
            for s in self.seeds
        ]


class ExternalResult(BaseModel):
    """Every cell's results on one external test set (a data set no classifier trained on).

    Attributes:
        name: the set's name in the experiment file.
        description: the data set in words.
        images: how many images it has.
        summaries: ``summaries[arm][classifier][metric]`` across the cells' runs.
        recall: ``recall[arm][classifier][grade]``: mean per-grade recall across runs.
        comparisons: each arm against the baseline, paired on the set's images.
    """

    model_config = ConfigDict(frozen=True)

    name: str
    description: str
    images: int
    summaries: dict[str, dict[str, dict[str, Summary]]]
    recall: dict[str, dict[str, dict[Grade, float]]] = Field(default_factory=dict)
    comparisons: tuple[Comparison, ...] = ()


class ExperimentResult(BaseModel):
    """An experiment's full outcome, as written to ``results.json`` and rendered in reports."""

    model_config = ConfigDict(frozen=True)

    spec: ExperimentSpec
    dataset: str
    cells: tuple[CellResult, ...]
    summaries: dict[str, dict[str, dict[str, Summary]]]
    """``summaries[arm][classifier][metric]`` across seeds."""
    comparisons: tuple[Comparison, ...]
    references: tuple[ReferenceResult, ...] = ()
    test_images: int
    environment: dict[str, str] = Field(default_factory=dict)
    config_text: str = ""
    started: str = ""
    finished: str = ""
    seconds: float = 0.0
    artifacts: dict[str, str] = Field(default_factory=dict)
    """Extra files of the run (contact sheets per arm...), name -> path relative to the run folder."""
    quality: dict[str, QualityReport] = Field(default_factory=dict)
    """Quality of each augmenting arm's synthetic images (``medaug quality``), by arm; may be empty."""
    folds: tuple[FoldAssignment, ...] = ()
    """K-fold only: each fold's test images (seeded, recorded so the split can be audited)."""
    duplicates: tuple[DuplicateGroup, ...] = ()
    """Real images found to be copies of each other when the data set was planned."""
    kfold_comparisons: tuple[KFoldComparison, ...] = ()
    """K-fold only: each arm against the baseline with the corrected resampled t-test."""
    pooled_intervals: dict[str, dict[str, dict[str, tuple[float, float]]]] = Field(default_factory=dict)
    """K-fold only: ``[arm][classifier][metric]`` bootstrap 95% interval (over images) of the
    pooled out-of-fold metric."""
    external: dict[str, ExternalResult] = Field(default_factory=dict)
    """Results on each external test set, by name."""
    acceptance: dict[str, tuple[ScreenAcceptance, ...]] = Field(default_factory=dict)
    """Per grade, how the likelihood screen treated each screened arm's images, by arm; may be empty."""

    def verdicts(self) -> tuple[Verdict, ...]:
        """One verdict per comparison, from the protocol's primary test: the corrected resampled
        t-test of the per-(repeat, fold, seed) differences for k-fold, McNemar with the paired
        bootstrap interval for holdout."""
        if self.spec.protocol == "kfold":
            return tuple(
                Verdict(
                    arm=c.arm, baseline=c.baseline, classifier=c.classifier, test="corrected-t",
                    difference=c.accuracy_test.mean, ci=c.accuracy_test.ci, p_value=c.accuracy_test.p_value,
                    significant=c.significant, runs=c.accuracy_test.n,
                )  # fmt: skip
                for c in self.kfold_comparisons
            )
        return tuple(
            Verdict(
                arm=c.arm, baseline=c.baseline, classifier=c.classifier, test="mcnemar-bootstrap",
                difference=c.mean_difference, ci=c.bootstrap_ci, p_value=c.mcnemar_p, significant=c.significant,
                runs=len(c.per_seed_differences),
            )  # fmt: skip
            for c in self.comparisons
        )

    def cells_for(self, arm: str, classifier: str) -> list[CellResult]:
        """The cells of one arm and classifier, by seed (then repeat and fold)."""
        return sorted(
            (c for c in self.cells if c.key.arm == arm and c.key.classifier == classifier),
            key=lambda c: (c.key.seed, c.key.repeat or 0, c.key.fold or 0),
        )
