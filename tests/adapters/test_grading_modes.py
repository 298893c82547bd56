"""The ordinal head, the partial fine-tune mode and their bad input (tiny images, real lite0 weights)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from medaug.adapters.stores.local import LocalImageStore
from medaug.adapters.trainers.backbone import build_efficientnet
from medaug.adapters.trainers.config import EfficientNetConfig, EfficientNetPartialConfig
from medaug.adapters.trainers.efficientnet import EfficientNetTrainer
from medaug.adapters.trainers.ordinal import START, cut, fit_ordinal_head, kappa, tune_thresholds
from medaug.adapters.trainers.partial import check_stage, split_at_stage, stage_starts
from medaug.application.errors import ConfigError
from medaug.application.ports import TrainingRequest
from medaug.composition import factories
from medaug.composition.settings import load_settings
from tests.contracts.classifier_trainer import RecordingProgress, graded_store


def test_cut_gives_grade_k_below_threshold_k() -> None:
    assert cut(np.array([-1.0, 0.49, 0.51, 2.2, 3.6, 9.0]), START).tolist() == [0, 0, 1, 2, 4, 4]


def test_tuned_thresholds_recover_shifted_scores() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, 400)
    scores = labels * 0.5 + 0.3 + rng.normal(0, 0.05, 400)  # compressed and shifted: halfway cuts fail
    tuned = tune_thresholds(scores, labels)
    assert kappa(labels, cut(scores, START)) < 0.9
    assert kappa(labels, cut(scores, tuned)) > 0.97
    assert np.all(np.diff(tuned) > 0)


def test_the_ordinal_head_grades_held_out_rows_and_chooses_on_inner_folds_only() -> None:
    rng = np.random.default_rng(1)
    direction = rng.normal(size=16)

    def rows(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, 5, n)
        return np.outer(y, direction) + rng.normal(0, 0.3, (n, 16)), y

    x, y = rows(200)
    head = fit_ordinal_head(x, y, [str(i) for i in range(200)], np.ones(200, bool), cs=(1.0, 1e-7),
                            inner_folds=4, seed=0)
    test_x, test_y = rows(100)
    assert head.c == 1.0  # the huge penalty flattens every prediction to the prior: worse on the inner folds
    assert kappa(test_y, head.grades(test_x)) > 0.95
    probabilities = head.probabilities(test_x)
    assert probabilities.shape == (100, 5) and np.allclose(probabilities.sum(axis=1), 1.0)
    assert (probabilities.argmax(axis=1) == head.grades(test_x)).mean() > 0.9
    with pytest.raises(ValueError, match="at least two grades"):
        fit_ordinal_head(x[:3], [1, 1, 1], ["a", "b", "c"], [True] * 3, cs=(1.0,), inner_folds=2, seed=0)


def test_frozen_features_with_the_ordinal_head_and_test_time_flips(tmp_path: Path) -> None:
    records = graded_store(tmp_path / "store", {"train": 3, "test": 1}, size=24)
    store = LocalImageStore(tmp_path / "store")
    config = EfficientNetConfig(head="ordinal", test_views=("id", "h"), input_size=32, inner_folds=3, device="cpu",
                                ordinal_cs=(0.01, 1.0))
    trainer = EfficientNetTrainer("efficientnet-lite0", config, device="cpu", feature_dir=tmp_path / "features")
    request = TrainingRequest(train=tuple(records["train"]), test=tuple(records["test"]), seed=0,
                              checkpoint_path=str(tmp_path / "head.safetensors"))
    outcome = trainer.train_and_predict(request, store, progress=RecordingProgress())
    assert trainer.features is not None and trainer.features.computed == 15 + 5 * 2  # test images: two views
    assert outcome.predictions.image_ids == tuple(r.id for r in records["test"])
    assert all(abs(sum(row) - 1.0) < 1e-9 for row in outcome.predictions.probabilities)
    assert all(max(range(5), key=row.__getitem__) == grade
               for row, grade in zip(outcome.predictions.probabilities, outcome.predictions.predicted, strict=True))
    assert len(outcome.history) == 1 and outcome.best_epoch is None
    from safetensors import safe_open

    with safe_open(str(tmp_path / "head.safetensors"), "pt") as saved:
        assert saved.metadata()["head"] == "ordinal" and "ordinal.thresholds" in saved.keys()


def test_stages_of_the_lite_backbones() -> None:
    network = build_efficientnet("efficientnet-lite0", 64)
    assert stage_starts(network) == [0, 1, 3, 5, 8, 11, 15]
    assert len(stage_starts(build_efficientnet("efficientnet-lite2", 64))) == 7
    with pytest.raises(ConfigError, match=r"^partial_stage = 8: efficientnet-lite0 has stages 1-7$"):
        check_stage("efficientnet-lite0", network, 8)


def test_front_then_back_is_the_whole_network() -> None:
    network = build_efficientnet("efficientnet-lite0", 64).eval()
    front, back = split_at_stage("efficientnet-lite0", network, 6, dropout=0.0)
    back.classifier = torch.nn.Identity()  # type: ignore[assignment]
    images = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        whole = network.extract_features(images).mean(dim=(2, 3))
        assert torch.allclose(back.eval()(front(images)), whole, atol=1e-5)
    assert not any(p.requires_grad for p in front.parameters())
    back.train()
    assert all(not m.training for m in back.modules() if isinstance(m, torch.nn.BatchNorm2d))


def test_partial_mode_trains_the_back_on_maps_computed_once(tmp_path: Path) -> None:
    records = graded_store(tmp_path / "store", {"train": 2, "test": 1}, size=24)
    store = LocalImageStore(tmp_path / "store")
    config = EfficientNetPartialConfig(input_size=32, epochs=2, batch_size=8, device="cpu", num_threads=1)
    trainer = EfficientNetTrainer("efficientnet-lite0", config, name="efficientnet-lite0-partial", device="cpu")
    request = TrainingRequest(train=tuple(records["train"]), test=tuple(records["test"]), seed=0)
    first = trainer.train_and_predict(request, store, progress=RecordingProgress())
    assert trainer.features is None and trainer._loop.frozen_images == 15
    second = trainer.train_and_predict(request.model_copy(update={"seed": 1}), store, progress=RecordingProgress())
    assert trainer._loop.frozen_images == 15  # the maps are cached across cells
    assert len(first.history) == 2 and first.predictions.image_ids == second.predictions.image_ids


def test_bad_stage_input_size_and_store_size_are_one_line_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        load_settings(work_dir=tmp_path, trainers={"efficientnet_lite0_partial": {"partial_stage": 9}})
    assert "\n" not in str(error.value) and "partial_stage" in str(error.value) and "7" in str(error.value)
    with pytest.raises(ConfigError) as error:
        load_settings(work_dir=tmp_path, trainers={"efficientnet_lite0": {"input_size": 8}})
    assert "\n" not in str(error.value) and "input_size" in str(error.value) and "32" in str(error.value)
    settings = load_settings(work_dir=tmp_path, image_size=256, trainers={"efficientnet_lite0": {"input_size": 384}})
    with pytest.raises(ConfigError, match=r"^trainers\.efficientnet_lite0\.input_size = 384: larger than the "
                                          r"store's images \(image_size = 256\); valid range 32-256"):
        factories.build_trainer("efficientnet-lite0", settings)
    assert not (tmp_path / "features").exists()


def test_partial_classifiers_are_wired_by_name(tmp_path: Path) -> None:
    trainer = factories.build_trainer("efficientnet-lite0-partial", load_settings(work_dir=tmp_path))
    assert trainer.mode == "partial" and trainer.name == "efficientnet-lite0-partial"  # type: ignore[attr-defined]



def test_an_experiment_on_a_store_of_smaller_images_than_the_classifier_asks_for_is_refused_first(tmp_path: Path) -> None:
    from medaug.adapters.experiment_file import load_experiment_config
    from medaug.composition import jobs

    graded_store(tmp_path / "store", {"train": 2}, size=40)
    settings = load_settings(work_dir=tmp_path / "work")  # image_size 256: the settings alone allow 48 px

    def job_asking(size: int):  # type: ignore[no-untyped-def]
        (tmp_path / "small.toml").write_text(
            f'name = "small"\n[dataset]\nkind = "store"\nstore = "{tmp_path / "store"}"\n'
            '[experiment]\narms = ["none"]\nclassifiers = ["efficientnet-lite0"]\nseeds = [0]\n'
            f'[settings.trainers.efficientnet_lite0]\ninput_size = {size}\n'
        )
        return jobs.experiment_job(load_experiment_config(tmp_path / "small.toml"), settings)

    with pytest.raises(ConfigError) as error:
        job_asking(48)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("trainers.efficientnet_lite0.input_size = 48: larger than the images of store ")
    assert "(40 px); valid range 32-40" in message
    assert not (tmp_path / "work" / "runs").exists()
    assert job_asking(40).trainers["efficientnet-lite0"].config.input_size == 40  # type: ignore[attr-defined]
