"""Every writing command SIGKILLed at random moments, then run to the end, loses nothing: after
``store repair`` the store checks clean and its digest equals an uninterrupted run's (issue 26).
One case runs by default; the others are slow."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from benchmarks.kill_cases import CASES, environment, run_case

SLOW = ["ingest-update", "augment", "sync", "generator-training"]


def _check(name: str, tmp_path: Path, kills: int, seed: int) -> None:
    outcome = run_case(CASES[name], tmp_path, environment(tmp_path), kills=kills, rng=random.Random(seed))
    assert outcome.final_rc == 0
    assert outcome.problems_after_repair == []
    assert outcome.digest_equal, outcome


def test_a_killed_ingest_finishes_with_the_uninterrupted_run_s_store(tmp_path: Path) -> None:
    _check("ingest", tmp_path, kills=2, seed=1)


@pytest.mark.slow
@pytest.mark.parametrize("name", SLOW)
def test_every_writing_command_killed_at_random_points_loses_nothing(tmp_path: Path, name: str) -> None:
    _check(name, tmp_path, kills=4, seed=2)
