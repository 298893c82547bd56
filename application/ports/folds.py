"""Ports: resampling protocols: fold assignment and duplicate detection among real images."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from medaug.application.ports.storage import ImageStore
from medaug.domain import FundusImage
from medaug.domain.kfold import DuplicateGroup, FoldAssignment


@runtime_checkable
class FoldSplitter(Protocol):
    """Assigns images to the test parts of k folds, repeated.

    Contract:
        - ``split(images, groups=, folds=, repeats=, seed=)`` returns ``folds x repeats``
          assignments (repeat-major, then fold) whose test parts partition ``images`` within
          each repeat.
        - Stratified by grade: each fold's grade counts are as even as the groups allow.
        - ``groups`` maps an image id to its group: images of one group share a fold. An image
          without an entry is its own group.
        - Deterministic by ``seed``; each repeat draws a different assignment.
        - Fewer units (groups) of a grade than folds is allowed; fewer units than folds in
          total raises ``ConfigError``.
    """

    def split(
        self,
        images: Sequence[FundusImage],
        *,
        groups: dict[str, str],
        folds: int,
        repeats: int,
        seed: int,
    ) -> list[FoldAssignment]: ...


@runtime_checkable
class DuplicateFinder(Protocol):
    """Finds real images that are copies of each other.

    Contract:
        - ``find(store, images)`` returns groups of two or more of ``images`` whose stored bytes
          are identical (``exact``) or whose pixels are nearly identical (``near``); an image is
          in at most one group; groups and their ids in a stable (sorted) order.
        - Reads pixels from ``store`` only; never changes it.
    """

    def find(self, store: ImageStore, images: Sequence[FundusImage]) -> list[DuplicateGroup]: ...
