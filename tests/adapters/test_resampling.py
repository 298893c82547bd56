"""The corrected resampled t-test against a hand computation, bootstrap intervals of pooled
metrics, the fold splitter and the duplicate finder."""

from __future__ import annotations

import io
import math

import pytest
from PIL import Image

from medaug.adapters.evaluation.duplicates import PixelDuplicateFinder
from medaug.adapters.evaluation.evaluator import SklearnEvaluator
from medaug.adapters.evaluation.folds import StratifiedGroupFolds
from medaug.adapters.evaluation.resampling import corrected_resampled_t_test, resampled_kappa
from medaug.application.errors import ConfigError
from medaug.domain.experiment import Predictions
from medaug.domain.metrics import quadratic_weighted_kappa
from tests.conftest import real_record
from tests.fakes import InMemoryImageStore


def test_corrected_t_test_matches_a_hand_computation() -> None:
    # d = (0.02, 0.04, 0.00, 0.06, 0.03): mean 0.03, sample variance 0.00050 (sum of squares
    # 0.0020 / 4). With 100 test and 400 training images per fold the variance is scaled by
    # 1/5 + 100/400 = 0.45: standard error sqrt(0.45 * 0.0005) = 0.015, t = 0.03 / 0.015 = 2.0,
    # 4 degrees of freedom: two-sided p = 0.116117 (t table), 97.5% quantile 2.776445.
    test = corrected_resampled_t_test([0.02, 0.04, 0.00, 0.06, 0.03], n_train=400, n_test=100)
    assert test.mean == pytest.approx(0.03)
    assert test.std == pytest.approx(math.sqrt(0.0005))
    assert test.t == pytest.approx(2.0)
    assert test.df == 4
    assert test.p_value == pytest.approx(0.116117, abs=1e-6)
    assert test.ci == pytest.approx((0.03 - 2.776445 * 0.015, 0.03 + 2.776445 * 0.015), abs=1e-6)
    # The uncorrected t-test would call the same differences significant (t = 3.0, p = 0.040).
    plain = corrected_resampled_t_test([0.02, 0.04, 0.00, 0.06, 0.03], n_train=1e12, n_test=1e-12)
    assert plain.t == pytest.approx(3.0) and plain.p_value < 0.05


def test_corrected_t_test_without_variance() -> None:
    assert corrected_resampled_t_test([0.0, 0.0], n_train=4, n_test=1).p_value == 1.0
    flat = corrected_resampled_t_test([0.1, 0.1, 0.1], n_train=4, n_test=1)
    assert flat.p_value == 0.0 and flat.ci == (pytest.approx(0.1), pytest.approx(0.1))
    with pytest.raises(ValueError):
        corrected_resampled_t_test([], n_train=4, n_test=1)


def _predictions(labels, predicted) -> Predictions:  # type: ignore[no-untyped-def]
    return Predictions(
        image_ids=tuple(f"i{n:03d}" for n in range(len(labels))), labels=tuple(labels), predicted=tuple(predicted),
        probabilities=tuple(tuple(1.0 if g == p else 0.0 for g in range(5)) for p in predicted),
    )


def test_vectorised_kappa_matches_the_domain_rule() -> None:
    import numpy as np

    rng = np.random.default_rng(1)
    labels, predicted = rng.integers(0, 5, 60), rng.integers(0, 5, 60)
    indices = rng.integers(0, 60, size=(20, 60))
    expected = [quadratic_weighted_kappa(labels[i].tolist(), predicted[i].tolist()) for i in indices]
    assert resampled_kappa(labels, predicted, indices) == pytest.approx(expected)


def test_pooled_intervals_cover_the_metric_and_the_difference() -> None:
    evaluator = SklearnEvaluator(resamples=2000, seed=0)
    labels = [g % 5 for g in range(200)]
    good = _predictions(labels, [y if n % 4 else (y + 1) % 5 for n, y in enumerate(labels)])
    bad = _predictions(labels, [y if n % 2 else (y + 2) % 5 for n, y in enumerate(labels)])
    low, high = evaluator.metric_interval("accuracy", [good])
    assert low < 0.75 < high and high - low < 0.15
    kappa_low, kappa_high = evaluator.metric_interval("quadratic_kappa", [good, good])
    assert kappa_low < evaluator.metrics(good).quadratic_kappa < kappa_high
    d_low, d_high = evaluator.difference_interval("quadratic_kappa", [good], [bad])
    assert 0 < d_low < d_high
    assert evaluator.difference_interval("accuracy", [good], [bad]) == evaluator.difference_interval(
        "accuracy", [good], [bad]
    )


def test_folds_are_stratified_group_aware_and_seeded() -> None:
    images = [real_record(f"im{n:03d}", n % 5) for n in range(100)]
    groups = {"im000": "p", "im001": "p", "im002": "p"}
    splitter = StratifiedGroupFolds()
    folds = splitter.split(images, groups=groups, folds=5, repeats=2, seed=3)
    assert [(a.repeat, a.fold) for a in folds] == [(r, f) for r in range(2) for f in range(5)]
    for repeat in range(2):
        tested = sorted(i for a in folds if a.repeat == repeat for i in a.test_ids)
        assert tested == sorted(i.id for i in images)
    for assignment in folds:
        grades = [int(assignment.test_ids[k][2:]) % 5 for k in range(len(assignment.test_ids))]
        assert all(3 <= grades.count(g) <= 5 for g in range(5))
        together = {"im000", "im001", "im002"} & set(assignment.test_ids)
        assert len(together) in (0, 3)
    assert folds == splitter.split(images, groups=groups, folds=5, repeats=2, seed=3)
    assert folds != splitter.split(images, groups=groups, folds=5, repeats=2, seed=4)
    with pytest.raises(ConfigError):
        splitter.split(images[:3], groups={}, folds=5, repeats=1, seed=0)


def _png(colour: tuple[int, int, int], *, noise: int = 0, text: str = "") -> bytes:
    image = Image.new("RGB", (64, 64), colour)
    if noise:
        image.putpixel((3, 3), tuple(min(c + noise, 255) for c in colour))
    buffer = io.BytesIO()
    info = None
    if text:
        from PIL.PngImagePlugin import PngInfo

        info = PngInfo()
        info.add_text("id", text)
    image.save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def test_duplicates_exact_pixels_near_pixels_and_conflicts() -> None:
    store = InMemoryImageStore()
    store.put(real_record("a", 3), _png((200, 80, 10), text="a"))
    store.put(real_record("b", 0), _png((200, 80, 10), text="b"))  # other bytes, same pixels
    store.put(real_record("c", 2), _png((10, 80, 200)))
    store.put(real_record("d", 2), _png((10, 80, 200), noise=40))  # one pixel differs
    store.put(real_record("e", 1), _png((90, 90, 90)))
    assert store.get("a") != store.get("b")
    groups = PixelDuplicateFinder().find(store, store.list())
    assert [(g.image_ids, g.kind, g.conflicting) for g in groups] == [
        (("a", "b"), "exact", True),
        (("c", "d"), "near", False),
    ]
    assert PixelDuplicateFinder(near_distance=0).find(store, store.list())[0].image_ids == ("a", "b")
    assert len(PixelDuplicateFinder(near_distance=0).find(store, store.list())) == 1


