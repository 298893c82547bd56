"""``medaug augment``: balance the training split with a generator; contact sheets."""

from __future__ import annotations

from pathlib import Path

import typer
from pydantic import ValidationError

from medaug.application.errors import BudgetExhausted, ConfigError, validation_problem
from medaug.application.ports import CostEstimate
from medaug.application.services.augment import AugmentCommand
from medaug.cli.common import StoreOption, console, err_console, handle_errors, services
from medaug.domain import PlanPolicy

app = typer.Typer(help="Grow the training split with synthetic images.", no_args_is_help=True)



@app.command("run")
@handle_errors
def run(
    store: str = StoreOption,
    generator: str = typer.Option("classic", "--generator", "-g", help="Generator name (classic, diffusion, ...)."),
    target_total: int = typer.Option(None, "--target-total", help="Balance to N training images in total."),
    balance_largest: bool = typer.Option(False, "--balance-largest", help="Bring every grade up to the largest."),
    multiply: float = typer.Option(None, "--multiply", help="Multiply each grade by this factor."),
    name: str = typer.Option(None, "--name", help="Augmentation-set name (default: the generator's name)."),
    seed: int = typer.Option(None, "--seed", help="Plan seed (default: settings.seed)."),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Print the images, API calls and estimated cost; generate and send nothing."
    ),
    mode: str = typer.Option(None, "--mode", help="Diffusion: 'sample' (from noise) or 'variation' (of real images)."),
    strength: float = typer.Option(None, "--strength", help="Diffusion variations: noise strength in [0, 1]."),
    screen_min_confidence: float = typer.Option(
        None, "--screen-min-confidence",
        help="Screen: drop (and replace) images the quality judge gives their grade less than this.",
    ),
    screen_drop_near_copies: bool = typer.Option(
        None, "--screen-drop-near-copies/--screen-keep-near-copies",
        help="Screen: drop (and replace) near-copies of training images.",
    ),
) -> None:
    """Plan and generate the synthetic images; a re-run adds only what is missing."""
    service = services(generators=_diffusion_overrides(mode, strength))
    command = AugmentCommand(
        generator=generator, policy=_policy(target_total, balance_largest, multiply), augmentation=name,
        seed=service.settings.seed if seed is None else seed, dry_run=dry_run,
    )  # fmt: skip
    try:
        outcome = service.augment(
            command, store=store, screen_min_confidence=screen_min_confidence,
            screen_drop_near_copies=screen_drop_near_copies,
        )
    except BudgetExhausted as stop:
        err_console.print(f"[yellow]stopped:[/] {stop}; images made so far are kept, re-run to continue",
                          highlight=False, soft_wrap=True)
        raise typer.Exit(3) from None
    plan, report = outcome.plan, outcome.report
    if report is None:
        for gen_name, estimate in (outcome.estimates or {}).items():
            _print_estimate(plan.augmentation, gen_name, estimate)
        return
    attempts = service.settings.quality.screen.max_attempts
    console.print(
        f"{plan.augmentation}: {plan.policy.describe()} -> {plan.total} training images; "
        f"{report.added} generated, {report.already_present} already present"
        + (f", {report.refused} refused (skipped)" if report.refused else "")
        + (f", {report.removed_stale} stale removed" if report.removed_stale else "")
        + (f", {report.rejected} rejected by the screen (new seeds tried)" if report.rejected else "")
        + (f", {report.unfilled} still rejected after {attempts} attempts" if report.unfilled else "")
    )


def _print_estimate(augmentation: str, generator: str, estimate: CostEstimate) -> None:
    console.print(
        f"dry run, nothing sent: {augmentation!r} needs {estimate.requests} images from {generator}: "
        f"{estimate.calls} API calls ({estimate.images} images billed, {estimate.reused} reused, "
        f"{estimate.refused} refused before), estimated cost ${estimate.usd:.2f}",
        highlight=False, soft_wrap=True,
    )
    for note in estimate.notes:
        console.print(f"  {note}", highlight=False, soft_wrap=True)


def _diffusion_overrides(mode: str | None, strength: float | None) -> dict | None:
    chosen = {k: v for k, v in (("mode", mode), ("strength", strength)) if v is not None}
    return {"diffusion": chosen} if chosen else None


def _policy(target_total: int | None, balance_largest: bool, multiply: float | None) -> PlanPolicy:
    chosen = sum(x is not None and x is not False for x in (target_total, balance_largest or None, multiply))
    if chosen > 1:
        raise typer.BadParameter("choose one of --target-total, --balance-largest, --multiply")
    try:
        if multiply is not None:
            return PlanPolicy.multiply(multiply)
        if balance_largest:
            return PlanPolicy.balance_largest()
        return PlanPolicy.balance_total(target_total if target_total is not None else 1773)
    except ValidationError as exc:
        option = "--multiply" if multiply is not None else "--target-total"
        raise ConfigError(validation_problem(exc, option)) from None


@app.command("grid")
@handle_errors
def grid(
    store: str = StoreOption,
    out: Path = typer.Option(Path("contact-sheet.png"), "--out", "-o", help="PNG file to write."),
    per_cell: int = typer.Option(4, "--per-cell", help="Images per grade and origin."),
    augmentation: str = typer.Option(None, "--augmentation", help="Only this augmentation set's synthetic images."),
) -> None:
    """A PNG contact sheet of sample images per grade (rows) and origin (columns)."""
    services().contact_sheet(out, store=store, per_cell=per_cell, augmentation=augmentation)
    console.print(f"wrote {out}")
