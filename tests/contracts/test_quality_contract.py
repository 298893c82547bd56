"""The fundus quality analyzer and its screen against the shared quality contracts."""

from __future__ import annotations

import pytest

from medaug.adapters.quality.analyzer import FundusQualityAnalyzer
from medaug.adapters.quality.config import ProbeConfig, ScreenConfig
from medaug.adapters.quality.screen import QualityScreen
from tests.contracts.quality import QualityAnalyzerContract, SyntheticScreenContract
from tests.quality_images import quality_analyzer, tiny_config


@pytest.fixture(scope="module")
def fundus_analyzer(tmp_path_factory: pytest.TempPathFactory) -> FundusQualityAnalyzer:
    return quality_analyzer(tiny_config(tstr=False), tmp_path_factory.mktemp("cnn"))


@pytest.fixture(scope="module")
def probe_analyzer(tmp_path_factory: pytest.TempPathFactory) -> FundusQualityAnalyzer:
    """The default judge and feature space: the frozen EfficientNet-Lite0 probe (small input for speed)."""
    config = tiny_config(features="efficientnet-lite0", classifier="efficientnet-lite0", tstr=True,
                         probe=ProbeConfig(input_size=32, head_epochs=20))
    folder = tmp_path_factory.mktemp("probe")
    return quality_analyzer(config, folder / "models", feature_dir=folder / "features")


class TestProbeQualityAnalyzer(QualityAnalyzerContract):
    @pytest.fixture
    def analyzer(self, probe_analyzer: FundusQualityAnalyzer) -> FundusQualityAnalyzer:
        return probe_analyzer


class TestFundusQualityAnalyzer(QualityAnalyzerContract):
    @pytest.fixture
    def analyzer(self, fundus_analyzer: FundusQualityAnalyzer) -> FundusQualityAnalyzer:
        return fundus_analyzer


class TestQualityScreen(SyntheticScreenContract):
    @pytest.fixture
    def screen(self, fundus_analyzer: FundusQualityAnalyzer, quality_store) -> QualityScreen:  # type: ignore[no-untyped-def]
        return QualityScreen(fundus_analyzer, quality_store, ScreenConfig(min_confidence=0.5, drop_near_copies=True))
