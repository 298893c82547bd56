"""Objects under one prefix of an S3 bucket: what the S3 image store and the S3 run folder share.

Reads, plain and conditional writes (an S3 ``put`` is atomic: readers see the old object or the
new one), listing and deletion, each failure a one-line ``StoreError`` naming the object (see
``S3ErrorMapping``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from medaug.adapters.stores.s3_client import CONDITION_FAILED, NotFound, S3Client, S3ErrorMapping
from medaug.adapters.stores.s3_lease import NOT_IMPLEMENTED
from medaug.application.errors import ConfigError, StoreError


class S3Objects(S3ErrorMapping):
    """The objects under ``s3://<bucket>/<prefix>/``, addressed by full key (see ``object_key``)."""

    def __init__(self, client: S3Client, *, bucket: str, prefix: str = "") -> None:
        if not bucket:
            raise ConfigError("an S3 location needs a bucket name")
        self._client = client
        self._bucket = bucket
        self._prefix = prefix.strip("/")
        self._bucket_checked = False

    @property
    def location(self) -> str:
        return f"s3://{self._bucket}/{self._prefix}" if self._prefix else f"s3://{self._bucket}"

    @property
    def bucket(self) -> str:
        """The bucket holding the store."""
        return self._bucket

    @property
    def prefix(self) -> str:
        """The folder inside the bucket, without slashes at either end."""
        return self._prefix

    def object_key(self, relative: str) -> str:
        """The full object key of a key relative to the store (``train/0/a.png`` -> ``<prefix>/train/0/a.png``)."""
        return f"{self._prefix}/{relative}" if self._prefix else relative

    def _url(self, key: str) -> str:
        return f"s3://{self._bucket}/{key}"

    def _delete_object(self, key: str) -> None:
        with self._errors(key):
            self._client.delete_object(Bucket=self._bucket, Key=key)

    def read_object_or_none(self, key: str) -> bytes | None:
        """The bytes of object ``key`` (a full key), or None when it does not exist."""
        return self.read_object_with_etag(key)[0]

    def read_object_with_etag(self, key: str) -> tuple[bytes | None, str | None]:
        try:
            with self._errors(key):
                response = self._client.get_object(Bucket=self._bucket, Key=key)
                return response["Body"].read(), response.get("ETag")
        except NotFound:
            return None, None

    def put_conditional(
        self, key: str, body: bytes, *, if_none_match: bool = False, if_match: str | None = None
    ) -> str:
        """Write ``key`` only if absent (``if_none_match``) or unchanged (``if_match`` ETag).

        Returns:
            ``"ok:<etag>"`` on success, else the S3 error code (``412``... when the condition
            failed, ``NotImplemented`` when the server has no conditional writes).
        """
        conditions: dict[str, str] = {"IfNoneMatch": "*"} if if_none_match else {}
        if if_match is not None:
            conditions["IfMatch"] = if_match
        self._check_bucket()
        try:
            response = self._client.put_object(Bucket=self._bucket, Key=key, Body=body, **conditions)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in CONDITION_FAILED | NOT_IMPLEMENTED:
                return code
            raise StoreError(f"{self._url(key)}: {self._client_problem(code, exc)}") from None
        except BotoCoreError as exc:
            raise StoreError(f"{self._url(key)}: {self._transport_problem(exc)}") from None
        return f"ok:{response.get('ETag')}"

    def put_plain(self, key: str, body: bytes) -> str | None:
        """Write ``key`` unconditionally; returns its ETag."""
        with self._errors(key):
            return self._client.put_object(Bucket=self._bucket, Key=key, Body=body).get("ETag")

    def delete_if_match(self, key: str, etag: str | None) -> None:
        """Delete ``key`` if its ETag is still ``etag`` (someone else's object is left alone)."""
        with contextlib.suppress(ClientError, BotoCoreError):
            extra = {"IfMatch": etag} if etag else {}
            self._client.delete_object(Bucket=self._bucket, Key=key, **extra)


    def list_keys(self, relative: str = "") -> Iterator[tuple[str, int, str | None]]:
        """(full key, size, ETag) of every object whose key starts with ``object_key(relative)``."""
        prefix = self.object_key(relative)
        with self._errors(prefix):
            for page in self._client.get_paginator("list_objects_v2").paginate(Bucket=self._bucket, Prefix=prefix):
                for obj in page.get("Contents", []):
                    yield obj["Key"], int(obj.get("Size", 0)), obj.get("ETag")

    def upload_file(self, path: Path, key: str) -> None:
        """Upload the file ``path`` as object ``key`` (multipart when large; visible only once whole)."""
        with self._errors(key):
            self._client.upload_file(str(path), self._bucket, key)

    def download_file(self, key: str, path: Path) -> None:
        """Download object ``key`` to ``path`` (the caller renames it into place)."""
        with self._errors(key):
            self._client.download_file(self._bucket, key, str(path))

    def delete_keys(self, keys: list[str]) -> None:
        """Delete the objects ``keys`` (full keys), a thousand per request."""
        for start in range(0, len(keys), 1000):
            batch = [{"Key": key} for key in keys[start : start + 1000]]
            with self._errors(batch[0]["Key"]):
                self._client.delete_objects(Bucket=self._bucket, Delete={"Objects": batch, "Quiet": True})
