"""``cnn``: the thesis's "proposed CNN", trained from scratch."""

from __future__ import annotations

from torch import nn

from medaug.adapters.torch_support import resolve_device
from medaug.adapters.trainers.config import CNNConfig
from medaug.adapters.image_tensors import ImageTensors, shared_cache
from medaug.adapters.trainers.loop import TrainingLoop
from medaug.adapters.trainers.network import NUM_GRADES, Network
from medaug.application.ports import ImageStore, ProgressSink, TrainingOutcome, TrainingRequest


class ProposedCNN(nn.Sequential):
    """Three 3x3 convolutions, each followed by batch normalisation and ReLU (max-pooling between
    them, an adaptive average pool after the last), then three fully connected layers with dropout
    and the output layer.

    Args:
        channels: output channels of the three convolutions.
        fc: widths of the three fully connected layers.
        dropout: dropout probability after each fully connected layer.
        stem_stride: stride of the first convolution.
        pool_size: side of the adaptive pool's grid (so any input size from 16 px works).
        classes: number of outputs.
    """

    def __init__(
        self,
        channels: tuple[int, int, int] = (32, 64, 128),
        fc: tuple[int, int, int] = (256, 128, 64),
        dropout: float = 0.5,
        stem_stride: int = 2,
        pool_size: int = 4,
        classes: int = NUM_GRADES,
    ) -> None:
        layers: list[nn.Module] = []
        previous = 3
        for index, width in enumerate(channels):
            stride = stem_stride if index == 0 else 1
            layers += [nn.Conv2d(previous, width, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(width),
                       nn.ReLU(inplace=True)]
            layers.append(nn.MaxPool2d(2) if index < len(channels) - 1 else nn.AdaptiveAvgPool2d(pool_size))
            previous = width
        layers.append(nn.Flatten())
        features = previous * pool_size * pool_size
        for width in fc:
            layers += [nn.Linear(features, width), nn.ReLU(inplace=True), nn.Dropout(dropout)]
            features = width
        layers.append(nn.Linear(features, classes))
        super().__init__(*layers)


class CNNTrainer:
    """ClassifierTrainer ``cnn``: the proposed CNN on z-scored images (training-set statistics).

    Args:
        config: architecture and training options.
        device: ``cpu`` or ``cuda``, as the composition resolved it (``LoopConfig.device`` or the global one).
        images: decoded-image cache (the process-wide one by default).
    """

    def __init__(self, config: CNNConfig | None = None, *, device: str, images: ImageTensors | None = None) -> None:
        self.config = config or CNNConfig()
        self._loop = TrainingLoop(
            self.name,
            self.config,
            device=resolve_device(device),
            input_size=self.config.input_size,
            normalisation="train",
            images=images or ImageTensors(shared_cache()),
        )

    @property
    def name(self) -> str:
        return "cnn"

    def train_and_predict(
        self, request: TrainingRequest, store: ImageStore, *, progress: ProgressSink
    ) -> TrainingOutcome:
        """Train the CNN on ``request.train`` and predict ``request.test`` (see ``ClassifierTrainer``)."""
        return self._loop.run(request, store, progress, self._network)

    def _network(self, seed: int) -> Network:
        config = self.config
        model = ProposedCNN(config.channels, config.fc, config.dropout, config.stem_stride, config.pool_size)
        return Network(head=model, channels_last=True)
