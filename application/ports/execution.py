"""Ports: Execution of an experiment's independent tasks (in process, or on a cluster)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol


@dataclass(frozen=True)
class Resources:
    """What one task needs while it runs (a scheduler packs tasks by these figures).

    Attributes:
        num_cpus: CPU cores (fractions allowed).
        num_gpus: GPUs (fractions share one device).
    """

    num_cpus: float = 1.0
    num_gpus: float = 0.0


@dataclass(frozen=True)
class Task:
    """One unit of work, described by plain picklable data (never live adapters or clients).

    Attributes:
        id: unique within one ``Executor.run`` call (e.g. ``cell:none__cnn__s0``).
        payload: what the task handler needs to do the work: plain data only.
        depends_on: ids of tasks (in the same call) that must have succeeded before it starts.
        resources: what it needs while it runs.
    """

    id: str
    payload: Any
    depends_on: tuple[str, ...] = ()
    resources: Resources = field(default_factory=Resources)


@dataclass(frozen=True)
class TaskEvent:
    """A change in one task's state, reported on the calling (driver) thread.

    Attributes:
        task_id: the task.
        state: ``done`` when it succeeded.
        running: how many tasks are in flight after this event.
        started: when its (last) attempt started, seconds since the epoch (None: not recorded).
        ended: when it ended, seconds since the epoch (None: not recorded).
        where: the machine and process it ran in (``host:pid``; empty when not recorded).
    """

    task_id: str
    state: Literal["done"]
    running: int
    started: float | None = None
    ended: float | None = None
    where: str = ""


TaskHandler = Callable[[Task], None]
"""Does a task's work. A task makes its own result durable (writes it atomically where the
driver reads it back); a handler that raises fails the task."""


class Executor(Protocol):
    """Runs a set of tasks, each to success exactly once, in process or on a cluster.

    Contract:
        - ``run(tasks, handler, on_event)`` returns once every task has succeeded; ids are
          unique and every ``depends_on`` names a task of the same call (else ``ValueError``
          before anything runs).
        - A task starts only after each task it depends on has succeeded.
        - ``on_event`` is called on the calling thread, once per task, when it succeeds.
        - A task whose handler raises fails the run: no further task is started and the
          first error is raised (its type preserved) after tasks already in flight end or
          are cancelled. Tasks that succeeded keep their results, so a re-run resumes.
        - Executors that run tasks in this process call ``handler``; executors that ship
          tasks elsewhere (other processes or machines) run them through the picklable worker
          they were built with, which must do the same work from the task's payload alone.
          A worker process that dies mid-task is retried (up to the executor's retry limit).
        - ``close()`` releases whatever the executor started (a local cluster runtime).
    """

    def run(self, tasks: Sequence[Task], handler: TaskHandler, on_event: Callable[[TaskEvent], None]) -> None: ...

    def close(self) -> None: ...


def check_tasks(tasks: Sequence[Task]) -> None:
    """Raise ``ValueError`` on duplicate ids or a dependency outside ``tasks`` or on a later task.

    Tasks must be listed after the tasks they depend on, so one pass in order respects every
    dependency (shared by every executor).
    """
    seen: set[str] = set()
    for task in tasks:
        if task.id in seen:
            raise ValueError(f"task {task.id!r} is listed twice")
        missing = [dep for dep in task.depends_on if dep not in seen]
        if missing:
            raise ValueError(f"task {task.id!r} depends on {', '.join(missing)}, not listed before it")
        seen.add(task.id)
