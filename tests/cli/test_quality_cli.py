"""``medaug quality`` and ``medaug augment run --screen-drop-near-copies/--screen-min-confidence`` through the Typer app."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medaug.adapters.png import encode_png
from medaug.adapters.stores.local import LocalImageStore
from medaug.cli.app import app
from medaug.domain import Origin
from tests.quality_images import SIZE, fill_real, fundus_like, noise_image, synthetic

CONFIG = f"""
image_size = {SIZE}
[quality]
similarity_size = {SIZE}
kid_subsets = 10
num_threads = 1
worst_pairs = 2
[quality.cnn]
epochs = 4
input_size = {SIZE}
batch_size = 16
channels = [8, 16, 32]
fc = [32, 32, 16]
online_augmentation = false
num_threads = 1
"""


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "medaug.toml").write_text(CONFIG)
    monkeypatch.setenv("MEDAUG_WORK_DIR", str(tmp_path / "work"))
    monkeypatch.setenv("COLUMNS", "220")
    root = tmp_path / "store"
    images = LocalImageStore(root)
    fill_real(images, train_per_grade=4, test_per_grade=2)
    return root


def _add_sets(root: Path) -> None:
    images = LocalImageStore(root)
    for grade in range(5):
        copy = fundus_like(100 * grade, grade)  # = train-g<grade>-0
        images.put(synthetic(f"copies-g{grade}", grade, "copies", generator="copier"), encode_png(copy))
        images.put(synthetic(f"noise-g{grade}", grade, "noise", generator="noiser"), encode_png(noise_image(grade)))


def invoke(*args: str):  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(app, ["--quiet", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def test_quality_prints_a_table_per_set_and_writes_json_and_plots(store: Path, tmp_path: Path) -> None:
    _add_sets(store)
    out = tmp_path / "out"
    result = invoke("quality", "--store", str(store), "--out", str(out))
    assert result.exit_code == 0, result.output
    for text in ("copies (copier)", "noise (noiser)", "held-out real", "FID", "coverage", "graded as intended",
                 "5 of 5 synthetic images are near-copies", "0 of 5 synthetic images are near-copies"):
        assert text in result.output, text
    saved = json.loads((out / "quality.json").read_text())
    assert set(saved) == {"copies", "noise"} and saved["copies"]["memorisation"]["summary"]["flagged"] == 5
    assert "noise: synthetic images told from real training images with AUC" in result.output
    assert saved["noise"]["shortcut"]["n_synthetic"] == 5 and saved["noise"]["shortcut"]["auc"] is not None
    names = {p.name for p in out.iterdir()}
    assert {"manifold.png", "similarity-copies.png", "fidelity-noise.png", "worst-pairs-copies.png"} <= names
    assert all((out / n).read_bytes().startswith(b"\x89PNG") for n in names if n.endswith(".png"))


def test_quality_of_one_generator_only(store: Path, tmp_path: Path) -> None:
    _add_sets(store)
    result = invoke("quality", "--store", str(store), "--generator", "noiser", "--out", str(tmp_path / "o"))
    assert result.exit_code == 0, result.output
    assert "noise (noiser)" in result.output and "copies (copier)" not in result.output


def test_quality_without_synthetic_images_is_one_line_error(store: Path) -> None:
    result = invoke("quality", "--store", str(store))
    assert result.exit_code == 2
    assert "no augmentation set" in result.output and "Traceback" not in result.output


def test_augment_with_the_screen_records_the_screen_in_provenance(store: Path) -> None:
    result = invoke("augment", "run", "--store", str(store), "--generator", "classic", "--target-total", "30",
                    "--screen-min-confidence", "0")
    assert result.exit_code == 0, result.output
    records = LocalImageStore(store).list(origin=Origin.SYNTHETIC)
    assert records and all(r.provenance.parameters["screen"]["name"] == "quality" for r in records)
    assert all("confidence" in r.provenance.parameters["screen"] for r in records)


def test_dropping_near_copies_rejects_classic_flips_of_training_images(store: Path) -> None:
    result = invoke("augment", "run", "--store", str(store), "--generator", "classic", "--target-total", "30",
                    "--screen-drop-near-copies")
    assert result.exit_code == 0, result.output
    assert "rejected by the screen" in result.output and "still rejected after 5 attempts" in result.output
