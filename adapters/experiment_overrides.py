"""Command-line changes to an experiment file: narrowing (arms, classifiers, seeds), another data
folder, and ``--external VALUE``: an external test set, as ``[[dataset.external]]`` gives it.

The value names what an ``[[dataset.external]]`` entry would: ``KIND:PATH`` for a published set
(``eyepacs:~/data/eyepacs``), ``store:PATH`` for an ingested store (a folder or ``s3://...``), and
``PATH[,CSV]`` (or ``folder:PATH[,CSV]``) for a folder of images labelled by a CSV. It becomes the
same ``ExternalDataset`` the file route builds, so the same checks apply to both.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import get_args

from pydantic import ValidationError

from medaug.adapters.experiment_file import DatasetConfig, DatasetKind, ExperimentConfig, ExternalDataset
from medaug.application.errors import ConfigError

EXTERNAL_KINDS: tuple[str, ...] = tuple(kind for kind in get_args(DatasetKind) if kind != "phantom")
"""Kinds an external set may have (every data-set kind but the built-in phantom set)."""

_KIND_PREFIX = re.compile(r"^(?P<kind>[A-Za-z][A-Za-z0-9_-]*):(?!//)(?P<rest>.*)$")


def external_option(value: str) -> ExternalDataset:
    """The external test set ``--external value`` names.

    ``KIND:PATH[,CSV]`` with ``KIND`` one of ``EXTERNAL_KINDS`` (``CSV``: the labels file of
    ``folder``, or another labels file for ``messidor2``); ``store:PATH``; or ``PATH[,CSV]``, a
    folder+CSV set (default CSV: the folder's only ``*.csv``). The set is named after its kind
    (published sets) or its folder.

    Raises:
        ConfigError: one line: an unknown kind (listing the kinds), a missing folder, no CSV
            named where the folder holds not exactly one, or what ``ExternalDataset`` refuses.
    """
    prefixed = _KIND_PREFIX.match(value)
    if prefixed is None or Path(value).expanduser().is_dir():
        return _entry(value, "folder", value)
    kind, rest = prefixed["kind"].lower(), prefixed["rest"]
    if kind not in EXTERNAL_KINDS:
        raise ConfigError(f"--external {value}: unknown kind {prefixed['kind']!r}; use KIND:PATH with KIND one of "
                          f"{', '.join(EXTERNAL_KINDS)}, or PATH[,CSV] for a folder labelled by a CSV")
    return _entry(value, kind, rest)


def _entry(value: str, kind: str, rest: str) -> ExternalDataset:
    if kind == "store":
        location = rest.strip()
        if not location:
            raise ConfigError(f"--external {value}: name the store as store:PATH (a folder or s3://bucket/prefix)")
        if not location.startswith("s3://") and not Path(location).expanduser().is_dir():
            raise ConfigError(f"--external {value}: {location} is not a store folder")
        if not location.startswith("s3://"):
            location = str(Path(location).expanduser())
        return _validated(value, name=_name(location.rstrip("/").rsplit("/", 1)[-1]), kind=kind, store=location)
    path_text, _, csv_text = rest.partition(",")
    path = Path(path_text.strip()).expanduser()
    if not path_text.strip():
        raise ConfigError(f"--external {value}: name the data set's folder ({kind}:PATH)")
    if not path.is_dir():
        raise ConfigError(f"--external {value}: {path} is not a folder")
    csv = Path(csv_text.strip()).expanduser() if csv_text.strip() else None
    if kind == "folder" and csv is None:
        found = sorted(path.glob("*.csv"))
        if len(found) != 1:
            raise ConfigError(f"--external {value}: name the labels file as PATH,CSV ({len(found)} CSV files in {path})")
        csv = found[0]
    name = _name(path.resolve().name) if kind == "folder" else kind
    return _validated(value, name=name, kind=kind, path=path, csv=csv)


def _name(text: str) -> str:
    """A valid set name from a folder's name."""
    return ("".join(c if c.isalnum() or c in "_-" else "-" for c in text).strip("-_") or "external")[:64]


def _validated(value: str, **fields: object) -> ExternalDataset:
    try:
        return ExternalDataset.model_validate({k: v for k, v in fields.items() if v is not None})
    except ValidationError as exc:
        raise ConfigError(f"--external {value}: {exc.errors()[0]['msg']}") from None


def apply_overrides(
    config: ExperimentConfig,
    *,
    data: Path | None = None,
    arms: list[str] | None = None,
    classifiers: list[str] | None = None,
    seeds: list[int] | None = None,
    external: list[str] | None = None,
) -> ExperimentConfig:
    """Narrow or redirect an experiment from the command line.

    ``external`` adds external test sets, each ``KIND:PATH``, ``store:PATH`` or ``PATH[,CSV]`` (see
    ``external_option``).

    ``arms`` keeps only the named arms of the file (an unknown name is an error), so options
    defined in the file stay as they are.
    """
    dataset = config.dataset.model_copy(update={"path": data}) if data is not None else config.dataset
    section = config.experiment
    if arms is not None:
        known = {a.name: a for a in section.arms}
        missing = [a for a in arms if a not in known]
        if missing:
            raise ConfigError(f"arm(s) {', '.join(missing)} are not defined in this experiment; defined: {', '.join(known)}")
        section = section.model_copy(update={"arms": [known[a] for a in arms]})
    if classifiers is not None:
        section = section.model_copy(update={"classifiers": classifiers})
    if seeds is not None:
        section = section.model_copy(update={"seeds": seeds})
    if external:
        added = [external_option(value) for value in external]
        try:
            dataset = DatasetConfig.model_validate(
                {**dataset.model_dump(), "external": [*dataset.external, *added]}
            )
        except ValidationError as exc:
            raise ConfigError(f"--external: {exc.errors()[0]['msg']}") from None
    return config.model_copy(update={"dataset": dataset, "experiment": section})
