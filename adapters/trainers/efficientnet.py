"""``efficientnet-lite0`` (and ``-lite1``, ``-lite2``): a pretrained ImageNet backbone, offline.

Three modes, chosen by the classifier's name (``trainers.config.efficientnet_mode``):

- ``frozen``: the backbone's pooled features (global average + max of its last feature map, TF-lite
  input scaling) are computed once per image and flip view and cached by image checksum in the
  run folder (``adapters.trainers.backbone.FrozenFeatures``); a head on standardised features is
  then trained in seconds per cell: ``linear`` (softmax regression) or ``ordinal`` (ridge regression
  of the grade, thresholds tuned for quadratic kappa on inner folds of the training rows).
- ``partial``: the backbone up to ``partial_stage`` runs once per image (its maps cached by the
  shared loop), the later stages, the head convolution and a new five-grade layer are trained on
  them (``adapters.trainers.partial``).
- ``finetune``: the whole network (or its last blocks) with a new five-grade layer, trained by the
  shared loop (early stopping, seeds, curves), channels-last, with online flips.

Every outcome records the sha256 of the backbone's weights (over their tensors).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import structlog
import torch
from torch import nn

from medaug.adapters.trainers.backbone import (
    TFLITE_MEAN,
    TFLITE_STD,
    ConcatFeatures,
    FrozenFeatures,
    LoadedBackbone,
    all_views,
    frozen_features,
    load_backbone,
)
from medaug.adapters.torch_support import resolve_device, seed_everything
from medaug.adapters.trainers.config import EfficientNetConfig, efficientnet_mode
from medaug.adapters.image_tensors import ImageTensors, TensorCache, shared_cache
from medaug.adapters.trainers.handlers import check_request, save_atomic
from medaug.adapters.trainers.head import LinearHead, fit_linear_head
from medaug.adapters.trainers.loop import TrainingLoop, predictions_of
from medaug.adapters.trainers.network import NUM_GRADES, Network
from medaug.adapters.trainers.ordinal import OrdinalHead, fit_ordinal_head
from medaug.adapters.trainers.partial import check_stage, split_at_stage
from medaug.application.ports import ImageStore, ProgressSink, TrainingOutcome, TrainingRequest
from medaug.domain import FundusImage, Origin
from medaug.domain.experiment import EpochRecord, Predictions

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
        config: weights, input size, head and loop options.
        name: the classifier's name in experiments (the variant by default), which says its mode.
        device: ``cpu`` or ``cuda``, as the composition resolved it (``LoopConfig.device`` or the global one).
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
        device: str,
        feature_dir: Path | None = None,
        images: ImageTensors | None = None,
    ) -> None:
        self.variant = variant
        self.config = config or EfficientNetConfig()
        self._name = name or variant
        self.mode = efficientnet_mode(self._name)
        self.backbone: LoadedBackbone = load_backbone(variant, self.config.weights)
        if self.mode == "partial":  # before any work
            check_stage(variant, self.backbone.network(self.config.input_size), self.config.partial_stage)
        self.device = resolve_device(device)
        self.features: FrozenFeatures | ConcatFeatures | None = None
        if self.mode == "frozen":
            sources = ((variant, self.config.weights, self.config.input_size),
                       *((other, "package", size) for other, size in self.config.feature_sources()))
            parts = [frozen_features(source, weights, size, feature_dir, device=self.device,
                                     batch_size=self.config.batch_size) for source, weights, size in sources]
            self.features = parts[0] if len(parts) == 1 else ConcatFeatures(parts)
        self._loop = TrainingLoop(
            self._name,
            self.config,
            device=self.device,
            input_size=self.config.input_size,
            normalisation="fixed",
            fixed_statistics=(TFLITE_MEAN, TFLITE_STD),
            images=images or ImageTensors(shared_cache()),
            # partial: the front stages' maps, once per image for every cell of the process
            features=TensorCache() if self.mode == "partial" else None,
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
        network = self.backbone.network(self.config.input_size)
        if self.mode == "partial":
            stage = self.config.partial_stage
            front, back = split_at_stage(self.variant, network, stage, self.config.dropout)
            identity = f"{self.variant}:{self.weights_sha256[:16]}:stage{stage}"
            return Network(head=back, frozen=front, identity=identity, channels_last=True)
        model = FinetuneNetwork(network, self.config.dropout)
        freeze_early_blocks(model, self.config.trainable_blocks)
        return Network(head=model, channels_last=True)

    # -- frozen --------------------------------------------------------------------------------

    def _frozen(
        self, request: TrainingRequest, store: ImageStore, progress: ProgressSink, features: FrozenFeatures | ConcatFeatures
    ) -> TrainingOutcome:
        check_request(self._name, request)
        started = time.perf_counter()
        computed = features.computed
        train_x, train_y, groups, scored = self._training_features(store, request.train, features)
        val_x = self._test_features(features, store, request.val) if request.val else None
        test_x = self._test_features(features, store, request.test)
        _log.info("features_ready", classifier=self._name, computed=features.computed - computed,
                  seconds=round(time.perf_counter() - started, 1))
        if self.config.head == "ordinal":
            return self._ordinal(request, store, progress, features, (train_x, train_y, groups, scored), val_x, test_x,
                                 started)
        generator = seed_everything(request.seed)
        fitted = fit_linear_head(
            train_x, train_y, val_x, _labels(request.val) if request.val else None, self.config,
            generator=generator, progress=progress, description=f"{self._name} seed {request.seed}",
        )  # fmt: skip
        with torch.inference_mode():
            logits = fitted.head(test_x)
            extra = {
                name: predictions_of(external.images, fitted.head(self._test_features(features, external.store, external.images)))
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

    def _ordinal(
        self,
        request: TrainingRequest,
        store: ImageStore,
        progress: ProgressSink,
        features: FrozenFeatures | ConcatFeatures,
        train: tuple[torch.Tensor, torch.Tensor, list[str], list[bool]],
        val_x: torch.Tensor | None,
        test_x: torch.Tensor,
        started: float,
    ) -> TrainingOutcome:
        """The ordinal head: validation images, when given, join the training rows (the head
        chooses its penalty and thresholds on inner folds of them)."""
        train_x, train_y, groups, scored = train
        if val_x is not None:
            train_x, train_y = torch.cat([train_x, val_x]), torch.cat([train_y, _labels(request.val)])
            groups, scored = [*groups, *(r.id for r in request.val)], [*scored, *([True] * len(request.val))]
        fitting = time.perf_counter()
        with progress.task(f"{self._name} seed {request.seed}", total=1) as task:
            head = fit_ordinal_head(train_x, train_y.numpy(), groups, scored, cs=self.config.ordinal_cs,
                                    inner_folds=self.config.inner_folds, seed=request.seed,
                                    objective=self.config.ordinal_objective,
                                    class_weights=self.config.ordinal_class_weights)
            seconds = time.perf_counter() - fitting
            train_grades = head.grades(train_x)
            train_p = head.probabilities(train_x)[np.arange(len(train_y)), train_y.numpy()]
            record = EpochRecord(epoch=1, train_loss=float(-np.log(np.clip(train_p, 1e-12, None)).mean()),
                                 train_accuracy=float((train_grades == train_y.numpy()).mean()))
            task.advance(1, loss=record.train_loss, acc=record.train_accuracy)
        _log.info("ordinal_head", classifier=self._name, seed=request.seed, c=head.c, class_weight=head.class_weight,
                  inner_kappa=round(head.inner_kappa, 4), inner_accuracy=round(head.inner_accuracy, 4), thresholds=[round(float(t), 3) for t in head.thresholds])
        extra = {
            name: _ordinal_predictions(external.images, head, self._test_features(features, external.store, external.images))
            for name, external in request.extra_tests.items()
            if external.images
        }
        checkpoint = None
        if request.checkpoint_path is not None:
            tensors = {f"ordinal.{k}": v for k, v in head.tensors().items()}
            checkpoint = save_atomic(tensors, Path(request.checkpoint_path), self._metadata(request, None)
                                     | {"c": str(head.c), "inner_kappa": str(head.inner_kappa),
                                        "class_weight": head.class_weight})
        return TrainingOutcome(
            predictions=_ordinal_predictions(request.test, head, test_x),
            extra_predictions=extra,
            history=(record,),
            best_epoch=None,
            checkpoint=checkpoint,
            seconds=time.perf_counter() - started,
            images_per_second=len(train_y) / seconds if seconds > 0 else 0.0,
        )

    def _test_features(self, features: FrozenFeatures | ConcatFeatures, store: ImageStore, records: Sequence[FundusImage]) -> torch.Tensor:
        """One feature row per image: the mean over its ``test_views`` (test-time flips)."""
        return features.of(store, records, self.config.test_views).mean(dim=1)

    def _training_features(
        self, store: ImageStore, records: Sequence[FundusImage], features: FrozenFeatures | ConcatFeatures
    ) -> tuple[torch.Tensor, torch.Tensor, list[str], list[bool]]:
        """Feature rows of the training images: every flip view of real ones (when ``flips``), and
        of synthetic ones when ``flip_synthetic``; labels to match; each row's source image (a
        synthetic image's first source) and whether it is a real image as it is (what the ordinal
        head's thresholds are tuned on)."""
        rows, labels, groups, scored = [], [], [], []
        real = [r for r in records if r.origin == Origin.REAL]
        synthetic = [r for r in records if r.origin != Origin.REAL]
        for group, flipped in ((real, self.config.flips), (synthetic, self.config.flips and self.config.flip_synthetic)):
            if not group:
                continue
            views = all_views(flipped)
            values = features.of(store, group, views)
            rows.append(values.reshape(-1, values.shape[-1]))
            labels.append(_labels(group).repeat_interleave(len(views)))
            sources = [r.provenance.source_ids[0] if r.provenance.source_ids else r.id for r in group]
            groups.extend(source for source in sources for _ in views)
            scored.extend(r.origin == Origin.REAL and v == "id" for r in group for v in views)
        return torch.cat(rows), torch.cat(labels), groups, scored

    def _save(self, request: TrainingRequest, head: LinearHead, best_epoch: int | None) -> str | None:
        if request.checkpoint_path is None:
            return None
        tensors = {f"head.{k}": v.detach().cpu().contiguous().clone() for k, v in head.state_dict().items()}
        return save_atomic(tensors, Path(request.checkpoint_path), self._metadata(request, best_epoch))

    def _metadata(self, request: TrainingRequest, best_epoch: int | None) -> dict[str, str]:
        return {
            "classifier": self._name,
            "backbone": self.variant,
            "weights_sha256": self.weights_sha256,
            "seed": str(request.seed),
            "input_size": str(self.config.input_size),
            "head": self.config.head,
            "best_epoch": str(best_epoch),
            "config": self.config.model_dump_json(),
        }


def _ordinal_predictions(records: Sequence[FundusImage], head: OrdinalHead, x: torch.Tensor) -> Predictions:
    """The thresholded grades of ``x``, one per record, with the softmax probabilities; where the
    graded class is not the most probable one, its probability is swapped with the largest (so the
    grade is the probabilities' argmax, as every classifier's predictions are, and they still sum to 1)."""
    if not len(records):
        return Predictions(image_ids=(), labels=(), predicted=(), probabilities=())
    probabilities = head.probabilities(x)
    grades = head.grades(x)
    rows = np.arange(len(grades))
    top = probabilities.argmax(axis=1)
    graded, largest = probabilities[rows, grades].copy(), probabilities[rows, top].copy()
    probabilities[rows, top], probabilities[rows, grades] = graded, largest
    return Predictions(
        image_ids=tuple(r.id for r in records),
        labels=tuple(int(r.grade) for r in records),
        predicted=tuple(int(g) for g in grades),
        probabilities=tuple(tuple(float(v) for v in row) for row in probabilities),
    )


def _labels(records: Sequence[FundusImage]) -> torch.Tensor:
    return torch.tensor([int(r.grade) for r in records], dtype=torch.long)
