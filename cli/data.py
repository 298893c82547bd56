"""``medaug data``: ingest data sets, make the phantom set, show store statistics."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from medaug.application.services.ingest import IngestReport, ingest
from medaug.application.services.stats import store_stats
from medaug.cli.common import console, err_console, handle_errors, settings, state
from medaug.composition import factories
from medaug.domain import Grade

app = typer.Typer(help="Bring data sets into a store and inspect it.", no_args_is_help=True)
ingest_app = typer.Typer(help="Ingest a labelled data set into a store.", no_args_is_help=True)
app.add_typer(ingest_app, name="ingest")

StoreOption = typer.Option(None, "--store", "-s", help="Store folder or s3://bucket/prefix (default: settings).")
SizeOption = typer.Option(None, "--size", help="Working image size in pixels (default: settings.image_size, 256).")
LenientOption = typer.Option(False, "--lenient", help="Skip bad images and rows (reported) instead of stopping.")


@ingest_app.command("idrid")
@handle_errors
def ingest_idrid(
    path: Path = typer.Argument(..., help="IDRiD root (the folder holding 'B. Disease Grading')."),
    store: str = StoreOption,
    size: int = SizeOption,
    lenient: bool = LenientOption,
) -> None:
    """Ingest IDRiD "B. Disease Grading" (413 training + 103 test images)."""
    cfg = settings(image_size=size)
    _run_ingest(factories.build_idrid_source(path), cfg, store, lenient)


@ingest_app.command("folder")
@handle_errors
def ingest_folder(
    path: Path = typer.Argument(..., help="Folder holding the images."),
    csv: Path = typer.Option(..., "--csv", help="CSV file with an image column and a label column."),
    image_column: str = typer.Option("image", help="CSV column with the image file name (relative to PATH)."),
    label_column: str = typer.Option("grade", help="CSV column with the grade 0-4."),
    split_column: str = typer.Option(None, help="Optional CSV column with train/val/test (default: all train)."),
    name: str = typer.Option("folder", help="Data-set name recorded in provenance."),
    store: str = StoreOption,
    size: int = SizeOption,
    lenient: bool = LenientOption,
) -> None:
    """Ingest a folder of images labelled by a CSV file."""
    cfg = settings(image_size=size)
    source = factories.build_folder_source(
        path, csv, image_column=image_column, label_column=label_column, split_column=split_column, name=name
    )
    _run_ingest(source, cfg, store, lenient)


@app.command("phantom")
@handle_errors
def phantom(
    store: str = StoreOption,
    n: int = typer.Option(500, "--n", help="Number of images (train + test)."),
    size: int = SizeOption,
    seed: int = typer.Option(None, "--seed", help="Seed (default: settings.seed)."),
    test_fraction: float = typer.Option(0.2, help="Share of images in the test split."),
) -> None:
    """Make the built-in synthetic fundus set (known ground truth, IDRiD-like imbalance)."""
    cfg = settings(image_size=size)
    source = factories.build_phantom_source(
        n, seed=cfg.seed if seed is None else seed, size=cfg.image_size, test_fraction=test_fraction
    )
    _run_ingest(source, cfg, store, lenient=False)


@app.command("stats")
@handle_errors
def stats(store: str = StoreOption) -> None:
    """Table of image counts per split, origin and grade."""
    cfg = settings()
    result = store_stats(factories.build_store(cfg, store))
    table = Table(title=f"{result.location}: {result.total} images")
    table.add_column("split / origin")
    for grade in Grade:
        table.add_column(f"{int(grade)} {grade.label}", justify="right")
    table.add_column("total", justify="right")
    for row, counts in result.rows.items():
        table.add_row(row, *(str(counts[g]) for g in Grade), str(sum(counts.values())))
    console.print(table)


def _run_ingest(source, cfg, store: str | None, lenient: bool) -> IngestReport:  # type: ignore[no-untyped-def]
    image_store = factories.build_store(cfg, store)
    report = ingest(
        source,
        factories.build_preprocessor(cfg),
        image_store,
        lenient=lenient,
        progress=factories.build_progress(not state.quiet),
    )
    for problem in report.skipped:
        err_console.print(f"[yellow]skipped:[/] {problem}", highlight=False)
    console.print(
        f"{image_store.location}: {report.added} added, {report.already_present} already present, "
        f"{len(report.skipped)} skipped"
    )
    return report
