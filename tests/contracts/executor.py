"""Contract suite of the Executor port: every adapter runs tasks to success exactly once.

Task workers are module-level functions over plain payloads (a folder and a name), so an
executor that ships tasks to other processes runs exactly the same work. Each completed task
appends one line to ``<dir>/done.log`` and writes ``<dir>/<name>.out``.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from medaug.application.errors import ConfigError
from medaug.application.ports import Executor, Resources, Task, TaskEvent, TaskHandler

MakeExecutor = Callable[..., Executor]
"""``(worker, around=None) -> Executor``."""

AROUND = "MEDAUG_CONTRACT_AROUND"


@contextlib.contextmanager
def marked(task: Task) -> Iterator[None]:
    """An ``around``: the task's id in the environment of the process running it, while it runs."""
    os.environ[AROUND] = task.id
    try:
        yield
    finally:
        del os.environ[AROUND]


def write_mark(task: Task) -> None:
    """Writes what ``marked`` set (or ``-``) and the process id to ``<dir>/<name>.out``."""
    out = Path(task.payload["dir"]) / f"{task.payload['name']}.out"
    out.write_text(f"{os.environ.get(AROUND, '-')} {os.getpid()}")


def write_result(task: Task) -> None:
    """The work of a contract task: wait ``sleep`` s, check dependencies' results, write its own."""
    folder, name = Path(task.payload["dir"]), task.payload["name"]
    time.sleep(task.payload.get("sleep", 0.0))
    for dependency in task.payload.get("needs", ()):
        if not (folder / f"{dependency}.out").is_file():
            raise RuntimeError(f"{name} started before {dependency} finished")
    if task.payload.get("fail"):
        raise ConfigError(f"task {name} refuses")
    tmp = folder / f".{name}.tmp"
    tmp.write_text(name)
    os.replace(tmp, folder / f"{name}.out")
    with open(folder / "done.log", "a") as log:
        log.write(f"{name}\n")


def die_on_first_attempt(task: Task) -> None:
    """Kills its own worker process half-way through the first attempt (a marker file remembers it)."""
    marker = Path(task.payload["dir"]) / f"{task.payload['name']}.attempted"
    if not marker.exists():
        marker.write_text("1")
        time.sleep(0.2)  # in the middle of the work
        os._exit(1)
    write_result(task)


def task(folder: Path, name: str, *, depends_on: tuple[str, ...] = (), **payload: object) -> Task:
    return Task(
        id=name,
        payload={"dir": str(folder), "name": name, "needs": depends_on, **payload},
        depends_on=depends_on,
        resources=Resources(num_cpus=1),
    )


def done_log(folder: Path) -> list[str]:
    log = folder / "done.log"
    return log.read_text().split() if log.exists() else []


class ExecutorContract:
    """Subclass with a ``make_executor`` fixture: ``worker -> Executor`` (the worker is also
    passed to ``run`` as the in-process handler)."""

    def run(self, make_executor: MakeExecutor, tasks: list[Task], worker: TaskHandler = write_result) -> list[TaskEvent]:
        events: list[TaskEvent] = []
        make_executor(worker).run(tasks, worker, events.append)
        return events

    def test_every_task_runs_once_and_reports_done_once(self, make_executor: MakeExecutor, tmp_path: Path) -> None:
        tasks = [task(tmp_path, f"t{i}") for i in range(4)]
        events = self.run(make_executor, tasks)
        assert sorted(done_log(tmp_path)) == ["t0", "t1", "t2", "t3"]
        assert sorted(e.task_id for e in events) == ["t0", "t1", "t2", "t3"]
        assert all(e.state == "done" and e.running >= 0 for e in events)

    def test_a_task_starts_only_after_its_dependencies(self, make_executor: MakeExecutor, tmp_path: Path) -> None:
        tasks = [
            task(tmp_path, "generator", sleep=0.5),
            task(tmp_path, "augment", depends_on=("generator",), sleep=0.2),
            task(tmp_path, "cell", depends_on=("augment", "generator")),
        ]
        self.run(make_executor, tasks)
        assert done_log(tmp_path) == ["generator", "augment", "cell"]

    def test_a_failing_task_raises_its_own_error_and_its_dependants_never_run(
        self, make_executor: MakeExecutor, tmp_path: Path
    ) -> None:
        tasks = [task(tmp_path, "bad", fail=True), task(tmp_path, "after", depends_on=("bad",))]
        with pytest.raises(ConfigError, match="task bad refuses"):
            self.run(make_executor, tasks)
        assert done_log(tmp_path) == []

    def test_bad_task_lists_are_refused_before_anything_runs(self, make_executor: MakeExecutor, tmp_path: Path) -> None:
        with pytest.raises(ValueError, match="listed twice"):
            self.run(make_executor, [task(tmp_path, "a"), task(tmp_path, "a")])
        with pytest.raises(ValueError, match="depends on ghost"):
            self.run(make_executor, [task(tmp_path, "a"), task(tmp_path, "b", depends_on=("ghost",))])
        assert done_log(tmp_path) == []

    def test_each_task_runs_inside_around_in_the_process_that_runs_it(
        self, make_executor: MakeExecutor, tmp_path: Path
    ) -> None:
        tasks = [task(tmp_path, "a"), task(tmp_path, "b", depends_on=("a",))]
        make_executor(write_mark, around=marked).run(tasks, write_mark, lambda event: None)
        assert [(tmp_path / f"{name}.out").read_text().split()[0] for name in ("a", "b")] == ["a", "b"]
        assert AROUND not in os.environ  # left as it was
        make_executor(write_mark).run([task(tmp_path, "plain")], write_mark, lambda event: None)
        assert (tmp_path / "plain.out").read_text().split()[0] == "-"

    def test_no_tasks_is_no_work(self, make_executor: MakeExecutor, tmp_path: Path) -> None:
        assert self.run(make_executor, []) == []
