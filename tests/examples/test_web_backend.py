"""The embedding example, for real: examples/web_backend.py serves on 127.0.0.1, starts an
augmentation and an experiment as background jobs, reports their progress and results, and
refuses a bad request in one line before any job starts."""

from __future__ import annotations

import importlib.util
import json
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from medaug.composition.bootstrap import SourceSpec, bootstrap
from medaug.composition.settings import Settings
from tests.cli.test_experiment_cli import TINY

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "web_backend.py"



def _example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("web_backend", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = sys.modules.setdefault(spec.name, importlib.util.module_from_spec(spec))
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.chdir(tmp_path)
    settings = Settings(work_dir=tmp_path / "work", image_size=32, store={"root": str(tmp_path / "store")})
    bootstrap(settings).ingest(SourceSpec(kind="phantom", n=30))
    http, jobs = _example().make_server(settings, "127.0.0.1", 0)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{http.server_address[1]}"
    http.shutdown()
    http.server_close()
    jobs.join(timeout=60)
    thread.join(timeout=5)


def _call(url: str, body: dict | None = None) -> tuple[int, dict]:  # type: ignore[type-arg]
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _finished(url: str, timeout: float = 120.0) -> dict:  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, job = _call(url)
        assert status == 200
        if job["state"] != "running":
            return job
        time.sleep(0.1)
    raise AssertionError(f"{url} still running after {timeout} s")


def test_an_augmentation_runs_in_the_background_and_reports_progress(server: str) -> None:
    status, started = _call(f"{server}/augmentations", {"generator": "classic", "seed": 0})
    assert status == 202 and started["url"].startswith("/jobs/")
    job = _finished(server + started["url"])
    assert job["state"] == "done", job
    report = job["result"]["report"]
    assert report["added"] == job["result"]["planned"] > 0
    (bar,) = [p for name, p in job["progress"].items() if name.startswith("augment")]
    assert bar["done"] == bar["total"] == report["planned"]


def test_an_experiment_job_answers_with_its_verdicts(server: str, tmp_path: Path) -> None:
    (tmp_path / "tiny.toml").write_text(TINY)
    status, started = _call(f"{server}/experiments", {"file": str(tmp_path / "tiny.toml")})
    assert status == 202
    job = _finished(server + started["url"])
    assert job["state"] == "done", job
    (verdict,) = job["result"]["verdicts"]
    assert {verdict["arm"], verdict["baseline"]} == {"classic", "none"} and verdict["test"] == "mcnemar-bootstrap"
    assert verdict["runs"] == 2 and isinstance(verdict["significant"], bool)
    assert any(path.endswith("report.html") for path in job["result"]["written"])
    assert job["progress"]["cells"]["done"] == job["progress"]["cells"]["total"] == job["result"]["cells"] == 4


def test_bad_requests_are_one_line_and_start_nothing(server: str, tmp_path: Path) -> None:
    status, reply = _call(f"{server}/experiments", {"file": str(tmp_path / "absent.toml")})
    assert status == 400 and "absent.toml" in reply["error"] and "\n" not in reply["error"]
    status, reply = _call(f"{server}/augmentations", {"generator": "classic", "policy": {"kind": "no-such"}})
    assert status == 400
    assert _call(f"{server}/jobs/nothing")[0] == 404
    failed = _finished(server + _call(f"{server}/augmentations", {"generator": "nope"})[1]["url"])
    assert failed["state"] == "failed" and "nope" in failed["error"]
