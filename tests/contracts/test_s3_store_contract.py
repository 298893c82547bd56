"""S3ImageStore against the shared ImageStore contract (on moto's S3 server), plus S3 specifics."""

from __future__ import annotations

import contextlib
import hashlib
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from medaug.adapters.stores.config import MIB, S3StoreConfig
from medaug.adapters.stores.local import LocalImageStore
from medaug.adapters.stores.s3 import S3ImageStore
from medaug.adapters.stores.s3_client import make_s3_client
from medaug.application.errors import StoreError
from tests.conftest import png_bytes, real_record, synthetic_record
from tests.contracts.image_store import ImageStoreContract
from tests.s3_server import SECRET_KEY, s3_config


def open_store(config: S3StoreConfig) -> S3ImageStore:
    """A store over ``config``, as bootstrap builds it."""
    return S3ImageStore(
        make_s3_client(config),
        bucket=config.bucket,
        prefix=config.prefix,
        multipart_threshold=config.multipart_threshold,
        multipart_chunksize=config.multipart_chunksize,
    )


class TestS3ImageStore(ImageStoreContract):
    @pytest.fixture
    def store(self, s3_store_config: S3StoreConfig) -> S3ImageStore:
        return open_store(s3_store_config)

    @pytest.fixture
    def reopen(self, s3_store_config: S3StoreConfig):  # type: ignore[no-untyped-def]
        return lambda: open_store(s3_store_config)

    @pytest.fixture
    def other_store(self, s3_store_config: S3StoreConfig) -> S3ImageStore:
        return open_store(s3_store_config.model_copy(update={"prefix": s3_store_config.prefix + "-other"}))


def _keys(store: S3ImageStore) -> list[str]:
    response = store._client.list_objects_v2(Bucket=store.bucket)
    return sorted(obj["Key"] for obj in response.get("Contents", []))


def test_layout_matches_the_local_store_under_the_prefix(s3_store_config: S3StoreConfig) -> None:
    store = open_store(s3_store_config)
    store.put(real_record("IDRiD_001", 3), png_bytes())
    assert store.location == f"s3://{s3_store_config.bucket}/store"
    assert _keys(store) == ["store/records/IDRiD_001.json", "store/store.json", "store/train/3/IDRiD_001.png"]
    head = store._client.head_object(Bucket=store.bucket, Key="store/train/3/IDRiD_001.png")
    assert head["Metadata"]["sha256"] == hashlib.sha256(png_bytes()).hexdigest()


def test_prefixes_keep_stores_apart(moto_endpoint: str, s3_bucket: str) -> None:
    first = open_store(s3_config(moto_endpoint, s3_bucket, "a/one"))
    second = open_store(s3_config(moto_endpoint, s3_bucket, "a/one-more"))
    first.put(real_record("x", 0), png_bytes(1))
    assert second.list() == [] and not second.exists("x")


def test_image_without_record_is_invisible_and_can_be_rewritten(s3_store_config: S3StoreConfig) -> None:
    store = open_store(s3_store_config)
    store._client.put_object(Bucket=store.bucket, Key="store/train/0/a.png", Body=b"half-written")
    assert not store.exists("a") and store.list() == []
    store.put(real_record("a", 0), png_bytes(1))
    assert store.get("a") == png_bytes(1)


def test_corrupted_image_fails_its_checksum(s3_store_config: S3StoreConfig) -> None:
    store = open_store(s3_store_config)
    store.put(real_record("a", 0), png_bytes(1))
    store._client.put_object(Bucket=store.bucket, Key="store/train/0/a.png", Body=png_bytes(2))
    for reader in (store, open_store(s3_store_config)):
        with pytest.raises(StoreError, match=r"s3://.*/store/train/0/a\.png: checksum mismatch"):
            reader.get("a")


def test_record_whose_image_vanished_is_a_clear_error(s3_store_config: S3StoreConfig) -> None:
    store = open_store(s3_store_config)
    store.put(real_record("a", 0), png_bytes(1))
    store._client.delete_object(Bucket=store.bucket, Key="store/train/0/a.png")
    with pytest.raises(StoreError, match="image of record a is missing"):
        store.get("a")


def test_unreadable_record_names_its_object(s3_store_config: S3StoreConfig) -> None:
    store = open_store(s3_store_config)
    store._client.put_object(Bucket=store.bucket, Key="store/records/a.json", Body=b"{not json")
    with pytest.raises(StoreError, match=r"store/records/a\.json: unreadable record"):
        store.list()


def test_writes_by_another_instance_are_seen(s3_store_config: S3StoreConfig) -> None:
    first, second = open_store(s3_store_config), open_store(s3_store_config)
    first.put(real_record("a", 0), png_bytes(1))
    assert [r.id for r in second.list()] == ["a"]
    first.put(real_record("a", 2), png_bytes(2), overwrite=True)
    first.put(real_record("b", 1), png_bytes(3))
    assert [(r.id, r.grade) for r in second.list()] == [("a", 2), ("b", 1)]
    assert second.get("a") == png_bytes(2)
    with pytest.raises(StoreError, match="already exists"):
        second.put(real_record("b", 1), png_bytes(3))
    first.delete("a")
    assert [r.id for r in second.list()] == ["b"]


def test_overwrite_to_another_grade_moves_the_pixels(s3_store_config: S3StoreConfig) -> None:
    store = open_store(s3_store_config)
    store.put(real_record("a", 0), png_bytes(1))
    store.put(real_record("a", 4), png_bytes(2), overwrite=True)
    assert _keys(store) == ["store/records/a.json", "store/store.json", "store/train/4/a.png"]


def test_large_images_are_uploaded_in_parts(s3_store_config: S3StoreConfig) -> None:
    store = open_store(s3_store_config.model_copy(update={"multipart_threshold": 5 * MIB, "multipart_chunksize": 5 * MIB}))
    big = png_bytes(3) + bytes(6 * MIB)
    store.put(synthetic_record("big", 2), big)
    etag = store._client.head_object(Bucket=store.bucket, Key="store/train/2/big.png")["ETag"]
    assert etag.strip('"').endswith("-2")
    assert open_store(s3_store_config).get("big") == big


def test_missing_bucket_is_one_clear_line(moto_endpoint: str) -> None:
    store = open_store(s3_config(moto_endpoint, "medaug-no-such-bucket", "x"))
    with pytest.raises(StoreError) as info:
        store.list()
    assert str(info.value) == "s3://medaug-no-such-bucket/x: bucket medaug-no-such-bucket does not exist"


def test_unreachable_endpoint_names_the_store_and_hides_the_secret() -> None:
    with socket_closed_port() as port:
        store = open_store(s3_config(f"http://127.0.0.1:{port}", "medaug-bucket", "p", max_attempts=1))
        with pytest.raises(StoreError) as info:
            store.put(real_record("a", 0), png_bytes())
    message = str(info.value)
    assert message.startswith("s3://medaug-bucket/p: cannot reach the S3 endpoint http://127.0.0.1:")
    assert "\n" not in message and SECRET_KEY not in message


def test_exported_manifest_makes_a_copy_of_the_prefix_a_local_store(
    s3_store_config: S3StoreConfig, tmp_path: Path
) -> None:
    store = open_store(s3_store_config)
    store.put(real_record("a", 1), png_bytes(1))
    store.put(synthetic_record("s", 1, source="a"), png_bytes(2))
    assert store.export_manifest().endswith("/store/manifest.jsonl")
    for key in _keys(store):
        target = tmp_path / key
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(store._client.get_object(Bucket=store.bucket, Key=key)["Body"].read())
    local = LocalImageStore(tmp_path / "store")
    assert local.list() == store.list()
    assert local.get("s") == png_bytes(2)


@contextlib.contextmanager
def socket_closed_port() -> Iterator[int]:
    """A TCP port on 127.0.0.1 that nothing listens on (bound, so reserved, while the block runs)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


def test_a_live_lease_refuses_a_second_writer_and_an_expired_one_is_taken_over(s3_store_config: S3StoreConfig) -> None:
    import json as _json
    import time as _time

    first, second = open_store(s3_store_config), open_store(s3_store_config)
    with first.writing("augment run classic"), pytest.raises(
        StoreError, match=r"being written by 'augment run classic' \(pid \d+"
    ), second.writing("x"):
        pass
    key = "store/.writer.lease"
    stale = {"pid": 1, "host": "gone", "command": "killed ingest", "since": "2020-01-01T00:00:00+00:00",
             "expires": _time.time() - 1}
    second._client.put_object(Bucket=second.bucket, Key=key, Body=_json.dumps(stale).encode())
    with second.writing("after a kill"):
        body = second._client.get_object(Bucket=second.bucket, Key=key)["Body"].read()
        assert b"after a kill" in body
    assert "store/.writer.lease" not in _keys(second)


def test_s3_repair_sets_aside_unreadable_records(s3_store_config: S3StoreConfig) -> None:
    store = open_store(s3_store_config)
    store.put(real_record("a", 0), png_bytes(1))
    store._client.put_object(Bucket=store.bucket, Key="store/records/b.json", Body=b"{not json")
    assert len(store.check()) == 1 and "records/b.json" in store.check()[0]
    done = store.repair()
    assert any("damaged/records/b.json" in line for line in done)
    assert store.check() == [] and [r.id for r in store.list()] == ["a"]
