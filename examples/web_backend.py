"""A web backend that embeds medaug: start an augmentation or an experiment as a background job
over HTTP and follow its progress. Standard library only (``http.server``, ``threading``).

    python examples/web_backend.py --port 8080 [--config medaug.toml]

    POST /augmentations  {"generator": "classic", "store": "medaug-data/store", "seed": 0,
                          "policy": {"kind": "balance-largest"}}
    POST /experiments    {"file": "experiments/quick.toml"}    (no file: the built-in experiment)
    GET  /jobs/<id>      {"state": "running" | "done" | "failed", "progress": {...}, "result": {...},
                          "error": "..."}

Everything medaug does goes through ``bootstrap(settings)``: one ``Services`` object per job, its
progress reported through a ``CallbackProgress`` into the job's record. A ``MedaugError`` (bad
input, configuration, store) ends the job as ``failed`` with its one-line message.
"""

from __future__ import annotations

import argparse
import json
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from medaug.application.errors import MedaugError
from medaug.application.ports import CallbackProgress
from medaug.application.services.augment import AugmentCommand
from medaug.composition.bootstrap import Services, bootstrap, read_experiment
from medaug.composition.settings import Settings, load_settings
from medaug.domain import PlanPolicy


@dataclass
class Job:
    """One background job: its state, progress per task and result (plain JSON data)."""

    id: str
    kind: str
    state: str = "running"
    progress: dict[str, dict[str, Any]] = field(default_factory=dict)
    result: dict[str, Any] | None = None
    error: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def on_progress(self, description: str, done: int, total: int | None, fields: dict[str, Any]) -> None:
        with self.lock:
            self.progress[description] = {"done": done, "total": total, **{k: str(v) for k, v in fields.items()}}

    def view(self) -> dict[str, Any]:
        with self.lock:
            return {"id": self.id, "kind": self.kind, "state": self.state, "progress": dict(self.progress),
                    "result": self.result, "error": self.error}  # fmt: skip


class Jobs:
    """The jobs of this server, each run on its own thread with its own ``Services``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._jobs: dict[str, Job] = {}
        self._threads: list[threading.Thread] = []

    def start(self, kind: str, work: Callable[[Services], dict[str, Any]]) -> Job:
        job = Job(id=uuid.uuid4().hex[:12], kind=kind)
        self._jobs[job.id] = job
        services = bootstrap(self.settings, progress=CallbackProgress(job.on_progress))

        def run() -> None:
            try:
                result, state, error = work(services), "done", None
            except MedaugError as exc:
                result, state, error = None, "failed", str(exc)
            with job.lock:
                job.result, job.state, job.error = result, state, error

        thread = threading.Thread(target=run, name=f"medaug-{kind}-{job.id}", daemon=True)
        self._threads.append(thread)
        thread.start()
        return job

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def join(self, timeout: float | None = None) -> None:
        """Wait for every job's thread (when the server stops)."""
        for thread in self._threads:
            thread.join(timeout)


def augmentation(body: dict[str, Any]) -> Callable[[Services], dict[str, Any]]:
    """The work of ``POST /augmentations``: one generator grows a store's training split."""
    command = AugmentCommand(
        generator=body.get("generator", "classic"),
        policy=PlanPolicy.model_validate(body.get("policy", {"kind": "balance-largest"})),
        seed=int(body.get("seed", 0)),
        augmentation=body.get("augmentation"),
    )

    def work(services: Services) -> dict[str, Any]:
        outcome = services.augment(command, store=body.get("store"))
        return {"planned": len(outcome.plan.jobs), "report": outcome.report.model_dump() if outcome.report else None}

    return work


def experiment(body: dict[str, Any]) -> Callable[[Services], dict[str, Any]]:
    """The work of ``POST /experiments``: an experiment file (or the built-in one), end to end."""
    file = body.get("file")
    config = read_experiment(Path(file) if file else None)  # a bad file is refused before the job starts
    run_dir = Path(body["run_dir"]) if body.get("run_dir") else None

    def work(services: Services) -> dict[str, Any]:
        outcome = services.run_experiment(config, run_dir=run_dir)
        verdicts = [v.model_dump() for v in outcome.result.verdicts()]
        return {"written": list(outcome.written), "cells": len(outcome.result.cells), "verdicts": verdicts}

    return work


ROUTES = {"/augmentations": ("augmentation", augmentation), "/experiments": ("experiment", experiment)}


def make_server(settings: Settings, host: str = "127.0.0.1", port: int = 0) -> tuple[ThreadingHTTPServer, Jobs]:
    """An HTTP server (not started: call ``serve_forever``) and its jobs; port 0 picks a free port."""
    jobs = Jobs(settings)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the http.server name
            route = ROUTES.get(self.path)
            if route is None:
                return self._send(HTTPStatus.NOT_FOUND, {"error": f"no route {self.path}"})
            try:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                work = route[1](body)
            except (MedaugError, ValueError) as exc:
                return self._send(HTTPStatus.BAD_REQUEST, {"error": str(exc).splitlines()[0]})
            job = jobs.start(route[0], work)
            self._send(HTTPStatus.ACCEPTED, {"job": job.id, "url": f"/jobs/{job.id}"})

        def do_GET(self) -> None:  # noqa: N802
            job = jobs.get(self.path.removeprefix("/jobs/")) if self.path.startswith("/jobs/") else None
            if job is None:
                return self._send(HTTPStatus.NOT_FOUND, {"error": f"no job at {self.path}"})
            self._send(HTTPStatus.OK, job.view())

        def _send(self, status: HTTPStatus, payload: dict[str, Any]) -> None:
            data = json.dumps(payload, default=str).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet by default
            return

    return ThreadingHTTPServer((host, port), Handler), jobs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--config", type=Path, default=None, help="a medaug.toml (default: ./medaug.toml if present)")
    args = parser.parse_args()
    server, jobs = make_server(load_settings(args.config), args.host, args.port)
    print(f"medaug backend on http://{args.host}:{server.server_address[1]}")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        jobs.join(timeout=1)


if __name__ == "__main__":
    main()
