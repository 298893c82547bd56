"""Experiment definitions: the TOML file format, loading, CLI overrides and early validation."""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from medaug.application.errors import ConfigError, validation_problem
from medaug.domain import PlanPolicy
from medaug.domain.experiment import THESIS_REFERENCES, Arm, ExperimentSpec, ReferenceResult

BUILTIN_QUICK = "quick.toml"

RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
"""An experiment's name: a plain folder name (no separators, no ``..``, not absolute)."""


DatasetKind = Literal["phantom", "idrid", "folder", "store", "aptos2019", "eyepacs", "messidor2", "ddr"]
"""``phantom`` (built in), ``idrid`` / ``aptos2019`` / ``eyepacs`` / ``messidor2`` / ``ddr`` (the
published layout at ``path``), ``folder`` (images at ``path`` labelled by ``csv``) or ``store``
(an already-ingested store)."""


class DataLocation(BaseModel):
    """Where a data set lies on disk and how it is laid out (shared by the main and external sets).

    Attributes:
        kind: see ``DatasetKind``.
        path: data-set folder (``~`` is expanded).
        csv, image_column, label_column, split_column: the folder+CSV layout (``csv``: also
            another labels file for ``messidor2``).
        store: where the set is ingested (default: ``<work_dir>/stores/<kind>-...``); for
            ``kind = "store"``, the store itself.
        limit: ingest only this many images, stratified by split and grade (large sets).
    """

    model_config = ConfigDict(extra="forbid")

    kind: DatasetKind = "phantom"
    path: Path | None = None
    csv: Path | None = None
    image_column: str = "image"
    label_column: str = "grade"
    split_column: str | None = None
    store: str | None = None
    limit: int | None = Field(default=None, ge=1)

    @property
    def has_patients(self) -> bool:
        """Whether the set's image names may identify patients: every set but the built-in phantom
        (whose names are never pseudonymised)."""
        return self.kind != "phantom"

    def names(self, path: Path | None, size: int, *, seed: int, pseudonymised: bool) -> tuple[str, str]:
        """How the data set is described in plans and reports, and its store's folder name (a
        ``limit`` drawn with ``seed`` and pseudonymised names each get a store of their own)."""
        if isinstance(self, DatasetConfig) and self.kind == "phantom":
            description = f"phantom (n={self.n}, seed={self.seed}, {size} px)"
            slug = f"phantom-n{self.n}-s{self.seed}-{size}px"
        elif self.kind == "idrid":
            description, slug = f"IDRiD grading ({size} px)", f"idrid-{size}px"
        elif self.kind == "folder" and path is not None:
            description, slug = f"folder {path} ({size} px)", f"folder-{path.name}-{size}px"
        else:
            description, slug = f"{self.kind} {path} ({size} px)", f"{self.kind}-{size}px"
        if self.limit is not None:
            slug += f"-limit{self.limit}-s{seed}"
        return description, slug + ("-pseudonymised" if pseudonymised else "")

    @field_validator("path", "csv")
    @classmethod
    def _expand_home(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None


class ExternalDataset(DataLocation):
    """One ``[[dataset.external]]`` entry: a data set every trained cell is also tested on.

    Attributes:
        name: its name in results and reports (letters, digits, ``-``, ``_``).
    """

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
    kind: DatasetKind

    @model_validator(mode="after")
    def _located(self) -> ExternalDataset:
        if self.kind == "phantom":
            raise ValueError(f"external set {self.name!r}: kind 'phantom' cannot be an external test set")
        if self.kind == "store" and not self.store:
            raise ValueError(f"external set {self.name!r}: kind 'store' needs store")
        if self.kind != "store" and self.path is None:
            raise ValueError(f"external set {self.name!r}: kind {self.kind!r} needs path")
        if self.kind == "folder" and self.csv is None:
            raise ValueError(f"external set {self.name!r}: kind 'folder' needs csv")
        return self


class DatasetConfig(DataLocation):
    """Which data set an experiment runs on, and the external sets it is also tested on.

    Attributes:
        path: data-set folder (non-phantom kinds); ``--data`` on the command line overrides it.
        n, seed: phantom size and seed.
        external: ``[[dataset.external]]`` entries (names unique).
    """

    n: int = Field(default=500, ge=10)
    seed: int = 0
    external: list[ExternalDataset] = Field(default_factory=list)

    @field_validator("external")
    @classmethod
    def _unique_names(cls, value: list[ExternalDataset]) -> list[ExternalDataset]:
        names = [entry.name for entry in value]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"external set name(s) {', '.join(repeated)} used twice")
        return value


FINGERPRINTED_SETTINGS = ("image_size", "trainers", "generators")
"""The settings (top-level keys) a cell's result depends on, hence in the run's fingerprint."""

DEFAULT_BASELINE = "classic"
"""The thesis's comparison: every arm against classic augmentation, when the file names no baseline."""


class ExperimentSection(BaseModel):
    """The ``[experiment]`` table: arms, classifiers, seeds and the plan policy."""

    model_config = ConfigDict(extra="forbid")

    arms: list[Arm]
    classifiers: list[str] = ["cnn"]
    seeds: list[int] = [0, 1, 2]
    plan_seed: int = 0
    val_fraction: float = 0.0
    policy: PlanPolicy = PlanPolicy.balance_largest()
    baseline: str | None = None
    """The arm the others are compared with; default: ``classic`` when it is one of the arms."""
    protocol: Literal["holdout", "kfold"] = "holdout"
    """``holdout``: the data set's own train/test split; ``kfold``: stratified, group-aware folds
    over every labelled real image (``folds`` x ``repeats``)."""
    folds: int = Field(default=5, ge=2, le=50)
    repeats: int = Field(default=1, ge=1, le=20)
    duplicates: Literal["group", "drop"] = "group"
    """Copies among the real images: kept in one fold (``group``) or left out (``drop``; k-fold)."""

    @field_validator("arms", mode="before")
    @classmethod
    def _shorthand_arms(cls, value: Any) -> Any:
        """``"classic"`` is short for ``{name = "classic", generators = ["classic"]}``."""
        if not isinstance(value, list):
            return value
        return [
            ({"name": a} if a == "none" else {"name": a, "generators": [a]}) if isinstance(a, str) else a for a in value
        ]

    @field_validator("arms")
    @classmethod
    def _at_least_one_arm(cls, value: list[Arm]) -> list[Arm]:
        if not value:
            raise ValueError("an experiment needs at least one arm (e.g. arms = [\"none\", \"classic\"])")
        return value


class ExperimentConfig(BaseModel):
    """A whole experiment file: name, data set, experiment and settings overrides."""

    model_config = ConfigDict(extra="forbid")

    name: str = "experiment"
    """The run's name: its run folder is ``<work_dir>/runs/<name>``, so a plain name (see ``RUN_NAME``)."""
    description: str = ""
    dataset: DatasetConfig = DatasetConfig()
    experiment: ExperimentSection
    settings: dict[str, Any] = Field(default_factory=dict)
    source_text: str = Field(default="", exclude=True)

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        if not RUN_NAME.fullmatch(value):
            raise ValueError(
                f"{value!r} is not a plain name (1-64 letters, digits, '.', '_' or '-', starting with a letter "
                "or digit: it names the run folder inside <work_dir>/runs)"
            )
        return value

    @model_validator(mode="after")
    def _equal_share_weighs_classes(self) -> ExperimentConfig:
        """An ``equal-share`` plan leaves the grades unbalanced: every classifier weighs them."""
        if not self.experiment.policy.balances_by_class_weights:
            return self
        trainers = self.settings.setdefault("trainers", {})
        for name in self.experiment.classifiers:
            table = trainers.setdefault(name.replace("-", "_"), {})
            if isinstance(table, dict) and table.get("class_weighted") is False:
                raise ValueError(
                    f"policy equal-share balances the grades by class weights: remove class_weighted = false "
                    f"from [settings.trainers.{name.replace('-', '_')}]"
                )
            if isinstance(table, dict):
                table["class_weighted"] = True
        return self

    def spec(self) -> ExperimentSpec:
        """The domain experiment this file defines."""
        e = self.experiment
        return ExperimentSpec(
            name=self.name,
            arms=tuple(e.arms),
            classifiers=tuple(e.classifiers),
            seeds=tuple(e.seeds),
            policy=e.policy,
            plan_seed=e.plan_seed,
            val_fraction=e.val_fraction,
            baseline=e.baseline or (DEFAULT_BASELINE if any(a.name == DEFAULT_BASELINE for a in e.arms) else None),
            protocol=e.protocol,
            folds=e.folds,
            repeats=e.repeats,
            duplicates=e.duplicates,
        )

    def references(self) -> tuple[ReferenceResult, ...]:
        """Published results the report sets beside this experiment's: the thesis's, on IDRiD only."""
        return THESIS_REFERENCES if self.dataset.kind == "idrid" else ()

    def settings_over(self, base: dict[str, Any]) -> dict[str, Any]:
        """``base`` settings (as plain data) with this file's ``[settings]`` table merged over
        them, table by table: a key the file sets wins, every other key keeps its value."""
        return _deep_merge(base, self.settings)

    def fingerprint(self, settings: Mapping[str, Any], store: str) -> str:
        """Identity of what every cell shares (for safe resuming): this file, the settings that
        shape a cell's result (``FINGERPRINTED_SETTINGS`` of ``settings``, the whole settings as
        plain data; the ``openai`` generator's are left out: they are its account and budget, and
        its images are not reproducible anyway) and the store's identity (never its path: a run
        folder never mixes cells of two stores).

        Arms, classifiers and seeds are left out: cells are kept per arm/classifier/seed, so an
        experiment can be narrowed or extended and still resume (each arm's own definition is
        checked by the run folder).
        """
        resolved_settings = {key: settings[key] for key in FINGERPRINTED_SETTINGS}
        resolved_settings["generators"] = {k: v for k, v in settings["generators"].items() if k != "openai"}
        resolved_settings["store"] = store
        # External sets are only predicted: they leave the cells as they are. ``limit`` joins the
        # identity only when set, so files written before it existed keep resuming.
        excluded = {"external"} | ({"limit"} if self.dataset.limit is None else set())
        # A holdout experiment's identity is what it was before protocols existed (old run
        # folders resume); the protocol fields only matter to k-fold ones.
        protocol = {"protocol", "folds", "repeats", "duplicates"} if self.experiment.protocol == "holdout" else set()
        payload = {
            "dataset": self.dataset.model_dump(mode="json", exclude=excluded),
            "experiment": self.experiment.model_dump(
                mode="json", exclude={"arms", "classifiers", "seeds", "baseline"} | protocol
            ),
            "settings": resolved_settings,
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def load_experiment_config(path: Path | None) -> ExperimentConfig:
    """Read an experiment TOML file, or the built-in quick experiment when ``path`` is None.

    Raises:
        ConfigError: missing file, bad TOML or an invalid field (one line, naming the file).
    """
    if path is None:
        name = f"built-in {BUILTIN_QUICK}"
        text = resources.files("medaug.composition.experiments").joinpath(BUILTIN_QUICK).read_text()
    else:
        name = str(path)
        try:
            text = Path(path).read_text()
        except FileNotFoundError:
            raise ConfigError(f"{path}: experiment file not found") from None
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{name}: not valid TOML ({exc})") from None
    try:
        return ExperimentConfig.model_validate({**data, "source_text": text})
    except ValidationError as exc:
        raise ConfigError(validation_problem(exc, str(name))) from None


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out
