"""ProgressSink adapters: rich progress bars for terminals, periodic log lines otherwise."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import structlog
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

_log = structlog.get_logger("medaug.progress")


class _RichTask:
    def __init__(self, progress: Progress, task_id: TaskID) -> None:
        self._progress = progress
        self._task_id = task_id

    def advance(self, steps: int = 1, **fields: Any) -> None:
        info = "  ".join(f"{k}={_fmt(v)}" for k, v in fields.items())
        self._progress.update(self._task_id, advance=steps, info=info)


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


class RichProgress:
    """Shows each task as a rich progress bar (count, rate fields, elapsed and ETA) on stderr."""

    def __init__(self, console: Console | None = None) -> None:
        self._console = console or Console(stderr=True)

    @contextmanager
    def task(self, description: str, total: int | None) -> Iterator[_RichTask]:
        progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[info]}"),
            console=self._console,
            transient=False,
        )
        with progress:
            task_id = progress.add_task(description, total=total, info="")
            yield _RichTask(progress, task_id)


class _LoggedTask:
    def __init__(self, description: str, total: int | None, every_s: float, clock: Callable[[], float]) -> None:
        self._description = description
        self._total = total
        self._every_s = every_s
        self._clock = clock
        self._started = clock()
        self._last_logged = self._started
        self._done = 0
        self._fields: dict[str, Any] = {}

    def advance(self, steps: int = 1, **fields: Any) -> None:
        self._done += steps
        self._fields = fields
        if self._clock() - self._last_logged >= self._every_s:
            self.log()

    def log(self) -> None:
        now = self._clock()
        self._last_logged = now
        elapsed = now - self._started
        rate = self._done / elapsed if elapsed > 0 else None
        eta = (self._total - self._done) / rate if rate and self._total is not None else None
        _log.info(
            "progress",
            task=self._description,
            done=self._done,
            total=self._total,
            elapsed_s=round(elapsed, 1),
            rate_per_s=None if rate is None else round(rate, 3),
            eta_s=None if eta is None else round(eta),
            **{k: _fmt(v) for k, v in self._fields.items()},
        )



class LogProgress:
    """Reports progress as structured log lines, at most one per ``every_s`` seconds and one at the end.

    For jobs whose stderr is not a terminal (nohup, SLURM, CI), where a rich bar would only be
    drawn once the work is over.
    """

    def __init__(self, every_s: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._every_s = every_s
        self._clock = clock

    @contextmanager
    def task(self, description: str, total: int | None) -> Iterator[_LoggedTask]:
        task = _LoggedTask(description, total, self._every_s, self._clock)
        yield task
        task.log()
