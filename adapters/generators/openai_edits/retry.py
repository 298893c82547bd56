"""What an API failure means (retry, refusal, stop) and how long to wait before retrying."""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Mapping

import openai
from pydantic import BaseModel, ConfigDict

_REFUSAL_CODES = {"content_policy_violation", "moderation_blocked"}
_RETRY_STATUSES = {408, 409, 429}


class Failure(BaseModel):
    """One failed attempt, classified.

    Attributes:
        kind: ``retry`` (transient: 429, 5xx, timeout, connection), ``refused`` (content policy)
            or ``fatal`` (authentication, bad request, quota...).
        reason: one line for the ledger and errors (secrets removed by the caller).
        http_status: the HTTP status, when the server answered.
        request_id: the API's request id, when the server answered.
        retry_after: seconds the server asked to wait (Retry-After), if it did.
    """

    model_config = ConfigDict(frozen=True)

    kind: str
    reason: str
    http_status: int | None = None
    request_id: str | None = None
    retry_after: float | None = None


def classify(exc: openai.OpenAIError) -> Failure:
    """Classify an ``openai`` exception raised by an images call."""
    if isinstance(exc, openai.APITimeoutError):
        return Failure(kind="retry", reason="timeout")
    if isinstance(exc, openai.APIConnectionError):
        return Failure(kind="retry", reason=f"connection error ({type(exc.__cause__ or exc).__name__})")
    if not isinstance(exc, openai.APIStatusError):
        return Failure(kind="fatal", reason=f"{type(exc).__name__}: {exc}")
    status, code = exc.status_code, (exc.code or "")
    base = {"http_status": status, "request_id": exc.request_id}
    message = _message(exc)
    if code in _REFUSAL_CODES or (status == 400 and "safety system" in message.lower()):
        return Failure(kind="refused", reason=f"content policy ({code or status}): {message}", **base)
    if status == 429 and code == "insufficient_quota":
        return Failure(kind="fatal", reason=f"HTTP 429 insufficient_quota: {message}", **base)
    if status in _RETRY_STATUSES or status >= 500:
        return Failure(kind="retry", reason=f"HTTP {status}", retry_after=retry_after(exc.response.headers), **base)
    return Failure(kind="fatal", reason=f"HTTP {status} {code}: {message}".replace("  ", " "), **base)


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds asked by ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date)."""
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return max(float(value) / divisor, 0.0)
        except ValueError:
            pass
    when = headers.get("retry-after")
    parsed = email.utils.parsedate_tz(when) if when else None
    if parsed is None:
        return None
    return max(email.utils.mktime_tz(parsed) - time.time(), 0.0)


def backoff_delay(attempt: int, *, base_s: float, cap_s: float, rng: random.Random) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base * 2**attempt)]."""
    return rng.uniform(0.0, min(cap_s, base_s * (2 ** min(attempt, 30))))


def _message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, Mapping) and isinstance(body.get("message"), str):
        return " ".join(str(body["message"]).split())
    return " ".join(str(exc.message).split())
