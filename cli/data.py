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
LimitOption = typer.Option(
    None, "--limit", min=1, help="Take only N images, stratified by split and grade (seeded: --seed)."
)
SeedOption = typer.Option(None, "--seed", help="Seed of the --limit draw (default: settings.seed).")


@ingest_app.command("idrid")
@handle_errors
def ingest_idrid(
    path: Path = typer.Argument(..., help="IDRiD root (the folder holding 'B. Disease Grading')."),
    store: str = StoreOption,
    size: int = SizeOption,
    lenient: bool = LenientOption,
    limit: int = LimitOption,
    seed: int = SeedOption,
) -> None:
    """Ingest IDRiD "B. Disease Grading" (413 training + 103 test images)."""
    cfg = settings(image_size=size)
    _run_ingest(factories.build_idrid_source(path), cfg, store, lenient, limit=limit, seed=seed)


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
    limit: int = LimitOption,
    seed: int = SeedOption,
) -> None:
    """Ingest a folder of images labelled by a CSV file (images without a row are counted, not ingested)."""
    cfg = settings(image_size=size)
    source = factories.build_folder_source(
        path, csv, image_column=image_column, label_column=label_column, split_column=split_column, name=name
    )
    _run_ingest(source, cfg, store, lenient, limit=limit, seed=seed)


_PUBLISHED_HELP = {
    "aptos2019": ("APTOS 2019 folder (train.csv, train_images/).",
                  "Ingest APTOS 2019 Blindness Detection (3,662 labelled training images; the test part has no labels)."),
    "eyepacs": ("EyePACS folder (trainLabels.csv, train/; retinopathy_solution.csv, test/ when present).",
                "Ingest EyePACS, Kaggle DR Detection 2015 (35,126 train + 53,576 labelled test images); use --limit."),
    "messidor2": ("Messidor-2 folder (messidor_data.csv and the images below it).",
                  "Ingest Messidor-2 with the adjudicated grades (1,748 images; ungradable ones are left out)."),
    "ddr": ("DDR folder (holding DR_grading/) or DR_grading itself.",
            "Ingest DDR DR_grading (13,673 images, published train/valid/test kept; grade 5 = ungradable, left out)."),
}


def _published_command(kind: str) -> None:
    path_help, doc = _PUBLISHED_HELP[kind]

    @handle_errors
    def command(
        path: Path = typer.Argument(..., help=path_help),
        store: str = StoreOption,
        size: int = SizeOption,
        lenient: bool = LenientOption,
        limit: int = LimitOption,
        seed: int = SeedOption,
        labels: Path = typer.Option(None, "--labels", help="Another labels file (Messidor-2's CSV under another name)."),
    ) -> None:
        cfg = settings(image_size=size)
        source = factories.build_published_source(kind, path, labels=labels)
        _run_ingest(source, cfg, store, lenient, limit=limit, seed=seed)

    command.__doc__ = doc
    ingest_app.command(kind)(command)


for _kind in factories.PUBLISHED_DATASETS:
    _published_command(_kind)


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


def _run_ingest(  # type: ignore[no-untyped-def]
    source, cfg, store: str | None, lenient: bool, *, limit: int | None = None, seed: int | None = None
) -> IngestReport:
    image_store = factories.build_store(cfg, store)
    report = ingest(
        source,
        factories.build_preprocessor(cfg),
        image_store,
        lenient=lenient,
        progress=factories.build_progress(not state.quiet),
        limit=limit,
        seed=cfg.seed if seed is None else seed,
    )
    for notice in report.notices:
        err_console.print(f"[cyan]note:[/] {notice}", highlight=False)
    for problem in report.skipped:
        err_console.print(f"[yellow]skipped:[/] {problem}", highlight=False)
    console.print(
        f"{image_store.location}: {report.added} added, {report.already_present} already present, "
        f"{len(report.skipped)} skipped"
    )
    return report
