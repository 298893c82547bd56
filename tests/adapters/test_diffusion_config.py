"""Diffusion configuration: profiles, overrides and clear one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from medaug.adapters.generators.diffusion.config import PROFILES, DiffusionConfig, DiffusionRecipe
from medaug.application.errors import ConfigError
from medaug.composition.settings import load_settings


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_every_profile_resolves_to_a_full_recipe(name: str) -> None:
    recipe = DiffusionConfig(profile=name).resolve()
    assert isinstance(recipe, DiffusionRecipe)
    assert recipe.train_steps >= 1 and recipe.sampler in ("dpmsolver++", "unipc", "ddim", "ddpm")


def test_quick_is_a_small_64px_cpu_model_and_standard_a_larger_gpu_one() -> None:
    quick, standard = DiffusionConfig(profile="quick").resolve(), DiffusionConfig(profile="standard").resolve()
    assert quick.resolution == 64 and quick.mixed_precision == "auto"
    assert standard.resolution in (128, 256)
    assert sum(standard.channels) > sum(quick.channels)
    assert quick.cfg_dropout > 0 and (quick.sampler, quick.sample_steps, quick.sample_precision) == ("unipc", 10, "auto")
    assert standard.sampler == "dpmsolver++" and standard.sample_precision == "fp32"


def test_fields_set_in_the_config_override_the_profile() -> None:
    recipe = DiffusionConfig(profile="quick", resolution=128, sampler="ddim", guidance_scale=3.0).resolve()
    assert (recipe.resolution, recipe.sampler, recipe.guidance_scale) == (128, "ddim", 3.0)
    assert recipe.channels == PROFILES["quick"]["channels"]


def test_resolve_can_switch_profile_keeping_overrides() -> None:
    recipe = DiffusionConfig(profile="quick", train_steps=7).resolve("standard")
    assert recipe.resolution == PROFILES["standard"]["resolution"] and recipe.train_steps == 7


def test_invalid_resolution_is_a_one_line_error_naming_the_choices() -> None:
    with pytest.raises(ValueError, match=r"resolution 100 is not supported; choose one of 16, 32, 64, 128, 256"):
        DiffusionConfig(resolution=100)


def test_resolution_too_small_for_the_unet_depth_is_refused() -> None:
    with pytest.raises(ValueError, match="resolution 16 is too small for 4 UNet levels"):
        DiffusionConfig(profile="quick", resolution=16)


@pytest.mark.parametrize("strength", [-0.1, 1.5])
def test_strength_outside_0_1_is_refused(strength: float) -> None:
    with pytest.raises(ValueError, match="strength"):
        DiffusionConfig(strength=strength)


def test_unknown_profile_names_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="unknown diffusion profile 'huge'; choose one of: tiny, quick, cpu, standard"):
        DiffusionConfig().resolve("huge")


def test_settings_read_the_diffusion_table_and_report_bad_values_in_one_line(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text('[generators.diffusion]\nprofile = "tiny"\nmode = "variation"\nstrength = 0.3\nsampler = "ddim"\n')
    config = load_settings(good).generators.diffusion
    assert (config.mode, config.strength, config.resolve().sampler) == ("variation", 0.3, "ddim")
    bad = tmp_path / "bad.toml"
    bad.write_text("[generators.diffusion]\nresolution = 48\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(bad)
    assert "resolution 48 is not supported" in str(caught.value) and "\n" not in str(caught.value)


def test_config_module_stays_free_of_heavy_imports() -> None:
    code = "import sys, adapters.generators.diffusion.config; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
