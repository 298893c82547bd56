"""``medaug experiment``, ``medaug train`` and ``medaug report``: the comparison of arms."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from medaug.cli.common import StoreOption, console, handle_errors, services
from medaug.composition.bootstrap import read_experiment
from medaug.domain.experiment import ExperimentResult

app = typer.Typer(help="Run experiments: arms x classifiers x seeds, with a report.", no_args_is_help=True)


def _csv(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


@app.command("run")
@handle_errors
def run(
    config: Path = typer.Argument(None, help="Experiment TOML (default: the built-in quick experiment on phantom data)."),
    data: Path = typer.Option(None, "--data", help="Data-set folder (e.g. ~/data/idrid)."),
    arms: str = typer.Option(None, "--arms", help="Only these arms of the file, comma-separated (e.g. none,classic)."),
    classifiers: str = typer.Option(None, "--classifiers", help="Classifiers, comma-separated (cnn,resnet50)."),
    seeds: str = typer.Option(None, "--seeds", help="Seeds, comma-separated (e.g. 0,1,2)."),
    run_dir: Path = typer.Option(None, "--run-dir", help="Run folder (default: <work_dir>/runs/<name>)."),
    fresh: bool = typer.Option(False, "--fresh", help="Discard earlier results in the run folder first."),
    executor: str = typer.Option(
        None, "--executor",
        # "\\[" : Typer renders help through Rich, whose markup would swallow a bare [executor].
        help="Where the experiment's tasks (generator trainings, augmentations, cells) run: local (this "
        "process) or ray (a Ray cluster, configured by the settings table \\[executor]).",
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Check the file and every data set, say what would run; train nothing."
    ),
    external: list[str] = typer.Option(
        None, "--external", help="Also test every cell on this set (repeatable): KIND:PATH for a published set "
        "(eyepacs, aptos2019, messidor2, ddr, idrid), store:PATH for an ingested store, PATH[,CSV] for a folder "
        "labelled by a CSV."
    ),
) -> None:
    """Run (or resume) an experiment and write report.html, report.md and results.json."""
    try:
        seed_list = [int(s) for s in _csv(seeds)] if seeds else None
    except ValueError:
        raise typer.BadParameter(f"--seeds must be integers, got {seeds!r}") from None
    experiment = read_experiment(
        config, data=data, arms=_csv(arms), classifiers=_csv(classifiers), seeds=seed_list, external=external
    )
    if dry_run:
        for line in services().plan_experiment(experiment, run_dir=run_dir):
            console.print(line, highlight=False, soft_wrap=True)
        return
    outcome = services().run_experiment(experiment, run_dir=run_dir, fresh=fresh, executor=executor)
    _print_summary(outcome.result)
    for path in outcome.written:
        console.print(f"wrote {path}")


@app.command("report")
@handle_errors
def report(run_dir: Path = typer.Argument(..., help="A run folder holding results.json.")) -> None:
    """Rebuild report.html and report.md of a finished run from its results.json."""
    for path in services().rebuild_report(run_dir):
        console.print(f"wrote {path}")


def _print_summary(result: ExperimentResult) -> None:
    table = Table(title=f"{result.spec.name}: {result.dataset}, {result.test_images} test images")
    versus_baseline = f"vs {result.spec.baseline}" if result.spec.baseline else "vs baseline"
    for column in ("arm", "classifier", "seeds", "accuracy", "kappa", "macro-F1", versus_baseline):
        table.add_column(column, justify="left" if column in ("arm", "classifier") else "right")
    verdicts = {(c.arm, c.classifier): c for c in result.comparisons}
    for arm, per_classifier in result.summaries.items():
        for classifier, metrics in per_classifier.items():
            acc, kappa, f1 = metrics["accuracy"], metrics["quadratic_kappa"], metrics["macro_f1"]
            comparison = verdicts.get((arm, classifier))
            versus = (
                f"{comparison.mean_difference * 100:+.1f} pts, p={comparison.mcnemar_p:.3f}"
                + (" *" if comparison.significant else "")
                if comparison
                else ""
            )
            table.add_row(
                arm, classifier, str(acc.n), f"{acc.mean * 100:.1f}% ± {acc.std * 100:.1f}",
                f"{kappa.mean:.3f} ± {kappa.std:.3f}", f"{f1.mean:.3f}", versus,
            )
    console.print(table)
    console.print(f"1 test image = {100 / max(result.test_images, 1):.2f} points of accuracy; * = significant (p < 0.05)")


def train(
    store: str = StoreOption,
    classifier: str = typer.Option("cnn", "--classifier", help="Classifier (cnn, resnet50)."),
    augmentation: str = typer.Option(None, "--augmentation", "-a", help="Add this augmentation set (e.g. classic)."),
    seed: int = typer.Option(None, "--seed", help="Training seed (default: settings.seed)."),
    checkpoint: Path = typer.Option(None, "--checkpoint", help="Write the weights here (safetensors)."),
) -> None:
    """Train one classifier on a store and print its test metrics."""
    cell = services().train_classifier(
        classifier, store=store, augmentation=augmentation, seed=seed, checkpoint=checkpoint
    )
    m = cell.metrics
    console.print(
        f"{classifier} on {cell.train_images} images ({augmentation or 'real only'}), seed {cell.key.seed}: "
        f"accuracy {m.accuracy * 100:.1f}% ({round(m.accuracy * m.n)}/{m.n}), kappa {m.quadratic_kappa:.3f}, "
        f"balanced accuracy {m.balanced_accuracy * 100:.1f}%, macro-F1 {m.macro_f1:.3f}, loss {m.loss:.3f}"
    )


def evaluate(
    checkpoint: Path = typer.Option(..., "--checkpoint", help="A classifier saved by medaug train --checkpoint."),
    store: str = typer.Option(None, "--store", "-s", help="Score its test images (default: settings' store)."),
    external: list[str] = typer.Option(
        None, "--external", help="Also score this set (repeatable): KIND:PATH (eyepacs, aptos2019, messidor2, ddr, "
        "idrid), store:PATH, or PATH[,CSV] for a folder labelled by a CSV."
    ),
) -> None:
    """Score a saved classifier on a store's test images and on external sets."""
    scores = services().evaluate_classifier(checkpoint, store=store, external=external)
    table = Table(title=f"{checkpoint.name}")
    for column in ("set", "images", "accuracy", "kappa", "balanced accuracy", *(f"recall {g}" for g in range(5))):
        table.add_column(column, justify="left" if column == "set" else "right")
    for name, metrics in scores.items():
        table.add_row(
            name, str(metrics.n), f"{metrics.accuracy * 100:.1f}%", f"{metrics.quadratic_kappa:.3f}",
            f"{metrics.balanced_accuracy * 100:.1f}%", *(f"{v * 100:.0f}%" for v in metrics.recall.values()),
        )
    console.print(table)
