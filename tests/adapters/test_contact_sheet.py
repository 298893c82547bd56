"""Contact sheets: grades x (real | synthetic per augmentation set), deterministic, atomic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medaug.adapters.png import decode_png, encode_png
from medaug.adapters.reporting.contact_sheet import contact_sheet, write_contact_sheet
from medaug.adapters.stores.local import LocalImageStore
from medaug.application.errors import ConfigError, InputError
from medaug.composition import factories
from medaug.domain import Split
from tests.conftest import real_record, synthetic_record

THUMB = 16


def solid(colour: tuple[int, int, int], size: int = THUMB) -> bytes:
    return encode_png(np.full((size, size, 3), colour, dtype=np.uint8))


def colour(column: int, grade: int, index: int = 0) -> tuple[int, int, int]:
    """A colour unique to one image of one cell (never the sheet's white, grey or black)."""
    return (40 + 50 * column, 40 + 40 * grade, 30 + 20 * index)


def count(sheet: np.ndarray, rgb: tuple[int, int, int]) -> int:
    return int((sheet == np.array(rgb, dtype=np.uint8)).all(axis=-1).sum())


@pytest.fixture
def store(tmp_path: Path) -> LocalImageStore:
    """Real images in every grade; 'classic' synthetic images in grades 0-2; 'diffusion' in grade 4."""
    images = LocalImageStore(tmp_path / "store")
    for grade in range(5):
        for index in range(3):
            images.put(real_record(f"r{grade}-{index}", grade), solid(colour(0, grade, index)))
    for grade in range(3):
        for index in range(5):
            record = synthetic_record(f"c{grade}-{index}", grade, "classic", source=f"r{grade}-0")
            images.put(record, solid(colour(1, grade, index)))
    images.put(synthetic_record("d4-0", 4, "diffusion", source="r4-0"), solid(colour(2, 4)))
    images.put(real_record("t0", 0, Split.TEST), solid((255, 0, 255)))
    return images


def test_cells_show_per_cell_thumbnails_of_their_grade_and_origin(store: LocalImageStore) -> None:
    sheet = decode_png(contact_sheet(store, seed=0, per_cell=2, thumb=THUMB))
    for grade in range(5):
        real_shown = [count(sheet, colour(0, grade, i)) for i in range(3)]
        assert sorted(real_shown) == [0, THUMB**2, THUMB**2]
    for grade in range(3):
        assert sum(count(sheet, colour(1, grade, i)) for i in range(5)) == 2 * THUMB**2
    assert count(sheet, colour(2, 4)) == THUMB**2
    assert count(sheet, (255, 0, 255)) == 0  # test images are never shown


def test_one_augmentation_set_narrows_the_sheet(store: LocalImageStore) -> None:
    every = decode_png(contact_sheet(store, seed=0, per_cell=2, thumb=THUMB))
    one = decode_png(contact_sheet(store, seed=0, per_cell=2, thumb=THUMB, augmentation="diffusion"))
    assert one.shape[0] == every.shape[0] and one.shape[1] < every.shape[1]
    assert count(one, colour(2, 4)) == THUMB**2
    assert all(count(one, colour(1, 0, i)) == 0 for i in range(5))


def test_sheet_is_deterministic_and_the_seed_picks_the_images(store: LocalImageStore) -> None:
    first = contact_sheet(store, seed=0, per_cell=1, thumb=THUMB)
    assert contact_sheet(store, seed=0, per_cell=1, thumb=THUMB) == first
    picks = {
        tuple(count(decode_png(contact_sheet(store, per_cell=1, thumb=THUMB, seed=s)), colour(1, 0, i)) for i in range(5))
        for s in range(6)
    }
    assert len(picks) > 1


def test_rows_are_the_five_grades(store: LocalImageStore) -> None:
    small = decode_png(contact_sheet(store, seed=0, per_cell=1, thumb=32))
    large = decode_png(contact_sheet(store, seed=0, per_cell=1, thumb=64))
    assert large.shape[0] - small.shape[0] >= 5 * 32


def test_unknown_set_is_a_config_error_listing_the_sets(store: LocalImageStore) -> None:
    with pytest.raises(ConfigError, match="no augmentation set 'gan'; sets in the store: classic, diffusion"):
        contact_sheet(store, seed=0, augmentation="gan")


def test_empty_store_and_bad_sizes_are_config_errors(store: LocalImageStore, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no training images"):
        contact_sheet(LocalImageStore(tmp_path / "empty"), seed=0)
    with pytest.raises(ConfigError, match="per_cell"):
        contact_sheet(store, seed=0, per_cell=0)


def test_unreadable_image_is_an_input_error_naming_it(tmp_path: Path) -> None:
    images = LocalImageStore(tmp_path / "store")
    images.put(real_record("broken", 1), b"not a png")
    with pytest.raises(InputError, match="image broken"):
        contact_sheet(images, seed=0, per_cell=1)


def test_write_is_atomic_and_overwrites(store: LocalImageStore, tmp_path: Path) -> None:
    out = tmp_path / "figures" / "sheet.png"
    out.parent.mkdir()
    out.write_bytes(b"old")
    written = write_contact_sheet(store, out, seed=0, per_cell=1, thumb=THUMB)
    assert written == out
    assert out.read_bytes() == contact_sheet(store, seed=0, per_cell=1, thumb=THUMB)
    assert [p.name for p in out.parent.iterdir()] == ["sheet.png"]  # no temporary file left


def test_unwritable_destination_is_a_config_error(store: LocalImageStore, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigError, match="cannot write contact sheet"):
        write_contact_sheet(store, blocker / "sheet.png", seed=0, per_cell=1)


def test_bootstrap_delegates_to_the_contact_sheet(store: LocalImageStore, tmp_path: Path) -> None:
    out = factories.write_contact_sheet(store, tmp_path / "sheet.png", seed=0, per_cell=3, augmentation="classic")
    assert Path(out).read_bytes() == contact_sheet(store, seed=0, per_cell=3, augmentation="classic")
