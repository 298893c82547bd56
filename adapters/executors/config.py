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
    num_gpus: float = Field(default=0.0, ge=0)
    max_retries: int = Field(default=3, ge=0)
    object_store_mb: int | None = Field(default=None, ge=80)
    shared_filesystem: bool = False

    def cell_resources(self) -> Resources:
        """What each classifier cell asks the scheduler for."""
        return Resources(num_cpus=self.num_cpus, num_gpus=self.num_gpus)

    def generator_resources(self, device: str) -> Resources:
        """What each generator training (and augmentation) task asks for: ``num_gpus`` (at least
        one GPU) when the ``device`` setting is ``cuda``, else CPU only."""
        return Resources(num_cpus=self.num_cpus, num_gpus=max(self.num_gpus, 1.0) if device == "cuda" else 0.0)
