"""Progress sinks: log lines when no terminal shows a bar."""

from __future__ import annotations

from structlog.testing import capture_logs

from medaug.adapters.progress import LogProgress, RichProgress
from medaug.application.ports import NullProgress, ProgressSink
from medaug.composition import factories


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_log_progress_logs_at_most_once_per_interval_and_once_at_the_end() -> None:
    clock = _Clock()
    sink = LogProgress(every_s=30, clock=clock)
    with capture_logs() as logs, sink.task("cnn seed 0", total=10) as task:
        for _ in range(10):
            clock.now += 10
            task.advance(loss=0.123456)
    lines = [entry for entry in logs if entry["event"] == "progress"]
    assert [line["done"] for line in lines] == [3, 6, 9, 10]
    assert lines[0]["task"] == "cnn seed 0" and lines[0]["total"] == 10
    assert lines[0]["rate_per_s"] == 0.1 and lines[0]["eta_s"] == 70
    assert lines[0]["loss"] == "0.1235"
    assert lines[-1]["eta_s"] == 0


def test_log_progress_without_a_total_has_no_eta() -> None:
    clock = _Clock()
    with capture_logs() as logs, LogProgress(every_s=1, clock=clock).task("ingest", total=None) as task:
        clock.now += 2
        task.advance()
    assert {entry["eta_s"] for entry in logs} == {None}


def test_the_cli_shows_bars_on_a_terminal_log_lines_elsewhere_and_nothing_when_quiet() -> None:
    assert isinstance(factories.build_progress(interactive=True), RichProgress)
    assert isinstance(factories.build_progress(interactive=False), LogProgress)
    assert isinstance(factories.build_progress(False), NullProgress)
    assert isinstance(LogProgress(), ProgressSink)
