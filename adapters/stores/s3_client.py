"""The S3 client medaug's S3 store talks through, and how its failures become one-line errors.

``make_s3_client`` builds a boto3 client (retries, timeouts, endpoint, credentials) from
settings; ``S3ErrorMapping`` is the part of the store that turns botocore failures into a
``StoreError`` naming the object and the likely cause, never a traceback or a secret.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import boto3
from boto3.exceptions import S3UploadFailedError
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
)
from pydantic import SecretStr

from medaug.adapters.stores.config import S3StoreConfig
from medaug.application.errors import ConfigError, StoreError

S3Client = Any
"""A boto3 S3 client (``boto3.client("s3")``); typed loosely as boto3 ships no stubs."""

NOT_FOUND = frozenset({"404", "NoSuchKey", "NotFound"})
CONDITION_FAILED = frozenset({"412", "PreconditionFailed", "409", "ConditionalRequestConflict"})
_DENIED = frozenset({"403", "AccessDenied", "AllAccessDisabled", "Forbidden"})
_BAD_CREDENTIALS = frozenset(
    {"InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken", "TokenRefreshRequired"}
)
_UNREACHABLE = {
    EndpointConnectionError: "connection failed",
    ConnectTimeoutError: "connection timed out",
    ReadTimeoutError: "no response within the read timeout",
    ConnectionClosedError: "connection closed by the server",
}


def make_s3_client(config: S3StoreConfig) -> S3Client:
    """A boto3 S3 client with retries, timeouts, endpoint and credentials from ``config``.

    Raises:
        ConfigError: the endpoint URL or another setting is unusable.
    """
    style = config.addressing_style
    if style == "auto" and config.endpoint_url:
        style = "path"
    botocore_config = Config(
        retries={"mode": config.retry_mode, "total_max_attempts": config.max_attempts},
        connect_timeout=config.connect_timeout,
        read_timeout=config.read_timeout,
        max_pool_connections=max(10, config.max_workers),
        s3={"addressing_style": style},
        request_checksum_calculation=config.request_checksum_calculation,
        response_checksum_validation=config.request_checksum_calculation,
    )
    try:
        with _SESSION_LOCK:  # creating clients from one session is not thread-safe
            return _session().client(
                "s3",
                region_name=config.region,
                endpoint_url=config.endpoint_url,
                aws_access_key_id=_reveal(config.access_key_id),
                aws_secret_access_key=_reveal(config.secret_access_key),
                aws_session_token=_reveal(config.session_token),
                config=botocore_config,
            )
    except ValueError as exc:
        raise ConfigError(f"store.s3: cannot build an S3 client ({exc})") from None


_SESSION: list[boto3.session.Session] = []
_SESSION_LOCK = threading.RLock()


def _session() -> boto3.session.Session:
    """One boto3 session per process: later clients reuse its parsed service models (~10x faster)."""
    if not _SESSION:
        _SESSION.append(boto3.session.Session())
    return _SESSION[0]


def _reveal(secret: SecretStr | None) -> str | None:
    return secret.get_secret_value() if secret is not None else None


class NotFound(Exception):
    """The object does not exist (an internal signal, never shown to users)."""



class S3ErrorMapping:
    """Failure handling of ``S3ImageStore`` (a mixin: it uses the store's client, bucket and URLs)."""

    _client: S3Client
    _bucket: str
    _bucket_checked: bool

    @property
    def location(self) -> str:
        raise NotImplementedError

    def _url(self, key: str) -> str:
        raise NotImplementedError

    @contextlib.contextmanager
    def _errors(self, key: str) -> Iterator[None]:
        """Turn botocore failures into one-line ``StoreError`` naming the object; 404 -> ``NotFound``."""
        self._check_bucket()
        try:
            yield
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in NOT_FOUND:
                raise NotFound(key) from None
            raise StoreError(f"{self._url(key)}: {self._client_problem(code, exc)}") from None
        except S3UploadFailedError as exc:
            raise StoreError(f"{self._url(key)}: upload failed ({exc})") from None
        except (NoCredentialsError, PartialCredentialsError):
            raise StoreError(f"{self._url(key)}: {_NO_CREDENTIALS}") from None
        except BotoCoreError as exc:
            raise StoreError(f"{self._url(key)}: {self._transport_problem(exc)}") from None

    def _check_bucket(self) -> None:
        """Once per store: a missing bucket or denied access is reported as such, not as 404s."""
        if self._bucket_checked:
            return
        self._bucket_checked = True
        try:
            self._client.head_bucket(Bucket=self._bucket)
        except ClientError as exc:
            self._bucket_checked = False
            code = str(exc.response.get("Error", {}).get("Code", ""))
            problem = f"bucket {self._bucket} does not exist" if code in NOT_FOUND else self._client_problem(code, exc)
            raise StoreError(f"{self.location}: {problem}") from None
        except (NoCredentialsError, PartialCredentialsError):
            self._bucket_checked = False
            raise StoreError(f"{self.location}: {_NO_CREDENTIALS}") from None
        except BotoCoreError as exc:
            self._bucket_checked = False
            raise StoreError(f"{self.location}: {self._transport_problem(exc)}") from None

    def _client_problem(self, code: str, exc: ClientError) -> str:
        if code == "NoSuchBucket":
            return f"bucket {self._bucket} does not exist"
        if code in _DENIED:
            return "access denied (check the credentials and the bucket policy)"
        if code in _BAD_CREDENTIALS:
            return f"credentials rejected by the S3 endpoint ({code})"
        message = exc.response.get("Error", {}).get("Message", "") or "no message"
        return f"S3 request failed ({code or 'no code'}: {message})"

    def _transport_problem(self, exc: BotoCoreError) -> str:
        for kind, reason in _UNREACHABLE.items():
            if isinstance(exc, kind):
                return f"cannot reach the S3 endpoint {self._endpoint()} ({reason}, {self._attempts()} attempt(s))"
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return f"S3 request failed ({detail})"

    def _endpoint(self) -> str:
        return str(getattr(self._client.meta, "endpoint_url", "") or "(AWS)")

    def _attempts(self) -> int:
        retries = getattr(self._client.meta.config, "retries", None) or {}
        return int(retries.get("total_max_attempts") or retries.get("max_attempts", 0) + 1)


_NO_CREDENTIALS = (
    "no S3 credentials found (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, an AWS profile, "
    "or store.s3.access_key_id and store.s3.secret_access_key)"
)

