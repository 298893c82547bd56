"""``medaug store``: copy stores between folders and S3, fingerprint them."""

from __future__ import annotations

import typer

from medaug.cli.common import console, handle_errors, services

app = typer.Typer(help="Copy and check image stores (folders or s3://bucket/prefix).", no_args_is_help=True)


@app.command("sync")
@handle_errors
def sync(
    src: str = typer.Argument(..., help="Source store: a folder or s3://bucket/prefix."),
    dst: str = typer.Argument(..., help="Destination store: a folder or s3://bucket/prefix."),
    prune: bool = typer.Option(False, "--prune", help="Delete destination images that are not in the source."),
) -> None:
    """Copy every image of SRC into DST, checking each copy's sha256; a re-run skips identical images."""
    report = services().sync_stores(src, dst, prune=prune)
    pruned = f", {report.pruned} pruned" if prune else ""
    console.print(
        f"{report.source} -> {report.destination}: {report.copied} copied, {report.identical} already identical"
        f"{pruned}; digest {report.digest}",
        highlight=False,
        soft_wrap=True,
    )


@app.command("digest")
@handle_errors
def digest(
    store: str = typer.Argument(None, help="Store folder or s3://bucket/prefix (default: settings)."),
) -> None:
    """Print a fingerprint of every record and image: two stores with the same digest are identical."""
    result = services().store_digest(store)
    console.print(f"{result.location}: {result.images} images; digest {result.digest}", highlight=False, soft_wrap=True)


@app.command("check")
@handle_errors
def check(
    store: str = typer.Argument(None, help="Store folder or s3://bucket/prefix (default: settings)."),
    quick: bool = typer.Option(False, "--quick", help="Skip reading every image to compare it with its checksum."),
) -> None:
    """Report damaged manifest lines or records, missing or damaged images and leftovers; exit 1 if any."""
    location, problems = services().check_store(store, quick=quick)
    for problem in problems:
        console.print(problem, highlight=False, soft_wrap=True)
    console.print(f"{location}: {len(problems)} problem(s)"
                  + ("; 'medaug store repair' fixes them" if problems else ""), highlight=False, soft_wrap=True)
    if problems:
        raise typer.Exit(1)


@app.command("repair")
@handle_errors
def repair(
    store: str = typer.Argument(None, help="Store folder or s3://bucket/prefix (default: settings)."),
) -> None:
    """Rebuild the store's index from its intact records and images; remove leftovers."""
    location, done = services().repair_store(store)
    for line in done:
        console.print(line, highlight=False, soft_wrap=True)
    console.print(f"{location}: repaired ({len(done)} action(s))", highlight=False, soft_wrap=True)
