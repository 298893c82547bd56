"""Experiment files: which arm is the baseline."""

from __future__ import annotations

from medaug.adapters.experiment_file import ExperimentConfig


def _config(**experiment: object) -> ExperimentConfig:
    return ExperimentConfig.model_validate(
        {"name": "t", "dataset": {"kind": "phantom"}, "experiment": {"classifiers": ["cnn"], **experiment}}
    )


def test_classic_is_the_baseline_when_the_file_names_none() -> None:
    assert _config(arms=["none", "classic", "diffusion"]).spec().baseline == "classic"
    assert _config(arms=["none", "diffusion"]).spec().baseline is None


def test_the_file_may_name_another_baseline_without_changing_the_fingerprint() -> None:
    default = _config(arms=["none", "classic"])
    chosen = _config(arms=["none", "classic"], baseline="none")
    assert chosen.spec().baseline == "none"
    settings = {"image_size": 64, "trainers": {}, "generators": {}}
    assert chosen.fingerprint(settings, "store-1") == default.fingerprint(settings, "store-1")
