"""Ports: Experiment tracking (MLflow and the like), so users compare runs in their own tool."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from medaug.domain.experiment import ExperimentResult


@dataclass(frozen=True)
class TrackedExperiment:
    """An experiment as a tracker records it.

    Attributes:
        result: the experiment's result (every cell with its metrics and predictions).
        run_folder: where the run lives; identifies the parent run across resumes.
        fingerprint: identity of the experiment definition.
        params: parameters of the whole experiment (parent run).
        cell_params: parameters of each cell (child run), by cell slug: arm, classifier, seed
            (and fold when the key has one), the arm's generators and options, weights hash.
        generator_params: each trained generator whose images the experiment used (a child run
            too), by name (``<augmentation set>/<generator>``): its augmentation set (a fold's in
            k-fold), generator, checkpoint, step, training seed, weights hash, images made.
    """

    result: ExperimentResult
    run_folder: str
    fingerprint: str
    params: Mapping[str, str] = field(default_factory=dict)
    cell_params: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    generator_params: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


class Tracker(Protocol):
    """Records an experiment in an experiment-tracking tool.

    Contract:
        - ``record(experiment)`` logs the experiment as one parent run and each cell as one
          child run of it, with the cell's parameters, metrics and artefacts (confusion matrix
          and predictions).
          Each trained generator (``generator_params``) is one more child run, with its parameters.
        - Recording the same run folder and fingerprint again (a resumed run) reuses its parent
          run and adds child runs only for cells (and generators) not logged yet: one child run each.
        - Nothing connects before ``record``; a tracking failure raises ``MedaugError``
          (the experiment's own results are already saved by then).
    """

    def record(self, experiment: TrackedExperiment) -> None: ...


class NullTracker:
    """A Tracker that records nothing (tracking off, the default)."""

    def record(self, experiment: TrackedExperiment) -> None:
        return None
