"""Distribution metrics (FID, KID, PRDC, diversity) and pixel similarity, on sets with a known answer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medaug.adapters.quality.metrics import diversity, fid, kid, kth_neighbour_distances, prdc
from medaug.adapters.quality.similarity import SimilarityBank, is_near_copy, mirrored, nearest_records
from medaug.domain import Grade
from medaug.domain.quality import QualityThresholds
from tests.quality_images import fundus_like, noise_image, perturbed


def _features(seed: int, n: int, shift: float = 0.0, dim: int = 8) -> torch.Tensor:
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed)) + shift


def _uint8(images: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()


# -- PRDC ------------------------------------------------------------------------------------------


def test_prdc_of_a_set_against_itself_is_perfect() -> None:
    real = _features(0, 40)
    precision, recall, density, coverage = prdc(real, real.clone(), k=3)
    assert precision == recall == coverage == 1.0
    assert density == pytest.approx(1.0, abs=0.35)


def test_prdc_of_a_far_set_is_zero() -> None:
    assert prdc(_features(0, 40), _features(1, 40, shift=50.0), k=3) == (0.0, 0.0, 0.0, 0.0)


def test_prdc_follows_naeem_on_a_hand_counted_case() -> None:
    real = torch.tensor([[0.0], [1.0], [2.0], [10.0]])
    fake = torch.tensor([[0.5], [20.0]])
    # k=1 radii of real points: 1, 1, 1, 8. The fake 0.5 is strictly inside the balls of 0 and 1;
    # 20 is in none. Fake radii (k=1): 19.5 each, so every real point is inside a fake ball.
    precision, recall, density, coverage = prdc(real, fake, k=1)
    assert precision == 0.5
    assert recall == 1.0
    assert density == pytest.approx(2 / 2)
    assert coverage == 0.5  # 0 and 1 have a fake point closer than their radius; 2 and 10 do not


def test_prdc_fits_k_to_tiny_sets_and_gives_up_below_two() -> None:
    assert prdc(_features(0, 3), _features(1, 2), k=5) is not None
    assert prdc(_features(0, 1), _features(1, 5), k=5) is None


def test_kth_neighbour_distance_skips_the_point_itself() -> None:
    points = torch.tensor([[0.0], [1.0], [3.0]])
    assert kth_neighbour_distances(points, 1).tolist() == [1.0, 1.0, 2.0]


# -- FID, KID, diversity ---------------------------------------------------------------------------


def test_fid_grows_with_the_distance_between_sets() -> None:
    real = _features(0, 200)
    same = fid(real, _features(1, 200))
    far = fid(real, _features(2, 200, shift=3.0))
    assert same is not None and far is not None
    assert same < 1.0 < 8 * 3.0**2 * 0.9 < far  # ||mean shift||^2 = 8 dims x 9


def test_fid_needs_two_images_a_side() -> None:
    assert fid(_features(0, 1), _features(1, 10)) is None


def test_kid_fits_the_subset_size_and_is_deterministic_by_seed() -> None:
    real, fake = _features(0, 30), _features(1, 7, shift=2.0)
    first = kid(real, fake, subset_size=50, subsets=10, seed=3)
    assert first is not None and first[2] == 7
    assert kid(real, fake, subset_size=50, subsets=10, seed=3) == first
    near = kid(real, _features(2, 7), subset_size=50, subsets=10, seed=3)
    assert near is not None and near[0] < first[0]
    assert kid(real, _features(1, 1), subset_size=50, subsets=10, seed=3) is None


def test_diversity_is_zero_for_copies_and_one_for_orthogonal_features() -> None:
    assert diversity(torch.ones(5, 4)) == pytest.approx(0.0, abs=1e-9)
    assert diversity(torch.eye(4)) == pytest.approx(1.0)
    assert diversity(torch.ones(1, 4)) is None


# -- pixel similarity ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bank() -> SimilarityBank:
    real = [fundus_like(seed, seed % 5) for seed in range(20)]
    return SimilarityBank(_uint8(real), sigma=1.0, flip_invariant=True)


def test_exact_perturbed_and_mirrored_copies_are_matched_to_their_source(bank: SimilarityBank) -> None:
    source = fundus_like(7, 2)
    queries = [source, perturbed(source, seed=1), np.ascontiguousarray(source[:, ::-1])]
    matches = bank.nearest(_uint8(queries), candidates=3)
    assert [m.index for m in matches] == [7, 7, 7]
    assert [m.transform for m in matches] == ["identity", "identity", "hflip"]
    assert matches[0].correlation == pytest.approx(1.0, abs=1e-5) and matches[0].ssim == pytest.approx(1.0, abs=1e-4)
    thresholds = QualityThresholds()
    assert all(is_near_copy(m.correlation, m.ssim, 0.0, thresholds) for m in matches)


def test_other_images_and_noise_are_not_near_copies(bank: SimilarityBank) -> None:
    others = [fundus_like(1000 + i, i % 5) for i in range(10)] + [noise_image(i) for i in range(5)]
    matches = bank.nearest(_uint8(others), candidates=3)
    thresholds = QualityThresholds()
    assert max(m.correlation for m in matches) < 0.5
    assert not any(is_near_copy(m.correlation, m.ssim, 0.0, thresholds) for m in matches)


def test_feature_cosine_flags_only_when_its_threshold_is_set() -> None:
    assert not is_near_copy(0.1, 0.1, 0.999, QualityThresholds())
    assert is_near_copy(0.1, 0.1, 0.999, QualityThresholds(feature_cosine=0.99))


def test_mirrored_is_its_own_inverse() -> None:
    image = torch.arange(2 * 3 * 4.0).view(1, 2, 3, 4)
    for transform in ("identity", "hflip", "vflip", "rot180"):
        assert torch.equal(mirrored(mirrored(image, transform), transform), image)


def test_nearest_records_put_near_copies_first(bank: SimilarityBank) -> None:
    queries = [fundus_like(500, 1), fundus_like(3, 3)]  # a new image, then a copy of training image 3
    matches = bank.nearest(_uint8(queries), candidates=2)
    cosines, indices = torch.tensor([0.2, 0.9]), torch.tensor([0, 3])
    records = nearest_records(["new", "copy"], [Grade(1), Grade(3)], matches, cosines, indices,
                              [f"r{i}" for i in range(20)], QualityThresholds())
    assert (records[0].image_id, records[0].flagged, records[0].pixel_id) == ("copy", True, "r3")
    assert records[1].image_id == "new" and not records[1].flagged
