"""Experiment definitions: the TOML file format, loading, CLI overrides and early validation."""

from __future__ import annotations

import hashlib
import json
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from medaug.application.errors import ConfigError, validation_problem
from medaug.domain import PlanPolicy
from medaug.domain.experiment import Arm, ExperimentSpec

BUILTIN_QUICK = "quick.toml"


class DatasetConfig(BaseModel):
    """Which data set an experiment runs on.

    Attributes:
        kind: ``phantom`` (built in), ``idrid`` (official layout at ``path``), ``folder`` (images
            at ``path`` labelled by ``csv``) or ``store`` (an already-ingested store).
        path: data-set folder (idrid, folder); ``--data`` on the command line overrides it.
        n, seed: phantom size and seed.
        csv, image_column, label_column, split_column: the folder+CSV layout.
        store: where the data set is ingested (default: ``<work_dir>/stores/<kind>-...``).
    """

    model_config = ConfigDict(extra="forbid")

    kind: Literal["phantom", "idrid", "folder", "store"] = "phantom"
    path: Path | None = None
    n: int = Field(default=500, ge=10)
    seed: int = 0
    csv: Path | None = None
    image_column: str = "image"
    label_column: str = "grade"
    split_column: str | None = None
    store: str | None = None


class ExperimentSection(BaseModel):
    """The ``[experiment]`` table: arms, classifiers, seeds and the plan policy."""

    model_config = ConfigDict(extra="forbid")

    arms: list[Arm]
    classifiers: list[str] = ["cnn"]
    seeds: list[int] = [0, 1, 2]
    plan_seed: int = 0
    val_fraction: float = 0.0
    policy: PlanPolicy = PlanPolicy.balance_largest()

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
    description: str = ""
    dataset: DatasetConfig = DatasetConfig()
    experiment: ExperimentSection
    settings: dict[str, Any] = Field(default_factory=dict)
    source_text: str = Field(default="", exclude=True)

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
        )

    def fingerprint(self, resolved_settings: dict[str, Any]) -> str:
        """Identity of what every cell shares (for safe resuming).

        Arms, classifiers and seeds are left out: cells are kept per arm/classifier/seed, so an
        experiment can be narrowed or extended and still resume (each arm's own definition is
        checked by the run folder).
        """
        payload = {
            "dataset": self.dataset.model_dump(mode="json"),
            "experiment": self.experiment.model_dump(mode="json", exclude={"arms", "classifiers", "seeds"}),
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


def apply_overrides(
    config: ExperimentConfig,
    *,
    data: Path | None = None,
    arms: list[str] | None = None,
    classifiers: list[str] | None = None,
    seeds: list[int] | None = None,
) -> ExperimentConfig:
    """Narrow or redirect an experiment from the command line.

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
    return config.model_copy(update={"dataset": dataset, "experiment": section})
