"""LocalRunFolder against the RunRepository contract."""

from __future__ import annotations

from pathlib import Path

import pytest

from medaug.adapters.runs import LocalRunFolder
from tests.contracts.run_repository import RunRepositoryContract, experiment_result  # noqa: F401 - fixture


class TestLocalRunFolder(RunRepositoryContract):
    @pytest.fixture
    def runs(self, tmp_path: Path) -> LocalRunFolder:
        return LocalRunFolder(tmp_path / "run")

    @pytest.fixture
    def reopen(self, tmp_path: Path):  # type: ignore[no-untyped-def]
        return lambda: LocalRunFolder(tmp_path / "run")
