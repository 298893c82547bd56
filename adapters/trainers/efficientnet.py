"""``efficientnet-lite0`` (and ``-lite1``, ``-lite2``): a pretrained ImageNet backbone, offline.

Two modes, chosen by ``mode`` in the classifier's settings:

- ``frozen``: the backbone's pooled features (global average + max of its last feature map, TF-lite
  input scaling) are computed once per image and flip view and cached by image checksum in the
  run folder (``adapters.trainers.backbone.FrozenFeatures``); a linear softmax head on standardised features
  is then trained in seconds per cell.
- ``finetune``: the whole network (or its last blocks) with a new five-grade layer, trained by the
  shared loop (early stopping, seeds, curves), channels-last, with online flips.

Every outcome records the sha256 of the backbone's weights (over their tensors).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import structlog
import torch
from torch import nn

from medaug.adapters.trainers.backbone import (
    TFLITE_MEAN,
    TFLITE_STD,
    FrozenFeatures,
    LoadedBackbone,
    all_views,
    frozen_features,
    load_backbone,
)
from medaug.adapters.torch_support import resolve_device, seed_everything
from medaug.adapters.trainers.config import EfficientNetConfig
from medaug.adapters.trainers.data import ImageTensors, shared_cache
from medaug.adapters.trainers.handlers import check_request, save_atomic
from medaug.adapters.trainers.head import LinearHead, fit_linear_head
from medaug.adapters.trainers.loop import TrainingLoop, predictions_of
from medaug.adapters.trainers.network import NUM_GRADES, Network
from medaug.application.ports import ImageStore, ProgressSink, TrainingOutcome, TrainingRequest
from medaug.domain import FundusImage, Origin

_log = structlog.get_logger(__name__)


class FinetuneNetwork(nn.Module):
    """EfficientNet-Lite trunk, average pooling, dropout and a new five-grade layer."""

    def __init__(self, network: nn.Module, dropout: float, classes: int = NUM_GRADES) -> None:
        super().__init__()
        self.network = network
        width = int(network._bn1.num_features)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(width, classes)
        nn.init.xavier_normal_(self.classifier.weight)
        nn.init.zeros_(self.classifier.bias)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        features = self.network.extract_features(inputs).mean(dim=(2, 3))
        return self.classifier(self.dropout(features))


def freeze_early_blocks(model: FinetuneNetwork, trainable_blocks: int | None) -> None:
    """Leave only the last ``trainable_blocks`` MBConv blocks, the head convolution and the new layer trainable."""
    if trainable_blocks is None:
        return
    network = model.network
    blocks = list(network._blocks)
    frozen: list[nn.Module] = [network._conv_stem, network._bn0, *blocks[: max(len(blocks) - trainable_blocks, 0)]]
    for module in frozen:
        for parameter in module.parameters():
            parameter.requires_grad_(False)


class EfficientNetTrainer:
    """ClassifierTrainer ``efficientnet-lite0`` (``-lite1``, ``-lite2``), frozen or fine-tuned.

    Args:
        variant: ``efficientnet-lite0``, ``-lite1`` or ``-lite2``.
        config: mode, weights, input size, head and loop options.
        name: the classifier's name in experiments (the variant by default).
        device: ``auto`` (CUDA when present), ``cpu`` or ``cuda``.
        feature_dir: where frozen features are kept between runs (a run folder); None keeps them
            in memory only.
        images: decoded-image cache for fine-tuning (the process-wide one by default).

    Raises:
        ConfigError: the packages or the weights are missing, unreadable or of another architecture
            (before any work).
    """

    def __init__(
        self,
        variant: str = "efficientnet-lite0",
        config: EfficientNetConfig | None = None,
        *,
        name: str | None = None,
        device: str = "auto",
        feature_dir: Path | None = None,
        images: ImageTensors | None = None,
    ) -> None:
        self.variant = variant
        self.config = config or EfficientNetConfig()
        self._name = name or variant
        self.backbone: LoadedBackbone = load_backbone(variant, self.config.weights)
        self.device = resolve_device(device if self.config.device == "auto" else self.config.device)
        self.features: FrozenFeatures | None = None
        if self.config.mode == "frozen":
            self.features = frozen_features(
                variant, self.config.weights, self.config.input_size, feature_dir, device=self.device,
                batch_size=self.config.batch_size,
            )  # fmt: skip
        self._loop = TrainingLoop(
            self._name,
            self.config,
            device=self.device,
            input_size=self.config.input_size,
            normalisation="fixed",
            fixed_statistics=(TFLITE_MEAN, TFLITE_STD),
            images=images or ImageTensors(shared_cache()),
        )

    @property
    def name(self) -> str:
        return self._name

    @property
    def weights_sha256(self) -> str:
        """sha256 over the backbone's weight tensors."""
        return self.backbone.sha256

    def train_and_predict(
        self, request: TrainingRequest, store: ImageStore, *, progress: ProgressSink
    ) -> TrainingOutcome:
        """Train on ``request.train`` and predict ``request.test`` (see ``ClassifierTrainer``)."""
        if self.features is None:
            outcome = self._loop.run(request, store, progress, self._network)
        else:
            outcome = self._frozen(request, store, progress, self.features)
        return outcome.model_copy(update={"weights_sha256": self.weights_sha256})

    # -- finetune ------------------------------------------------------------------------------

    def _network(self, seed: int) -> Network:
        model = FinetuneNetwork(self.backbone.network(self.config.input_size), self.config.dropout)
        freeze_early_blocks(model, self.config.trainable_blocks)
        return Network(head=model, channels_last=True)

    # -- frozen --------------------------------------------------------------------------------

    def _frozen(
        self, request: TrainingRequest, store: ImageStore, progress: ProgressSink, features: FrozenFeatures
    ) -> TrainingOutcome:
        check_request(self._name, request)
        started = time.perf_counter()
        computed = features.computed
        train_x, train_y = self._training_features(store, request.train, features)
        val_x = features.of(store, request.val)[:, 0] if request.val else None
        test_x = features.of(store, request.test)[:, 0]
        _log.info("features_ready", classifier=self._name, computed=features.computed - computed,
                  seconds=round(time.perf_counter() - started, 1))
        generator = seed_everything(request.seed)
        fitted = fit_linear_head(
            train_x, train_y, val_x, _labels(request.val) if request.val else None, self.config,
            generator=generator, progress=progress, description=f"{self._name} seed {request.seed}",
        )  # fmt: skip
        with torch.inference_mode():
            logits = fitted.head(test_x)
            extra = {
                name: predictions_of(external.images, fitted.head(features.of(external.store, external.images)[:, 0]))
                for name, external in request.extra_tests.items()
                if external.images
            }
        checkpoint = self._save(request, fitted.head, fitted.best_epoch)
        return TrainingOutcome(
            predictions=predictions_of(request.test, logits),
            extra_predictions=extra,
            history=tuple(fitted.history),
            best_epoch=fitted.best_epoch,
            checkpoint=checkpoint,
            seconds=time.perf_counter() - started,
            images_per_second=fitted.rows_per_second,
        )

    def _training_features(
        self, store: ImageStore, records: Sequence[FundusImage], features: FrozenFeatures
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Feature rows of the training images: every flip view of real ones (when ``flips``), and
        of synthetic ones when ``flip_synthetic``; labels to match."""
        rows, labels = [], []
        real = [r for r in records if r.origin == Origin.REAL]
        synthetic = [r for r in records if r.origin != Origin.REAL]
        for group, flipped in ((real, self.config.flips), (synthetic, self.config.flips and self.config.flip_synthetic)):
            if not group:
                continue
            views = all_views(flipped)
            values = features.of(store, group, views)
            rows.append(values.reshape(-1, values.shape[-1]))
            labels.append(_labels(group).repeat_interleave(len(views)))
        return torch.cat(rows), torch.cat(labels)

    def _save(self, request: TrainingRequest, head: LinearHead, best_epoch: int | None) -> str | None:
        if request.checkpoint_path is None:
            return None
        tensors = {f"head.{k}": v.detach().cpu().contiguous().clone() for k, v in head.state_dict().items()}
        metadata = {
            "classifier": self._name,
            "backbone": self.variant,
            "weights_sha256": self.weights_sha256,
            "seed": str(request.seed),
            "input_size": str(self.config.input_size),
            "best_epoch": str(best_epoch),
            "config": self.config.model_dump_json(),
        }
        return save_atomic(tensors, Path(request.checkpoint_path), metadata)


def _labels(records: Sequence[FundusImage]) -> torch.Tensor:
    return torch.tensor([int(r.grade) for r in records], dtype=torch.long)
