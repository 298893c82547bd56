"""Fold assignment on scikit-learn's StratifiedGroupKFold (stratified by grade, groups kept whole)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from medaug.application.errors import ConfigError
from medaug.domain import FundusImage
from medaug.domain.kfold import FoldAssignment


class StratifiedGroupFolds:
    """FoldSplitter: ``StratifiedGroupKFold`` with shuffling, one draw per repeat.

    Repeat ``r`` shuffles with seed ``seed + r``, so the repeats differ and every draw is
    reproducible from the recorded seed.
    """

    def split(
        self,
        images: Sequence[FundusImage],
        *,
        groups: dict[str, str],
        folds: int,
        repeats: int,
        seed: int,
    ) -> list[FoldAssignment]:
        """The test parts of ``folds`` folds for each of ``repeats`` repeats (see ``FoldSplitter``).

        Raises:
            ConfigError: fewer groups than folds.
        """
        ordered = sorted(images, key=lambda image: image.id)
        ids = [image.id for image in ordered]
        labels = np.asarray([int(image.grade) for image in ordered])
        units = np.asarray([groups.get(image_id, f"image:{image_id}") for image_id in ids])
        if len(set(units.tolist())) < folds:
            raise ConfigError(f"{len(set(units.tolist()))} image groups cannot make {folds} folds; lower folds")
        out = []
        for repeat in range(repeats):
            splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed + repeat)
            for fold, (train, test) in enumerate(splitter.split(np.zeros(len(ids)), labels, units)):
                out.append(
                    FoldAssignment(
                        repeat=repeat,
                        fold=fold,
                        test_ids=tuple(ids[i] for i in sorted(test)),
                        train_count=len(train),
                    )
                )
        return out
