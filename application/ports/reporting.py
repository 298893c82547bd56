"""Ports: Reports of finished experiments."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from medaug.application.ports.storage import ImageStore
from medaug.domain.experiment import (
    ExperimentResult,
)


@runtime_checkable
class ReportWriter(Protocol):
    """Writes an experiment's report into its run folder.

    Contract: ``write(result, run_dir, store)`` writes ``report.html`` (self-contained: images and
    charts inlined, opens offline), ``report.md`` and any figures, atomically, and returns the
    paths written. It reads only the result and the store (for contact sheets), never retrains.
    """

    def write(self, result: ExperimentResult, run_dir: str, store: ImageStore) -> list[str]: ...
