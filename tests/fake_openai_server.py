"""A local fake of the OpenAI images API for tests: ``/v1/images/edits`` and ``/v1/images/variations``.

Start it on 127.0.0.1 (a free port), point the real ``openai`` client at ``fake.base_url`` and
script what each call gets, in order: an image, 429 with Retry-After, 500, a response slower
than the client's timeout, a content-policy refusal, 401, or a barrier that only answers once
several calls are in flight together. Unscripted calls get an image. Every request is recorded
(headers including Authorization, form fields, the uploaded image bytes).

    with FakeOpenAI() as fake:
        fake.script(rate_limit(retry_after=0.01), server_error(), image())
        client = openai.OpenAI(api_key="k", base_url=fake.base_url, max_retries=0)
"""

from __future__ import annotations

import base64
import email.parser
import email.policy
import io
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
from PIL import Image

_PATHS = {"/v1/images/edits", "/v1/images/variations"}


@dataclass(frozen=True)
class Reply:
    """What the fake answers to one call (build with the helpers below)."""

    kind: str
    retry_after: str | None = None
    seconds: float = 0.0
    barrier: threading.Barrier | None = None


def image() -> Reply:
    """200 with ``n`` base64 PNGs (different for every call) and usage."""
    return Reply("image")


def rate_limit(retry_after: float | str | None = 0.01) -> Reply:
    """429 rate_limit_exceeded, with a ``Retry-After`` header unless None."""
    return Reply("rate_limit", retry_after=None if retry_after is None else str(retry_after))


def server_error() -> Reply:
    """500 server_error."""
    return Reply("server_error")


def slow(seconds: float = 2.0) -> Reply:
    """Wait ``seconds`` (longer than the client's timeout) before answering with an image."""
    return Reply("slow", seconds=seconds)


def refuse() -> Reply:
    """400 content_policy_violation, as the API refuses an image or prompt."""
    return Reply("refuse")


def garbage() -> Reply:
    """200 whose base64 "image" is not an image."""
    return Reply("garbage")


def unauthorized() -> Reply:
    """401 invalid_api_key whose message echoes the key received (as a careless server might)."""
    return Reply("unauthorized")


def together(parties: int = 2, timeout: float = 10.0) -> list[Reply]:
    """``parties`` replies that answer (with images) only when all are in flight at once, else 500."""
    barrier = threading.Barrier(parties, timeout=timeout)
    return [Reply("barrier", barrier=barrier) for _ in range(parties)]


@dataclass
class RecordedRequest:
    """One request the fake received."""

    path: str
    headers: dict[str, str]
    fields: dict[str, str]
    image: bytes | None
    reply: str
    request_id: str
    time: float = field(default_factory=time.monotonic)


class FakeOpenAI:
    """The fake server. Use as a context manager, or call ``close``.

    Args:
        image_size: side of the square images it returns.
        key: when set, requests without ``Authorization: Bearer <key>`` get 401.
    """

    def __init__(self, image_size: int = 48, key: str | None = None) -> None:
        self.image_size = image_size
        self.key = key
        self.requests: list[RecordedRequest] = []
        self.max_in_flight = 0
        self._queue: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._in_flight = 0
        self._count = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        """The ``base_url`` for the openai client."""
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    @property
    def calls(self) -> int:
        """Calls received so far (counted on arrival, before any reply)."""
        with self._lock:
            return self._count

    def script(self, *replies: Reply | list[Reply]) -> None:
        """Queue replies for the next calls, in order."""
        with self._lock:
            for reply in replies:
                self._queue.extend(reply if isinstance(reply, list) else [reply])

    def served(self, kind: str = "image") -> list[RecordedRequest]:
        """Requests that got ``kind`` (images include slow and barrier replies that answered)."""
        return [r for r in self.requests if r.reply == kind]

    def close(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeOpenAI:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _next(self, authorization: str) -> tuple[Reply, int]:
        with self._lock:
            self._count += 1
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
            if self.key is not None and authorization != f"Bearer {self.key}":
                return unauthorized(), self._count
            return (self._queue.popleft() if self._queue else image()), self._count

    def _done(self, record: RecordedRequest) -> None:
        with self._lock:
            self._in_flight -= 1
            self.requests.append(record)

    def _png_b64(self, seed: int) -> str:
        rng = np.random.default_rng(seed)
        pixels = rng.integers(0, 256, (self.image_size, self.image_size, 3), dtype=np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="PNG")
        return base64.b64encode(buffer.getvalue()).decode()


def _handler_for(fake: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return None

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            headers = {k.lower(): v for k, v in self.headers.items()}
            if self.path not in _PATHS:
                self._error(404, "not_found", f"no route {self.path}", "none")
                return
            fields, upload = _parse_multipart(headers.get("content-type", ""), body)
            reply, number = fake._next(headers.get("authorization", ""))
            request_id = f"req_fake_{number:04d}"
            answered = self._answer(reply, fields, number, request_id, headers.get("authorization", ""))
            fake._done(RecordedRequest(self.path, headers, fields, upload, answered, request_id))

        def _answer(self, reply: Reply, fields: dict[str, str], number: int, request_id: str, auth: str) -> str:
            if reply.kind == "rate_limit":
                extra = {"retry-after": reply.retry_after} if reply.retry_after is not None else {}
                self._error(429, "rate_limit_exceeded", "Rate limit reached for images per minute.", request_id, extra)
            elif reply.kind == "server_error":
                self._error(500, "server_error", "The server had an error processing your request.", request_id)
            elif reply.kind == "refuse":
                self._error(
                    400, "content_policy_violation",
                    "Your request was rejected as a result of our safety system.", request_id,
                )
            elif reply.kind == "unauthorized":
                echoed = auth.removeprefix("Bearer ")
                self._error(401, "invalid_api_key", f"Incorrect API key provided: {echoed}.", request_id)
            elif reply.kind == "garbage":
                self._json(200, {"created": int(time.time()), "data": [{"b64_json": "bm90IGFuIGltYWdl"}]}, request_id)
            elif reply.kind == "barrier" and not _wait(reply.barrier):
                self._error(500, "server_error", "calls were not concurrent", request_id)
                return "not_concurrent"
            else:
                if reply.kind == "slow":
                    time.sleep(reply.seconds)
                self._images(fields, number, request_id)
                return "image" if reply.kind != "slow" else "slow"
            return reply.kind

        def _images(self, fields: dict[str, str], number: int, request_id: str) -> None:
            n = int(fields.get("n", "1"))
            payload: dict[str, Any] = {
                "created": int(time.time()),
                "data": [{"b64_json": fake._png_b64(number * 100 + k)} for k in range(n)],
            }
            if self.path.endswith("/edits"):
                payload["usage"] = {
                    "input_tokens": 120, "input_tokens_details": {"image_tokens": 100, "text_tokens": 20},
                    "output_tokens": 272 * n, "total_tokens": 120 + 272 * n,
                }
            self._json(200, payload, request_id)

        def _error(self, status: int, code: str, message: str, request_id: str, extra: dict | None = None) -> None:
            error_type = "image_generation_user_error" if status == 400 else "invalid_request_error"
            body = {"error": {"message": message, "type": error_type, "param": None, "code": code}}
            self._json(status, body, request_id, extra or {})

        def _json(self, status: int, payload: dict, request_id: str, extra: dict | None = None) -> None:
            data = json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("x-request-id", request_id)
                self.send_header("x-should-retry", "false")
                for name, value in (extra or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout): nothing to answer

    return Handler


def _wait(barrier: threading.Barrier | None) -> bool:
    try:
        assert barrier is not None
        barrier.wait()
        return True
    except threading.BrokenBarrierError:
        return False


def _parse_multipart(content_type: str, body: bytes) -> tuple[dict[str, str], bytes | None]:
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    fields: dict[str, str] = {}
    upload = None
    if not message.is_multipart():
        return fields, upload
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True) or b""
        if part.get_filename():
            upload = payload
        elif name:
            fields[str(name)] = payload.decode()
    return fields, upload
