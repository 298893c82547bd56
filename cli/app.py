"""The ``medaug`` command: one Typer app with a sub-app per area."""

from __future__ import annotations

from importlib.metadata import version as package_version
from pathlib import Path

import typer

from medaug.cli import augment, data, experiment, generator, quality, store
from medaug.cli.common import handle_errors, state

app = typer.Typer(
    name="medaug",
    help="Grow small, imbalanced medical image sets with generators, and prove whether it helps.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(data.app, name="data")
app.add_typer(augment.app, name="augment")
app.add_typer(generator.app, name="generator")
app.add_typer(experiment.app, name="experiment")
app.add_typer(store.app, name="store")
app.command("train")(handle_errors(experiment.train))
app.command("evaluate")(handle_errors(experiment.evaluate))
app.command("quality")(quality.quality)
app.command("report")(experiment.report)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"medaug {package_version('medaug')}")
        raise typer.Exit()


@app.callback()
def _global(
    config: Path = typer.Option(None, "--config", "-c", help="TOML settings file (default: ./medaug.toml)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
) -> None:
    """Global options."""
    state.config = config
    state.quiet = quiet


def main() -> None:
    """Entry point of the ``medaug`` console script."""
    app()
