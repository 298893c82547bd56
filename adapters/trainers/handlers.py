"""What the training loop hands off (as MONAI's engines hand off to handlers): choosing the best
epoch and stopping early, refusing an unsafe request, and writing checkpoints atomically."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import torch
from safetensors.torch import save as safetensors_save
from torch import nn

from medaug.adapters.files import write_atomic
from medaug.adapters.trainers.config import LoopConfig
from medaug.application.errors import ConfigError
from medaug.application.ports import TrainingRequest
from medaug.domain.experiment import EpochRecord


class EpochSelector:
    """Keeps the best epoch's weights (on validation) and decides when to stop early.

    The monitored value is the validation loss (or kappa, per ``selection_metric``) when there are
    validation images, else the training loss; weights are only kept with validation images.

    Args:
        config: patience, selection metric and whether to select at all.
        has_val: whether the run has validation images.
    """

    def __init__(self, config: LoopConfig, *, has_val: bool) -> None:
        self._config = config
        self._has_val = has_val
        self._best = math.inf
        self._stale = 0
        self.best_epoch: int | None = None
        self.best_state: dict[str, torch.Tensor] | None = None

    def update(self, record: EpochRecord, kappa: float | None, head: nn.Module) -> None:
        """Note an epoch's figures, keeping the head's weights when they are the best so far."""
        score = self._score(record, kappa)
        if score < self._best - 1e-9:
            self._best, self._stale = score, 0
            if self._has_val and self._config.select_best_on_val:
                self.best_epoch = record.epoch
                self.best_state = copy.deepcopy(head.state_dict())
        else:
            self._stale += 1

    def should_stop(self) -> bool:
        """True once the monitored value has not improved for ``early_stopping_patience`` epochs."""
        patience = self._config.early_stopping_patience
        return patience is not None and self._stale >= patience

    def _score(self, record: EpochRecord, kappa: float | None) -> float:
        """The monitored value, lower is better."""
        if not self._has_val:
            return record.train_loss
        if self._config.selection_metric == "kappa":
            return -(kappa if kappa is not None else 0.0)
        return record.val_loss if record.val_loss is not None else math.inf


def check_request(name: str, request: TrainingRequest) -> None:
    """Refuse a run that cannot train or would touch the test images.

    Raises:
        ConfigError: no training or test images, or a test image among the training/validation ones.
    """
    if not request.train:
        raise ConfigError(f"{name}: no training images in the request")
    if not request.test:
        raise ConfigError(f"{name}: no test images to predict in the request")
    test_ids = {r.id for r in request.test}
    leaked = sorted(test_ids & {r.id for r in (*request.train, *request.val)})
    if leaked:
        raise ConfigError(f"{name}: test image {leaked[0]} is also a training or validation image")


def save_atomic(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str]) -> str:
    """Write a safetensors file atomically (temporary file in the same folder, then rename)."""
    return str(write_atomic(path, safetensors_save(tensors, metadata=metadata)))
