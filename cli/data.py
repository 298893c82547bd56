"""``medaug data``: ingest data sets, make the phantom set, show store statistics."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from medaug.application.errors import ConfigError
from medaug.application.services.ingest import IngestReport, ingest
from medaug.application.services.stats import store_stats
from medaug.cli.common import console, err_console, handle_errors, settings, state
from medaug.composition import bootstrap
from medaug.domain import Grade

app = typer.Typer(help="Bring data sets into a store and inspect it.", no_args_is_help=True)
ingest_app = typer.Typer(help="Ingest a labelled data set into a store.", no_args_is_help=True)
app.add_typer(ingest_app, name="ingest")

StoreOption = typer.Option(None, "--store", "-s", help="Store folder or s3://bucket/prefix (default: settings).")
SizeOption = typer.Option(None, "--size", help="Working image size in pixels (default: settings.image_size, 256).")
LenientOption = typer.Option(False, "--lenient", help="Skip bad images and rows (reported) instead of stopping.")
UpdateOption = typer.Option(False, "--update", help="Apply changed labels and pixels of stored images.")
PseudonymiseOption = typer.Option(
    None, "--pseudonymise/--keep-names", help="Store ids as keyed hashes of the names (default: settings)."
)
MappingOption = typer.Option(None, "--mapping", help="With --pseudonymise: write pseudonym,original CSV here.")


@ingest_app.command("idrid")
@handle_errors
def ingest_idrid(
    path: Path = typer.Argument(..., help="IDRiD root (the folder holding 'B. Disease Grading')."),
    store: str = StoreOption,
    size: int = SizeOption,
    lenient: bool = LenientOption,
    update: bool = UpdateOption,
    pseudonymise: bool = PseudonymiseOption,
    mapping: Path = MappingOption,
) -> None:
    """Ingest IDRiD "B. Disease Grading" (413 training + 103 test images)."""
    cfg = settings(image_size=size)
    _run_ingest(bootstrap.build_idrid_source(path), cfg, store, lenient, update, pseudonymise, mapping)


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
    update: bool = UpdateOption,
    pseudonymise: bool = PseudonymiseOption,
    mapping: Path = MappingOption,
) -> None:
    """Ingest a folder of images labelled by a CSV file."""
    cfg = settings(image_size=size)
    source = bootstrap.build_folder_source(
        path, csv, image_column=image_column, label_column=label_column, split_column=split_column, name=name
    )
    _run_ingest(source, cfg, store, lenient, update, pseudonymise, mapping)


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
    source = bootstrap.build_phantom_source(
        n, seed=cfg.seed if seed is None else seed, size=cfg.image_size, test_fraction=test_fraction
    )
    _run_ingest(source, cfg, store, lenient=False)


@app.command("stats")
@handle_errors
def stats(store: str = StoreOption) -> None:
    """Table of image counts per split, origin and grade."""
    cfg = settings()
    result = store_stats(bootstrap.build_store(cfg, store))
    table = Table(title=f"{result.location}: {result.total} images")
    table.add_column("split / origin")
    for grade in Grade:
        table.add_column(f"{int(grade)} {grade.label}", justify="right")
    table.add_column("total", justify="right")
    for row, counts in result.rows.items():
        table.add_row(row, *(str(counts[g]) for g in Grade), str(sum(counts.values())))
    console.print(table)


def _run_ingest(  # type: ignore[no-untyped-def]
    source, cfg, store: str | None, lenient: bool, update: bool = False,
    pseudonymise: bool | None = None, mapping: Path | None = None,
) -> IngestReport:
    image_store = bootstrap.build_store(cfg, store)
    private = cfg.pseudonymise if pseudonymise is None else pseudonymise
    if mapping is not None and not private:
        raise ConfigError(f"{mapping}: --mapping needs --pseudonymise")
    pseudonymiser = bootstrap.build_pseudonymiser(cfg) if private else None
    if mapping is not None:
        bootstrap.check_mapping_file(mapping, image_store)
    report = ingest(
        source,
        bootstrap.build_preprocessor(cfg),
        image_store,
        lenient=lenient,
        update=update,
        pseudonymise=pseudonymiser,
        progress=bootstrap.build_progress(not state.quiet),
    )
    if mapping is not None:
        bootstrap.write_mapping(mapping, report.mapping)
    for problem in report.skipped:
        err_console.print(f"[yellow]skipped:[/] {problem}", highlight=False)
    for conflict in report.conflicts:
        label = "updated" if update else "conflict"
        err_console.print(f"[yellow]{label}:[/] {conflict}", highlight=False, soft_wrap=True)
    changed = ""
    if report.conflicts and update:
        changed = f", {report.updated} updated ({report.stale_removed} derived synthetic images removed as stale)"
    elif report.conflicts:
        changed = f", {len(report.conflicts)} changed in the source (not applied; --update applies them)"
    console.print(
        f"{image_store.location}: {report.added} added, {report.already_present} already present, "
        f"{len(report.skipped)} skipped{changed}", highlight=False, soft_wrap=True,
    )
    return report
