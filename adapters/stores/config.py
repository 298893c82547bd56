"""Configuration of the image stores (pure pydantic: safe to import anywhere)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

MIB = 1024 * 1024


class S3StoreConfig(BaseModel):
    """Where an S3-compatible store lives and how to talk to it.

    Credentials default to the usual AWS chain (environment, ``~/.aws``, instance roles); set
    ``access_key_id`` and ``secret_access_key`` (secrets, never logged) to override it.

    Attributes:
        bucket: the bucket holding the store.
        prefix: the folder inside the bucket (no leading or trailing ``/`` needed).
        region: the bucket's region (``None``: from the AWS chain).
        endpoint_url: an S3-compatible endpoint (MinIO, Ceph, R2...); ``None`` means AWS.
        access_key_id: access key, overriding the AWS chain.
        secret_access_key: secret key, overriding the AWS chain.
        session_token: a temporary session token, if the keys need one.
        addressing_style: ``auto`` uses path-style URLs whenever ``endpoint_url`` is set
            (what MinIO and most S3-compatible servers need), ``path`` or ``virtual`` force one.
        retry_mode: botocore's retry mode (``standard`` backs off exponentially with jitter).
        max_attempts: attempts per request in total, the first one included.
        connect_timeout: seconds to wait for a connection.
        read_timeout: seconds to wait for a response.
        multipart_threshold: objects larger than this (bytes) are uploaded in parts.
        multipart_chunksize: size of each part (bytes; S3 needs at least 5 MiB).
        max_workers: concurrent requests when reading many records at once.
        request_checksum_calculation: botocore's transfer checksums; ``when_required`` for
            older S3-compatible servers that reject ``when_supported`` (the default).
        lease_seconds: how long the writer lease lasts unless renewed (its holder renews it
            every third of this); a killed holder blocks other writers at most this long.
    """

    model_config = ConfigDict(extra="forbid")

    bucket: str = ""
    prefix: str = ""
    region: str | None = None
    endpoint_url: str | None = None
    access_key_id: SecretStr | None = None
    secret_access_key: SecretStr | None = None
    session_token: SecretStr | None = None
    addressing_style: Literal["auto", "path", "virtual"] = "auto"
    retry_mode: Literal["standard", "adaptive", "legacy"] = "standard"
    max_attempts: int = Field(default=5, ge=1, le=20)
    connect_timeout: float = Field(default=5.0, gt=0)
    read_timeout: float = Field(default=60.0, gt=0)
    multipart_threshold: int = Field(default=8 * MIB, ge=5 * MIB)
    multipart_chunksize: int = Field(default=8 * MIB, ge=5 * MIB)
    max_workers: int = Field(default=8, ge=1, le=64)
    request_checksum_calculation: Literal["when_supported", "when_required"] = "when_supported"
    lease_seconds: float = Field(default=120.0, ge=5, le=3600)

    @model_validator(mode="after")
    def _keys_come_in_pairs(self) -> S3StoreConfig:
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ValueError("store.s3.access_key_id and store.s3.secret_access_key must be set together")
        return self


class StoreConfig(BaseModel):
    """Which store to use: ``kind = "local"`` (a folder) or ``"s3"``.

    Attributes:
        lock_wait_seconds: how long a writing command waits for another one holding the store's
            writer lock before refusing (with one line naming the holder).
    """

    model_config = ConfigDict(extra="forbid")

    kind: Literal["local", "s3"] = "local"
    root: Path = Path("medaug-data/store")
    s3: S3StoreConfig = S3StoreConfig()
    lock_wait_seconds: float = Field(default=5.0, ge=0, le=86400)

    def location_for(self, slug: str, work_dir: Path) -> str:
        """Where a data set's own store goes: ``<work_dir>/stores/<slug>``, or ``<slug>`` under
        the bucket's prefix when ``kind = "s3"``."""
        if self.kind == "s3":
            prefix = self.s3.prefix.strip("/")
            return f"s3://{self.s3.bucket}/{prefix + '/' if prefix else ''}{slug}"
        return str(work_dir / "stores" / slug)
