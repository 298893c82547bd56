"""Running under ``accelerate launch``: sharing generation between processes, clean shutdown."""

from __future__ import annotations

import atexit
import os
from collections.abc import Callable
from functools import cache
from typing import TypeVar

import torch
from accelerate import PartialState
from accelerate.utils import gather_object

T = TypeVar("T")
R = TypeVar("R")


def world_size() -> int:
    """How many processes ``accelerate launch`` (or torchrun) started; 1 for a plain run."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def process_device() -> torch.device:
    """This process's device under ``accelerate launch`` (its GPU, or the CPU without one)."""
    release_at_exit()
    return PartialState(cpu=not torch.cuda.is_available()).device


def shard(work: Callable[[list[T]], list[R]], items: list[T]) -> list[R]:
    """Each process runs ``work`` on its contiguous share of ``items``; all get every result, in order."""
    release_at_exit()
    state = PartialState(cpu=not torch.cuda.is_available())
    with state.split_between_processes(list(range(len(items)))) as mine:
        made = list(zip(mine, work([items[i] for i in mine]), strict=True))
    return [result for _, result in sorted(gather_object(made), key=lambda pair: pair[0])]


@cache
def release_at_exit() -> None:
    """Destroy the process group when the process ends (once per process).

    Why: a gloo/NCCL group still alive at interpreter shutdown can abort the process
    ("terminate called without an active exception") after all its work is done, failing the
    whole ``accelerate launch``. It is not destroyed earlier because training and generation
    may share one process (an experiment trains, then generates).
    """
    atexit.register(_destroy)


def _destroy() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
