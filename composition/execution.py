"""Where an experiment's tasks run and where it is tracked, built from settings.

``run_task`` is the entry point of a task on a cluster worker: it gets the settings as plain
data and the task, rebuilds the adapters the task needs there and runs it through the same
application code the local executor runs in process.
"""

from __future__ import annotations

import contextlib
import functools
import os
from pathlib import Path
from typing import Any

from medaug.application.ports import Executor, NullProgress, Resources, Task, Tracker
from medaug.application.services import cells
from medaug.application.services.cells import CellAdapters, CellTask, run_cell_task
from medaug.application.services.experiment_graph import ScopeTask, run_scope_task
from medaug.application.services.experiment_job import DatasetStep, ExperimentJob
from medaug.composition import factories
from medaug.composition.settings import Settings, device_of

EXECUTORS = ("local", "ray")
TIMELINE = "tasks.json"
"""The file in the run folder where executors record each task's start and end (wall clock)."""


def build_executor(settings: Settings, run_folder: Path | None = None) -> Executor:
    """The executor ``settings.executor`` names; Ray's workers rebuild adapters from ``settings``.

    Args:
        run_folder: where the executor records its tasks' times (``tasks.json``); None: nowhere.
    """
    config = settings.executor
    timeline = None if run_folder is None else run_folder / TIMELINE
    if config.kind == "local":
        from medaug.adapters.executors.local import LocalExecutor

        return LocalExecutor(timeline=timeline, around=task_threads)
    from medaug.adapters.executors.ray import RayExecutor

    return RayExecutor(
        functools.partial(run_task, settings.model_dump()),
        address=config.address,
        local_cpus=config.local_cpus,
        max_retries=config.max_retries,
        object_store_mb=config.object_store_mb,
        timeline=timeline,
        around=task_threads,
    )


def task_threads(task: Task) -> contextlib.AbstractContextManager[None]:
    """What each task runs inside, on either executor: a generator training or augmentation task
    computes with as many torch threads as CPUs it declares (``executor.generator_cpus``, at least 1).

    A Ray worker starts torch with one thread per CPU its task declares, a local process with one
    per core: the float sums of training and sampling then differ in their last digits and so do
    the images. Pinned, local and Ray make the same images. A generator's own thread setting
    (``generators.dcgan.num_threads``) still applies within its task. Cells keep their trainers'
    ``num_threads`` (None: the process's default; set it for the same metrics on both).
    """
    if not isinstance(task.payload, ScopeTask):
        return contextlib.nullcontext()
    from medaug.adapters.torch_support import torch_threads  # torch loads only where a generator task runs

    return torch_threads(max(1, int(task.resources.num_cpus)))


def generator_resources(settings: Settings) -> Resources:
    """What each generator training (and augmentation) task asks for: ``executor.generator_cpus``
    (unset: this machine's cores, as many as a local run computes with) and ``executor.num_gpus``
    (at least one GPU) when the generators run on CUDA, else no GPU.

    ``device = "cuda"`` asks for a GPU as it is (the driver itself may have none: the cluster's
    GPU nodes do); ``auto`` is resolved here, on the driver, once per process (``device_of``):
    a GPU where the driver sees one.
    """
    on_cuda = settings.device == "cuda" or (settings.device == "auto" and device_of(settings) == "cuda")
    return settings.executor.generator_resources("cuda" if on_cuda else "cpu", machine_cores())


def machine_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS tells it: a container's
    or a SLURM job's share, not the whole machine's)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def check_reachable(settings: Settings, store: str, run_folder: Path) -> None:
    """Refuse, before any work, a Ray run whose store or run folder other nodes cannot see (see ``cells.check_reachable``)."""
    config = settings.executor
    if config.kind == "ray":
        cells.check_reachable(config.address, config.shared_filesystem, store, str(run_folder))


def build_tracker(settings: Settings, experiment: str) -> Tracker | None:
    """The MLflow tracker when ``tracking.mlflow_uri`` is set, else None (nothing connects yet)."""
    config = settings.tracking
    if config.mlflow_uri is None:
        return None
    from medaug.adapters.tracking.mlflow import MlflowTracker

    return MlflowTracker(config.mlflow_uri, config.experiment or experiment)


def run_task(settings_data: dict[str, Any], task: Task) -> None:
    """Run ``task`` on this (worker) process with adapters rebuilt from ``settings_data``."""
    settings = Settings(**settings_data)
    payload = task.payload
    if isinstance(payload, ScopeTask):
        run_scope_task(payload, _scope_job(settings, payload), NullProgress())
        return
    if not isinstance(payload, CellTask):
        raise TypeError(f"task {task.id}: no worker for {type(payload).__name__}")
    adapters = CellAdapters(
        store=factories.build_store(settings, payload.store),
        trainer=factories.build_trainer(payload.key.classifier, settings),
        evaluator=factories.build_evaluator(settings.seed),
        runs=factories.build_run_folder(payload.runs, settings),
        external_stores={name: factories.build_store(settings, location) for name, location in payload.external},
    )
    run_cell_task(payload, adapters, NullProgress())


def _scope_job(settings: Settings, task: ScopeTask) -> ExperimentJob:
    """The part of an experiment job a generator or augmentation task uses, rebuilt on a worker
    exactly as ``jobs.experiment_job`` builds it on the driver."""
    from medaug.composition import jobs  # jobs builds executors from this module

    store = factories.build_store(settings, task.store)
    return ExperimentJob(
        spec=task.spec,
        dataset=DatasetStep(store=store, description=f"store {store.location}", seed=settings.seed),
        runs=factories.build_run_folder(task.runs, settings, store_identity=store.identity),
        trainers={},
        evaluator=factories.build_evaluator(settings.seed),
        **jobs.synthetic_parts(settings, store),
    )
