"""Configuration of the executor that runs an experiment's cells (pure pydantic)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from medaug.application.ports import Resources


class ExecutorConfig(BaseModel):
    """Where an experiment's classifier cells run.

    Attributes:
        kind: ``local`` (in this process, one after another) or ``ray`` (a Ray cluster;
            ``pip install -e ".[ray]"``).
        address: the Ray cluster: None starts a private Ray runtime on this machine; ``auto``
            joins the cluster this machine belongs to; ``ray://host:10001`` a remote one. With
            an address, the store and the run folder must be reachable from every node.
        local_cpus: CPUs of the private local runtime (None: all of this machine's).
        num_cpus: CPU cores each classifier cell asks the scheduler for.
        generator_cpus: CPU cores each generator training or augmentation task asks for, and the
            torch threads it computes with on either executor (the same count on both is what
            makes their images identical). None: ``local_cpus``, else every core of the machine
            that plans the run, as a local run used before; set it on a cluster whose nodes have
            fewer cores than the driver, or lower it to run several folds' trainings side by side.
        num_gpus: GPUs each classifier cell asks for (fractions share one GPU).
        max_retries: times Ray reruns a cell whose worker process died.
        object_store_mb: the local runtime's object store (MiB; None: Ray's default).
        shared_filesystem: the run folder (and a folder store) is on a file system every node
            mounts at the same path (NFS, Lustre on SLURM); without it a run on a cluster
            needs an S3 store and refuses local paths.
    """

    model_config = ConfigDict(extra="forbid")

    kind: Literal["local", "ray"] = "local"
    address: str | None = None
    local_cpus: int | None = Field(default=None, ge=1)
    num_cpus: float = Field(default=1.0, gt=0)
    generator_cpus: int | None = Field(default=None, ge=1)
    num_gpus: float = Field(default=0.0, ge=0)
    max_retries: int = Field(default=3, ge=0)
    object_store_mb: int | None = Field(default=None, ge=80)
    shared_filesystem: bool = False

    def cell_resources(self) -> Resources:
        """What each classifier cell asks the scheduler for."""
        return Resources(num_cpus=self.num_cpus, num_gpus=self.num_gpus)

    def generator_resources(self, device: str, machine_cores: int) -> Resources:
        """What each generator training (and augmentation) task asks for: ``generator_cpus``
        (None: ``local_cpus``, else ``machine_cores``, the cores of the machine planning the run)
        and ``num_gpus`` (at least one GPU) when the ``device`` setting is ``cuda``, else no GPU."""
        cpus = self.generator_cpus or self.local_cpus or machine_cores
        return Resources(num_cpus=cpus, num_gpus=max(self.num_gpus, 1.0) if device == "cuda" else 0.0)
