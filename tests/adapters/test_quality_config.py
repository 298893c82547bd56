"""Quality settings: defaults, partial overrides and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from medaug.adapters.quality.config import QualityConfig, ScreenConfig
from medaug.application.errors import ConfigError
from medaug.composition.settings import load_settings


def test_a_partial_cnn_override_keeps_the_quality_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDAUG_QUALITY__CNN__NUM_THREADS", "1")
    cnn = load_settings().quality.cnn
    assert (cnn.num_threads, cnn.epochs, cnn.input_size, cnn.class_weighted) == (1, 30, 64, True)


def test_quality_settings_from_toml(tmp_path: Path) -> None:
    config = tmp_path / "medaug.toml"
    config.write_text("[quality]\ntstr = false\n[quality.thresholds]\nssim = 0.9\n[quality.screen]\nmin_confidence = 0.4\n")
    quality = load_settings(config).quality
    assert not quality.tstr and quality.thresholds.ssim == 0.9 and quality.thresholds.pixel_correlation == 0.8
    assert quality.screen.enabled and quality.screen.max_attempts == 5


def test_inception_without_weights_is_a_one_line_config_error(tmp_path: Path) -> None:
    config = tmp_path / "medaug.toml"
    config.write_text('[quality]\nfeatures = "inception"\n')
    with pytest.raises(ConfigError, match="never downloads weights"):
        load_settings(config)


def test_the_default_screen_drops_nothing() -> None:
    assert not ScreenConfig().enabled and not QualityConfig().screen.enabled
    assert ScreenConfig(drop_near_copies=True).enabled and ScreenConfig(min_confidence=0.0).enabled


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[quality.filter]\nmin_confidence = 0.4\n", "quality: .*'filter' was renamed 'screen'"),
        ("[quality.experiment_filter]\nkeep_real = 0.8\n", "'experiment_filter' was renamed 'experiment_screen'"),
        ("[trainers.cnn]\nimage_size = 64\n", "trainers.cnn: .*'image_size' was renamed 'input_size'"),
    ],
)
def test_a_renamed_setting_is_refused_naming_its_new_key(tmp_path: Path, toml: str, message: str) -> None:
    config = tmp_path / "medaug.toml"
    config.write_text(toml)
    with pytest.raises(ConfigError, match=message) as error:
        load_settings(config)
    assert "\n" not in str(error.value)
