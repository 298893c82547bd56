"""``medaug generator``: train generators that learn from the data (DCGAN, diffusion)."""

from __future__ import annotations

import typer

from medaug.cli.common import StoreOption, console, handle_errors, services

app = typer.Typer(help="Train generators on a store's real training images.", no_args_is_help=True)


@app.command("train")
@handle_errors
def train(
    name: str = typer.Argument(..., help="Generator to train (diffusion, dcgan)."),
    store: str = StoreOption,
    profile: str = typer.Option(None, "--profile", "-p", help="Training profile, e.g. quick (CPU) or standard (GPU)."),
    fresh: bool = typer.Option(False, "--fresh", help="Start from scratch instead of resuming the last checkpoint."),
) -> None:
    """Train generator NAME on the real training split; resumes after a kill."""
    result = services().train_generator(name, store=store, profile=profile, fresh=fresh)
    loss = f", final loss {result.final_loss:.4f}" if result.final_loss is not None else ""
    console.print(f"{result.generator}: {result.steps} steps in {result.seconds:.0f} s{loss}; checkpoint {result.checkpoint}")
