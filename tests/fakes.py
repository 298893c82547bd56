"""In-memory fakes of the ports, for testing services without adapters (and their contracts)."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import uuid
from collections.abc import Iterator, Sequence

from medaug.application.errors import StoreError
from medaug.application.ports import (
    GenerationRequest,
    GenerationResult,
    ImageStore,
    ProgressSink,
    TrainingOutcome,
    TrainingRequest,
)
from medaug.domain import FundusImage, Grade, Origin, Split
from medaug.domain.experiment import (
    CellKey,
    CellResult,
    Comparison,
    EpochRecord,
    ExperimentResult,
    ExperimentSpec,
    Metrics,
    Predictions,
    Summary,
)
from medaug.application.services.experiment_job import DatasetStep, ExperimentJob
from medaug.domain.kfold import CorrectedTTest


class InMemoryImageStore:
    """An ImageStore in a dict (passes the ImageStore contract)."""

    def __init__(self) -> None:
        self._records: dict[str, FundusImage] = {}
        self._data: dict[str, bytes] = {}
        self._identity = uuid.uuid4().hex
        self.writers: list[str] = []
        """Commands that took the writer lock, in order (for service tests)."""
        self._holder: str | None = None
        self.names: str | None = None

    @property
    def location(self) -> str:
        return "memory://"

    @property
    def identity(self) -> str:
        return self._identity

    @contextlib.contextmanager
    def writing(self, command: str) -> Iterator[None]:
        if self._holder is not None:  # re-entrant: the same object may nest
            yield
            return
        self._holder = command
        self.writers.append(command)
        try:
            yield
        finally:
            self._holder = None

    def claim_names(self, names: str) -> None:
        from medaug.adapters.stores.common import settle_names

        self.names = settle_names(self.names, names, self.list(origin=Origin.REAL), self.location) or self.names

    def put(self, image: FundusImage, data: bytes, *, overwrite: bool = False) -> None:
        if image.id in self._records and not overwrite:
            raise StoreError(f"memory: image {image.id} already exists")
        self._data[image.id] = bytes(data)
        self._records[image.id] = image

    def get(self, image_id: str) -> bytes:
        self.record(image_id)
        return self._data[image_id]

    def record(self, image_id: str) -> FundusImage:
        return self._records[image_id]

    def exists(self, image_id: str) -> bool:
        return image_id in self._records

    def list(self, *, split=None, grade=None, origin=None, augmentation=None) -> list[FundusImage]:  # type: ignore[no-untyped-def]
        return [
            r for _, r in sorted(self._records.items())
            if (split is None or r.split is split) and (grade is None or r.grade == grade)
            and (origin is None or r.origin is origin) and (augmentation is None or r.augmentation == augmentation)
        ]

    def delete(self, image_id: str) -> None:
        del self._records[image_id]
        del self._data[image_id]


class EchoGenerator:
    """A generator that returns its source image (or a seed-coloured PNG) unchanged."""

    name = "echo"
    needs_source = True
    batch_size = 3

    def __init__(self, fail_after_batches: int | None = None) -> None:
        self.calls: list[str] = []
        self._fail_after = fail_after_batches

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        if self._fail_after is not None and len(self.calls) >= self._fail_after * self.batch_size:
            raise KeyboardInterrupt("simulated kill")
        self.calls.extend(r.image_id for r in requests)
        return [GenerationResult(image_id=r.image_id, data=r.source or b"", parameters={"echo": r.seed}) for r in requests]


class GradeOracleTrainer:
    """A ClassifierTrainer that 'learns' perfectly except on images whose id hash says otherwise.

    Its accuracy rises with the number of training images, so arms differ deterministically.
    """

    name = "oracle"

    def __init__(self, fail_on_call: int | None = None) -> None:
        self.requests: list[TrainingRequest] = []
        self._fail_on = fail_on_call

    def train_and_predict(self, request: TrainingRequest, store: ImageStore, *, progress: ProgressSink) -> TrainingOutcome:
        if self._fail_on is not None and len(self.requests) + 1 == self._fail_on:
            raise KeyboardInterrupt("simulated kill")
        self.requests.append(request)
        skill = min(len(request.train) / 100, 0.95)
        for extra in request.extra_tests.values():
            for image in extra.images:
                extra.store.get(image.id)  # pixels come from the set's own store
        return TrainingOutcome(
            predictions=self._predict(request.test, request.seed, skill),
            extra_predictions={
                name: self._predict(extra.images, request.seed, skill) for name, extra in request.extra_tests.items()
            },
            history=(EpochRecord(epoch=1, train_loss=1.0, train_accuracy=0.5),),
            seconds=0.01, images_per_second=1.0,
        )

    @staticmethod
    def _predict(images, seed: int, skill: float) -> Predictions:  # type: ignore[no-untyped-def]
        predicted, probs = [], []
        for image in images:
            h = int(hashlib.sha1(f"{image.id}/{seed}".encode()).hexdigest(), 16) % 1000 / 1000
            guess = int(image.grade) if h < skill else (int(image.grade) + 1) % 5
            predicted.append(guess)
            probs.append(tuple(0.6 if g == guess else 0.1 for g in range(5)))
        return Predictions(image_ids=tuple(i.id for i in images), labels=tuple(int(i.grade) for i in images),
                           predicted=tuple(predicted), probabilities=tuple(probs))


class SimpleEvaluator:
    """An Evaluator with plain-Python arithmetic (for service tests only)."""

    def metrics(self, predictions: Predictions) -> Metrics:
        n = len(predictions.labels)
        acc = sum(predictions.correct) / n
        confusion = [[0] * 5 for _ in range(5)]
        for y, p in zip(predictions.labels, predictions.predicted, strict=True):
            confusion[y][p] += 1
        zero = {g: 0.0 for g in Grade}
        return Metrics(n=n, accuracy=acc, balanced_accuracy=acc, macro_f1=acc, quadratic_kappa=acc, loss=1 - acc,
                       precision=zero, recall=zero, confusion=confusion)

    def summarise(self, values: Sequence[float]) -> Summary:
        mean = sum(values) / len(values)
        return Summary(n=len(values), mean=mean, std=0.0, ci_low=mean, ci_high=mean)

    def compare(self, arm, baseline, classifier, arm_predictions, baseline_predictions) -> Comparison:  # type: ignore[no-untyped-def]
        diffs = tuple(
            sum(a.correct) / len(a.correct) - sum(b.correct) / len(b.correct)
            for a, b in zip(arm_predictions, baseline_predictions, strict=True)
        )
        mean = sum(diffs) / len(diffs)
        return Comparison(arm=arm, baseline=baseline, classifier=classifier, per_seed_differences=diffs,
                          mean_difference=mean, mcnemar_p=1.0, bootstrap_ci=(mean, mean), significant=False)

    def corrected_t_test(self, differences, *, n_train, n_test) -> CorrectedTTest:  # type: ignore[no-untyped-def]
        mean = sum(differences) / len(differences)
        return CorrectedTTest(n=len(differences), mean=mean, std=0.0, t=0.0, df=max(len(differences) - 1, 1),
                              p_value=1.0, ci=(mean, mean), n_train=n_train, n_test=n_test)

    def metric_interval(self, metric, runs) -> tuple[float, float]:  # type: ignore[no-untyped-def]
        value = sum(sum(p.correct) / len(p.correct) for p in runs) / len(runs)
        return (value, value)

    def difference_interval(self, metric, arm_runs, baseline_runs) -> tuple[float, float]:  # type: ignore[no-untyped-def]
        low, _ = self.metric_interval(metric, arm_runs)
        base, _ = self.metric_interval(metric, baseline_runs)
        return (low - base, low - base)


class MemoryRuns:
    """A RunRepository in memory."""

    def __init__(self) -> None:
        self.cells: dict[str, CellResult] = {}
        self.result: ExperimentResult | None = None
        self.fingerprint: str | None = None
        self.arms: dict[str, str] = {}

    @property
    def location(self) -> str:
        return "memory-runs"

    def claim(self, fingerprint: str, arms) -> None:  # type: ignore[no-untyped-def]
        from medaug.application.errors import ConfigError

        if self.fingerprint not in (None, fingerprint):
            raise ConfigError("memory-runs: holds a different experiment")
        self.fingerprint = fingerprint
        for name, definition in arms.items():
            if self.arms.setdefault(name, definition) != definition:
                raise ConfigError(f"memory-runs: arm {name!r} was defined differently")

    def load_cell(self, key: CellKey) -> CellResult | None:
        return self.cells.get(key.slug)

    def save_cell(self, cell: CellResult) -> None:
        self.cells[cell.key.slug] = cell

    def save_result(self, result: ExperimentResult) -> str:
        self.result = result
        return "memory-runs/results.json"

    def load_result(self) -> ExperimentResult:
        assert self.result is not None
        return self.result

    def checkpoint_path(self, slug: str) -> str:
        return f"memory-runs/{slug}.safetensors"


def tiny_png(seed: int) -> bytes:
    """A 4x4 PNG whose pixels depend on ``seed``."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (seed % 256, (seed * 7) % 256, 0)).save(buffer, format="PNG")
    return buffer.getvalue()


def populate(store: ImageStore, train: dict[int, int], test_per_grade: int = 4) -> None:
    """Put ``train[g]`` real training images and ``test_per_grade`` test images per grade."""
    from tests.conftest import real_record

    for grade, count in train.items():
        for i in range(count):
            store.put(real_record(f"tr-{grade}-{i:03d}", grade), tiny_png(grade * 100 + i))
    for grade in range(5):
        for i in range(test_per_grade):
            store.put(real_record(f"te-{grade}-{i:03d}", grade, Split.TEST), tiny_png(9000 + grade * 10 + i))


class KillAfter:
    """A progress sink that interrupts training after ``steps`` steps, like a kill."""

    def __init__(self, steps: int) -> None:
        self.steps = steps

    @contextlib.contextmanager
    def task(self, description: str, total: int | None):  # type: ignore[no-untyped-def]
        outer = self

        class _Task:
            done = 0

            def advance(self, steps: int = 1, **fields: object) -> None:
                _Task.done += steps
                if _Task.done >= outer.steps:
                    raise KeyboardInterrupt

        yield _Task()


def populated(train: dict[int, int]) -> InMemoryImageStore:
    """A memory store holding ``populate``'s images."""
    store = InMemoryImageStore()
    populate(store, train)
    return store


def fake_job(spec: ExperimentSpec, store: ImageStore, trainer: object, runs: object, *,
             generator: object | None = None, **changes: object) -> ExperimentJob:
    """An experiment job over fakes: ``generator`` (an ``EchoGenerator``) for every arm, ``trainer``
    as the ``oracle`` classifier, 4-px images; ``changes`` replace other fields."""
    made = generator or EchoGenerator()
    job = ExperimentJob(
        spec=spec, dataset=DatasetStep(store=store, description="test", seed=0), image_size=lambda _: 4,
        generators=lambda name, arm, scope=None: made, trainers={"oracle": trainer}, evaluator=SimpleEvaluator(),
        runs=runs, fingerprint="f1",  # type: ignore[arg-type]
    )
    return dataclasses.replace(job, **changes)  # type: ignore[arg-type]


def run_with(spec: ExperimentSpec, job: ExperimentJob, **kwargs: object):  # type: ignore[no-untyped-def]
    """``job`` run with ``spec``."""
    from medaug.application.services.experiment import run_experiment

    return run_experiment(dataclasses.replace(job, spec=spec), **kwargs)  # type: ignore[arg-type]


__all__ = ["EchoGenerator", "GradeOracleTrainer", "InMemoryImageStore", "MemoryRuns", "Origin", "SimpleEvaluator", "populate"]
