"""Settings: one pydantic object from ``medaug.toml`` (or ``--config``) and ``MEDAUG_*`` env.

Environment variables override the TOML file; nested fields use ``__``, e.g.
``MEDAUG_STORE__ROOT=/data/store`` or ``MEDAUG_GENERATORS__OPENAI__API_KEY=...``.
Nothing is read at import time: call ``load_settings``.
"""

from __future__ import annotations

import functools
import re
import tempfile
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from medaug.adapters.executors.config import ExecutorConfig
from medaug.adapters.generators.config import GeneratorsConfig
from medaug.adapters.quality.config import QualityConfig
from medaug.adapters.stores.config import StoreConfig
from medaug.adapters.tracking.config import TrackingConfig
from medaug.adapters.trainers.config import TrainersConfig
from medaug.application.errors import ConfigError, validation_problem

DEFAULT_CONFIG_FILE = Path("medaug.toml")


class Settings(BaseSettings):
    """Everything medaug can be configured with.

    Attributes:
        store: where images live (``kind = "local"`` folder or ``"s3"``).
        work_dir: where generator checkpoints and experiment runs are written: a folder, or
            ``s3://bucket/prefix`` (then ``work_url`` holds it, and ``work_dir`` becomes its local
            scratch ``<scratch_dir>/<bucket>/<prefix>``, mirrored there: see ``S3RunFolder``).
        work_url: the ``s3://`` work folder, if ``work_dir`` named one (set from ``work_dir``).
        scratch_dir: where an S3 work folder's local scratch lives.
        image_size: working size of preprocessed images (square, pixels).
        seed: the default seed for every random choice.
        device: ``auto`` (CUDA when present), ``cpu`` or ``cuda``.
        log_format: ``auto`` (readable in a terminal, JSON otherwise), ``console`` or ``json``.
        log_level: ``debug``, ``info``, ``warning`` or ``error``.
        quality: how synthetic images are assessed (``medaug quality``) and screened.
        pseudonymise: ingest under pseudonyms (keyed hashes of the original names) by default.
        pseudonym_key: the HMAC key of the pseudonyms (secret; ``MEDAUG_PSEUDONYM_KEY``); never
            written to a store.
        pseudonym_key_file: a file holding that key instead (its bytes, stripped).
        executor: where an experiment's classifier cells run (``local`` or a ``ray`` cluster).
        tracking: experiment tracking (MLflow); off unless ``tracking.mlflow_uri`` is set.
    """

    model_config = SettingsConfigDict(
        env_prefix="MEDAUG_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    config_file: ClassVar[Path | None] = None

    store: StoreConfig = StoreConfig()
    work_dir: Path = Path("medaug-data")
    work_url: str | None = None
    scratch_dir: Path = Path(tempfile.gettempdir()) / "medaug-scratch"
    image_size: int = Field(default=256, ge=16, le=2048)
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    log_format: Literal["auto", "console", "json"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    generators: GeneratorsConfig = GeneratorsConfig()
    trainers: TrainersConfig = TrainersConfig()
    quality: QualityConfig = QualityConfig()
    pseudonymise: bool = False
    pseudonym_key: SecretStr | None = None
    pseudonym_key_file: Path | None = None
    executor: ExecutorConfig = ExecutorConfig()
    tracking: TrackingConfig = TrackingConfig()

    @model_validator(mode="before")
    @classmethod
    def _s3_work_dir(cls, data: Any) -> Any:
        """``work_dir = "s3://bucket/prefix"``: kept in ``work_url``; ``work_dir`` is its local scratch."""
        if not isinstance(data, dict):
            return data
        work_dir = data.get("work_dir")
        if isinstance(work_dir, str) and work_dir.startswith("s3://"):
            bucket, _, prefix = work_dir.removeprefix("s3://").partition("/")
            if not bucket:
                raise ValueError(f"work_dir = {work_dir!r}: names no bucket (s3://bucket/prefix)")
            scratch = Path(data.get("scratch_dir") or cls.model_fields["scratch_dir"].default)
            return {**data, "work_url": work_dir.rstrip("/"), "work_dir": scratch / bucket / prefix.strip("/")}
        if work_dir is not None and data.get("work_url") and not cls._is_scratch_of(work_dir, data):
            return {**data, "work_url": None}  # a local work_dir given over an S3 one
        return data

    @classmethod
    def _is_scratch_of(cls, work_dir: Any, data: dict[str, Any]) -> bool:
        bucket, _, prefix = str(data["work_url"]).removeprefix("s3://").partition("/")
        scratch = Path(data.get("scratch_dir") or cls.model_fields["scratch_dir"].default)
        return Path(work_dir) == scratch / bucket / prefix.strip("/")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = cls.config_file
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)


def load_settings(config: Path | None = None, **overrides: Any) -> Settings:
    """Build Settings from a TOML file, the environment and explicit overrides (highest first).

    Args:
        config: a TOML file; without one, ``./medaug.toml`` is used if it exists.
        overrides: field values that win over file and environment.

    Raises:
        ConfigError: the file is missing or unreadable, or a value is invalid (one line).
    """
    path = config if config is not None else (DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.is_file() else None)
    if path is not None and not Path(path).is_file():
        raise ConfigError(f"{path}: configuration file not found")
    bound = type("BoundSettings", (Settings,), {"config_file": Path(path) if path else None})
    try:
        return bound(**overrides)
    except ValidationError as exc:
        raise ConfigError(f"{path or 'settings'}: {validation_problem(exc)}") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(_unreadable_source(exc, path)) from None


def _unreadable_source(exc: Exception, path: Path | None) -> str:
    """One line for a settings source that could not be parsed, naming the variable or file."""
    found = re.search(r'field "([^"]+)" from source "(\w+)"', str(exc))
    if found and found.group(2) == "EnvSettingsSource":
        variable = "MEDAUG_" + found.group(1).upper()
        return f"{variable}: not valid JSON (a nested setting is set as a JSON object, e.g. {variable}='{{...}}', " \
            f"or one field at a time as {variable}__FIELD)"
    where = str(path) if path is not None else "settings"
    return f"{where}: cannot read configuration ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"


def seed_of(settings: Settings, configured: int | None) -> int:
    """A component's seed: its own when it names one, else the default ``settings.seed``."""
    return settings.seed if configured is None else configured


def device_of(settings: Settings, configured: str | None = None) -> str:
    """The concrete device (``cpu`` or ``cuda``) a component runs on: its own setting when it
    names one, else ``settings.device``; ``auto`` is resolved here, once per process.

    Raises:
        ConfigError: ``cuda`` is asked for on a machine without a GPU.
    """
    return _resolved_device(settings.device if configured in (None, "auto") else configured)


@functools.cache
def _resolved_device(preference: str) -> str:
    from medaug.adapters.torch_support import resolve_device  # torch loads only when a device is needed

    return resolve_device(preference).type
