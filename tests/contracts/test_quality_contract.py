"""The fundus quality analyzer and its screen against the shared quality contracts."""

from __future__ import annotations

import pytest

from medaug.adapters.quality.analyzer import FundusQualityAnalyzer
from medaug.adapters.quality.config import FilterConfig
from medaug.adapters.quality.screen import QualityScreen
from tests.contracts.quality import QualityAnalyzerContract, SyntheticScreenContract
from tests.quality_images import tiny_config


@pytest.fixture(scope="module")
def fundus_analyzer(tmp_path_factory: pytest.TempPathFactory) -> FundusQualityAnalyzer:
    return FundusQualityAnalyzer(tiny_config(tstr=False), cache_dir=tmp_path_factory.mktemp("cnn"), seed=0, device="cpu")


class TestFundusQualityAnalyzer(QualityAnalyzerContract):
    @pytest.fixture
    def analyzer(self, fundus_analyzer: FundusQualityAnalyzer) -> FundusQualityAnalyzer:
        return fundus_analyzer


class TestQualityScreen(SyntheticScreenContract):
    @pytest.fixture
    def screen(self, fundus_analyzer: FundusQualityAnalyzer, quality_store) -> QualityScreen:  # type: ignore[no-untyped-def]
        return QualityScreen(fundus_analyzer, quality_store, FilterConfig(min_confidence=0.5, drop_near_copies=True))
