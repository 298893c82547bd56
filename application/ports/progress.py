"""Ports: Progress of long work."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
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


def iter_batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    """Consecutive slices of at most ``size`` items."""
    for start in range(0, len(items), max(size, 1)):
        yield items[start : start + max(size, 1)]
