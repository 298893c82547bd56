"""The requests and answers of the ingest and quality use cases (``Services.ingest``,
``Services.assess_quality``): plain data, so any front end (CLI, web backend) can build them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from medaug.application.errors import ConfigError
from medaug.application.services.ingest import IngestReport
from medaug.application.services.problems import ProblemKind
from medaug.domain.quality import QualityReport


@dataclass(frozen=True)
class SourceSpec:
    """Which data set to read, as ``medaug data ingest <kind>`` names it.

    Attributes:
        kind: one of ``medaug.composition.factories.DATASET_KINDS`` (``idrid``, ``folder``, ``phantom``, the published sets).
        path: the data set's folder (every kind but ``phantom``).
        csv: the labels file (``folder``; another labels file for the published sets).
        image_column, label_column, split_column, name: the ``folder`` CSV's layout and its name.
        n, seed, test_fraction: the ``phantom`` set's size, seed (None: settings.seed) and test share.
    """

    kind: str
    path: Path | None = None
    csv: Path | None = None
    image_column: str = "image"
    label_column: str = "grade"
    split_column: str | None = None
    name: str = "folder"
    n: int = 500
    seed: int | None = None
    test_fraction: float = 0.2


@dataclass(frozen=True)
class IngestOptions:
    """How ``Services.ingest`` treats what it finds (see ``application.services.ingest``)."""

    lenient: bool = False
    update: bool = False
    pseudonymise: bool | None = None
    """None: ``settings.pseudonymise``."""
    mapping: Path | None = None
    """With pseudonymising: where the pseudonym,original CSV goes (outside the store)."""
    limit: int | None = None
    seed: int | None = None
    """Seed of the ``limit`` draw (None: settings.seed)."""
    workers: int | None = None
    """Processes decoding and preprocessing (None: every core of this machine)."""

    def private(self, *, default: bool) -> bool:
        """Whether to pseudonymise (``default``: the settings' choice when ``pseudonymise`` is None).

        Raises:
            ConfigError: a ``mapping`` file is asked for without pseudonymising.
        """
        private = default if self.pseudonymise is None else self.pseudonymise
        if self.mapping is not None and not private:
            raise ConfigError(f"{self.mapping}: --mapping needs --pseudonymise")
        return private


@dataclass(frozen=True)
class IngestOutcome:
    """An ingest's report and the store it wrote to.

    Attributes:
        problem_kinds: the skipped problems summarised by kind (what the terminal shows).
        problems_file: the file listing every skipped problem (None when none was skipped).
    """

    report: IngestReport
    location: str
    problem_kinds: tuple[ProblemKind, ...] = ()
    problems_file: Path | None = None


@dataclass(frozen=True)
class QualityOutcome:
    """Quality reports per augmentation set, and the files written (quality.json, plots)."""

    reports: Mapping[str, QualityReport]
    written: tuple[Path, ...]
