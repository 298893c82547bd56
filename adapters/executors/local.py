"""The ``local`` executor: every task in this process, one after another, in the order given."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from pathlib import Path

from medaug.adapters.executors.timeline import Timeline, here, now
from medaug.application.ports import Task, TaskEvent, TaskHandler, check_tasks

Around = Callable[[Task], contextlib.AbstractContextManager[None]]
"""What each task runs inside, in the process that runs it (e.g. its torch thread count)."""


def untouched(task: Task) -> contextlib.AbstractContextManager[None]:
    """Runs a task as it is (the default ``around``)."""
    return contextlib.nullcontext()


class LocalExecutor:
    """Runs tasks in the calling process (today's behaviour; the default).

    Tasks are listed after their dependencies (``check_tasks``), so running them in order
    respects every dependency. A handler's error stops the run and is raised as it is.

    Args:
        timeline: where each task's start and end are recorded (``tasks.json``); None: logged only.
        around: each task runs inside ``around(task)`` (the same the ``ray`` executor applies on
            its workers, so both compute alike); None: nothing.
    """

    def __init__(self, *, timeline: Path | None = None, around: Around | None = None) -> None:
        self._timeline = timeline
        self._around = around or untouched

    def run(self, tasks: Sequence[Task], handler: TaskHandler, on_event: Callable[[TaskEvent], None]) -> None:
        check_tasks(tasks)
        timeline = Timeline(self._timeline, "local")
        for task in tasks:
            started = now()
            with self._around(task):
                handler(task)
            event = TaskEvent(task_id=task.id, state="done", running=0, started=started, ended=now(), where=here())
            timeline.record(event)
            on_event(event)

    def close(self) -> None:
        return None
