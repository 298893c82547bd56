"""A tiny phantom experiment on a private 2-CPU Ray runtime: same per-cell metrics as in process,
a worker killed in the middle of a cell is retried, every cell's result exists exactly once."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import socket
from pathlib import Path

import pytest

from medaug.application.ports import NullProgress, Task
from medaug.application.services.cells import CELL_TASK_PREFIX, CellAdapters, CellTask, run_cell_task
from medaug.application.services.experiment import run_experiment_job
from medaug.composition import execution, factories, jobs
from medaug.adapters.experiment_file import load_experiment_config
from medaug.composition.settings import Settings
from tests.cli.test_experiment_cli import workspace  # noqa: F401 - fixture
from tests.experiments import invoke
from tests.ray_runtime import ray_runtime  # noqa: F401 - fixture (skips the test when Ray is absent)


def _metrics(run: Path) -> dict[str, dict]:
    cells = json.loads((run / "results.json").read_text())["cells"]
    return {f"{c['key']['arm']}/{c['key']['seed']}": (c["metrics"], c["predictions"]) for c in cells}


# In the default suite: two runs of the tiny experiment (4 cells of 2 epochs each), ~20 s.
def test_cells_on_ray_score_exactly_as_in_process(
    workspace: Path, ray_runtime, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    # Same thread count both ways: float sums over 1 or 2 threads differ in the last digits.
    monkeypatch.setenv("MEDAUG_TRAINERS__CNN__NUM_THREADS", "1")
    local = invoke("experiment", "run", "tiny.toml", "--run-dir", str(workspace / "local"))
    assert local.exit_code == 0, local.output
    on_ray = invoke("experiment", "run", "tiny.toml", "--run-dir", str(workspace / "ray"), "--executor", "ray")
    assert on_ray.exit_code == 0, on_ray.output
    assert len(_metrics(workspace / "ray")) == 4
    assert _metrics(workspace / "ray") == _metrics(workspace / "local")


def die_in_first_cell(marker: str, attempts: str, settings_data: dict, task: Task) -> None:
    """The real cell worker, except that the first cell's first attempt kills its own worker
    process after its first training epoch. Every attempt is logged with its process id."""
    with open(attempts, "a") as log:
        log.write(f"{task.id} {os.getpid()}\n")
    if Path(marker).exists() or not isinstance(task.payload, CellTask):  # augmentation tasks run as they are
        execution.run_task(settings_data, task)
        return
    Path(marker).write_text(task.id)
    settings = Settings(**settings_data)
    cell = task.payload
    trainer = factories.build_trainer(cell.key.classifier, settings)

    class _DiesAfterOneEpoch:
        """A progress sink whose first advance (the end of epoch 1) ends the worker process."""

        @contextlib.contextmanager
        def task(self, description, total):  # type: ignore[no-untyped-def]
            yield self

        def advance(self, steps=1, **fields):  # type: ignore[no-untyped-def]
            os._exit(1)

    class _DiesMidway:
        def train_and_predict(self, request, store, *, progress):  # type: ignore[no-untyped-def]
            return trainer.train_and_predict(request, store, progress=_DiesAfterOneEpoch())

    adapters = CellAdapters(
        store=factories.build_store(settings, cell.store),
        trainer=_DiesMidway(),
        evaluator=factories.build_evaluator(0),
        runs=factories.build_run_folder(Path(cell.runs)),
    )
    run_cell_task(cell, adapters, NullProgress())


def test_a_worker_killed_mid_cell_is_retried_and_each_cell_is_saved_once(workspace: Path, ray_runtime) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    import functools

    from medaug.adapters.executors.ray import RayExecutor

    config = load_experiment_config(workspace / "tiny.toml")
    settings = Settings(work_dir=workspace / "work", trainers={"cnn": {"epochs": 6}})
    run = workspace / "killed"
    job = jobs.experiment_job(config, settings, run_dir=run, executor="ray")
    merged = jobs.experiment_settings(settings, config).model_dump()
    marker, attempts = workspace / "killed.marker", workspace / "attempts.log"
    worker = functools.partial(die_in_first_cell, str(marker), str(attempts), merged)
    job = dataclasses.replace(job, executor=RayExecutor(worker, max_retries=2))

    outcome = run_experiment_job(job, progress=NullProgress())

    killed = marker.read_text()
    tries = [line.split() for line in attempts.read_text().splitlines() if line.startswith(killed + " ")]
    assert len(tries) == 2 and tries[0][1] != tries[1][1]  # a second process ran it again
    files = sorted(p.name for p in (run / "cells").iterdir())
    assert files == sorted(f"{c.key.slug}.json" for c in outcome.result.cells) and len(files) == 4
    keys = [json.dumps(c["key"], sort_keys=True) for c in json.loads((run / "results.json").read_text())["cells"]]
    assert len(keys) == len(set(keys)) == 4


def test_a_cluster_run_on_local_paths_is_refused_in_one_line(
    workspace: Path, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    monkeypatch.setenv("MEDAUG_EXECUTOR__ADDRESS", "ray://head:10001")
    result = invoke("experiment", "run", "tiny.toml", "--executor", "ray")
    assert result.exit_code != 0
    assert "executor.address = 'ray://head:10001'" in result.output and "use an S3 store" in result.output
    assert not (workspace / "work" / "runs").exists()  # refused before any work


def test_a_shared_file_system_lets_a_cluster_run_through_and_nothing_connects_early(
    workspace: Path,  # noqa: F811
) -> None:
    config = load_experiment_config(workspace / "tiny.toml")
    settings = Settings(work_dir=workspace / "work", executor={"address": "auto", "shared_filesystem": True})
    job = jobs.experiment_job(config, settings, executor="ray")
    from medaug.adapters.executors.ray import RayExecutor

    assert isinstance(job.executor, RayExecutor)


def test_an_unknown_executor_is_one_line_before_any_work(workspace: Path) -> None:  # noqa: F811
    result = invoke("experiment", "run", "tiny.toml", "--executor", "dask")
    assert result.exit_code != 0 and "--executor 'dask': choose one of local, ray" in result.output
    assert not (workspace / "work").exists()


def test_a_ray_address_where_nothing_answers_is_one_line_before_any_task(
    workspace: Path, ray_runtime, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    # Even with Ray already running in this process, the address asked for is checked.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # free once closed: nothing listens there
    monkeypatch.setenv("MEDAUG_EXECUTOR__ADDRESS", f"ray://127.0.0.1:{port}")
    monkeypatch.setenv("MEDAUG_EXECUTOR__SHARED_FILESYSTEM", "true")
    result = invoke("experiment", "run", "tiny.toml", "--executor", "ray")
    assert result.exit_code != 0
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"nothing answers at 127.0.0.1:{port}" in errors[0], result.output
    _nothing_ran(workspace / "work")


def test_a_task_asking_for_a_gpu_on_a_cluster_with_none_is_one_line_before_any_task(
    workspace: Path, ray_runtime, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    monkeypatch.setenv("MEDAUG_EXECUTOR__NUM_GPUS", "1")
    result = invoke("experiment", "run", "tiny.toml", "--executor", "ray")
    assert result.exit_code != 0
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    refused = "asks for 1 GPU(s) but the Ray cluster at this machine has 0"
    assert len(errors) == 1 and refused in errors[0], result.output
    _nothing_ran(workspace / "work")


def _nothing_ran(work: Path) -> None:
    run = work / "runs" / "tiny"
    assert not (run / "tasks.json").exists() and not (run / "cells").exists()
    assert not [p for p in work.rglob("*.png") if "classic" in p.name]  # the augmentation task never ran


def die_in_one_cell(doomed: str, settings_data: dict, task: Task) -> None:
    """The real worker, except that task ``doomed`` kills its worker process on every attempt."""
    if task.id == doomed:
        os._exit(1)
    execution.run_task(settings_data, task)


def test_a_ray_rerun_after_a_task_killed_its_workers_runs_only_what_has_no_result(  # type: ignore[no-untyped-def]
    workspace: Path, ray_runtime  # noqa: F811
) -> None:
    import functools

    from medaug.adapters.executors.ray import RayExecutor
    from medaug.application.errors import ExecutionError

    config = load_experiment_config(workspace / "tiny.toml")
    settings = Settings(work_dir=workspace / "work", trainers={"cnn": {"num_threads": 1}})
    run = workspace / "rerun"
    job = jobs.experiment_job(config, settings, run_dir=run, executor="ray")
    doomed = f"{CELL_TASK_PREFIX}classic__cnn__s1"  # after the augmentation it depends on
    worker = functools.partial(die_in_one_cell, doomed, jobs.experiment_settings(settings, config).model_dump())
    killed = dataclasses.replace(job, executor=RayExecutor(worker, max_retries=1, timeline=run / "tasks.json"))
    with pytest.raises(ExecutionError, match=f"task {doomed}: its worker died 2 times"):
        run_experiment_job(killed, progress=NullProgress())
    first = [row["task"] for row in json.loads((run / "tasks.json").read_text())["tasks"]]
    assert "augment:classic" in first and doomed not in first
    saved = {p.name: p.stat().st_mtime_ns for p in (run / "cells").iterdir()}
    images = {p: p.stat().st_mtime_ns for p in (workspace / "work").rglob("*.png")}

    again = jobs.experiment_job(config, settings, run_dir=run, executor="ray")
    outcome = run_experiment_job(again, progress=NullProgress())

    second = [row["task"] for row in json.loads((run / "tasks.json").read_text())["tasks"]][len(first):]
    # a cell in flight when the run stopped may have saved its result without being recorded
    done = set(first) | {f"{CELL_TASK_PREFIX}{name.removesuffix('.json')}" for name in saved}
    assert doomed in second and not set(second) & done  # nothing done twice
    assert set(second) | done == {"augment:classic", *(f"{CELL_TASK_PREFIX}{c.key.slug}" for c in outcome.result.cells)}
    assert {n: t for n, t in ((p.name, p.stat().st_mtime_ns) for p in (run / "cells").iterdir()) if n in saved} == saved
    assert {p: p.stat().st_mtime_ns for p in images} == images  # no synthetic image made again
    assert len(outcome.result.cells) == 4
