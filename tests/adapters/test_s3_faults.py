"""S3ImageStore under faults: the server going away mid-augment, crashes between two writes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError

from medaug.adapters.generators.classic.config import ClassicConfig
from medaug.adapters.generators.classic.generator import ClassicGenerator
from medaug.adapters.stores.s3 import S3ImageStore
from medaug.application.errors import StoreError
from medaug.application.ports import GenerationRequest, GenerationResult, ImageGenerator
from medaug.application.services.augment import augment, plan_augmentation
from medaug.domain import AugmentationPlan, PlanPolicy
from tests.conftest import png_bytes, real_record
from tests.contracts.test_s3_store_contract import open_store
from tests.s3_server import TcpProxy, s3_config

SIZE = 32


class CutDuring:
    """Wraps a generator; during its ``call``-th ``generate`` it cuts the server off."""

    def __init__(self, inner: ImageGenerator, call: int, cut: Callable[[], None]) -> None:
        self._inner, self._call, self._cut, self.calls = inner, call, cut, 0
        self.name, self.needs_source, self.batch_size = inner.name, inner.needs_source, inner.batch_size

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        self.calls += 1
        if self.calls == self._call:
            self._cut()
        return self._inner.generate(requests)


def _seed_real_images(store: S3ImageStore) -> None:
    for index, grade in enumerate([0, 0, 0, 0, 1, 2, 3, 4]):
        store.put(real_record(f"real-{index}", grade), png_bytes(index, size=SIZE))


def _plan(store: S3ImageStore) -> AugmentationPlan:
    return plan_augmentation(
        store, PlanPolicy.balance_largest(), seed=0, augmentation="classic", generators=["classic"]
    )


def _objects(store: S3ImageStore) -> list[str]:
    pages = store._client.get_paginator("list_objects_v2").paginate(Bucket=store.bucket, Prefix="store/")
    return [obj["Key"] for page in pages for obj in page.get("Contents", [])]


def test_server_outage_mid_augment_then_rerun_completes_without_duplicates_or_orphans(
    s3_proxy: TcpProxy, s3_bucket: str
) -> None:
    config = s3_config(s3_proxy.endpoint, s3_bucket)
    store = open_store(config)
    _seed_real_images(store)
    plan = _plan(store)
    classic = ClassicGenerator(ClassicConfig(batch_size=2), device="cpu")
    cutting = CutDuring(classic, call=3, cut=s3_proxy.cut)

    with pytest.raises(StoreError) as info:
        augment(store, plan, {"classic": cutting}, size=SIZE)
    message = str(info.value)
    assert message.startswith(f"s3://{s3_bucket}/store/")
    assert f"cannot reach the S3 endpoint {s3_proxy.endpoint}" in message and "\n" not in message

    s3_proxy.start()
    rerun = open_store(config)
    report = augment(rerun, plan, {"classic": classic}, size=SIZE)
    assert (report.planned, report.already_present, report.added) == (12, 4, 8)

    stored = rerun.list(augmentation="classic")
    assert [r.id for r in stored] == sorted(job.image_id for job in plan.jobs)
    records = rerun.list()
    keys = _objects(rerun)
    assert sorted(k for k in keys if k.startswith("store/records/")) == sorted(
        f"store/records/{r.id}.json" for r in records
    )
    assert sorted(k for k in keys if k.endswith(".png")) == sorted(f"store/{r.key}" for r in records)
    assert all(rerun.get(r.id) for r in records)  # every record has its image, checksum verified
    assert augment(open_store(config), plan, {"classic": classic}, size=SIZE).added == 0


def _crash_on_second(store: S3ImageStore, operation: str) -> None:
    """Make the second ``operation`` request of ``store`` fail like a process dying mid-way."""
    calls = []

    def hook(**_: Any) -> None:
        calls.append(1)
        if len(calls) == 2:
            raise EndpointConnectionError(endpoint_url="http://127.0.0.1")

    store._client.meta.events.register(f"provide-client-params.s3.{operation}", hook)


def test_crash_between_image_and_record_leaves_nothing_visible(moto_endpoint: str, s3_bucket: str) -> None:
    config = s3_config(moto_endpoint, s3_bucket)
    crashing = open_store(config)
    _crash_on_second(crashing, "PutObject")
    with pytest.raises(StoreError, match="cannot reach"):
        crashing.put(real_record("a", 1), png_bytes(1))
    fresh = open_store(config)
    assert not fresh.exists("a") and fresh.list() == []
    fresh.put(real_record("a", 1), png_bytes(2))
    assert open_store(config).get("a") == png_bytes(2)


def test_crash_between_record_and_image_deletion_leaves_nothing_visible(moto_endpoint: str, s3_bucket: str) -> None:
    config = s3_config(moto_endpoint, s3_bucket)
    open_store(config).put(real_record("a", 1), png_bytes(1))
    crashing = open_store(config)
    _crash_on_second(crashing, "DeleteObject")
    with pytest.raises(StoreError, match="cannot reach"):
        crashing.delete("a")
    fresh = open_store(config)
    assert not fresh.exists("a") and fresh.list() == []
    with pytest.raises(KeyError):
        fresh.get("a")
    fresh.put(real_record("a", 1), png_bytes(3))
    assert fresh.get("a") == png_bytes(3)
