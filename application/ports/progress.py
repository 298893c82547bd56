"""Ports: Progress of long work."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Protocol, runtime_checkable


class ProgressTask(Protocol):
    """One bar of progress: advance it as work is done; extra fields are shown beside it."""

    def advance(self, steps: int = 1, **fields: Any) -> None: ...


@runtime_checkable
class ProgressSink(Protocol):
    """Where long work reports progress (a rich bar in the CLI, callbacks when embedded).

    Contract: ``task(description, total)`` is a context manager yielding a ``ProgressTask``;
    ``total`` may be None when unknown. Sinks never raise into the work they observe.
    """

    def task(self, description: str, total: int | None) -> AbstractContextManager[ProgressTask]: ...


class _NullTask:
    def advance(self, steps: int = 1, **fields: Any) -> None:
        return None


class _NullContext(AbstractContextManager[ProgressTask]):
    def __enter__(self) -> ProgressTask:
        return _NullTask()

    def __exit__(self, *exc: object) -> None:
        return None


class NullProgress:
    """A ProgressSink that shows nothing (the default for embedded use and tests)."""

    def task(self, description: str, total: int | None) -> AbstractContextManager[ProgressTask]:
        return _NullContext()


ProgressCallback = Callable[[str, int, "int | None", dict[str, Any]], None]
"""``(description, done, total, fields)``: called as a task advances."""


class CallbackProgress:
    """A ProgressSink that calls ``callback(description, done, total, fields)`` on every advance
    (how a backend that embeds medaug follows long work). A callback that raises is ignored:
    sinks never raise into the work they observe."""

    def __init__(self, callback: ProgressCallback) -> None:
        self._callback = callback

    @contextmanager
    def task(self, description: str, total: int | None) -> Iterator[ProgressTask]:
        yield _CallbackTask(self._callback, description, total)


class _CallbackTask:
    def __init__(self, callback: ProgressCallback, description: str, total: int | None) -> None:
        self._callback, self._description, self._total, self._done = callback, description, total, 0
        self.advance(0)

    def advance(self, steps: int = 1, **fields: Any) -> None:
        self._done += steps
        try:
            self._callback(self._description, self._done, self._total, fields)
        except Exception:  # noqa: BLE001 - the contract: progress never breaks the work
            return


def iter_batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    """Consecutive slices of at most ``size`` items."""
    for start in range(0, len(items), max(size, 1)):
        yield items[start : start + max(size, 1)]
