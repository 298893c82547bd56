"""Errors the application services raise; each message is one line naming the file and problem."""

from __future__ import annotations

from pydantic import ValidationError


class MedaugError(Exception):
    """Base of every error medaug reports to a user as one clear line."""


class InputError(MedaugError):
    """Bad input data: a corrupt image, a malformed CSV row, a grade out of range..."""


class StoreError(MedaugError):
    """The image store cannot be read or written (permissions, missing object, bad manifest)."""


class ConfigError(MedaugError):
    """A configuration or request is invalid; raised before any work starts."""


class GeneratorError(MedaugError):
    """A generator failed or is not ready (e.g. not trained yet)."""


class BudgetExhausted(GeneratorError):
    """A paid generator reached its configured budget and stopped cleanly.

    Attributes:
        completed: results (``GenerationResult``) made in the interrupted batch before the stop;
            the augment service stores them before passing the stop on.
    """

    def __init__(self, message: str, completed: list | None = None) -> None:  # type: ignore[type-arg]
        super().__init__(message)
        self.completed = list(completed or [])


def validation_problem(exc: ValidationError, where: str = "") -> str:
    """One line for a pydantic ``ValidationError``: ``<where>: <field>: <problem> (and N more)``.

    The one formatter every layer uses, so that every invalid value, wherever it was checked,
    reads the same: the setting or field named, pydantic's "Value error, " prefix dropped, an
    unknown field called one, and the count of any further problems.

    Args:
        exc: the validation error.
        where: what was being validated (a file, a setting, a table), to start the line with.
    """
    error = exc.errors()[0]
    field = ".".join(str(part) for part in error["loc"])
    if error["type"] == "extra_forbidden":
        message = "unknown field"
    else:
        message = error["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    parts = [part for part in (where, field) if part]
    return ": ".join([*parts, message]) + more


class ExecutionError(MedaugError):
    """A task could not be run to success (its worker kept dying, or the cluster is unreachable)."""


class TrackingError(MedaugError):
    """The experiment-tracking tool cannot be reached or refused a record."""
