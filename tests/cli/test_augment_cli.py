"""``medaug augment run`` / ``augment grid`` through the Typer app."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medaug.adapters.png import decode_png
from medaug.adapters.stores.local import LocalImageStore
from medaug.cli.app import app
from medaug.domain import Grade, Origin, Split
from tests.conftest import png_bytes, real_record

COUNTS = {0: 6, 1: 1, 2: 4, 3: 3, 4: 2}




@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # no stray ./medaug.toml
    monkeypatch.setenv("MEDAUG_IMAGE_SIZE", "24")
    monkeypatch.setenv("MEDAUG_WORK_DIR", str(tmp_path / "work"))
    monkeypatch.setenv("COLUMNS", "200")  # one line per table row
    root = tmp_path / "store"
    images = LocalImageStore(root)
    seed = 0
    for grade, count in COUNTS.items():
        for index in range(count):
            seed += 1
            images.put(real_record(f"r{grade}-{index}", grade), png_bytes(seed, 20))
    images.put(real_record("t0", 0, Split.TEST), png_bytes(99, 20))
    return root


def invoke(*args: str):  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(app, ["--quiet", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def test_augment_run_then_stats_shows_balanced_counts(store: Path) -> None:
    result = invoke("augment", "run", "--store", str(store), "--generator", "classic", "--target-total", "30")
    assert result.exit_code == 0, result.output
    assert "14 generated, 0 already present" in result.output

    stats = invoke("data", "stats", "--store", str(store))
    assert stats.exit_code == 0, stats.output
    assert "31 images" in stats.output  # 30 training images and the test image
    [synthetic_row] = [line for line in stats.output.splitlines() if "synthetic" in line]
    [real_row] = [line for line in stats.output.splitlines() if "train real" in line]
    real = [int(n) for n in re.findall(r"\b\d+\b", real_row)][:5]
    synthetic = [int(n) for n in re.findall(r"\b\d+\b", synthetic_row)][:5]
    assert real == [COUNTS[g] for g in range(5)]
    assert [r + s for r, s in zip(real, synthetic, strict=True)] == [6, 6, 6, 6, 6]

    images = LocalImageStore(store).list(origin=Origin.SYNTHETIC)
    assert len(images) == 14 and all(decode_png(LocalImageStore(store).get(i.id)).shape == (20, 20, 3) for i in images)  # made at the store's size, not settings.image_size


def test_augment_run_twice_adds_nothing(store: Path) -> None:
    invoke("augment", "run", "--store", str(store), "--target-total", "30")
    again = invoke("augment", "run", "--store", str(store), "--target-total", "30")
    assert again.exit_code == 0 and "0 generated, 14 already present" in again.output


def test_augment_grid_writes_a_png(store: Path, tmp_path: Path) -> None:
    invoke("augment", "run", "--store", str(store), "--target-total", "30", "--name", "thesis")
    out = tmp_path / "figures" / "sheet.png"
    result = invoke("augment", "grid", "--store", str(store), "--out", str(out), "--per-cell", "2")
    assert result.exit_code == 0, result.output
    height, width, _ = decode_png(out.read_bytes()).shape
    assert height > 5 * 96 and width > 2 * 2 * 96
    only = invoke("augment", "grid", "--store", str(store), "--out", str(out), "--augmentation", "thesis")
    assert only.exit_code == 0, only.output


def test_grid_of_an_unknown_set_is_one_line_error(store: Path, tmp_path: Path) -> None:
    result = invoke("augment", "grid", "--store", str(store), "--out", str(tmp_path / "x.png"), "--augmentation", "nope")
    assert result.exit_code == 2
    assert "no augmentation set 'nope'" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "x.png").exists()


def test_bad_classic_config_is_one_line_error(store: Path, tmp_path: Path) -> None:
    (tmp_path / "medaug.toml").write_text('[generators.classic]\npreset = "fancy"\n')
    result = invoke("augment", "run", "--store", str(store), "--target-total", "30")
    assert result.exit_code == 2
    assert "unknown preset 'fancy'" in result.output and "Traceback" not in result.output
    assert LocalImageStore(store).list(origin=Origin.SYNTHETIC) == []


def test_impossible_target_is_one_line_error(store: Path) -> None:
    result = invoke("augment", "run", "--store", str(store), "--target-total", "10")
    assert result.exit_code == 2
    assert f"grade 0 ({Grade(0).label}) already has 6" in result.output.replace("\n", " ")
