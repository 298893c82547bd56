"""The decisions the composition root used to make, now where they belong: which settings enter a
run's fingerprint, arm options over a generator's settings, names checked, store folder names,
which arms are screened, command-line screen choices, store image sizes, resources, seeds."""

from __future__ import annotations

from pathlib import Path

import pytest

from medaug.adapters.executors.config import ExecutorConfig
from medaug.adapters.experiment_file import DataLocation, ExperimentConfig, load_experiment_config
from medaug.adapters.generators.config import GeneratorsConfig
from medaug.adapters.quality.config import QualityConfig, ScreenConfig
from medaug.adapters.trainers.config import EfficientNetConfig, TrainersConfig
from medaug.application.errors import ConfigError
from medaug.application.ports import Resources
from medaug.application.services.experiment_plan import check_names
from medaug.composition import jobs
from medaug.composition.settings import Settings
from medaug.domain.experiment import Arm


def _config(arms: list[str] | None = None) -> ExperimentConfig:
    return ExperimentConfig.model_validate(
        {"name": "t", "dataset": {"kind": "phantom"}, "experiment": {"classifiers": ["cnn"], "arms": arms or ["none"]}}
    )


def _fingerprint(settings: Settings, store: str = "store-1") -> str:
    return _config().fingerprint(settings.model_dump(mode="json"), store)


def test_the_fingerprint_follows_what_shapes_a_cell_and_nothing_else() -> None:
    base = Settings()
    assert _fingerprint(base) == _fingerprint(Settings(seed=9, log_level="error"))  # not a cell's identity
    openai = base.generators.openai.model_copy(update={"model": "another"})
    assert _fingerprint(base) == _fingerprint(base.model_copy(update={"generators": base.generators.model_copy(
        update={"openai": openai})}))  # fmt: skip
    assert _fingerprint(base) != _fingerprint(Settings(image_size=128))
    assert _fingerprint(base) != _fingerprint(Settings(trainers={"cnn": {"epochs": 3}}))
    assert _fingerprint(base) != _fingerprint(Settings(generators={"classic": {"preset": "randaugment"}}))
    assert _fingerprint(base) != _fingerprint(base, store="store-2")


def test_arm_options_are_merged_over_the_generators_own_settings() -> None:
    generators = GeneratorsConfig()
    assert generators.with_options("diffusion", {}) is generators
    varied = generators.with_options("diffusion", {"mode": "variation", "strength": 0.3})
    assert (varied.diffusion.mode, varied.diffusion.strength) == ("variation", 0.3)
    assert varied.diffusion.profile == generators.diffusion.profile and generators.diffusion.mode == "sample"
    assert generators.with_options("latent-diffusion", {"strength": 0.2}).latent_diffusion.strength == 0.2
    with pytest.raises(ConfigError, match=r"^arm options for diffusion: strength: .*less than or equal to 1"):
        generators.with_options("diffusion", {"strength": 2})
    with pytest.raises(ConfigError, match="generator 'nope' takes no options"):
        generators.with_options("nope", {"x": 1})


def test_unknown_generators_and_classifiers_are_named() -> None:
    spec = _config(["none", "classic", "gan"]).spec()
    with pytest.raises(ConfigError, match="unknown generator.s. gan in arms; available: classic, diffusion"):
        check_names(spec, ["classic", "diffusion"], ["cnn"])
    with pytest.raises(ConfigError, match=r"unknown classifier\(s\) cnn; available: resnet50"):
        check_names(_config().spec(), ["classic"], ["resnet50"])
    check_names(_config(["none", "classic"]).spec(), ["classic"], ["cnn"])


def test_a_limited_or_pseudonymised_set_gets_a_store_of_its_own() -> None:
    folder = DataLocation(kind="idrid", path=Path("/data/idrid"), limit=50)
    assert folder.names(Path("/data/idrid"), 64, seed=3, pseudonymised=True) == (
        "IDRiD grading (64 px)", "idrid-64px-limit50-s3-pseudonymised"
    )
    assert DataLocation(kind="idrid").names(None, 64, seed=3, pseudonymised=False)[1] == "idrid-64px"
    assert DataLocation(kind="idrid").has_patients and not DataLocation(kind="phantom").has_patients


def test_the_phantom_set_is_never_pseudonymised(tmp_path: Path) -> None:
    settings = Settings(work_dir=tmp_path, pseudonymise=True)  # no key: a pseudonymised ingest would refuse
    step = jobs.dataset_step(_config().dataset, settings)
    assert step.pseudonymise is None and "pseudonymised" not in step.store.location


def test_experiments_screen_the_arms_of_the_listed_generators_only() -> None:
    config = QualityConfig()
    assert config.screens(["diffusion"]) and config.screens(["classic", "dcgan"])
    assert not config.screens([]) and not config.screens(["classic"])
    assert not QualityConfig(experiment_screen={"keep_real": None}).screens(["diffusion"])


def test_a_command_line_threshold_replaces_a_calibrated_one() -> None:
    calibrated = ScreenConfig(keep_real=0.9)
    assert calibrated.overridden() == calibrated
    fixed = calibrated.overridden(min_confidence=0.4, drop_near_copies=True)
    assert (fixed.min_confidence, fixed.keep_real, fixed.drop_near_copies) == (0.4, None, True)


def test_only_efficientnets_are_refused_a_store_of_smaller_images() -> None:
    trainers = TrainersConfig()
    trainers.check_store_size(["cnn", "resnet50"], 64, "s")  # they resize what they get
    trainers.check_store_size(["efficientnet-lite0"], None, "s")  # an empty store is ingested at image_size
    partial = r"trainers.efficientnet_lite0_partial.input_size = 240: .* store s \(64 px\)"
    with pytest.raises(ConfigError, match=partial):
        trainers.check_store_size(["cnn", "efficientnet-lite0-partial"], 64, "s")
    assert isinstance(trainers.efficientnet_lite0_partial, EfficientNetConfig)


def test_generator_tasks_ask_for_a_gpu_only_on_cuda() -> None:
    config = ExecutorConfig(num_cpus=2, generator_cpus=3, num_gpus=0.5)
    assert config.cell_resources() == Resources(num_cpus=2, num_gpus=0.5)
    assert config.generator_resources("cuda", machine_cores=16) == Resources(num_cpus=3, num_gpus=1.0)
    assert config.generator_resources("auto", machine_cores=16) == Resources(num_cpus=3, num_gpus=0.0)


@pytest.mark.parametrize(
    ("config", "cpus"),
    [({}, 6), ({"local_cpus": 4}, 4), ({"local_cpus": 4, "generator_cpus": 1}, 1)],
)
def test_a_generator_task_computes_on_the_planning_machines_cores_unless_told(config: dict, cpus: int) -> None:
    assert ExecutorConfig(num_cpus=1, **config).generator_resources("cpu", machine_cores=6).num_cpus == cpus


def test_the_experiments_seed_reaches_its_evaluator_and_report(tmp_path: Path) -> None:
    settings = Settings(work_dir=tmp_path / "work", seed=7)
    job = jobs.experiment_job(load_experiment_config(None), settings, run_dir=tmp_path / "run")
    assert job.evaluator.seed == 7  # type: ignore[attr-defined]
    assert job.report_writer._seed == 7  # type: ignore[attr-defined]  # noqa: SLF001 - the wiring is tested
    assert job.dataset.seed == 7
    arm = Arm(name="v", generators=("diffusion",), options={"mode": "variation"})
    generator = job.generators("diffusion", arm)
    assert generator._config.mode == "variation"  # type: ignore[attr-defined]  # noqa: SLF001


def test_a_classifier_runs_on_the_device_the_composition_resolved(tmp_path: Path) -> None:
    from medaug.adapters.trainers.cnn import CNNTrainer
    from medaug.adapters.trainers.config import CNNConfig
    from medaug.composition import factories

    # the trainer no longer reads ``device`` from its settings: what it is given is final
    assert CNNTrainer(CNNConfig(device="cuda"), device="cpu")._loop.device.type == "cpu"  # noqa: SLF001
    settings = Settings(work_dir=tmp_path, device="cuda", trainers={"cnn": {"device": "cpu"}})
    assert factories.build_trainer("cnn", settings)._loop.device.type == "cpu"  # noqa: SLF001 - its own setting wins


def test_only_an_idrid_experiment_is_set_beside_the_thesis() -> None:
    idrid = ExperimentConfig.model_validate(
        {"name": "t", "dataset": {"kind": "idrid"}, "experiment": {"classifiers": ["cnn"], "arms": ["none"]}}
    )
    assert idrid.references() and not _config().references()


def test_a_single_training_defaults_to_the_settings_seed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from medaug.composition import bootstrap

    seeds: list[int] = []
    monkeypatch.setattr(bootstrap, "train_classifier", lambda *args, seed, **kwargs: seeds.append(seed))
    services = bootstrap.bootstrap(Settings(work_dir=tmp_path, seed=5))
    services.train_classifier("cnn", store=str(tmp_path / "store"))
    services.train_classifier("cnn", store=str(tmp_path / "store"), seed=2)
    assert seeds == [5, 2]
