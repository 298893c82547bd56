"""What an experiment's tasks ask the scheduler for (``composition.execution``): a generator task
asks for a GPU when its generators run on CUDA, ``device = "auto"`` resolved on the driver."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from medaug.application.ports import Resources
from medaug.composition import execution, settings as settings_module
from medaug.composition.settings import Settings


@pytest.fixture
def cuda(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """Sets whether this process 'sees' a CUDA GPU; ``device_of`` resolves afresh under it."""

    class _Cuda:
        def __call__(self, present: bool) -> None:
            monkeypatch.setattr(torch.cuda, "is_available", lambda: present)
            settings_module._resolved_device.cache_clear()

    settings_module._resolved_device.cache_clear()
    yield _Cuda()
    settings_module._resolved_device.cache_clear()  # later tests see the real machine again


@pytest.mark.parametrize(
    ("device", "present", "gpus"),
    [
        ("auto", True, 1.0),  # a GPU machine under "auto": the task asks for the GPU it will use
        ("auto", False, 0.0),
        ("cuda", False, 1.0),  # asked for as it is: the cluster's nodes have the GPU, not the driver
        ("cuda", True, 1.0),
        ("cpu", True, 0.0),
    ],
)
def test_a_generator_task_asks_for_a_gpu_exactly_when_its_generators_run_on_cuda(
    cuda, device: str, present: bool, gpus: float  # type: ignore[no-untyped-def]
) -> None:
    cuda(present)
    resources = execution.generator_resources(Settings(device=device, executor={"num_cpus": 2}))
    assert resources == Resources(num_cpus=2, num_gpus=gpus)


def test_a_generator_task_asks_for_the_configured_gpus_when_more_than_one(cuda) -> None:  # type: ignore[no-untyped-def]
    cuda(True)
    assert execution.generator_resources(Settings(device="auto", executor={"num_gpus": 2})).num_gpus == 2
    assert execution.generator_resources(Settings(device="auto", executor={"num_gpus": 0.25})).num_gpus == 1
