"""``medaug data``: ingest data sets, make the phantom set, show store statistics."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from medaug.cli.common import StoreOption, console, err_console, handle_errors, services
from medaug.composition.bootstrap import IngestOptions, IngestOutcome, SourceSpec
from medaug.composition.factories import PUBLISHED_DATASETS
from medaug.domain import Grade

app = typer.Typer(help="Bring data sets into a store and inspect it.", no_args_is_help=True)
ingest_app = typer.Typer(help="Ingest a labelled data set into a store.", no_args_is_help=True)
app.add_typer(ingest_app, name="ingest")

SizeOption = typer.Option(None, "--size", help="Working image size in pixels (default: settings.image_size, 256).")
LenientOption = typer.Option(False, "--lenient", help="Skip bad images and rows (reported) instead of stopping.")
LimitOption = typer.Option(
    None, "--limit", min=1, help="Take only N images, stratified by split and grade (seeded: --seed)."
)
SeedOption = typer.Option(None, "--seed", help="Seed of the --limit draw (default: settings.seed).")
UpdateOption = typer.Option(False, "--update", help="Apply changed labels and pixels of stored images.")
PseudonymiseOption = typer.Option(
    None, "--pseudonymise/--keep-names", help="Store ids as keyed hashes of the names (default: settings)."
)
MappingOption = typer.Option(None, "--mapping", help="With --pseudonymise: write pseudonym,original CSV here.")
WorkersOption = typer.Option(
    None, "--workers", min=1, help="Processes decoding and preprocessing images (default: every core)."
)


_SHARED = {
    "store": ("str", StoreOption), "size": ("int", SizeOption), "lenient": ("bool", LenientOption),
    "limit": ("int", LimitOption), "seed": ("int", SeedOption), "update": ("bool", UpdateOption),
    "pseudonymise": ("bool", PseudonymiseOption), "mapping": ("Path", MappingOption),
    "workers": ("int", WorkersOption),
}  # fmt: skip
"""The options every ``medaug data ingest`` command takes after its own: (annotation, option)."""


def _ingest_command(name: str, doc: str, source: Callable[..., SourceSpec]) -> None:
    """Register ``medaug data ingest NAME``: ``source``'s own arguments, then the shared options."""
    own = inspect.signature(source)
    shared = [
        inspect.Parameter(key, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=annotation)
        for key, (annotation, option) in _SHARED.items()
    ]

    def command(**values: Any) -> None:
        common = {key: values.pop(key) for key in _SHARED}
        options = IngestOptions(
            common["lenient"], common["update"], common["pseudonymise"], common["mapping"], common["limit"], common["seed"],
            common["workers"],
        )
        _ingest(source(**values), common["size"], common["store"], options)

    command.__name__, command.__doc__ = f"ingest_{name.replace('-', '_')}", doc
    command.__annotations__ = {**source.__annotations__, **{key: ann for key, (ann, _) in _SHARED.items()}}
    command.__signature__ = own.replace(parameters=[*own.parameters.values(), *shared])  # type: ignore[attr-defined]
    ingest_app.command(name)(handle_errors(command))


def _idrid(path: Path = typer.Argument(..., help="IDRiD root (the folder holding 'B. Disease Grading').")) -> SourceSpec:
    return SourceSpec(kind="idrid", path=path)


def _folder(
    path: Path = typer.Argument(..., help="Folder holding the images."),
    csv: Path = typer.Option(..., "--csv", help="CSV file with an image column and a label column."),
    image_column: str = typer.Option("image", help="CSV column with the image file name (relative to PATH)."),
    label_column: str = typer.Option("grade", help="CSV column with the grade 0-4."),
    split_column: str = typer.Option(None, help="Optional CSV column with train/val/test (default: all train)."),
    name: str = typer.Option("folder", help="Data-set name recorded in provenance."),
) -> SourceSpec:
    return SourceSpec(
        kind="folder", path=path, csv=csv, image_column=image_column, label_column=label_column,
        split_column=split_column, name=name,
    )  # fmt: skip


_ingest_command("idrid", 'Ingest IDRiD "B. Disease Grading" (413 training + 103 test images).', _idrid)
_ingest_command(
    "folder", "Ingest a folder of images labelled by a CSV file (images without a row are counted, not ingested).",
    _folder,
)  # fmt: skip

_PUBLISHED_HELP = {
    "aptos2019": ("APTOS 2019 folder (train.csv, train_images/).",
                  "Ingest APTOS 2019 Blindness Detection (3,662 labelled training images; the test part has no labels)."),
    "eyepacs": ("EyePACS folder (trainLabels.csv, train/; retinopathy_solution.csv, test/ when present).",
                "Ingest EyePACS, Kaggle DR Detection 2015 (35,126 train + 53,576 labelled test images); use --limit."),
    "messidor2": ("Messidor-2 folder (messidor_data.csv and the images below it).",
                  "Ingest Messidor-2 with the adjudicated grades (1,748 images; ungradable ones are left out)."),
    "ddr": ("DDR folder (holding DR_grading/) or DR_grading itself.",
            "Ingest DDR DR_grading (13,673 images, published train/valid/test kept; grade 5 = ungradable, left out)."),
}  # fmt: skip


def _published_command(kind: str) -> None:
    path_help, doc = _PUBLISHED_HELP[kind]

    def source(
        path: Path = typer.Argument(..., help=path_help),
        labels: Path = typer.Option(None, "--labels", help="Another labels file (Messidor-2's CSV under another name)."),
    ) -> SourceSpec:
        return SourceSpec(kind=kind, path=path, csv=labels)

    _ingest_command(kind, doc, source)


for _kind in PUBLISHED_DATASETS:
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
    spec = SourceSpec(kind="phantom", n=n, seed=seed, test_fraction=test_fraction)
    _ingest(spec, size, store, IngestOptions())


@app.command("stats")
@handle_errors
def stats(store: str = StoreOption) -> None:
    """Table of image counts per split, origin and grade."""
    result = services().store_stats(store)
    table = Table(title=f"{result.location}: {result.total} images")
    table.add_column("split / origin")
    for grade in Grade:
        table.add_column(f"{int(grade)} {grade.label}", justify="right")
    table.add_column("total", justify="right")
    for row, counts in result.rows.items():
        table.add_row(row, *(str(counts[g]) for g in Grade), str(sum(counts.values())))
    console.print(table)


def _ingest(spec: SourceSpec, size: int | None, store: str | None, options: IngestOptions) -> None:
    outcome = services(image_size=size).ingest(spec, store=store, options=options)
    report = outcome.report
    for notice in report.notices:
        err_console.print(f"[cyan]note:[/] {notice}", highlight=False, soft_wrap=True)
    _print_skipped(outcome)
    for conflict in report.conflicts:
        label = "updated" if options.update else "conflict"
        err_console.print(f"[yellow]{label}:[/] {conflict}", highlight=False, soft_wrap=True)
    listed = f" (every one listed in {outcome.problems_file})" if outcome.problems_file else ""
    changed = ""
    if report.conflicts and options.update:
        changed = f", {report.updated} updated ({report.stale_removed} derived synthetic images removed as stale)"
    elif report.conflicts:
        changed = f", {len(report.conflicts)} changed in the source (not applied; --update applies them)"
    console.print(
        f"{outcome.location}: {report.added} added, {report.already_present} already present, "
        f"{len(report.skipped)} skipped{listed}{changed}", highlight=False, soft_wrap=True,
    )


_KINDS_SHOWN = 5
"""Kinds of skipped problem printed one line each; the rest are counted in one line."""


def _print_skipped(outcome: IngestOutcome) -> None:
    """One line per kind of skipped problem (a single problem whole), never one per problem."""
    kinds = outcome.problem_kinds
    for kind in kinds[:_KINDS_SHOWN]:
        if kind.count == 1:
            err_console.print(f"[yellow]skipped:[/] {kind.first}", highlight=False, soft_wrap=True)
        else:
            more = ", ..." if kind.count > len(kind.examples) else ""
            err_console.print(f"[yellow]skipped {kind.count:,}:[/] {kind.kind} (e.g. {', '.join(kind.examples)}{more})",
                              highlight=False, soft_wrap=True)
    hidden = kinds[_KINDS_SHOWN:]
    if hidden:
        err_console.print(f"[yellow]skipped:[/] {sum(k.count for k in hidden):,} more problems of {len(hidden)} "
                          "other kinds", highlight=False, soft_wrap=True)
