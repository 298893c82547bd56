"""Ports: Classifiers: training one cell, scoring and comparing predictions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from medaug.application.ports.progress import ProgressSink
from medaug.application.ports.storage import ImageStore
from medaug.domain import FundusImage
from medaug.domain.experiment import (
    Comparison,
    EpochRecord,
    Metrics,
    Predictions,
    Summary,
)
from medaug.domain.kfold import CorrectedTTest


@dataclass(frozen=True)
class ExternalTestSet:
    """Images of another data set to predict after training, read from their own store.

    Attributes:
        images: the images to predict, in the order predictions come back.
        store: the store holding their pixels (never the training store).
    """

    images: tuple[FundusImage, ...]
    store: ImageStore


class TrainingRequest(BaseModel):
    """One classifier training run.

    Attributes:
        train: training images (real and, per arm, synthetic), read from the store.
        val: validation images for model selection / early stopping (may be empty).
        test: the untouched test images to predict at the end.
        seed: the seed of this run (weights, shuffling, dropout).
        checkpoint_path: where to write the chosen weights (safetensors), if anywhere.
        extra_tests: external test sets to predict with the same trained model, by name; each
            brings its own store. Empty by default: a trainer that predicts ``test`` from a
            function of (images, store) only has to call it once more per entry (see
            ``TrainingOutcome.extra_predictions``).
    """

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    train: tuple[FundusImage, ...]
    val: tuple[FundusImage, ...] = ()
    test: tuple[FundusImage, ...]
    seed: int
    checkpoint_path: str | None = None
    extra_tests: Mapping[str, ExternalTestSet] = Field(default_factory=dict)


class TrainingOutcome(BaseModel):
    """What a classifier training run produced: test predictions and its learning curves.

    ``extra_predictions`` holds the predictions of each of the request's ``extra_tests``, by
    name, in the order of that set's images.
    """

    model_config = ConfigDict(frozen=True)

    predictions: Predictions
    extra_predictions: dict[str, Predictions] = Field(default_factory=dict)
    history: tuple[EpochRecord, ...]
    best_epoch: int | None = None
    checkpoint: str | None = None
    seconds: float
    images_per_second: float
    weights_sha256: str | None = None
    """sha256 of the pretrained weights the classifier started from (over their tensors), if any."""


@runtime_checkable
class ClassifierTrainer(Protocol):
    """Trains a grade classifier and predicts the test images.

    Contract:
        - ``name`` is the classifier's name in experiments (``cnn``, ``resnet50``).
        - ``train_and_predict`` reads pixels from ``store``, trains on ``request.train`` (model
          selection on ``request.val`` when given, never on the test images), then predicts
          every ``request.test`` image: ``predictions`` follow the order of ``request.test``,
          with probabilities over the five grades summing to 1.
        - The same trained model predicts every ``request.extra_tests`` set (pixels read from
          that set's own store): ``extra_predictions[name]`` follows the order of its images.
        - Deterministic by ``request.seed`` on CPU: same request, same predictions.
        - ``history`` has one ``EpochRecord`` per epoch run.
        - Reports one progress bar per run (epochs, with loss and accuracy).
        - Missing weights or an impossible configuration raise ``ConfigError`` naming what to do.
    """

    @property
    def name(self) -> str: ...

    def train_and_predict(
        self, request: TrainingRequest, store: ImageStore, *, progress: ProgressSink
    ) -> TrainingOutcome: ...


@runtime_checkable
class SavedClassifier(Protocol):
    """A classifier trained earlier and loaded from its checkpoint.

    Contract:
        - ``predict(images, store)`` reads pixels from ``store`` and returns predictions in the
          order of ``images`` (probabilities over the five grades summing to 1).
        - A checkpoint it cannot rebuild raises ``ConfigError`` naming the file when loaded.
    """

    @property
    def name(self) -> str: ...

    def predict(self, images: Sequence[FundusImage], store: ImageStore) -> Predictions: ...


@runtime_checkable
class Evaluator(Protocol):
    """Metrics and statistics over predictions.

    Contract:
        - ``metrics(predictions)``: accuracy, balanced accuracy, macro-F1, quadratic weighted kappa,
          cross-entropy loss, per-grade precision and recall (0 where undefined), and the 5x5
          confusion matrix over all grades 0-4 (even those absent).
        - ``summarise(values)``: mean, sample standard deviation and a 95% t-interval across seeds
          (a single value gives a zero-width interval at that value).
        - ``compare(arm, baseline, ...)``: paired comparison of two arms' predictions on the same
          test images, seed by seed (lists aligned by seed and by image id): per-seed accuracy
          differences, exact McNemar p-value on the pooled discordant pairs, and a paired
          bootstrap 95% interval of the accuracy difference (seeded, deterministic).
        - ``corrected_t_test(differences, n_train=, n_test=)``: Nadeau-Bengio corrected resampled
          t-test of J paired differences (variance scaled by 1/J + n_test/n_train), two-sided.
        - ``metric_interval(metric, runs)``: 95% bootstrap interval, over images, of ``metric``
          (``accuracy`` or ``quadratic_kappa``) averaged over ``runs`` (predictions of the same
          images, aligned by image id); seeded, deterministic.
        - ``difference_interval(metric, arm_runs, baseline_runs)``: the same for the paired
          difference of the averaged metric (arm minus baseline), images resampled jointly.
    """

    def metrics(self, predictions: Predictions) -> Metrics: ...

    def summarise(self, values: Sequence[float]) -> Summary: ...

    def compare(
        self,
        arm: str,
        baseline: str,
        classifier: str,
        arm_predictions: Sequence[Predictions],
        baseline_predictions: Sequence[Predictions],
    ) -> Comparison: ...

    def corrected_t_test(self, differences: Sequence[float], *, n_train: float, n_test: float) -> CorrectedTTest: ...

    def metric_interval(self, metric: str, runs: Sequence[Predictions]) -> tuple[float, float]: ...

    def difference_interval(
        self, metric: str, arm_runs: Sequence[Predictions], baseline_runs: Sequence[Predictions]
    ) -> tuple[float, float]: ...
