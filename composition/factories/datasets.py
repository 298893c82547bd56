"""Data-set sources, the fundus preprocessor, and the pseudonymiser of ingested ids.

Adapters are imported inside the factories: nothing heavy loads until a service needs it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from medaug.application.errors import ConfigError
from medaug.application.ports import (
    DatasetSource,
    ImageStore,
    Preprocessor,
)
from medaug.composition.settings import Settings


def build_pseudonymiser(settings: Settings) -> Callable[[str], str]:
    """Ids -> keyed pseudonyms, the key from settings (never stored; see ``adapters.pseudonyms``)."""
    from medaug.adapters.pseudonyms import pseudonymiser

    return pseudonymiser(settings.pseudonym_key, settings.pseudonym_key_file)


def check_mapping_file(path: Path, store: ImageStore) -> None:
    """Refuse, before any work, a pseudonym mapping file inside ``store`` or that cannot be written."""
    from medaug.adapters.pseudonyms import check_mapping_file as check

    check(path, store)


def write_mapping(path: Path, mapping: Mapping[str, str]) -> None:
    """Write the pseudonym mapping to ``path`` (owner-readable CSV, atomically)."""
    from medaug.adapters.pseudonyms import write_mapping as write

    write(path, mapping)


def cpu_workers() -> int:
    """Processes an ingest uses by default: every core this process may run on."""
    import os

    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


def build_preprocessor(settings: Settings, size: int | None = None) -> Preprocessor:
    """The fundus preprocessor at the working size."""
    from medaug.adapters.imaging.preprocess import MIN_SIDE, FundusPreprocessor

    return FundusPreprocessor(size=size or settings.image_size, min_side=MIN_SIDE)


PUBLISHED_DATASETS = ("aptos2019", "eyepacs", "messidor2", "ddr")
"""The public DR sets read in their published layouts (``medaug data ingest <name>``, ``kind = "<name>"``)."""


def build_source(
    kind: str,
    path: Path | None,
    *,
    csv: Path | None = None,
    image_column: str = "image",
    label_column: str = "grade",
    split_column: str | None = None,
    name: str = "folder",
    n: int = 500,
    seed: int,
    size: int = 256,
    test_fraction: float = 0.2,
) -> DatasetSource:
    """The data set of ``kind`` (``DATASET_KINDS``): the one place data-set kinds are told apart.

    Raises:
        ConfigError: an unknown kind, a kind without its path, or a folder without its CSV.
    """
    if kind == "phantom":
        return build_phantom_source(n, seed=seed, size=size, test_fraction=test_fraction)
    if kind not in DATASET_KINDS:
        raise ConfigError(f"unknown data set kind {kind!r}; choose one of: {', '.join(DATASET_KINDS)}")
    if path is None:
        raise ConfigError(f"data set kind {kind!r} needs a path")
    if kind == "idrid":
        from medaug.adapters.datasets.idrid import IdridSource

        return IdridSource(path)
    if kind in PUBLISHED_DATASETS:
        from medaug.adapters.datasets.published import published_source

        return published_source(kind, path, labels=csv)
    if csv is None:
        raise ConfigError("data set kind 'folder' needs a labels CSV (--csv, or dataset.csv in an experiment file)")
    from medaug.adapters.datasets.folder_csv import FolderCsvSource

    return FolderCsvSource(
        path, csv, image_column=image_column, label_column=label_column, split_column=split_column, name=name
    )


DATASET_KINDS = ("idrid", "folder", "phantom", *PUBLISHED_DATASETS)
"""Every data-set kind ``build_source`` reads."""


def build_phantom_source(n: int, *, seed: int, size: int, test_fraction: float = 0.2) -> DatasetSource:
    """The built-in synthetic fundus set."""
    from medaug.adapters.datasets.phantom import PhantomSource

    return PhantomSource(n=n, seed=seed, size=size, test_fraction=test_fraction)
