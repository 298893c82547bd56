"""An experiment with the ``latent-diffusion`` arm, end to end on CPU with tiny random Stable
Diffusion components built here (the figures mean nothing; the path is what is tested)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from medaug.adapters.generators.latent_diffusion.components import build_components, save_components
from medaug.cli.app import app
from tests.experiments import BALANCE, tiny_experiment

EXPERIMENT = tiny_experiment(
    "latent", n=40, arms=["none", "latent-diffusion"], experiment="val_fraction = 0.2\n" + BALANCE,
    tables='[settings.generators.latent_diffusion]\nprofile = "cpu-smoke"\nweights = "{weights}"\nstrength = 0.6\n',
)


def test_an_experiment_with_the_latent_diffusion_arm_runs_end_to_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.set_num_threads(1)
    weights = tmp_path / "sd"
    save_components(build_components("tiny", tmp_path / "parts", seed=0), weights)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MEDAUG_WORK_DIR", str(tmp_path / "work"))
    monkeypatch.setenv("MEDAUG_DEVICE", "cpu")
    (tmp_path / "latent.toml").write_text(EXPERIMENT.replace("{weights}", str(weights)))
    result = CliRunner().invoke(app, ["--quiet", "experiment", "run", "latent.toml"])
    assert result.exit_code == 0, (result.output, result.exception)
    run = tmp_path / "work" / "runs" / "latent"
    results = json.loads((run / "results.json").read_text())
    arms = {cell["key"]["arm"]: cell["train_images"] for cell in results["cells"]}
    assert set(arms) == {"none", "latent-diffusion"} and arms["latent-diffusion"] > arms["none"]
    loras = list((tmp_path / "work" / "generators").glob("latent-diffusion-*/step-*/lora.safetensors"))
    assert loras, "the arm trained its LoRA first"


def test_generator_train_latent_diffusion_trains_lora_or_says_what_weights_to_put_where(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from medaug.adapters.stores.local import LocalImageStore
    from tests.conftest import png_bytes, real_record

    torch.set_num_threads(1)
    store = LocalImageStore(tmp_path / "store")
    for index in range(6):
        store.put(real_record(f"r{index}", index % 5), png_bytes(seed=index, size=32))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MEDAUG_WORK_DIR", str(tmp_path / "work"))
    monkeypatch.setenv("MEDAUG_DEVICE", "cpu")
    train = ["--quiet", "generator", "train", "latent-diffusion", "--store", str(tmp_path / "store"), "--profile", "cpu-smoke"]
    missing = CliRunner().invoke(app, train)
    assert missing.exit_code != 0 and "generators.latent_diffusion.weights: not set" in missing.output
    save_components(build_components("tiny", tmp_path / "parts", seed=0), tmp_path / "sd")
    monkeypatch.setenv("MEDAUG_GENERATORS__LATENT_DIFFUSION__WEIGHTS", str(tmp_path / "sd"))
    trained = CliRunner().invoke(app, train)
    assert trained.exit_code == 0, trained.output
    assert "latent-diffusion: 4 steps" in trained.output
