"""Classifier cells as executor tasks: one picklable description per missing cell, run by the
same code in process or on a cluster worker, each writing its own result to the run repository.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import structlog

from medaug.application.errors import ConfigError, StoreError
from medaug.application.ports import (
    ClassifierTrainer,
    Evaluator,
    ExternalTestSet,
    ImageStore,
    ProgressSink,
    RunRepository,
    TrainingRequest,
)
from medaug.application.services.train_classifier import train_cell
from medaug.domain import FundusImage, Origin, Split
from medaug.domain.experiment import CellKey, CellResult

_log = structlog.get_logger(__name__)

CELL_TASK_PREFIX = "cell:"


@dataclass(frozen=True)
class CellTask:
    """One classifier cell, described by plain data so a worker elsewhere can run it.

    Attributes:
        key: the cell.
        store: location of the image store (a folder or ``s3://...``) the ids refer to.
        runs: location of the run repository the result is saved to.
        train: ids of the training images (real, plus the arm's synthetic ones).
        val: ids of the validation images.
        test: ids of the test images.
        external: (name, store location) of every external test set the cell also predicts.
        augmentation: the augmentation set whose synthetic training images the cell adds to
            ``train`` when it runs (made by an earlier task of the graph), or None.
    """

    key: CellKey
    store: str
    runs: str
    train: tuple[str, ...]
    val: tuple[str, ...]
    test: tuple[str, ...]
    external: tuple[tuple[str, str], ...] = ()
    augmentation: str | None = None


@dataclass(frozen=True)
class CellAdapters:
    """What running a cell needs, live: on the driver, or rebuilt on a worker from settings."""

    store: ImageStore
    trainer: ClassifierTrainer
    evaluator: Evaluator
    runs: RunRepository
    external_stores: Mapping[str, ImageStore] = field(default_factory=dict)
    """The external test sets' stores by name (every name in the task's ``external``)."""


def run_cell_task(task: CellTask, adapters: CellAdapters, progress: ProgressSink) -> CellResult:
    """Train and score one cell, then save it atomically to the run repository.

    A cell already saved (by an earlier attempt that died after saving) is returned as it is,
    so a retried task never writes a cell twice.
    """
    done = adapters.runs.load_cell(task.key)
    if done is not None:
        return done
    store = adapters.store
    records = {record.id: record for record in store.list()}  # one listing, not a read per image

    def find(ids: tuple[str, ...]) -> tuple[FundusImage, ...]:
        missing = [i for i in ids if i not in records]
        if missing:
            raise StoreError(f"{store.location}: cell {task.key.slug} needs image {missing[0]}, not in the store")
        return tuple(records[i] for i in ids)

    extra_tests = {}
    for name, _location in task.external:
        external_store = adapters.external_stores[name]
        extra_tests[name] = ExternalTestSet(images=tuple(external_images(external_store)), store=external_store)
    synthetic = () if task.augmentation is None else tuple(
        store.list(split=Split.TRAIN, origin=Origin.SYNTHETIC, augmentation=task.augmentation)
    )
    request = TrainingRequest(
        train=find(task.train) + synthetic,
        val=find(task.val),
        test=find(task.test),
        seed=task.key.seed,
        checkpoint_path=adapters.runs.checkpoint_path(task.key.slug),
        extra_tests=extra_tests,
    )
    cell = train_cell(task.key, request, store, adapters.trainer, adapters.evaluator, progress=progress)
    adapters.runs.save_cell(cell)
    metrics = cell.metrics
    _log.info("cell_done", cell=task.key.slug, accuracy=round(metrics.accuracy, 4), kappa=round(metrics.quadratic_kappa, 4))
    return cell


def check_reachable(address: str | None, shared_filesystem: bool, store: str, run_folder: str) -> None:
    """Refuse a cluster run whose store or run folder only this machine can see.

    Raises:
        ConfigError: ``address`` names a cluster (other nodes run cells) and the store or the run
            folder is a local path not declared shared (one line; use S3).
    """
    if address is None or shared_filesystem:
        return
    local = [f"{what} {where}" for what, where in (("store", store), ("run folder", run_folder))
             if not where.startswith(("s3://", "s3:/"))]
    if not local:
        return
    raise ConfigError(
        f"executor.address = {address!r}: cells run on other nodes, but {' and '.join(local)} "
        "are local to this machine; use an S3 store, and a run folder every node mounts at the same "
        "path (then set executor.shared_filesystem = true)"
    )


def external_images(store: ImageStore) -> list[FundusImage]:
    """Every real image of an external set's store, in id order (whatever split its data set gave it)."""
    return sorted(store.list(origin=Origin.REAL), key=lambda image: image.id)
