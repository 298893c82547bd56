"""A private Ray runtime for tests: 2 CPUs on 127.0.0.1, no dashboard, a small object store.

Started once per test session by the ``ray_runtime`` fixture (tests skip when Ray is absent)
and shut down at the end; executors built in tests find it running and leave it running. Each
test module importing the fixture gets its own session-scoped copy: the first starts Ray, the
others find it running.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def ray_runtime() -> Iterator[object]:
    ray = pytest.importorskip("ray")
    if ray.is_initialized():
        yield ray
        return
    ray.init(
        address="local",
        _node_ip_address="127.0.0.1",
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=80 * 1024 * 1024,
        log_to_driver=False,
        configure_logging=False,
    )
    yield ray
    ray.shutdown()
