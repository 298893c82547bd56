"""The ``ray`` executor: tasks as Ray tasks on a private local runtime or an existing cluster.

Ray is an optional extra (``pip install -e ".[ray]"``), imported only when a run starts.
Tasks travel as plain data; each runs through the picklable ``worker`` the executor was built
with, which rebuilds its adapters on the worker and saves the task's result itself.
"""

from __future__ import annotations

import math
import socket
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import structlog

from medaug.adapters.executors.local import Around, untouched
from medaug.adapters.executors.timeline import Timeline, here, now
from medaug.application.errors import ConfigError, ExecutionError
from medaug.application.ports import Task, TaskEvent, TaskHandler, check_tasks

_log = structlog.get_logger(__name__)

MIB = 1024 * 1024


def _call(worker: TaskHandler, around: Around, task: Task, *dependencies: Any) -> tuple[str, float, float, str]:
    """The Ray task body: ``worker(task)`` inside ``around(task)``; ``dependencies`` are the
    results of tasks that had to finish first.

    Returns:
        The task's id, when it started and ended (wall clock, this attempt) and where it ran.
    """
    started = now()
    with around(task):
        worker(task)
    return task.id, started, now(), here()


class RayExecutor:
    """Runs tasks on Ray; a task whose worker process dies is retried up to ``max_retries``.

    Args:
        worker: runs one task from its payload alone (picklable: a module-level function or a
            ``functools.partial`` of one over plain data).
        address: None starts a private runtime on this machine (closed by ``close``);
            ``auto`` or ``ray://host:10001`` joins an existing cluster.
        local_cpus: CPUs of the private runtime (None: all).
        max_retries: reruns of a task whose worker died.
        object_store_mb: object store of the private runtime (None: Ray's default).
        timeline: where each task's start and end are recorded (``tasks.json``); None: logged only.
        connect_timeout: seconds to wait for a cluster ``address`` to answer before refusing.
        around: each task runs inside ``around(task)`` on its worker (picklable, like ``worker``;
            the same the ``local`` executor applies, so both compute alike); None: nothing.
    """

    def __init__(
        self,
        worker: TaskHandler,
        *,
        address: str | None = None,
        local_cpus: int | None = None,
        max_retries: int = 3,
        object_store_mb: int | None = None,
        timeline: Path | None = None,
        connect_timeout: float = 10.0,
        around: Around | None = None,
    ) -> None:
        self._worker = worker
        self._around = around or untouched
        self._address = address
        self._local_cpus = local_cpus
        self._max_retries = max_retries
        self._object_store_mb = object_store_mb
        self._started = False
        self._timeline = timeline
        self._connect_timeout = connect_timeout

    def run(self, tasks: Sequence[Task], handler: TaskHandler, on_event: Callable[[TaskEvent], None]) -> None:
        check_tasks(tasks)
        if not tasks:
            return
        ray = self._connect()
        self._check_fits(ray, tasks)
        remote = ray.remote(_call)
        refs: dict[str, Any] = {}
        for task in tasks:
            refs[task.id] = remote.options(
                num_cpus=task.resources.num_cpus,
                num_gpus=task.resources.num_gpus,
                max_retries=self._max_retries,
                retry_exceptions=False,
                name=task.id,
            ).remote(self._worker, self._around, task, *(refs[dep] for dep in task.depends_on))
        timeline = Timeline(self._timeline, "ray")

        def record(event: TaskEvent) -> None:
            timeline.record(event)
            on_event(event)

        self._collect(ray, {ref: task_id for task_id, ref in refs.items()}, self._slots(ray, tasks), record)

    def close(self) -> None:
        if self._started:
            import ray

            ray.shutdown()
            self._started = False

    def _collect(self, ray: Any, pending: dict[Any, str], slots: int, on_event: Callable[[TaskEvent], None]) -> None:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            task_id = pending.pop(ready[0])
            try:
                _, started, ended, where = ray.get(ready[0])
            except Exception as exc:  # noqa: BLE001 - any failure of a task (its own or Ray's) stops the run
                # force: a polite cancel raises KeyboardInterrupt inside the worker, which may be in the
                # middle of `import torch`; the worker then lives on with half a torch, and the next
                # task given to it (a re-run's, say) fails on import. Killing it is clean.
                for ref in pending:
                    ray.cancel(ref, force=True)
                raise self._error(ray, task_id, exc) from None
            running = min(len(pending), slots)
            on_event(TaskEvent(task_id=task_id, state="done", running=running, started=started, ended=ended, where=where))

    def _check_fits(self, ray: Any, tasks: Sequence[Task]) -> None:
        """Refuse, before any task starts, a task the cluster can never place (it would wait forever)."""
        have = ray.cluster_resources()
        for kind, key in (("num_gpus", "GPU"), ("num_cpus", "CPU")):
            task = max(tasks, key=lambda t: getattr(t.resources, kind))
            wanted = getattr(task.resources, kind)
            if wanted > have.get(key, 0.0):
                setting = "device = \"cuda\" (executor.num_gpus)" if key == "GPU" else "executor.num_cpus (cells) or executor.generator_cpus"
                raise ExecutionError(
                    f"task {task.id} asks for {wanted:g} {key}(s) but the Ray cluster at "
                    f"{self._address or 'this machine'} has {have.get(key, 0.0):g}; change {setting} or add nodes"
                )

    def _error(self, ray: Any, task_id: str, exc: BaseException) -> BaseException:
        if isinstance(exc, ray.exceptions.RayTaskError) and isinstance(exc.cause, BaseException):
            return exc.cause  # the task's own error (a ConfigError stays a ConfigError)
        if isinstance(exc, ray.exceptions.WorkerCrashedError | ray.exceptions.NodeDiedError):
            return ExecutionError(f"task {task_id}: its worker died {self._max_retries + 1} times; see the Ray logs")
        if isinstance(exc, ray.exceptions.RayError):
            return ExecutionError(f"task {task_id}: {type(exc).__name__}: {str(exc).splitlines()[0]}")
        return exc

    def _slots(self, ray: Any, tasks: Sequence[Task]) -> int:
        """How many tasks the cluster fits at once (for the progress bar's 'running')."""
        cpus = ray.cluster_resources().get("CPU", 1.0)
        per_task = max(t.resources.num_cpus for t in tasks)
        return max(1, math.floor(cpus / per_task))

    def _check_answers(self) -> None:
        """Refuse at once (one line) a cluster address where nothing answers, instead of Ray's long wait."""
        if self._address in (None, "auto", "local"):
            return
        target = self._address.removeprefix("ray://").removeprefix("http://").rstrip("/")
        host, _, port = target.rpartition(":")
        if not host or not port.isdigit():
            raise ExecutionError(f"executor.address = {self._address!r}: expected host:port or ray://host:port")
        try:
            socket.create_connection((host, int(port)), timeout=self._connect_timeout).close()
        except OSError as exc:
            raise ExecutionError(
                f"executor.address = {self._address!r}: nothing answers at {host}:{port} ({exc.strerror or exc}); "
                "is the Ray head running?"
            ) from None

    def _connect(self) -> Any:
        try:
            import ray
        except ImportError:
            raise ConfigError('executor.kind = "ray" needs Ray: pip install -e ".[ray]"') from None
        self._check_answers()  # also when Ray already runs here: the address asked for must answer
        if ray.is_initialized():
            return ray
        options: dict[str, Any] = {"address": self._address}
        if self._address is None:  # a private runtime; its workers' output stays in Ray's logs
            options = {
                "address": "local",
                "_node_ip_address": "127.0.0.1",  # private: nothing else joins it
                "num_cpus": self._local_cpus,
                "include_dashboard": False,
                "log_to_driver": False,
                "configure_logging": False,
            }
            if self._object_store_mb is not None:
                options["object_store_memory"] = self._object_store_mb * MIB
        try:
            ray.init(**options)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = self._address or "a local runtime"
            raise ExecutionError(f"executor.address: cannot start or join Ray at {where} ({exc})") from None
        self._started = True
        _log.info("ray_connected", address=self._address or "local", resources=ray.cluster_resources())
        return ray
