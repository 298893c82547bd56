"""Pytest fixtures for S3 tests: moto's S3 server on 127.0.0.1, fresh buckets, and an outage switch.

The server is moto's real HTTP server (``ThreadedMotoServer``) started by the tests, not moto's
in-process mock, so requests go through botocore's whole stack (signing, retries, sockets).
Its state lives in this process, so a bucket outlives an outage made with ``TcpProxy``.
"""

from __future__ import annotations

import itertools
import logging
import os
import selectors
import socket
import struct
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from medaug.adapters.stores.config import S3StoreConfig

REGION = "us-east-1"
ACCESS_KEY = "AKIATESTMEDAUGKEY0001"
SECRET_KEY = "medaug-test-secret-do-not-log-0123456789"


class TcpProxy:
    """A TCP relay on 127.0.0.1 that can be cut (every connection dropped, port closed) and restored.

    Cutting it looks to a client exactly like the server going away (connections reset, then
    refused), while the server behind it keeps its state.
    """

    def __init__(self, target: tuple[str, int]) -> None:
        self._target = target
        self._port = 0
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._listener: socket.socket | None = None

    @property
    def endpoint(self) -> str:
        """The proxy's URL (stable across cut and restore)."""
        return f"http://127.0.0.1:{self._port}"

    def start(self) -> None:
        """Listen (again) on the proxy's port; the first start picks a free port."""
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self._port))
        listener.listen(64)
        listener.settimeout(0.05)
        self._port = listener.getsockname()[1]
        self._listener = listener
        self._stopping.clear()
        self._spawn(self._accept_loop, listener)

    def cut(self) -> None:
        """Close the port and drop every open connection, then return."""
        self._stopping.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads = []

    def _spawn(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self, listener: socket.socket) -> None:
        with listener:
            while not self._stopping.is_set():
                try:
                    client, _ = listener.accept()
                except TimeoutError:
                    continue
                try:
                    upstream = socket.create_connection(self._target, timeout=5)
                except OSError:
                    client.close()
                    continue
                self._spawn(self._relay, client, upstream)

    def _relay(self, client: socket.socket, upstream: socket.socket) -> None:
        with client, upstream, selectors.DefaultSelector() as selector:
            selector.register(client, selectors.EVENT_READ, upstream)
            selector.register(upstream, selectors.EVENT_READ, client)
            while not self._stopping.is_set():
                for key, _ in selector.select(timeout=0.05):
                    try:
                        chunk = key.fileobj.recv(65536)  # type: ignore[union-attr]
                        if not chunk:
                            return
                        key.data.sendall(chunk)
                    except OSError:
                        return
            # SO_LINGER 0: the client sees a reset, as when a server dies.
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """moto's S3 server, on a free port of 127.0.0.1, for the whole test session."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one INFO line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


_bucket_numbers = itertools.count()


def s3_config(endpoint: str, bucket: str, prefix: str = "store", **overrides: Any) -> S3StoreConfig:
    """Settings for a store on the test server: fixed fake credentials, few retries, short timeouts."""
    values: dict[str, Any] = {
        "bucket": bucket,
        "prefix": prefix,
        "region": REGION,
        "endpoint_url": endpoint,
        "access_key_id": SecretStr(ACCESS_KEY),
        "secret_access_key": SecretStr(SECRET_KEY),
        "max_attempts": 2,
        "connect_timeout": 2.0,
        "read_timeout": 10.0,
    }
    values.update(overrides)
    return S3StoreConfig(**values)


def create_bucket(endpoint: str) -> str:
    """A new, empty bucket with a unique name."""
    from medaug.adapters.stores.s3_client import make_s3_client

    name = f"medaug-test-{next(_bucket_numbers)}-{uuid.uuid4().hex[:8]}"
    make_s3_client(s3_config(endpoint, name)).create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3_bucket(moto_endpoint: str) -> str:
    """A fresh bucket on the test server."""
    return create_bucket(moto_endpoint)


@pytest.fixture
def s3_store_config(moto_endpoint: str, s3_bucket: str) -> S3StoreConfig:
    """Settings for an empty store ``s3://<fresh bucket>/store`` on the test server."""
    return s3_config(moto_endpoint, s3_bucket)


@pytest.fixture
def s3_env(monkeypatch: pytest.MonkeyPatch, moto_endpoint: str) -> str:
    """MEDAUG_* and AWS_* environment pointing the CLI at the test server; returns the endpoint."""
    for name, value in {
        "MEDAUG_STORE__S3__ENDPOINT_URL": moto_endpoint,
        "MEDAUG_STORE__S3__REGION": REGION,
        "MEDAUG_STORE__S3__MAX_ATTEMPTS": "2",
        "MEDAUG_STORE__S3__CONNECT_TIMEOUT": "2",
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    return moto_endpoint


@pytest.fixture
def s3_proxy(moto_endpoint: str) -> Iterator[TcpProxy]:
    """A cuttable relay in front of the test server (see ``TcpProxy``)."""
    host, port = moto_endpoint.removeprefix("http://").split(":")
    proxy = TcpProxy((host, int(port)))
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.cut()
