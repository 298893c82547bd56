"""A private Ray runtime for tests: CPUs on 127.0.0.1, no dashboard, a small object store.

The ``ray_runtime`` fixture starts one with 2 CPUs once per test session (tests skip when Ray is
absent) and shuts it down at the end; executors built in tests find it running and leave it
running. Each test module importing the fixture gets its own session-scoped copy: the first
starts Ray, the others find it running. A module that needs another CPU count uses
``private_ray(num_cpus=...)`` in a module-scoped fixture: it restarts Ray with that count and
shuts it down after the module (the next module's fixture starts its own again).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest


def _start(ray, num_cpus: int) -> None:  # type: ignore[no-untyped-def]
    ray.init(
        address="local",
        _node_ip_address="127.0.0.1",
        num_cpus=num_cpus,
        include_dashboard=False,
        object_store_memory=80 * 1024 * 1024,
        log_to_driver=False,
        configure_logging=False,
    )


@contextlib.contextmanager
def private_ray(*, num_cpus: int) -> Iterator[object]:
    """Ray running with exactly ``num_cpus`` CPUs for the block (skips when Ray is absent)."""
    ray = pytest.importorskip("ray")
    if ray.is_initialized() and ray.cluster_resources().get("CPU") != num_cpus:
        ray.shutdown()
    if not ray.is_initialized():
        _start(ray, num_cpus)
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.fixture(scope="session")
def ray_runtime() -> Iterator[object]:
    ray = pytest.importorskip("ray")
    if ray.is_initialized():
        yield ray
        return
    _start(ray, 2)
    yield ray
    ray.shutdown()
