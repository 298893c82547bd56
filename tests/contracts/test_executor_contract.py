"""The Executor contract against ``local`` and ``ray`` (a private 2-CPU Ray runtime on 127.0.0.1)."""

from __future__ import annotations

from pathlib import Path

import pytest

from medaug.adapters.executors.local import LocalExecutor
from tests.contracts.executor import ExecutorContract, die_on_first_attempt, done_log, task
from tests.ray_runtime import ray_runtime  # noqa: F401 - fixture


class TestLocalExecutor(ExecutorContract):
    @pytest.fixture
    def make_executor(self):  # type: ignore[no-untyped-def]
        return lambda worker, around=None: LocalExecutor(around=around)


class TestRayExecutor(ExecutorContract):
    @pytest.fixture
    def make_executor(self, ray_runtime):  # type: ignore[no-untyped-def]  # noqa: F811
        from medaug.adapters.executors.ray import RayExecutor

        return lambda worker, around=None: RayExecutor(worker, max_retries=2, around=around)

    def test_a_task_whose_worker_dies_is_retried_and_completes_once(self, make_executor, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
        tasks = [task(tmp_path, "dies"), task(tmp_path, "fine")]
        events = self.run(make_executor, tasks, die_on_first_attempt)
        assert (tmp_path / "dies.attempted").exists()
        assert sorted(done_log(tmp_path)) == ["dies", "fine"]  # each completed exactly once
        assert sorted(e.task_id for e in events) == ["dies", "fine"]

    def test_a_worker_that_always_dies_ends_the_run_with_one_line(self, ray_runtime, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
        from medaug.adapters.executors.ray import RayExecutor
        from medaug.application.errors import ExecutionError

        executor = RayExecutor(_always_die, max_retries=1)
        with pytest.raises(ExecutionError, match="task doomed: its worker died 2 times"):
            executor.run([task(tmp_path, "doomed")], _always_die, lambda event: None)


def _always_die(task) -> None:  # type: ignore[no-untyped-def]
    import os

    os._exit(1)

