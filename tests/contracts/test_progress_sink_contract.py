"""The ProgressSink contract, run against every sink."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from medaug.adapters.progress import LogProgress, RichProgress
from medaug.application.ports import CallbackProgress, NullProgress, ProgressSink

SINKS = {
    "null": NullProgress,
    "rich": lambda: RichProgress(Console(file=io.StringIO(), force_terminal=True)),
    "log": lambda: LogProgress(every_s=0),
    "callback": lambda: CallbackProgress(lambda *args: None),
}


@pytest.fixture(params=sorted(SINKS))
def sink(request: pytest.FixtureRequest) -> ProgressSink:
    return SINKS[request.param]()


def test_a_sink_is_a_progress_sink(sink: ProgressSink) -> None:
    assert isinstance(sink, ProgressSink)


@pytest.mark.parametrize("total", [3, None, 0])
def test_tasks_take_steps_and_fields_with_or_without_a_total(sink: ProgressSink, total: int | None) -> None:
    with sink.task("work", total=total) as task:
        task.advance()
        task.advance(2, loss=0.5, note="x")


def test_errors_of_the_observed_work_pass_through_unchanged(sink: ProgressSink) -> None:
    with pytest.raises(KeyError, match="boom"), sink.task("work", total=1):
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
