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
    """Ids -> ``p-`` + 20 hex digits of HMAC-SHA256(key, id), the key from settings (never stored).

    Raises:
        ConfigError: no key is set, or the key file cannot be read or is empty.
    """
    import hashlib
    import hmac

    if settings.pseudonym_key is not None:
        key = settings.pseudonym_key.get_secret_value().encode()
    elif settings.pseudonym_key_file is not None:
        try:
            key = settings.pseudonym_key_file.read_bytes().strip()
        except OSError as exc:
            raise ConfigError(
                f"{settings.pseudonym_key_file}: cannot read pseudonym_key_file ({exc.strerror or exc})"
            ) from None
    else:
        raise ConfigError("pseudonymising needs a key: set MEDAUG_PSEUDONYM_KEY or pseudonym_key_file")
    if len(key) < 16:
        raise ConfigError("pseudonym_key: too short (at least 16 characters, e.g. from 'openssl rand -hex 32')")
    return lambda name: "p-" + hmac.new(key, name.encode(), hashlib.sha256).hexdigest()[:20]


def check_mapping_file(path: Path, store: ImageStore) -> None:
    """Refuse, before any work, a pseudonym mapping file inside ``store`` or that cannot be written."""
    from medaug.adapters.files import check_output_file as check

    root = getattr(store, "root", None)
    if root is not None:
        resolved, store_root = path.resolve(), Path(root).resolve()
        if resolved == store_root or store_root in resolved.parents:
            raise ConfigError(f"{path}: the pseudonym mapping must be kept outside the store ({store.location})")
    check(path, "--mapping")


def write_mapping(path: Path, mapping: Mapping[str, str]) -> None:
    """Write pseudonym,original CSV rows to ``path`` atomically, readable by its owner only."""
    import csv
    import io

    from medaug.adapters.files import write_atomic

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["pseudonym", "original"])
    writer.writerows(sorted(mapping.items()))
    write_atomic(path, buffer.getvalue(), mode=0o600)


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


def build_idrid_source(path: Path) -> DatasetSource:
    """IDRiD "B. Disease Grading" in its official layout."""
    from medaug.adapters.datasets.idrid import IdridSource

    return IdridSource(path)


def build_folder_source(
    path: Path, csv: Path, *, image_column: str, label_column: str, split_column: str | None, name: str
) -> DatasetSource:
    """A folder of images labelled by a CSV file."""
    from medaug.adapters.datasets.folder_csv import FolderCsvSource

    return FolderCsvSource(
        path, csv, image_column=image_column, label_column=label_column, split_column=split_column, name=name
    )


PUBLISHED_DATASETS = ("aptos2019", "eyepacs", "messidor2", "ddr")
"""The public DR sets read in their published layouts (``medaug data ingest <name>``, ``kind = "<name>"``)."""


def build_published_source(kind: str, path: Path, *, labels: Path | None = None) -> DatasetSource:
    """One of ``PUBLISHED_DATASETS`` in its published layout at ``path`` (``labels``: another labels file)."""
    from medaug.adapters.datasets.published import published_source

    return published_source(kind, path, labels=labels)


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
    seed: int = 0,
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
        return build_idrid_source(path)
    if kind in PUBLISHED_DATASETS:
        return build_published_source(kind, path, labels=csv)
    if csv is None:
        raise ConfigError("data set kind 'folder' needs a labels CSV (--csv, or dataset.csv in an experiment file)")
    return build_folder_source(
        path, csv, image_column=image_column, label_column=label_column, split_column=split_column, name=name
    )


DATASET_KINDS = ("idrid", "folder", "phantom", *PUBLISHED_DATASETS)
"""Every data-set kind ``build_source`` reads."""


def build_phantom_source(n: int, *, seed: int, size: int, test_fraction: float = 0.2) -> DatasetSource:
    """The built-in synthetic fundus set."""
    from medaug.adapters.datasets.phantom import PhantomSource

    return PhantomSource(n=n, seed=seed, size=size, test_fraction=test_fraction)
