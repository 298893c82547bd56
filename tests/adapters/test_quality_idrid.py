"""The near-copy thresholds on real IDRiD photographs: copies are flagged, other patients are not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from medaug.adapters.datasets.idrid import IdridSource
from medaug.adapters.imaging.preprocess import FundusPreprocessor
from medaug.adapters.png import decode_png
from medaug.adapters.quality.config import QualityConfig
from medaug.adapters.quality.similarity import SimilarityBank, is_near_copy
from medaug.domain import Split
from tests.quality_images import perturbed

SIZE = 64
KNOWN_DUPLICATES = {("IDRiD_064", "IDRiD_118")}
"""A test photograph that is also in the training split (found by this pixel correlation)."""


def _pixels(idrid_root: Path, split: Split, count: int) -> tuple[list[str], list[np.ndarray]]:
    source, preprocessor = IdridSource(idrid_root), FundusPreprocessor(size=SIZE)
    items = [item for item in source.scan().items if item.split is split][:count]
    return [item.original_name.split(".")[0] for item in items], [
        decode_png(preprocessor.preprocess(source.read(item), item.original_name)) for item in items
    ]


def _uint8(images: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()


def test_copies_of_real_photographs_are_flagged_and_other_patients_are_not(idrid_root: Path) -> None:
    config = QualityConfig()
    train_names, train = _pixels(idrid_root, Split.TRAIN, 60)
    test_names, test = _pixels(idrid_root, Split.TEST, 30)
    bank = SimilarityBank(_uint8(train), sigma=config.highpass_sigma, flip_invariant=True)

    copies = [train[0], perturbed(train[1], seed=0, brightness=1.1), np.ascontiguousarray(train[2][::-1]),
              perturbed(np.ascontiguousarray(train[3][:, ::-1]), seed=1, brightness=0.9, noise=2.0)]
    matches = bank.nearest(_uint8(copies), candidates=config.ssim_candidates)
    assert [m.index for m in matches] == [0, 1, 2, 3]
    assert all(is_near_copy(m.correlation, m.ssim, 0.0, config.thresholds) for m in matches)

    others = bank.nearest(_uint8(test), candidates=config.ssim_candidates)
    flagged = {(test_names[i], train_names[m.index]) for i, m in enumerate(others)
               if is_near_copy(m.correlation, m.ssim, 0.0, config.thresholds)}
    assert flagged <= KNOWN_DUPLICATES
    unrelated = [m.correlation for i, m in enumerate(others) if (test_names[i], train_names[m.index]) not in KNOWN_DUPLICATES]
    assert max(unrelated) < config.thresholds.pixel_correlation - 0.1
