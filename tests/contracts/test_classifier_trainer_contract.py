"""Every classifier against the shared ClassifierTrainer contract (tiny images, two epochs)."""

from __future__ import annotations

import pytest

from medaug.adapters.trainers.cnn import CNNTrainer
from medaug.adapters.trainers.config import CNNConfig, EfficientNetConfig, EfficientNetPartialConfig, ResNetConfig
from medaug.adapters.image_tensors import ImageTensors
from medaug.adapters.trainers.efficientnet import EfficientNetTrainer
from medaug.adapters.trainers.resnet import ResNetTrainer
from tests.contracts.classifier_trainer import ClassifierTrainerContract


class TestCNNTrainer(ClassifierTrainerContract):
    @pytest.fixture
    def trainer(self, epochs: int) -> CNNTrainer:
        config = CNNConfig(epochs=epochs, batch_size=8, channels=(8, 8, 16), fc=(32, 16, 16), device="cpu", num_threads=1)
        return CNNTrainer(config, device="cpu", images=ImageTensors())


class TestResNet50Trainer(ClassifierTrainerContract):
    @pytest.fixture
    def trainer(self, epochs: int) -> ResNetTrainer:
        config = ResNetConfig(epochs=epochs, batch_size=8, weights="none", input_size=32, hidden=16, device="cpu", num_threads=1)
        return ResNetTrainer(config, device="cpu", images=ImageTensors())


class TestEfficientNetFrozenTrainer(ClassifierTrainerContract):
    @pytest.fixture
    def trainer(self, epochs: int, tmp_path_factory: pytest.TempPathFactory) -> EfficientNetTrainer:
        config = EfficientNetConfig(head_epochs=epochs, input_size=32, device="cpu", num_threads=1)
        return EfficientNetTrainer("efficientnet-lite0", config, device="cpu", feature_dir=tmp_path_factory.mktemp("features"))


class TestEfficientNetFinetuneTrainer(ClassifierTrainerContract):
    @pytest.fixture
    def trainer(self, epochs: int) -> EfficientNetTrainer:
        config = EfficientNetConfig(epochs=epochs, batch_size=8, input_size=32, trainable_blocks=2,
                                    device="cpu", num_threads=1)
        return EfficientNetTrainer("efficientnet-lite0", config, name="efficientnet-lite0-finetune", device="cpu",
                                   images=ImageTensors())


class TestEfficientNetPartialTrainer(ClassifierTrainerContract):
    @pytest.fixture
    def trainer(self, epochs: int) -> EfficientNetTrainer:
        config = EfficientNetPartialConfig(epochs=epochs, batch_size=8, input_size=32, device="cpu", num_threads=1,
                                           early_stopping_patience=None)
        return EfficientNetTrainer("efficientnet-lite0", config, name="efficientnet-lite0-partial", device="cpu",
                                   images=ImageTensors())
