"""Settings: TOML file, MEDAUG_* environment and overrides, with one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from medaug.application.errors import ConfigError
from medaug.composition import factories
from medaug.composition.settings import Settings, load_settings


def test_defaults_without_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    assert settings.image_size == 256 and settings.store.kind == "local" and settings.device == "auto"
    assert settings.generators.openai.allow_external_upload is False


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "medaug.toml"
    config.write_text('image_size = 128\n[store]\nroot = "from-file"\n')
    monkeypatch.setenv("MEDAUG_STORE__ROOT", "from-env")
    settings = load_settings(config)
    assert settings.image_size == 128
    assert settings.store.root == Path("from-env")


def test_local_medaug_toml_is_picked_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "medaug.toml").write_text("seed = 42\n")
    monkeypatch.chdir(tmp_path)
    assert load_settings().seed == 42


def test_explicit_overrides_win(tmp_path: Path) -> None:
    config = tmp_path / "m.toml"
    config.write_text("image_size = 128\n")
    assert load_settings(config, image_size=64).image_size == 64


@pytest.mark.parametrize(
    "text,needle",
    [("image_size = 3\n", "image_size"), ("colour = 'red'\n", "colour"), ("[store]\nkind = 'ftp'\n", "store.kind")],
)
def test_invalid_values_are_one_line_errors(tmp_path: Path, text: str, needle: str) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_settings(config)
    message = str(info.value)
    assert "\n" not in message and needle in message and str(config) in message


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nope.toml: configuration file not found"):
        load_settings(tmp_path / "nope.toml")


def test_unknown_generator_lists_the_choices(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown generator 'gan9'.*classic"):
        factories.build_generator("gan9", load_settings(None), factories.build_store(load_settings(None), str(tmp_path)))


def test_store_location_selects_the_adapter(tmp_path: Path) -> None:
    store = factories.build_store(load_settings(None), str(tmp_path / "s"))
    assert store.location == str(tmp_path / "s")


def test_a_component_s_seed_and_device_are_its_own_else_the_settings_once_resolved() -> None:
    import torch

    from medaug.composition.settings import device_of, seed_of

    settings = Settings(seed=7, device="cpu")
    assert seed_of(settings, None) == 7 and seed_of(settings, 3) == 3
    assert device_of(settings) == device_of(settings, "auto") == device_of(settings, None) == "cpu"
    assert device_of(Settings(device="auto")) == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="cuda"):
            device_of(Settings(device="cpu"), "cuda")
