"""A classifier saved by ``medaug train --checkpoint`` (or a cell's checkpoint), loaded to predict.

The safetensors file holds the head's weights (``head.*``), the normalisation statistics and, in
its metadata, the classifier's name, its configuration (architecture included) and input size:
enough to rebuild the network without the training run.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

from medaug.adapters.trainers.cnn import ProposedCNN
from medaug.adapters.trainers.config import CNNConfig
from medaug.adapters.image_tensors import ImageTensors
from medaug.adapters.trainers.loop import predictions_of
from medaug.adapters.trainers.network import Normalise
from medaug.application.errors import ConfigError
from medaug.application.ports import ImageStore
from medaug.domain import FundusImage
from medaug.domain.experiment import Predictions


class SavedCNN:
    """SavedClassifier: the proposed CNN rebuilt from its checkpoint.

    Args:
        path: the safetensors file ``medaug train --checkpoint`` wrote.

    Raises:
        ConfigError: the file is missing, unreadable, or holds another classifier.
    """

    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise ConfigError(f"{path}: checkpoint not found")
        try:
            with safe_open(str(path), framework="pt") as handle:
                metadata = handle.metadata() or {}
                tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
        except (OSError, SafetensorError) as exc:
            raise ConfigError(f"{path}: not a safetensors checkpoint ({exc})") from None
        if metadata.get("classifier") != "cnn":
            raise ConfigError(f"{path}: holds classifier {metadata.get('classifier')!r}; medaug evaluate reads cnn only")
        self.path = path
        self.config = CNNConfig.model_validate_json(metadata["config"])
        size = metadata.get("input_size", "None")
        self.input_size = None if size == "None" else int(size)
        self.normalise = Normalise(json.loads(metadata["mean"]), json.loads(metadata["std"]))
        config = self.config
        self.model = ProposedCNN(config.channels, config.fc, config.dropout, config.stem_stride, config.pool_size)
        state = {key.removeprefix("head."): value for key, value in tensors.items() if key.startswith("head.")}
        self.model.load_state_dict(state)
        self.model.eval()
        self.images = ImageTensors()

    @property
    def name(self) -> str:
        return "cnn"

    def predict(self, images: Sequence[FundusImage], store: ImageStore) -> Predictions:
        """Predict ``images`` (pixels from ``store``), in their order."""
        raw = self.images.load(store, images, self.input_size)
        outputs = []
        with torch.inference_mode():
            for batch in raw.split(self.config.eval_batch_size):
                outputs.append(self.model(self.normalise(batch)).float())
        logits = torch.cat(outputs) if outputs else torch.empty(0, 5)
        return predictions_of(images, logits)
