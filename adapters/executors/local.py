"""The ``local`` executor: every task in this process, one after another, in the order given."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from medaug.application.ports import Task, TaskEvent, TaskHandler, check_tasks


class LocalExecutor:
    """Runs tasks in the calling process (today's behaviour; the default).

    Tasks are listed after their dependencies (``check_tasks``), so running them in order
    respects every dependency. A handler's error stops the run and is raised as it is.
    """

    def run(self, tasks: Sequence[Task], handler: TaskHandler, on_event: Callable[[TaskEvent], None]) -> None:
        check_tasks(tasks)
        for task in tasks:
            handler(task)
            on_event(TaskEvent(task_id=task.id, state="done", running=0))

    def close(self) -> None:
        return None
