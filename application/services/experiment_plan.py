"""What an experiment would do, said before any work: each data set scanned, the cells counted."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

from medaug.application.errors import ConfigError, InputError
from medaug.application.ports import DatasetSource
from medaug.domain.experiment import ExperimentSpec


def describe_source(what: str, description: str, source: DatasetSource, limit: int | None) -> str:
    """One line about a data set after scanning its labels: images per split, notices.

    Raises:
        InputError: its labels have a problem (the first one, as ingest would stop, and a count).
    """
    scan = source.scan()
    if scan.problems:
        more = f" (and {len(scan.problems) - 1} more)" if len(scan.problems) > 1 else ""
        raise InputError(f"{what}: {scan.problems[0]}{more}")
    counts = {split: sum(1 for item in scan.items if item.split.value == split) for split in ("train", "val", "test")}
    listed = ", ".join(f"{n} {split}" for split, n in counts.items() if n)
    limited = f", --limit {limit}" if limit else ""
    notes = f"; {'; '.join(scan.notices)}" if scan.notices else ""
    return f"{description}: {len(scan.items)} images ({listed}{limited}){notes}"


def cell_lines(spec: ExperimentSpec, run_folder: Path | str) -> list[str]:
    """The cells of ``spec`` in words, then the run folder."""
    folds = f" x {spec.folds} folds x {spec.repeats} repeat(s)" if spec.protocol == "kfold" else ""
    return [
        f"{len(spec.cells())} cells: arms {', '.join(a.name for a in spec.arms)} x classifiers "
        f"{', '.join(spec.classifiers)} x seeds {', '.join(str(s) for s in spec.seeds)}{folds}",
        f"run folder: {run_folder}",
    ]


def check_names(spec: ExperimentSpec, generators: Collection[str], classifiers: Collection[str]) -> None:
    """Refuse, before any work, arms naming a generator or classifiers not among those available.

    Raises:
        ConfigError: one line naming the unknown ones and the available ones.
    """
    unknown = sorted({g for arm in spec.arms for g in arm.generators} - set(generators))
    if unknown:
        raise ConfigError(f"unknown generator(s) {', '.join(unknown)} in arms; available: {', '.join(generators)}")
    bad = [c for c in spec.classifiers if c not in classifiers]
    if bad:
        raise ConfigError(f"unknown classifier(s) {', '.join(bad)}; available: {', '.join(classifiers)}")
