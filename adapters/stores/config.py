"""Configuration of the image stores (pure pydantic: safe to import anywhere)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, SecretStr


class S3StoreConfig(BaseModel):
    """Where an S3-compatible store lives. Credentials default to the usual AWS chain."""

    model_config = ConfigDict(extra="forbid")

    bucket: str = ""
    prefix: str = ""
    region: str | None = None
    endpoint_url: str | None = None
    access_key_id: SecretStr | None = None
    secret_access_key: SecretStr | None = None


class StoreConfig(BaseModel):
    """Which store to use: ``kind = "local"`` (a folder) or ``"s3"``."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["local", "s3"] = "local"
    root: Path = Path("medaug-data/store")
    s3: S3StoreConfig = S3StoreConfig()
