"""The cnn and resnet50 trainers beyond the shared contract: learning, selection, caches, weights."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torchvision
from safetensors import safe_open

from medaug.adapters.stores.local import LocalImageStore
from medaug.adapters.trainers.cnn import CNNTrainer, ProposedCNN
from medaug.adapters.trainers.config import CNNConfig, ResNetConfig, TrainersConfig
from medaug.adapters.image_tensors import ImageTensors, TensorCache
from medaug.adapters.trainers.handlers import EpochSelector
from medaug.adapters.trainers.network import channel_stats, class_weights
from medaug.adapters.trainers.resnet import IMAGENET_FILES, ResNetTrainer
from medaug.application.errors import ConfigError, InputError
from medaug.application.ports import ClassifierTrainer, NullProgress, TrainingRequest
from medaug.composition import factories
from medaug.composition.settings import load_settings
from medaug.domain import Split
from medaug.domain.experiment import EpochRecord
from tests.conftest import png_bytes, real_record
from tests.contracts.classifier_trainer import graded_store

FAST = {"device": "cpu", "num_threads": 1}


def small_cnn(**options) -> CNNTrainer:  # type: ignore[no-untyped-def]
    values = {"epochs": 3, "batch_size": 10, "channels": (8, 16, 16), "fc": (32, 16, 16), **FAST, **options}
    return CNNTrainer(CNNConfig(**values), device="cpu", images=ImageTensors())


def small_resnet(**options) -> ResNetTrainer:  # type: ignore[no-untyped-def]
    hub_dir = options.pop("hub_dir", None)
    features = options.pop("features", None)
    values = {"epochs": 3, "batch_size": 10, "weights": "none", "input_size": 32, "hidden": 16, **FAST, **options}
    return ResNetTrainer(ResNetConfig(**values), device="cpu", hub_dir=hub_dir, images=ImageTensors(), features=features)


@pytest.fixture
def graded(tmp_path: Path):  # type: ignore[no-untyped-def]
    records = graded_store(tmp_path / "store", {"train": 12, "val": 3, "test": 4}, size=24)
    return LocalImageStore(tmp_path / "store"), records


def request_of(records, seed: int = 0, val: bool = False, **extra) -> TrainingRequest:  # type: ignore[no-untyped-def]
    return TrainingRequest(
        train=tuple(records["train"]),
        val=tuple(records["val"]) if val else (),
        test=tuple(records["test"]),
        seed=seed,
        **extra,
    )


@pytest.fixture
def small(tmp_path: Path):  # type: ignore[no-untyped-def]
    records = graded_store(tmp_path / "small", {"train": 4, "val": 2, "test": 2}, size=24)
    return LocalImageStore(tmp_path / "small"), records


@pytest.fixture(scope="session")
def resnet50_state_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A full (random) torchvision ResNet50 state dict written once per session (~100 MB)."""
    torch.manual_seed(123)
    path = tmp_path_factory.mktemp("weights") / "resnet50-local.pth"
    torch.save(torchvision.models.resnet50(weights=None).state_dict(), path)
    return path


# -- the proposed CNN ------------------------------------------------------------------------


def test_cnn_learns_the_grade_from_the_pixels(graded) -> None:  # type: ignore[no-untyped-def]
    store, records = graded
    trainer = small_cnn(epochs=20, lr=3e-3, dropout=0.2)
    outcome = trainer.train_and_predict(request_of(records), store, progress=NullProgress())
    accuracy = sum(outcome.predictions.correct) / len(outcome.predictions.correct)
    assert accuracy >= 0.6, f"accuracy {accuracy:.2f} on 20 held-out images (chance is 0.2)"
    assert outcome.history[-1].train_loss < outcome.history[0].train_loss


@pytest.mark.parametrize("size", [16, 32, 64, 256])
def test_cnn_accepts_sizes_from_16_to_256_px(size: int) -> None:
    model = ProposedCNN(channels=(4, 4, 8), fc=(8, 8, 8)).eval()
    assert model(torch.zeros(2, 3, size, size)).shape == (2, 5)


def test_cnn_has_three_conv_bn_layers_and_three_dropout_fc_layers() -> None:
    model = ProposedCNN()
    kinds = [type(m) for m in model]
    assert kinds.count(torch.nn.Conv2d) == 3 and kinds.count(torch.nn.BatchNorm2d) == 3
    assert kinds.count(torch.nn.Linear) == 4 and kinds.count(torch.nn.Dropout) == 3
    assert all(kinds[i + 1] is torch.nn.BatchNorm2d for i, kind in enumerate(kinds) if kind is torch.nn.Conv2d)


def test_image_size_resizes_and_the_decoded_images_are_cached(graded) -> None:  # type: ignore[no-untyped-def]
    store, records = graded
    images = ImageTensors(TensorCache())
    trainer = CNNTrainer(CNNConfig(epochs=1, input_size=16, **FAST), device="cpu", images=images)
    trainer.train_and_predict(request_of(records, seed=0), store, progress=NullProgress())
    decoded = len(images.cache)
    assert decoded == len(records["train"]) + len(records["test"])
    assert images.cache.get((store.identity, records["train"][0].id, 16)).shape == (3, 16, 16)
    hits = images.cache.hits
    trainer.train_and_predict(request_of(records, seed=1), store, progress=NullProgress())
    assert len(images.cache) == decoded and images.cache.hits >= hits + decoded


def test_images_of_different_sizes_need_an_image_size(tmp_path: Path) -> None:
    store = LocalImageStore(tmp_path)
    store.put(real_record("a", 0), png_bytes(1, size=16))
    store.put(real_record("b", 1), png_bytes(2, size=20))
    store.put(real_record("c", 2, Split.TEST), png_bytes(3, size=16))
    request = TrainingRequest(train=(store.record("a"), store.record("b")), test=(store.record("c"),), seed=0)
    with pytest.raises(InputError, match="image size"):
        small_cnn(epochs=1).train_and_predict(request, store, progress=NullProgress())
    small_cnn(epochs=1, input_size=16).train_and_predict(request, store, progress=NullProgress())


def test_an_undecodable_image_is_a_one_line_error_naming_it(tmp_path: Path) -> None:
    store = LocalImageStore(tmp_path)
    store.put(real_record("good", 0), png_bytes(1))
    store.put(real_record("bad", 1), b"not a png at all")
    store.put(real_record("t", 2, Split.TEST), png_bytes(3))
    request = TrainingRequest(train=(store.record("good"), store.record("bad")), test=(store.record("t"),), seed=0)
    with pytest.raises(InputError, match=r"train/1/bad\.png: cannot decode") as error:
        small_cnn(epochs=1).train_and_predict(request, store, progress=NullProgress())
    assert "\n" not in str(error.value)


# -- normalisation, class weights, selection --------------------------------------------------


def test_channel_stats_are_the_training_set_mean_and_std() -> None:
    images = torch.zeros(2, 3, 2, 2, dtype=torch.uint8)
    images[0, 0] = 255  # red channel: half the pixels 1.0, half 0.0
    mean, std = channel_stats(images)
    assert mean[0] == pytest.approx(0.5) and std[0] == pytest.approx(0.5)
    assert mean[1] == pytest.approx(0.0)


def test_class_weights_are_balanced_over_present_grades() -> None:
    weights = class_weights([0, 0, 0, 1])
    assert weights.tolist() == pytest.approx([4 / (2 * 3), 4 / (2 * 1), 1.0, 1.0, 1.0])


def test_class_weights_change_the_loss(tmp_path: Path) -> None:
    records = graded_store(tmp_path / "s", {"train": 4, "test": 1}, size=16)
    store = LocalImageStore(tmp_path / "s")
    # Imbalanced: four grade-0 images, one of each other grade.
    train = [r for r in records["train"] if int(r.grade) == 0] + records["train"][1:5]
    request = TrainingRequest(train=tuple(train), test=tuple(records["test"]), seed=0)
    plain = small_cnn(epochs=1).train_and_predict(request, store, progress=NullProgress())
    weighted = small_cnn(epochs=1, class_weighted=True).train_and_predict(request, store, progress=NullProgress())
    assert plain.history[0].train_loss != pytest.approx(weighted.history[0].train_loss, rel=1e-4)


def _record(epoch: int, val_loss: float) -> EpochRecord:
    return EpochRecord(epoch=epoch, train_loss=1.0, train_accuracy=0.5, val_loss=val_loss, val_accuracy=0.5)


def test_selector_keeps_the_best_epoch_and_stops_after_patience() -> None:
    selector = EpochSelector(CNNConfig(early_stopping_patience=2), has_val=True)
    head = torch.nn.Linear(1, 1)
    stopped_at = None
    for epoch, loss in enumerate([1.0, 0.5, 0.7, 0.4, 0.6, 0.45, 0.3], start=1):
        with torch.no_grad():
            head.bias.fill_(epoch)
        selector.update(_record(epoch, loss), None, head)
        if selector.should_stop():
            stopped_at = epoch
            break
    assert stopped_at == 6 and selector.best_epoch == 4
    assert selector.best_state is not None and float(selector.best_state["bias"]) == 4.0


def test_selector_on_kappa_prefers_the_highest_kappa() -> None:
    selector = EpochSelector(CNNConfig(selection_metric="kappa"), has_val=True)
    head = torch.nn.Linear(1, 1)
    for epoch, kappa in enumerate([0.1, 0.5, 0.3], start=1):
        selector.update(_record(epoch, 1.0 / epoch), kappa, head)
    assert selector.best_epoch == 2


def test_early_stopping_stops_early_and_restores_the_best_epoch(graded) -> None:  # type: ignore[no-untyped-def]
    store, records = graded
    options = {"epochs": 40, "lr": 1e-2}
    stopped = small_cnn(early_stopping_patience=2, **options).train_and_predict(
        request_of(records, val=True), store, progress=NullProgress()
    )
    assert len(stopped.history) < 40
    best = stopped.best_epoch
    assert best is not None and best == len(stopped.history) - 2
    assert stopped.history[best - 1].val_loss == min(h.val_loss for h in stopped.history)
    # The same seed for exactly `best` epochs follows the same path: the restored weights are its weights.
    replay = small_cnn(select_best_on_val=False, **{**options, "epochs": best}).train_and_predict(
        request_of(records, val=True), store, progress=NullProgress()
    )
    assert replay.best_epoch is None
    assert replay.predictions == stopped.predictions


def test_online_augmentation_is_seeded_and_changes_training(graded) -> None:  # type: ignore[no-untyped-def]
    store, records = graded
    first = small_cnn(epochs=1, online_augmentation=True).train_and_predict(request_of(records), store, progress=NullProgress())
    again = small_cnn(epochs=1, online_augmentation=True).train_and_predict(request_of(records), store, progress=NullProgress())
    plain = small_cnn(epochs=1).train_and_predict(request_of(records), store, progress=NullProgress())
    assert first.predictions == again.predictions
    assert first.history[0].train_loss != plain.history[0].train_loss


def test_checkpoint_holds_weights_and_normalisation(graded, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    store, records = graded
    path = tmp_path / "ckpt" / "cnn.safetensors"
    small_cnn(epochs=1).train_and_predict(request_of(records, checkpoint_path=str(path)), store, progress=NullProgress())
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
        assert handle.get_tensor("normalise.mean").shape == (3,)
        names = list(handle.keys())
        assert any(name.startswith("head.") for name in names)
    assert len(eval(metadata["mean"])) == 3 and metadata["seed"] == "0"


# -- ResNet50 ---------------------------------------------------------------------------------


def test_feature_cache_gives_the_same_outputs_and_saves_backbone_passes(small) -> None:  # type: ignore[no-untyped-def]
    store, records = small
    cached, uncached = small_resnet(epochs=2), small_resnet(epochs=2, feature_cache=False)
    request = request_of(records, val=True)
    with_cache = cached.train_and_predict(request, store, progress=NullProgress())
    without = uncached.train_and_predict(request, store, progress=NullProgress())
    n_train, n_val, n_test = (len(records[k]) for k in ("train", "val", "test"))
    assert cached.frozen_images == n_train + n_val + n_test
    assert uncached.frozen_images == 2 * (n_train + n_val) + n_test
    assert with_cache.predictions.predicted == without.predictions.predicted
    for a, b in zip(with_cache.predictions.probabilities, without.predictions.probabilities, strict=True):
        assert a == pytest.approx(b, abs=1e-5)
    cached.train_and_predict(request, store, progress=NullProgress())
    assert cached.frozen_images == n_train + n_val + n_test  # the second run reuses every feature


def test_the_backbone_loads_the_file_and_the_new_head_is_xavier_normal(resnet50_state_file: Path) -> None:
    trainer = small_resnet(weights=str(resnet50_state_file))
    network = trainer._network(seed=0)
    head = network.head
    assert [type(m) for m in head] == [torch.nn.Linear, torch.nn.ReLU, torch.nn.Dropout, torch.nn.Linear]
    assert head[0].in_features == 2048 and head[3].out_features == 5
    assert all(float(layer.bias.detach().abs().sum()) == 0 for layer in (head[0], head[3]))
    xavier_std = math.sqrt(2 / (2048 + 16))  # torch's default Linear init would give 1/sqrt(3 * 2048) = 0.0128
    assert float(head[0].weight.detach().std()) == pytest.approx(xavier_std, rel=0.05)
    expected = torch.load(resnet50_state_file, weights_only=True)["layer4.2.conv3.weight"]
    backbone = dict(network.frozen.named_parameters())
    assert any(torch.equal(p, expected) for p in backbone.values())


def test_weights_from_a_path_reuse_features_across_seeds(small, resnet50_state_file: Path) -> None:  # type: ignore[no-untyped-def]
    store, records = small
    trainer = small_resnet(epochs=1, weights=str(resnet50_state_file))
    first = trainer.train_and_predict(request_of(records, seed=0), store, progress=NullProgress())
    computed = trainer.frozen_images
    second = trainer.train_and_predict(request_of(records, seed=1), store, progress=NullProgress())
    assert trainer.frozen_images == computed
    assert first.predictions.probabilities != second.predictions.probabilities


def test_imagenet_weights_are_read_from_the_hub_cache(tmp_path: Path, resnet50_state_file: Path) -> None:
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / IMAGENET_FILES[0]).symlink_to(resnet50_state_file)
    trainer = small_resnet(weights="imagenet", hub_dir=tmp_path)
    assert trainer._loop.normalisation == "imagenet"
    trainer._network(seed=0)


def test_missing_imagenet_weights_say_how_to_get_them(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        small_resnet(weights="imagenet", hub_dir=tmp_path)
    message = str(error.value)
    assert str(tmp_path / "checkpoints") in message and "IMAGENET1K_V2" in message
    assert IMAGENET_FILES[0] in message and "'none'" in message and "\n" not in message


def test_bad_weight_files_are_config_errors(tmp_path: Path, small) -> None:  # type: ignore[no-untyped-def]
    store, records = small
    with pytest.raises(ConfigError, match="not found"):
        small_resnet(weights=str(tmp_path / "absent.pth"))
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="cannot read resnet50 weights"):
        small_resnet(weights=str(garbage)).train_and_predict(request_of(records), store, progress=NullProgress())
    partial = tmp_path / "partial.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, partial)
    with pytest.raises(ConfigError, match="not a resnet50 state dict: missing keys"):
        small_resnet(weights=str(partial)).train_and_predict(request_of(records), store, progress=NullProgress())


def test_unfreezing_the_last_block_trains_layer4_on_cached_layer3_features(small, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    store, records = small
    features = TensorCache()
    trainer = small_resnet(epochs=1, unfreeze_last_block=True, features=features)
    path = tmp_path / "r.safetensors"
    outcome = trainer.train_and_predict(request_of(records, checkpoint_path=str(path)), store, progress=NullProgress())
    assert len(outcome.history) == 1
    with safe_open(str(path), framework="pt") as handle:
        names = list(handle.keys())
        assert any(name.startswith("head.0.") for name in names)  # layer4 is saved with the head
    cached = features.get(features.keys()[0])
    assert cached is not None and cached.shape[0] == 1024  # layer3's channels


def test_online_augmentation_passes_training_images_through_the_backbone_each_epoch(small) -> None:  # type: ignore[no-untyped-def]
    store, records = small
    trainer = small_resnet(epochs=2, online_augmentation=True)
    trainer.train_and_predict(request_of(records), store, progress=NullProgress())
    assert trainer.frozen_images == 2 * len(records["train"]) + len(records["test"])


# -- configuration and wiring ------------------------------------------------------------------


def test_defaults_follow_the_thesis() -> None:
    config = TrainersConfig()
    assert (config.cnn.epochs, config.cnn.batch_size, config.cnn.lr) == (80, 25, 1e-3)
    assert (config.resnet50.epochs, config.resnet50.batch_size, config.resnet50.weights) == (25, 25, "imagenet")
    assert not config.resnet50.unfreeze_last_block and config.resnet50.input_size == 224


def test_settings_configure_the_trainers(tmp_path: Path) -> None:
    settings = load_settings(trainers={"cnn": {"epochs": 2, "input_size": 32}, "resnet50": {"weights": "none"}})
    trainer = factories.build_trainer("cnn", settings)
    assert isinstance(trainer, ClassifierTrainer) and trainer.name == "cnn" and trainer.config.epochs == 2
    assert factories.build_trainer("resnet50", settings).name == "resnet50"
    assert factories.trainer_names() == [
        "cnn", *(f"efficientnet-lite{n}{mode}" for n in range(3) for mode in ("", "-finetune", "-partial")), "resnet50"
    ]


def test_unknown_trainer_lists_the_valid_names() -> None:
    with pytest.raises(ConfigError, match="choose one of: cnn, efficientnet-lite0, .*resnet50"):
        factories.build_trainer("vgg16", load_settings())


def test_unknown_trainer_option_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="trainers.cnn"):
        load_settings(trainers={"cnn": {"epoch": 3}})


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        CNNTrainer(CNNConfig(), device="cuda")
