"""The experiment hands its missing cells to the executor, with one progress bar over the grid."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import pytest

from medaug.adapters.executors.local import LocalExecutor
from medaug.application.ports import Resources, Task, TaskEvent, TaskHandler
from medaug.application.services.cells import CellTask
from medaug.domain import Split
from tests.contracts.classifier_trainer import RecordingProgress
from tests.fakes import GradeOracleTrainer, InMemoryImageStore, MemoryRuns, populated
from tests.unit.test_experiment_service import TRAIN, context, run, spec


class SpyExecutor(LocalExecutor):
    """The local executor, remembering what it was handed."""

    def __init__(self) -> None:
        super().__init__()
        self.tasks: list[Task] = []

    def run(self, tasks: Sequence[Task], handler: TaskHandler, on_event: Callable[[TaskEvent], None]) -> None:
        self.tasks += tasks
        super().run(tasks, handler, on_event)


@pytest.fixture
def store() -> InMemoryImageStore:
    return populated(TRAIN)


def test_cells_reach_the_executor_as_plain_descriptions_with_their_resources(store: InMemoryImageStore) -> None:
    executor, runs = SpyExecutor(), MemoryRuns()
    ctx = dataclasses.replace(
        context(store, GradeOracleTrainer(), runs), executor=executor, cell_resources=Resources(num_cpus=2, num_gpus=0.5)
    )
    result = run(spec(), ctx)
    cell_tasks = [t for t in executor.tasks if isinstance(t.payload, CellTask)]
    assert [t.id for t in cell_tasks] == [f"cell:{c.key.slug}" for c in result.cells]
    # The graph: each augmenting arm's cells wait for that arm's augmentation task.
    augmenting = {t.payload.arm.name for t in executor.tasks if t.id.startswith("augment:")}
    assert augmenting and all(
        t.depends_on == ((f"augment:{t.payload.key.arm}",) if t.payload.key.arm in augmenting else ())
        for t in cell_tasks
    )
    payload = cell_tasks[0].payload
    assert payload.runs == runs.location and payload.store == store.location
    assert set(payload.val) == {i.id for i in store.list(split=Split.VAL)}
    assert set(payload.test) == {i.id for i in store.list(split=Split.TEST)}
    assert all(t.resources == Resources(num_cpus=2, num_gpus=0.5) for t in cell_tasks)
    assert [c.key for c in result.cells] == [c.key for c in runs.cells.values()]


def test_a_resumed_run_submits_only_the_missing_cells_and_the_bar_covers_the_grid(
    store: InMemoryImageStore,
) -> None:
    runs = MemoryRuns()
    with pytest.raises(KeyboardInterrupt):
        run(spec(), context(store, GradeOracleTrainer(fail_on_call=4), runs))
    saved = set(runs.cells)
    executor, progress = SpyExecutor(), RecordingProgress()
    ctx = dataclasses.replace(context(store, GradeOracleTrainer(), runs), executor=executor)
    result = run(spec(), ctx, progress=progress)
    submitted = {t.payload.key.slug for t in executor.tasks}
    assert len(saved) == 3 and len(submitted) == 3 and not submitted & saved
    assert len(result.cells) == 6
    bar = next(t for t in progress.tasks if t["description"] == "cells")
    assert (bar["total"], bar["steps"]) == (6, 6)
    assert bar["fields"][0] == {"running": 0}  # the 3 saved cells count as done from the start


class _ForgetfulExecutor(LocalExecutor):
    """Breaks the contract: reports tasks done without running them."""

    def run(self, tasks, handler, on_event) -> None:  # type: ignore[no-untyped-def]
        for task in tasks:
            on_event(TaskEvent(task_id=task.id, state="done", running=0))


def test_a_cell_reported_done_without_a_saved_result_is_an_error(store: InMemoryImageStore) -> None:
    from medaug.application.errors import StoreError

    ctx = dataclasses.replace(context(store, GradeOracleTrainer(), MemoryRuns()), executor=_ForgetfulExecutor())
    with pytest.raises(StoreError, match="finished but its result is not there"):
        run(spec(), ctx)


def test_a_cell_naming_an_image_the_store_lacks_fails_in_one_line(store: InMemoryImageStore) -> None:
    from medaug.application.errors import StoreError
    from medaug.application.ports import NullProgress
    from medaug.application.services.cells import CellAdapters, run_cell_task
    from medaug.domain.experiment import CellKey
    from tests.fakes import SimpleEvaluator

    runs = MemoryRuns()
    task = CellTask(key=CellKey(arm="none", classifier="oracle", seed=0), store=store.location, runs=runs.location,
                    train=("ghost",), val=(), test=())
    with pytest.raises(StoreError, match="needs image ghost, not in the store"):
        run_cell_task(task, CellAdapters(store, GradeOracleTrainer(), SimpleEvaluator(), runs), NullProgress())
    assert runs.cells == {}
