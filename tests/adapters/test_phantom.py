"""The phantom data set: contract, determinism, IDRiD-like labels, and grade-dependent lesions."""

from __future__ import annotations

from collections import Counter
from itertools import pairwise

import numpy as np
import pytest

from medaug.adapters.datasets.phantom import IDRID_TRAINING_COUNTS, PhantomSource
from medaug.adapters.datasets.phantom_drawing import draw_phantom
from medaug.adapters.png import decode_png
from medaug.application.errors import ConfigError, InputError
from medaug.application.ports import SourceItem
from medaug.domain import Grade, Split
from tests.contracts.dataset_source import DatasetSourceContract

EYES = range(6)


class TestPhantomContract(DatasetSourceContract):
    @pytest.fixture
    def source(self) -> PhantomSource:
        return PhantomSource(12, seed=1, size=32)


def _grade_counts(items, split: Split | None = None) -> Counter[int]:  # type: ignore[no-untyped-def]
    return Counter(int(i.grade) for i in items if split is None or i.split is split)


# -- determinism ------------------------------------------------------------------------------


def test_same_seed_same_bytes_other_seed_other_bytes() -> None:
    first, again, other = (PhantomSource(8, seed=s, size=48) for s in (5, 5, 6))
    item = first.scan().items[3]
    assert first.scan() == again.scan()
    assert first.read(item) == again.read(item)
    assert not np.array_equal(decode_png(first.read(item)), decode_png(other.read(item)))


def test_images_differ_within_a_set() -> None:
    source = PhantomSource(4, seed=0, size=48)
    images = [decode_png(source.read(item)) for item in source.scan().items]
    assert all(not np.array_equal(images[0], image) for image in images[1:])


def test_image_and_label_of_index_i_do_not_depend_on_n() -> None:
    small, large = PhantomSource(30, seed=2, size=40), PhantomSource(90, seed=2, size=40)
    small_items, large_items = small.scan().items, large.scan().items
    assert large_items[:30] == small_items
    for index in (0, 17, 29):
        assert small.read(small_items[index]) == large.read(large_items[index])


# -- labels: IDRiD-like imbalance, stratified split --------------------------------------------


def test_grades_follow_idrid_proportions_and_every_grade_is_in_both_splits() -> None:
    items = PhantomSource(500, seed=0, size=32).scan().items
    counts = _grade_counts(items)
    expected = np.array(IDRID_TRAINING_COUNTS) / sum(IDRID_TRAINING_COUNTS)
    observed = np.array([counts[g] for g in range(5)]) / len(items)
    assert np.abs(observed - expected).max() < 0.05, observed
    for split in (Split.TRAIN, Split.TEST):
        assert min(_grade_counts(items, split)[g] for g in range(5)) >= 2
    test_share = sum(i.split is Split.TEST for i in items) / len(items)
    assert 0.17 < test_share < 0.23


def test_split_is_stratified_by_grade() -> None:
    items = PhantomSource(500, seed=4, size=32, test_fraction=0.3).scan().items
    totals, tests = _grade_counts(items), _grade_counts(items, Split.TEST)
    for grade in range(5):
        assert abs(tests[grade] / totals[grade] - 0.3) < 0.08


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fifty_images_hold_two_of_every_grade_in_each_split(seed: int) -> None:
    items = PhantomSource(50, seed=seed, size=32).scan().items
    for split in (Split.TRAIN, Split.TEST):
        assert min(_grade_counts(items, split)[g] for g in range(5)) >= 2


def test_ids_are_sequential_and_test_fraction_zero_means_no_test_split() -> None:
    items = PhantomSource(25, seed=0, size=32, test_fraction=0.0).scan().items
    assert [i.id for i in items[:2]] == ["phantom-00000", "phantom-00001"]
    assert all(i.split is Split.TRAIN for i in items)
    assert set(_grade_counts(items)) == set(range(5))


# -- pixels: a fundus photograph ----------------------------------------------------------------


@pytest.mark.parametrize("size", [16, 17, 64, 255, 512])
def test_any_size_gives_a_4_3_frame_of_that_height(size: int) -> None:
    source = PhantomSource(5, seed=3, size=size)
    image = decode_png(source.read(source.scan().items[-1]))
    assert image.shape == (size, round(size * 4 / 3), 3)
    assert image[size // 2, image.shape[1] // 2].max() > 60  # the field is lit


@pytest.mark.parametrize("size", [64, 256])
def test_field_is_a_circle_on_a_dark_surround(size: int) -> None:
    pixels = draw_phantom(seed=9, index=2, grade=2, size=size).pixels
    corners = pixels[[0, 0, -1, -1], [0, -1, 0, -1]]
    assert corners.max() < 12
    lit = pixels.max(axis=2) > 40
    widths = lit.sum(axis=1).astype(float)
    radius, centre = widths.max() / 2, np.flatnonzero(widths == widths.max()).mean()
    assert 0.45 * size < radius < 0.56 * size
    rows = np.arange(size)
    near = np.abs(rows - centre) < 0.85 * radius
    circle = 2 * np.sqrt(radius**2 - (rows[near] - centre) ** 2)
    assert np.abs(widths[near] - circle).max() <= max(3.0, 0.03 * size)


def test_optic_disc_is_the_brightest_yellow_spot_on_either_side() -> None:
    sides = set()
    for index in EYES:
        pixels = draw_phantom(seed=0, index=index, grade=0, size=96).pixels.astype(int)
        brightest = np.unravel_index(np.argmax(pixels[..., 1]), pixels.shape[:2])
        assert pixels[brightest][0] > 200 and pixels[brightest][1] > 140  # yellow-white, not red
        sides.add(brightest[1] > pixels.shape[1] / 2)
    assert sides == {True, False}  # both eyes occur


# -- lesions: the grade is visible ----------------------------------------------------------------


def _visible_change(index: int, grade: int, size: int = 96) -> float:
    """Share of field pixels that differ visibly from the same eye drawn without disease."""
    healthy = draw_phantom(seed=5, index=index, grade=0, size=size)
    sick = draw_phantom(seed=5, index=index, grade=grade, size=size)
    changed = np.abs(sick.pixels.astype(int) - healthy.pixels.astype(int)).sum(axis=2) > 40
    return float(changed[healthy.field].mean())


def test_grade_only_adds_lesions_to_the_same_eye() -> None:
    assert _visible_change(0, 0) == 0.0
    healthy = draw_phantom(seed=5, index=0, grade=0, size=64)
    assert not healthy.red_lesions.any() and not healthy.bright_lesions.any()


def test_visible_lesion_load_rises_with_every_grade_at_64_px() -> None:
    load = [np.mean([_visible_change(i, g, size=64) for i in EYES]) for g in range(5)]
    assert all(a < b for a, b in pairwise(load)), load
    assert load[1] > 0.002  # microaneurysms survive at 64 px


def test_red_and_bright_lesion_masks_follow_the_scale() -> None:
    red = np.zeros((5, len(EYES)))
    bright = np.zeros((5, len(EYES)))
    for g in range(5):
        for i in EYES:
            drawing = draw_phantom(seed=1, index=i, grade=g, size=96)
            red[g, i] = drawing.red_lesions[drawing.field].mean()
            bright[g, i] = drawing.bright_lesions[drawing.field].mean()
    assert (red[0] == 0).all() and (red[1] > 0).all()
    assert red[1].mean() < red[2].mean() < red[3].mean() < red[4].mean()
    assert (bright[:2] == 0).all() and (bright[2:] > 0).all()


def test_each_grade_has_its_defining_findings() -> None:
    for i in EYES:
        assert set(draw_phantom(2, i, 1, 48).findings) == {"microaneurysms"}
        assert 3 <= draw_phantom(2, i, 1, 48).findings["microaneurysms"] <= 8
        moderate = draw_phantom(2, i, 2, 48).findings
        assert {"haemorrhages", "hard_exudates", "cotton_wool_spots"} <= set(moderate)
        severe = draw_phantom(2, i, 3, 48).findings
        assert severe["haemorrhages"] >= 20 and severe["venous_beading"] >= 2
        proliferative = draw_phantom(2, i, 4, 48).findings
        assert {"neovascular_tufts", "preretinal_haemorrhages"} & set(proliferative)
        assert proliferative["haemorrhages"] >= 20


def test_severe_haemorrhages_lie_in_all_four_quadrants() -> None:
    for i in EYES:
        drawing = draw_phantom(seed=3, index=i, grade=3, size=128)
        rows, cols = np.nonzero(drawing.field)
        cy, cx = rows.mean(), cols.mean()
        red_rows, red_cols = np.nonzero(drawing.red_lesions)
        quadrants = {(r < cy, c < cx) for r, c in zip(red_rows, red_cols, strict=True)}
        assert len(quadrants) == 4


def test_microaneurysms_are_visible_dots_at_64_px() -> None:
    for i in EYES:
        healthy = draw_phantom(seed=8, index=i, grade=0, size=64).pixels.astype(int)
        mild = draw_phantom(seed=8, index=i, grade=1, size=64).pixels.astype(int)
        darker = (healthy - mild)[..., 1]  # red lesions show best in the green channel
        assert (darker > 15).sum() >= 3


# -- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"n": 0}, "n must be >= 1"),
        ({"n": 2.5}, "n must be an integer"),
        ({"size": 15}, "size must be between 16"),
        ({"size": True}, "size must be an integer"),
        ({"test_fraction": 1.0}, "test_fraction"),
        ({"test_fraction": -0.1}, "test_fraction"),
        ({"seed": "x"}, "seed must be an integer"),
    ],
)
def test_bad_arguments_are_one_line_config_errors(kwargs: dict, words: str) -> None:
    arguments = {"n": 10, "seed": 0, "size": 32, "test_fraction": 0.2} | kwargs
    with pytest.raises(ConfigError, match=words) as error:
        PhantomSource(**arguments)
    assert "phantom" in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("locator", ["7", "-1", "x"])
def test_reading_an_index_outside_the_set_names_it(locator: str) -> None:
    source = PhantomSource(5, seed=0, size=32)
    item = SourceItem(id="odd", grade=Grade(1), split=Split.TRAIN, locator=locator, original_name="odd.png")
    with pytest.raises(InputError, match="odd.png"):
        source.read(item)


# -- through the ingest pipeline -----------------------------------------------------------------


def test_ingested_phantom_fills_the_square_and_a_larger_set_only_adds(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from medaug.adapters.imaging.preprocess import FundusPreprocessor
    from medaug.adapters.stores.local import LocalImageStore
    from medaug.application.services.ingest import ingest

    store, preprocessor = LocalImageStore(tmp_path / "store"), FundusPreprocessor(size=48)
    first = ingest(PhantomSource(12, seed=4, size=48), preprocessor, store, seed=0)
    records = {r.id: r for r in store.list()}
    image = decode_png(store.get("phantom-00003"))
    assert image.shape == (48, 48, 3)
    assert image[24, [1, -2]].max(axis=1).min() > 40  # the retina reaches both sides of the square
    more = ingest(PhantomSource(20, seed=4, size=48), preprocessor, store, seed=0)
    assert (first.added, more.added, more.already_present) == (12, 8, 12)
    assert all(store.record(i) == r for i, r in records.items())
    assert {r.provenance.generator for r in store.list()} == {"phantom"}
