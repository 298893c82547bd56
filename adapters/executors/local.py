"""The ``local`` executor: every task in this process, one after another, in the order given."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from medaug.adapters.executors.timeline import Timeline, here, now
from medaug.application.ports import Task, TaskEvent, TaskHandler, check_tasks


class LocalExecutor:
    """Runs tasks in the calling process (today's behaviour; the default).

    Tasks are listed after their dependencies (``check_tasks``), so running them in order
    respects every dependency. A handler's error stops the run and is raised as it is.

    Args:
        timeline: where each task's start and end are recorded (``tasks.json``); None: logged only.
    """

    def __init__(self, *, timeline: Path | None = None) -> None:
        self._timeline = timeline

    def run(self, tasks: Sequence[Task], handler: TaskHandler, on_event: Callable[[TaskEvent], None]) -> None:
        check_tasks(tasks)
        timeline = Timeline(self._timeline, "local")
        for task in tasks:
            started = now()
            handler(task)
            event = TaskEvent(task_id=task.id, state="done", running=0, started=started, ended=now(), where=here())
            timeline.record(event)
            on_event(event)

    def close(self) -> None:
        return None
