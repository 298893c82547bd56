"""Ports: the interfaces through which application services reach the outside world.

Every port is a ``typing.Protocol`` whose docstring is its contract; each adapter of a port
passes the shared contract suite in ``tests/contracts``. Images cross ports as encoded PNG
bytes (8-bit RGB), so services never touch pixel libraries.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from medaug.domain import FundusImage, Grade, Origin, Split
from medaug.domain.experiment import (
    CellKey,
    CellResult,
    Comparison,
    EpochRecord,
    ExperimentResult,
    Metrics,
    Predictions,
    Summary,
)
from medaug.domain.quality import QualityReport

PngBytes = bytes
"""An image encoded as PNG, 8-bit RGB, as exchanged by every port."""


@runtime_checkable
class ImageStore(Protocol):
    """Stores fundus images (pixels) and their records (``FundusImage``).

    Contract:
        - ``put`` is atomic: after it returns, ``exists``/``get``/``record``/``list`` see the
          image; if it fails or the process dies, neither the pixels nor the record are
          visible (no record without its image, no half-written file).
        - Putting an id that already exists raises ``StoreError`` unless ``overwrite=True``.
        - ``get`` returns exactly the bytes that were put; an unknown id raises ``KeyError``.
        - ``list`` returns records sorted by id, filtered by any given split/grade/origin/
          augmentation (``augmentation=None`` means any).
        - ``delete`` removes the record and the pixels; deleting an unknown id raises ``KeyError``.
        - Keys follow ``<split>/<grade>/<id>.png`` (see ``domain.images.storage_key``).
        - ``location`` is a human-readable description (a path or ``s3://bucket/prefix``).
    """

    @property
    def location(self) -> str: ...

    def put(self, image: FundusImage, data: PngBytes, *, overwrite: bool = False) -> None: ...

    def get(self, image_id: str) -> PngBytes: ...

    def record(self, image_id: str) -> FundusImage: ...

    def exists(self, image_id: str) -> bool: ...

    def list(
        self,
        *,
        split: Split | None = None,
        grade: Grade | None = None,
        origin: Origin | None = None,
        augmentation: str | None = None,
    ) -> list[FundusImage]: ...

    def delete(self, image_id: str) -> None: ...


class SourceItem(BaseModel):
    """One labelled image found in a data set, not yet read.

    Attributes:
        id: the unique id it will have in the store.
        grade: its label.
        split: the split the data set puts it in.
        locator: where the source reads it from (a path, or a generator index).
        original_name: its name in the data set, for provenance.
    """

    model_config = ConfigDict(frozen=True)

    id: str
    grade: Grade
    split: Split
    locator: str
    original_name: str


class ScanResult(BaseModel):
    """The items a data-set scan found, and the problems it met (one line each)."""

    model_config = ConfigDict(frozen=True)

    items: tuple[SourceItem, ...]
    problems: tuple[str, ...] = ()


@runtime_checkable
class DatasetSource(Protocol):
    """A labelled data set that can be listed and read.

    Contract:
        - ``name`` is the data set's short name, used as the provenance generator of its images.
        - ``scan`` reads labels only (no pixels) and never raises for a bad row: each problem
          (missing image, image without label, grade outside 0-4, duplicate id, unsafe path...)
          becomes one line in ``ScanResult.problems`` naming the file and the problem, and the
          offending item is left out. Ids are unique across splits.
        - ``read`` returns the raw encoded bytes of the item (any format Pillow reads); it raises
          ``InputError`` naming the file when it cannot be read.
        - Scanning twice gives the same items in the same order.
    """

    @property
    def name(self) -> str: ...

    def scan(self) -> ScanResult: ...

    def read(self, item: SourceItem) -> bytes: ...


@runtime_checkable
class Preprocessor(Protocol):
    """Turns a raw fundus photograph into the store's working form.

    Contract:
        - ``preprocess(raw, name)`` returns a square 8-bit RGB PNG of ``size`` x ``size`` pixels
          cropped to the retina, without EXIF or other metadata.
        - Undecodable, truncated or non-image input raises ``InputError`` with a one-line
          message naming ``name`` and the problem.
        - Deterministic: the same bytes give the same PNG.
    """

    @property
    def size(self) -> int: ...

    def preprocess(self, raw: bytes, name: str) -> PngBytes: ...


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


class TrainingRequest(BaseModel):
    """One classifier training run.

    Attributes:
        train: training images (real and, per arm, synthetic), read from the store.
        val: validation images for model selection / early stopping (may be empty).
        test: the untouched test images to predict at the end.
        seed: the seed of this run (weights, shuffling, dropout).
        checkpoint_path: where to write the chosen weights (safetensors), if anywhere.
    """

    model_config = ConfigDict(frozen=True)

    train: tuple[FundusImage, ...]
    val: tuple[FundusImage, ...] = ()
    test: tuple[FundusImage, ...]
    seed: int
    checkpoint_path: str | None = None


class TrainingOutcome(BaseModel):
    """What a classifier training run produced: test predictions and its learning curves."""

    model_config = ConfigDict(frozen=True)

    predictions: Predictions
    history: tuple[EpochRecord, ...]
    best_epoch: int | None = None
    checkpoint: str | None = None
    seconds: float
    images_per_second: float


@runtime_checkable
class ClassifierTrainer(Protocol):
    """Trains a grade classifier and predicts the test images.

    Contract:
        - ``name`` is the classifier's name in experiments (``cnn``, ``resnet50``).
        - ``train_and_predict`` reads pixels from ``store``, trains on ``request.train`` (model
          selection on ``request.val`` when given, never on the test images), then predicts
          every ``request.test`` image: ``predictions`` follow the order of ``request.test``,
          with probabilities over the five grades summing to 1.
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


@runtime_checkable
class ReportWriter(Protocol):
    """Writes an experiment's report into its run folder.

    Contract: ``write(result, run_dir, store)`` writes ``report.html`` (self-contained: images and
    charts inlined, opens offline), ``report.md`` and any figures, atomically, and returns the
    paths written. It reads only the result and the store (for contact sheets), never retrains.
    """

    def write(self, result: ExperimentResult, run_dir: str, store: ImageStore) -> list[str]: ...


@runtime_checkable
class RunRepository(Protocol):
    """Keeps an experiment run's results so that a killed run continues where it stopped.

    Contract:
        - ``claim(fingerprint, arms)`` binds the run folder to one experiment definition (the
          shared ``fingerprint``) and to one definition per arm name (``arms``: name ->
          definition): a folder holding another fingerprint, or another definition under an
          arm's name, raises ``ConfigError`` (finished cells are never mixed). New arms are added.
        - ``save_cell`` is atomic; ``load_cell`` returns a saved cell or None.
        - ``save_result`` writes ``results.json`` atomically and returns its path;
          ``load_result`` reads it back (``ConfigError`` if absent or unreadable).
        - ``checkpoint_path(slug)`` is where a cell may write its weights.
        - ``location`` is the run folder.
    """

    @property
    def location(self) -> str: ...

    def claim(self, fingerprint: str, arms: Mapping[str, str]) -> None: ...

    def load_cell(self, key: CellKey) -> CellResult | None: ...

    def save_cell(self, cell: CellResult) -> None: ...

    def save_result(self, result: ExperimentResult) -> str: ...

    def load_result(self) -> ExperimentResult: ...

    def checkpoint_path(self, slug: str) -> str: ...


class ProgressTask(Protocol):
    """One bar of progress: advance it as work is done; extra fields are shown beside it."""

    def advance(self, steps: int = 1, **fields: Any) -> None: ...


@runtime_checkable
class ProgressSink(Protocol):
    """Where long work reports progress (a rich bar in the CLI, callbacks when embedded).

    Contract: ``task(description, total)`` is a context manager yielding a ``ProgressTask``;
    ``total`` may be None when unknown. Sinks never raise into the work they observe.
    """

    def task(self, description: str, total: int | None) -> AbstractContextManager[ProgressTask]: ...


class _NullTask:
    def advance(self, steps: int = 1, **fields: Any) -> None:
        return None


class _NullContext(AbstractContextManager[ProgressTask]):
    def __enter__(self) -> ProgressTask:
        return _NullTask()

    def __exit__(self, *exc: object) -> None:
        return None


class NullProgress:
    """A ProgressSink that shows nothing (the default for embedded use and tests)."""

    def task(self, description: str, total: int | None) -> AbstractContextManager[ProgressTask]:
        return _NullContext()


def iter_batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    """Consecutive slices of at most ``size`` items."""
    for start in range(0, len(items), max(size, 1)):
        yield items[start : start + max(size, 1)]


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
