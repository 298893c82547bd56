"""The grader's options chosen on the training side: the ordinal head's objective and class
weighting, and extra pooled features (feature ensembles, multi-scale); their bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medaug.adapters.stores.local import LocalImageStore
from medaug.adapters.trainers.backbone import ConcatFeatures
from medaug.adapters.trainers.config import EfficientNetConfig
from medaug.adapters.trainers.efficientnet import EfficientNetTrainer
from medaug.adapters.trainers.ordinal import cut, fit_ordinal_head, kappa, objective_value, tune_thresholds
from medaug.application.errors import ConfigError
from medaug.application.ports import TrainingRequest
from medaug.composition import factories
from medaug.composition.settings import load_settings
from tests.contracts.classifier_trainer import RecordingProgress, graded_store


def _noisy_grades(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Imbalanced grades (IDRiD-like) and a noisy continuous score of each."""
    rng = np.random.default_rng(seed)
    labels = rng.choice(5, n, p=[0.35, 0.05, 0.3, 0.18, 0.12])
    return labels + rng.normal(0, 0.9, n), labels


def test_thresholds_tuned_for_accuracy_trade_kappa_for_accuracy() -> None:
    scores, labels = _noisy_grades(400, 0)
    for_kappa = cut(scores, tune_thresholds(scores, labels))
    for_accuracy = cut(scores, tune_thresholds(scores, labels, objective="accuracy"))
    for_both = cut(scores, tune_thresholds(scores, labels, objective="accuracy+kappa"))
    accuracy = {name: float(np.mean(p == labels)) for name, p in
                (("kappa", for_kappa), ("accuracy", for_accuracy), ("both", for_both))}
    assert accuracy["accuracy"] > accuracy["kappa"] + 0.03
    assert kappa(labels, for_kappa) > kappa(labels, for_accuracy)
    assert objective_value(labels, for_both, "accuracy+kappa") >= objective_value(labels, for_kappa, "accuracy+kappa")
    assert objective_value(labels, for_both, "accuracy+kappa") == pytest.approx(accuracy["both"] + kappa(labels, for_both))


def test_the_head_chooses_penalty_and_class_weighting_on_inner_folds_for_its_objective() -> None:
    rng = np.random.default_rng(3)
    labels = rng.choice(5, 300, p=[0.35, 0.05, 0.3, 0.18, 0.12])
    x = np.outer(labels, rng.normal(size=12)) + rng.normal(0, 2.0, (300, 12))
    ids = [str(i) for i in range(300)]
    heads = {objective: fit_ordinal_head(x, labels, ids, np.ones(300, bool), cs=(0.01, 1.0), inner_folds=4, seed=0,
                                         objective=objective, class_weights=("none", "balanced"))
             for objective in ("kappa", "accuracy")}
    assert heads["accuracy"].inner_accuracy >= heads["kappa"].inner_accuracy
    assert heads["kappa"].inner_kappa >= heads["accuracy"].inner_kappa
    for head in heads.values():
        assert head.model.class_weight == (None if head.class_weight == "none" else "balanced")
    balanced = fit_ordinal_head(x, labels, ids, np.ones(300, bool), cs=(1.0,), inner_folds=4, seed=0,
                                class_weights=("balanced",))
    assert balanced.class_weight == "balanced" and balanced.model.class_weight == "balanced"
    with pytest.raises(ValueError, match=r"^ordinal objective 'f1': valid values are kappa, accuracy, accuracy\+kappa$"):
        fit_ordinal_head(x, labels, ids, np.ones(300, bool), cs=(1.0,), inner_folds=4, seed=0, objective="f1")  # type: ignore[arg-type]


def test_extra_features_are_concatenated_and_cached_per_part(tmp_path: Path) -> None:
    records = graded_store(tmp_path / "store", {"train": 3, "test": 1}, size=24)
    store = LocalImageStore(tmp_path / "store")
    config = EfficientNetConfig(head="ordinal", input_size=32, inner_folds=3,
                                extra_features=("efficientnet-lite0@48",), ordinal_objective="accuracy+kappa")
    trainer = EfficientNetTrainer("efficientnet-lite0", config, device="cpu", feature_dir=tmp_path / "features")
    assert isinstance(trainer.features, ConcatFeatures) and len(trainer.features.parts) == 2
    request = TrainingRequest(train=tuple(records["train"]), test=tuple(records["test"]), seed=0)
    outcome = trainer.train_and_predict(request, store, progress=RecordingProgress())
    assert trainer.features.computed == 2 * 20  # every image once per part
    rows = trainer.features.of(store, records["test"])
    assert rows.shape == (5, 1, 2 * 2 * 1280)
    single = trainer.features.parts[0].of(store, records["test"])
    assert np.allclose(rows[..., : single.shape[-1]].numpy(), single.numpy())
    assert not np.allclose(rows[..., single.shape[-1]:].numpy(), single.numpy())  # the other scale differs
    assert sorted(p.name for p in (tmp_path / "features").iterdir())[0].startswith("efficientnet-lite0-32px")
    assert len(list((tmp_path / "features").iterdir())) == 2
    assert outcome.predictions.image_ids == tuple(r.id for r in records["test"])


@pytest.mark.parametrize(("options", "message"), [
    ({"ordinal_objective": "f1"}, r"trainers\.efficientnet_lite0\.ordinal_objective: .*'kappa', 'accuracy' or 'accuracy\+kappa'"),
    ({"ordinal_class_weights": ["even"]}, r"trainers\.efficientnet_lite0\.ordinal_class_weights.*'none' or 'balanced'"),
    ({"extra_features": ["lite2@260"]}, r"extra_features entry 'lite2@260': valid form is efficientnet-lite0\|1\|2@SIZE"),
    ({"extra_features": ["efficientnet-lite2@8"]}, r"extra_features entry 'efficientnet-lite2@8': .*SIZE 32-1024"),
])
def test_bad_grader_options_are_one_line_naming_the_setting_and_its_valid_values(
    tmp_path: Path, options: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as error:
        load_settings(work_dir=tmp_path, trainers={"efficientnet_lite0": options})
    assert "\n" not in str(error.value)


def test_extra_features_larger_than_the_store_are_refused_before_any_work(tmp_path: Path) -> None:
    settings = load_settings(work_dir=tmp_path, image_size=256,
                             trainers={"efficientnet_lite0": {"extra_features": ["efficientnet-lite2@384"]}})
    with pytest.raises(ConfigError, match=r"^trainers\.efficientnet_lite0\.extra_features entry "
                                          r"'efficientnet-lite2@384': larger than the store's images "
                                          r"\(image_size = 256\); valid range 32-256"):
        factories.build_trainer("efficientnet-lite0", settings)
    assert not (tmp_path / "features").exists()
