"""Errors the application services raise; each message is one line naming the file and problem."""


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


class ExecutionError(MedaugError):
    """A task could not be run to success (its worker kept dying, or the cluster is unreachable)."""


class TrackingError(MedaugError):
    """The experiment-tracking tool cannot be reached or refused a record."""
