"""What every command shares: settings loading, the error boundary, the console."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from medaug.application.errors import MedaugError, validation_problem
from medaug.composition import factories
from medaug.composition.bootstrap import Services, bootstrap
from medaug.composition.settings import Settings, load_settings
from medaug.domain import DomainError

# Pipes and logs get wide lines (rich would wrap tables at 80 columns).
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)

F = TypeVar("F", bound=Callable[..., Any])

StoreOption = typer.Option(None, "--store", "-s", help="Store folder or s3://bucket/prefix (default: settings).")
"""``--store``, as every command that reads or writes a store takes it."""


class _State:
    config: Path | None = None
    quiet: bool = False


state = _State()


def settings(**overrides: Any) -> Settings:
    """Settings from the global ``--config`` file, MEDAUG_* env and per-command overrides."""
    loaded = load_settings(state.config, **{k: v for k, v in overrides.items() if v is not None})
    factories.configure_logging(loaded)
    return loaded


def services(**overrides: Any) -> Services:
    """The services over ``settings(**overrides)``, with progress shown unless ``--quiet``."""
    return bootstrap(settings(**overrides), progress=factories.build_progress(not state.quiet))


def fail(message: str, code: int = 2) -> None:
    """Print one line in red on stderr and exit."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def handle_errors(func: F) -> F:
    """Turn medaug's errors into one clear line and a non-zero exit, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (MedaugError, DomainError) as exc:
            fail(str(exc))
        except ValidationError as exc:
            fail(validation_problem(exc))
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted: finished work is kept; re-run to continue[/]")
            sys.exit(130)

    return wrapper  # type: ignore[return-value]
