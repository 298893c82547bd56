"""structlog configuration: readable in a terminal, JSON lines otherwise; secrets redacted."""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

import structlog

_SECRET_KEYS = re.compile(r"(api[_-]?key|secret|token|password|authorization|credential)", re.IGNORECASE)
_SECRET_VALUES = re.compile(r"(sk-[A-Za-z0-9_-]{8,}|AKIA[0-9A-Z]{12,})")


def redact_secrets(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: hide values of secret-looking keys and key-shaped strings."""
    for key, value in list(event.items()):
        if _SECRET_KEYS.search(key):
            event[key] = "***"
        elif isinstance(value, str):
            event[key] = _SECRET_VALUES.sub("***", value)
    return event


class _StderrLoggerFactory:
    def __call__(self, *args: Any) -> structlog.PrintLogger:
        return structlog.PrintLogger(sys.stderr)


def configure_logging(fmt: str = "auto", level: str = "info") -> None:
    """Configure structlog once per process (the CLI calls it; embedders may skip it)."""
    json_output = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer: Any = structlog.processors.JSONRenderer() if json_output else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            redact_secrets,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        # Look sys.stderr up at each call: a test runner may swap and close the stream.
        logger_factory=_StderrLoggerFactory(),
        cache_logger_on_first_use=False,
    )
