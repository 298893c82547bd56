"""``medaug store``: copy stores between folders and S3, fingerprint them."""

from __future__ import annotations

import typer

from medaug.application.services.sync import store_digest, sync_stores
from medaug.cli.common import console, handle_errors, settings, state
from medaug.composition import factories

app = typer.Typer(help="Copy and check image stores (folders or s3://bucket/prefix).", no_args_is_help=True)


@app.command("sync")
@handle_errors
def sync(
    src: str = typer.Argument(..., help="Source store: a folder or s3://bucket/prefix."),
    dst: str = typer.Argument(..., help="Destination store: a folder or s3://bucket/prefix."),
    prune: bool = typer.Option(False, "--prune", help="Delete destination images that are not in the source."),
) -> None:
    """Copy every image of SRC into DST, checking each copy's sha256; a re-run skips identical images."""
    cfg = settings()
    report = sync_stores(
        factories.build_store(cfg, src),
        factories.build_store(cfg, dst),
        prune=prune,
        progress=factories.build_progress(not state.quiet),
    )
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
    cfg = settings()
    result = store_digest(factories.build_store(cfg, store), progress=factories.build_progress(not state.quiet))
    console.print(f"{result.location}: {result.images} images; digest {result.digest}", highlight=False, soft_wrap=True)
