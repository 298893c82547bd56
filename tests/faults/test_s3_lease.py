"""The S3 writer lease against moto's server on 127.0.0.1: a writer running past ``lease_seconds``
keeps its lease (renewed), two first writers racing get one lease between them, and a writer
whose lease is taken away stops writing (issue 26)."""

from __future__ import annotations

import threading
import time

import pytest

from medaug.adapters.stores.config import S3StoreConfig
from medaug.adapters.stores.s3 import S3ImageStore
from medaug.adapters.stores.s3_client import make_s3_client
from medaug.application.errors import StoreError
from tests.conftest import png_bytes, real_record

LEASE = 1.5


def open_store(config: S3StoreConfig, *, wait: float = 0.0) -> S3ImageStore:
    return S3ImageStore(make_s3_client(config), bucket=config.bucket, prefix=config.prefix,
                        lock_wait=wait, lease_seconds=LEASE)


def test_a_writer_running_past_lease_seconds_keeps_its_lease(s3_store_config: S3StoreConfig) -> None:
    first, second = open_store(s3_store_config), open_store(s3_store_config)
    with first.writing("long augment"):
        time.sleep(LEASE * 2.5)  # well past the lease: only renewals keep it
        with pytest.raises(StoreError, match="long augment"):
            with second.writing("ingest"):
                pass
        first.put(real_record("a"), png_bytes(0))  # still the holder: writes go through
    with second.writing("ingest"):  # released: the next writer gets it at once
        pass


def test_two_first_writers_racing_get_one_lease_between_them(s3_store_config: S3StoreConfig) -> None:
    for round_ in range(3):
        config = s3_store_config.model_copy(update={"prefix": f"race{round_}"})
        stores = [open_store(config), open_store(config)]
        start, inside, results = threading.Barrier(2), threading.Event(), [None, None]

        def writer(index: int) -> None:
            start.wait()
            try:
                with stores[index].writing(f"writer {index}"):
                    inside.set()
                    time.sleep(1.0)  # holds it while the other tries
                    results[index] = "held"
            except StoreError as exc:
                results[index] = str(exc)

        threads = [threading.Thread(target=writer, args=(i,)) for i in (0, 1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert inside.is_set()
        assert sorted(r == "held" for r in results) == [False, True], results
        refused = next(r for r in results if r != "held")
        assert "is being written by 'writer" in refused
        ids = {open_store(config).identity for _ in range(2)}
        assert len(ids) == 1  # both agreed on one store identity


def test_a_writer_whose_lease_is_taken_stops_writing(s3_store_config: S3StoreConfig) -> None:
    store = open_store(s3_store_config)
    lease_key = store.object_key(".writer.lease")
    with store.writing("augment"):
        store.put(real_record("a"), png_bytes(0))
        store._client.delete_object(Bucket=store.bucket, Key=lease_key)  # e.g. the prefix removed
        deadline = time.monotonic() + LEASE * 3
        with pytest.raises(StoreError, match="lost its writer lease"):
            while time.monotonic() < deadline:
                store.put(real_record("b"), png_bytes(1), overwrite=True)
                time.sleep(0.1)
