"""Each task's start and end (wall clock), logged and kept in ``tasks.json`` in the run folder."""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import time
from pathlib import Path

import structlog

from medaug.adapters.files import write_atomic
from medaug.application.ports import TaskEvent

_log = structlog.get_logger(__name__)


def here() -> str:
    """This machine and process, as ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def now() -> float:
    """Wall-clock seconds since the epoch."""
    return time.time()


def _iso(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, tz=dt.UTC).isoformat(timespec="milliseconds")


class Timeline:
    """Logs ``task_started`` / ``task_done`` per finished task and rewrites ``path`` (atomically)
    with every task finished so far, earlier runs' rows kept (a resumed run adds its own).

    Args:
        path: the ``tasks.json`` file, or None to only log.
        executor: the executor's name, recorded per row.
    """

    def __init__(self, path: Path | None, executor: str) -> None:
        self._path = path
        self._executor = executor
        self._rows: list[dict] = []
        if path is not None and path.is_file():
            try:
                self._rows = list(json.loads(path.read_text()).get("tasks", []))
            except (OSError, ValueError, AttributeError):
                self._rows = []  # unreadable: started afresh (it is a record, not a result)

    def record(self, event: TaskEvent) -> None:
        if event.started is None or event.ended is None:
            return
        _log.info("task_started", task=event.task_id, at=_iso(event.started), where=event.where)
        _log.info("task_done", task=event.task_id, at=_iso(event.ended), seconds=round(event.ended - event.started, 3),
                  where=event.where)
        self._rows.append({
            "task": event.task_id, "executor": self._executor, "where": event.where,
            "started": _iso(event.started), "ended": _iso(event.ended),
            "started_s": event.started, "ended_s": event.ended, "seconds": round(event.ended - event.started, 3),
        })  # fmt: skip
        if self._path is not None:
            write_atomic(self._path, json.dumps({"tasks": self._rows}, indent=1))
