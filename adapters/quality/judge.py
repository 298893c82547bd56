"""What quality assessment needs of a classifier, as protocols: the composition root provides them.

A *judge* is a grade classifier fitted on the real training images; its probabilities grade
synthetic images (label fidelity) and its features are a space to measure distances in. Quality
assessment never builds one itself, so it stays independent of the classifiers' code.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch

from medaug.application.ports import ImageStore, ProgressSink
from medaug.domain import FundusImage
from medaug.domain.experiment import Predictions


class Judge(Protocol):
    """A fitted grade classifier and its feature space.

    Contract:
        - ``size``: the side images given to ``scores`` are decoded at (None: as stored).
        - ``profile``: grade probabilities (Nx5, rows summing to 1) and features (NxD) of stored
          images, in order.
        - ``scores``: the same for a uint8 batch Nx3xSxS not in a store.
    """

    name: str
    size: int | None

    def profile(self, store: ImageStore, records: Sequence[FundusImage]) -> tuple[torch.Tensor, torch.Tensor]: ...

    def scores(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...


class JudgeMaker(Protocol):
    """Fits judges and train-on-synthetic classifiers of one kind.

    Contract:
        - ``fit``: a judge trained on ``train`` (model selection on ``val``, never on ``test``),
          deterministic by ``seed``; may be read from a cache.
        - ``train_and_predict``: a fresh classifier trained on ``train`` alone, predicting ``test``.
        - Missing weights or packages raise ``ConfigError`` (when built, before any work).
    """

    name: str

    def fit(
        self,
        store: ImageStore,
        train: Sequence[FundusImage],
        *,
        val: Sequence[FundusImage],
        test: Sequence[FundusImage],
        seed: int,
        progress: ProgressSink,
    ) -> Judge: ...

    def train_and_predict(
        self, store: ImageStore, train: Sequence[FundusImage], *, test: Sequence[FundusImage], seed: int, progress: ProgressSink
    ) -> Predictions: ...
