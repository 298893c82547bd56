"""The frozen-backbone classifiers' linear head: best-epoch selection and early stopping."""

from __future__ import annotations

import pytest
import torch

from medaug.adapters.trainers.config import EfficientNetConfig
from medaug.adapters.trainers.head import FittedHead, fit_linear_head
from medaug.application.ports import NullProgress
from medaug.domain.metrics import quadratic_weighted_kappa


def _rows(n: int, seed: int, noise: float) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 5
    centres = torch.randn(5, 12, generator=torch.Generator().manual_seed(0))
    features = centres[labels] + noise * torch.randn(n, 12, generator=generator)
    return features, labels


TRAIN = _rows(60, 1, noise=2.0)
VAL = _rows(30, 2, noise=2.0)


def _fit(config: EfficientNetConfig, *, with_val: bool = True) -> FittedHead:
    val_x, val_y = VAL if with_val else (None, None)
    torch.manual_seed(3)  # the head's initial weights, as the trainer's seed_everything does
    return fit_linear_head(*TRAIN, val_x, val_y, config, generator=torch.Generator().manual_seed(3),
                           progress=NullProgress(), description="head")  # fmt: skip


def _val_kappa(fitted: FittedHead) -> float:
    with torch.inference_mode():
        return quadratic_weighted_kappa(VAL[1].tolist(), fitted.head(VAL[0]).argmax(dim=1).tolist())


def test_validation_loss_selects_the_epoch_of_lowest_loss_and_stops_after_patience() -> None:
    config = EfficientNetConfig(head_epochs=200, head_lr=0.05, c=100.0, early_stopping_patience=5)
    fitted = _fit(config)
    losses = [record.val_loss for record in fitted.history]
    assert fitted.best_epoch == 1 + losses.index(min(losses))
    assert len(fitted.history) == fitted.best_epoch + 5 < 200
    again = _fit(config.model_copy(update={"head_epochs": fitted.best_epoch, "select_best_on_val": False}))
    assert torch.equal(again.head.linear.weight, fitted.head.linear.weight)


@pytest.mark.parametrize("patience", [None, 2])
def test_without_validation_rows_every_epoch_is_trained_and_none_is_selected(patience: int | None) -> None:
    fitted = _fit(EfficientNetConfig(head_epochs=12, early_stopping_patience=patience), with_val=False)
    assert len(fitted.history) == 12 and fitted.best_epoch is None


def test_kappa_selection_keeps_the_epoch_of_highest_validation_kappa() -> None:
    config = EfficientNetConfig(head_epochs=15, head_lr=0.05, c=100.0, selection_metric="kappa",
                                early_stopping_patience=None)  # fmt: skip
    fitted = _fit(config)
    per_epoch = [
        _val_kappa(_fit(config.model_copy(update={"head_epochs": epoch, "select_best_on_val": False})))
        for epoch in range(1, 16)
    ]
    assert fitted.best_epoch is not None
    assert per_epoch[fitted.best_epoch - 1] == max(per_epoch) == pytest.approx(_val_kappa(fitted))
    assert per_epoch.index(max(per_epoch)) == fitted.best_epoch - 1
