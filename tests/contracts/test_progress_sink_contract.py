"""The ProgressSink contract, run against every sink: each shows what it was told (the task, the
steps taken, the fields), the null sink nothing, and none interferes with the observed work."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator

import pytest
from rich.console import Console
from structlog.testing import capture_logs

from medaug.adapters.progress import LogProgress, RichProgress
from medaug.application.ports import CallbackProgress, NullProgress, ProgressSink

class Observed:
    """A sink and a way to read back what it showed."""

    def __init__(self, sink: ProgressSink, shown: Callable[[], str], shows: bool) -> None:
        self.sink, self.shown, self.shows = sink, shown, shows


def _rich() -> Observed:
    screen = io.StringIO()
    return Observed(RichProgress(Console(file=screen, force_terminal=True, width=200)), screen.getvalue, True)


def _log() -> Observed:
    return Observed(LogProgress(every_s=0), lambda: "", True)  # read from the captured log lines


def _callback() -> Observed:
    calls: list[tuple] = []  # type: ignore[type-arg]
    shown = lambda: " ".join(f"{d} done={n} total={t} {' '.join(f'{k}={v}' for k, v in f.items())}" for d, n, t, f in calls)  # noqa: E731
    return Observed(CallbackProgress(lambda *args: calls.append(args)), shown, True)


SINKS = {"null": lambda: Observed(NullProgress(), lambda: "", False), "rich": _rich, "log": _log, "callback": _callback}


@pytest.fixture(params=sorted(SINKS))
def observed(request: pytest.FixtureRequest) -> Iterator[Observed]:
    found = SINKS[request.param]()
    with capture_logs() as logs:
        if isinstance(found.sink, LogProgress):
            found.shown = lambda: " ".join(" ".join(f"{k}={v}" for k, v in e.items()) for e in logs)
        yield found


def test_a_sink_is_a_progress_sink(observed: Observed) -> None:
    assert isinstance(observed.sink, ProgressSink)


@pytest.mark.parametrize("total", [3, None, 0])
def test_a_sink_shows_the_task_its_steps_and_fields(observed: Observed, total: int | None) -> None:
    with observed.sink.task("ingest eyes", total=total) as task:
        assert task.advance() is None
        task.advance(2, loss=0.5, note="x")
    shown = observed.shown()
    if not observed.shows:
        assert shown == ""
        return
    assert "ingest eyes" in shown
    assert "loss" in shown and "0.5" in shown
    if "done=" in shown:  # a log line
        assert "done=3" in shown and f"total={total}" in shown
    else:  # a bar
        assert ("3/3" if total else "3") in shown


def test_errors_of_the_observed_work_pass_through_unchanged(observed: Observed) -> None:
    with pytest.raises(KeyError, match="boom"), observed.sink.task("work", total=1):
        raise KeyError("boom")


def test_a_callback_sink_reports_each_advance_and_swallows_the_callback_s_errors() -> None:
    seen: list[tuple] = []  # type: ignore[type-arg]
    with CallbackProgress(lambda *args: seen.append(args)).task("work", total=3) as task:
        task.advance(2, loss=0.5)
    assert seen == [("work", 0, 3, {}), ("work", 2, 3, {"loss": 0.5})]

    def broken(*args: object) -> None:
        raise RuntimeError("a backend's bug")

    with CallbackProgress(broken).task("work", total=1) as task:
        task.advance()  # the work goes on
