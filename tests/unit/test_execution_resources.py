"""What an experiment's tasks ask the scheduler for and run with (``composition.execution``): a
generator task asks for a GPU when its generators run on CUDA (``device = "auto"`` resolved on the
driver) and computes with as many torch threads as CPUs it declares, on either executor."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from medaug.application.ports import Resources, Task
from medaug.application.services.experiment_graph import ScopeTask
from medaug.composition import execution, settings as settings_module
from medaug.composition.settings import Settings
from medaug.domain import PlanPolicy
from medaug.domain.experiment import Arm, ExperimentSpec


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
    resources = execution.generator_resources(Settings(device=device, executor={"generator_cpus": 2}))
    assert resources == Resources(num_cpus=2, num_gpus=gpus)


def test_a_generator_task_asks_for_the_configured_gpus_when_more_than_one(cuda) -> None:  # type: ignore[no-untyped-def]
    cuda(True)
    assert execution.generator_resources(Settings(device="auto", executor={"num_gpus": 2})).num_gpus == 2
    assert execution.generator_resources(Settings(device="auto", executor={"num_gpus": 0.25})).num_gpus == 1


def _generator_task(cpus: float) -> Task:
    arm = Arm(name="diffusion", generators=("diffusion",))
    spec = ExperimentSpec(arms=(arm,), classifiers=("cnn",), seeds=(0,), policy=PlanPolicy.balance_largest())
    payload = ScopeTask(
        phase="generator", arm=arm, store="s", runs="r", augmentation="a", spec=spec, generator="diffusion"
    )
    return Task(id="generator:diffusion:a", payload=payload, resources=Resources(num_cpus=cpus))


@pytest.mark.parametrize(("cpus", "threads"), [(3.0, 3), (2.5, 2), (0.5, 1)])
def test_a_generator_task_computes_with_as_many_torch_threads_as_cpus_it_declares(cpus: float, threads: int) -> None:
    before = torch.get_num_threads()
    outside = 2 if threads == 1 else 1  # whatever the process had, the task gets its own count
    torch.set_num_threads(outside)
    try:
        with execution.task_threads(_generator_task(cpus)):
            assert torch.get_num_threads() == threads
        assert torch.get_num_threads() == outside
    finally:
        torch.set_num_threads(before)


def test_a_cell_task_keeps_the_thread_count_of_its_process() -> None:
    before = torch.get_num_threads()
    with execution.task_threads(Task(id="cell:x", payload=object(), resources=Resources(num_cpus=3))):
        assert torch.get_num_threads() == before
