"""The ClassifierTrainer contract: every classifier adapter must pass these.

Subclass ``ClassifierTrainerContract`` and provide a ``trainer`` fixture returning a tiny, fast
trainer (few epochs, small images) and, optionally, ``epochs`` (how many it is configured for).
``graded_store`` builds stores whose grade is visible in the pixels, so a trainer can learn it.
"""

from __future__ import annotations

import io
import math
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from safetensors import safe_open

from medaug.adapters.stores.local import LocalImageStore
from medaug.application.errors import ConfigError
from medaug.application.ports import ExternalTestSet, TrainingOutcome, TrainingRequest
from medaug.domain import FundusImage, Split
from tests.conftest import real_record

GRADE_COLOURS = ((230, 40, 40), (40, 230, 40), (40, 40, 230), (230, 230, 40), (40, 230, 230))


def graded_png(grade: int, seed: int, size: int = 24) -> bytes:
    """A noisy dark image with a square in the grade's colour at a random place."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
    side = max(size // 3, 2)
    top, left = rng.integers(0, size - side, 2)
    pixels[top : top + side, left : left + side] = GRADE_COLOURS[grade]
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def graded_store(root: Path, per_grade: dict[str, int], size: int = 24, seed: int = 0) -> dict[str, list[FundusImage]]:
    """A local store with ``per_grade[split]`` images of each grade per split; returns the records by split."""
    store = LocalImageStore(root)
    records: dict[str, list[FundusImage]] = {}
    for offset, (split_name, count) in enumerate(per_grade.items()):
        split = Split.TEST if split_name == "test" else Split.TRAIN
        for index in range(count * 5):
            grade = index % 5
            record = real_record(f"{split_name}-{index:04d}", grade, split)
            store.put(record, graded_png(grade, seed=seed * 1_000_003 + offset * 10_007 + index, size=size))
            records.setdefault(split_name, []).append(record)
    return records


class RecordingProgress:
    """A ProgressSink that remembers its tasks and what they were advanced with."""

    def __init__(self) -> None:
        self.tasks: list[dict[str, Any]] = []

    @contextmanager
    def task(self, description: str, total: int | None):  # type: ignore[no-untyped-def]
        entry: dict[str, Any] = {"description": description, "total": total, "steps": 0, "fields": []}
        self.tasks.append(entry)

        class _Task:
            def advance(self, steps: int = 1, **fields: Any) -> None:
                entry["steps"] += steps
                entry["fields"].append(fields)

        yield _Task()


class ClassifierTrainerContract:
    """Behaviour every ClassifierTrainer must show."""

    @pytest.fixture
    def epochs(self) -> int:
        return 2

    @pytest.fixture
    def data(self, tmp_path: Path) -> tuple[LocalImageStore, dict[str, list[FundusImage]]]:
        records = graded_store(tmp_path / "store", {"train": 4, "test": 2}, size=24)
        return LocalImageStore(tmp_path / "store"), records

    def _request(self, records, seed: int = 0, **extra: Any) -> TrainingRequest:  # type: ignore[no-untyped-def]
        # Test images in a deliberately scrambled order: predictions must follow it.
        test = tuple(reversed(records["test"]))
        return TrainingRequest(train=tuple(records["train"]), test=test, seed=seed, **extra)

    def test_describes_itself(self, trainer) -> None:  # type: ignore[no-untyped-def]
        assert isinstance(trainer.name, str) and trainer.name

    def test_predicts_every_test_image_in_order(self, trainer, data, epochs) -> None:  # type: ignore[no-untyped-def]
        store, records = data
        progress = RecordingProgress()
        request = self._request(records)
        outcome = trainer.train_and_predict(request, store, progress=progress)
        assert isinstance(outcome, TrainingOutcome)
        predictions = outcome.predictions
        assert predictions.image_ids == tuple(r.id for r in request.test)
        assert predictions.labels == tuple(int(r.grade) for r in request.test)
        for probabilities, predicted in zip(predictions.probabilities, predictions.predicted, strict=True):
            assert len(probabilities) == 5
            assert math.isclose(sum(probabilities), 1.0, abs_tol=1e-6)
            assert all(p >= 0 for p in probabilities)
            assert predicted == max(range(5), key=lambda g: probabilities[g])
        assert len(outcome.history) == epochs
        assert [h.epoch for h in outcome.history] == list(range(1, epochs + 1))
        assert outcome.images_per_second > 0
        assert len(progress.tasks) == 1 and progress.tasks[0]["total"] == epochs
        assert progress.tasks[0]["steps"] == epochs
        assert {"loss", "acc"} <= set(progress.tasks[0]["fields"][-1])

    def test_predicts_external_sets_from_their_own_stores(self, trainer, data, tmp_path) -> None:  # type: ignore[no-untyped-def]
        store, records = data
        # Another store whose ids repeat the training store's with other pixels: pixels must be
        # read from the external set's own store.
        other_records = graded_store(tmp_path / "other", {"train": 1, "test": 1}, size=24, seed=7)
        other = LocalImageStore(tmp_path / "other")
        external = tuple(reversed(other_records["train"] + other_records["test"]))
        same = tuple(records["test"])
        request = self._request(records, extra_tests={
            "other": ExternalTestSet(images=external, store=other),
            "same": ExternalTestSet(images=same, store=store),
        })
        outcome = trainer.train_and_predict(request, store, progress=RecordingProgress())
        assert set(outcome.extra_predictions) == {"other", "same"}
        predicted = outcome.extra_predictions["other"]
        assert predicted.image_ids == tuple(r.id for r in external)
        assert predicted.labels == tuple(int(r.grade) for r in external)
        assert all(math.isclose(sum(p), 1.0, abs_tol=1e-6) for p in predicted.probabilities)
        # The test images predicted as an external set get the test predictions.
        by_id = dict(zip(outcome.predictions.image_ids, outcome.predictions.probabilities, strict=True))
        for image_id, probabilities in zip(same, outcome.extra_predictions["same"].probabilities, strict=True):
            assert probabilities == pytest.approx(by_id[image_id.id], abs=1e-6)

    def test_same_seed_same_predictions_other_seed_other(self, trainer, data) -> None:  # type: ignore[no-untyped-def]
        store, records = data
        first = trainer.train_and_predict(self._request(records, seed=3), store, progress=RecordingProgress())
        again = trainer.train_and_predict(self._request(records, seed=3), store, progress=RecordingProgress())
        other = trainer.train_and_predict(self._request(records, seed=4), store, progress=RecordingProgress())
        assert first.predictions == again.predictions
        assert first.history == again.history
        assert first.predictions.probabilities != other.predictions.probabilities

    def test_writes_a_safetensors_checkpoint(self, trainer, data, tmp_path) -> None:  # type: ignore[no-untyped-def]
        store, records = data
        path = tmp_path / "runs" / "cell.safetensors"
        outcome = trainer.train_and_predict(
            self._request(records, checkpoint_path=str(path)), store, progress=RecordingProgress()
        )
        assert outcome.checkpoint == str(path)
        with safe_open(str(path), framework="pt") as handle:
            assert list(handle.keys())
            assert handle.metadata()["classifier"] == trainer.name
        assert [p.name for p in path.parent.iterdir()] == [path.name]

    def test_validation_gives_validation_curves(self, trainer, data) -> None:  # type: ignore[no-untyped-def]
        store, records = data
        train, val = records["train"][5:], records["train"][:5]
        request = TrainingRequest(train=tuple(train), val=tuple(val), test=tuple(records["test"]), seed=0)
        outcome = trainer.train_and_predict(request, store, progress=RecordingProgress())
        assert all(h.val_loss is not None and h.val_accuracy is not None for h in outcome.history)

    def test_impossible_requests_are_config_errors(self, trainer, data) -> None:  # type: ignore[no-untyped-def]
        store, records = data
        with pytest.raises(ConfigError, match="no training images"):
            trainer.train_and_predict(
                TrainingRequest(train=(), test=tuple(records["test"]), seed=0), store, progress=RecordingProgress()
            )
        leak = TrainingRequest(train=tuple(records["train"] + records["test"][:1]), test=tuple(records["test"]), seed=0)
        with pytest.raises(ConfigError, match="test image"):
            trainer.train_and_predict(leak, store, progress=RecordingProgress())
