"""End to end through the CLI: train the diffusion generator on a store, then augment with it."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from medaug.adapters.stores.local import LocalImageStore
from medaug.cli.app import app
from medaug.domain import Origin, Split
from tests.adapters.test_diffusion_fixtures import disc_images, disc_png, one_torch_thread  # noqa: F401
from tests.conftest import real_record

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An imbalanced store of 12 real training discs (5/1/2/2/2 per grade) plus 2 test images."""
    root = tmp_path / "store"
    images = LocalImageStore(root)
    for index, grade in enumerate((0, 0, 0, 0, 0, 1, 2, 2, 3, 3, 4, 4)):
        images.put(real_record(f"r{index:02d}", grade), disc_png(index, grade))
    for image in disc_images(17)[15:]:
        images.put(real_record(f"test-{image.image_id}", int(image.grade), Split.TEST), image.data)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MEDAUG_WORK_DIR", str(tmp_path / "work"))
    monkeypatch.setenv("MEDAUG_IMAGE_SIZE", "24")
    monkeypatch.setenv("MEDAUG_GENERATORS__DIFFUSION__PROFILE", "tiny")
    monkeypatch.setenv("MEDAUG_GENERATORS__DIFFUSION__TRAIN_STEPS", "4")
    monkeypatch.setenv("MEDAUG_GENERATORS__DIFFUSION__CHECKPOINT_EVERY", "2")
    return root


def _run(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, ["--quiet", *args])


def test_train_then_augment_fills_the_plan_with_provenance_and_a_rerun_adds_nothing(store: Path) -> None:
    trained = _run("generator", "train", "diffusion", "--store", str(store), "--profile", "tiny")
    assert trained.exit_code == 0, trained.output
    assert "diffusion: 4 steps" in trained.output
    again = _run("generator", "train", "diffusion", "--store", str(store))
    assert again.exit_code == 0 and "diffusion: 4 steps in 0 s" in again.output

    first = _run("augment", "run", "--store", str(store), "--generator", "diffusion", "--balance-largest")
    assert first.exit_code == 0, first.output
    synthetic = LocalImageStore(store).list(origin=Origin.SYNTHETIC, augmentation="diffusion")
    assert len(synthetic) == 13 and "13 generated" in first.output
    record = synthetic[0]
    assert record.provenance.generator == "diffusion"
    assert record.provenance.parameters["mode"] == "sample"
    assert record.provenance.parameters["checkpoint"] == "step-000004"
    assert record.provenance.parameters["seed"] == record.provenance.seed

    second = _run("augment", "run", "--store", str(store), "--generator", "diffusion", "--balance-largest")
    assert second.exit_code == 0 and "0 generated, 13 already present" in second.output


def test_variation_mode_and_strength_from_the_command_line(store: Path) -> None:
    assert _run("generator", "train", "diffusion", "--store", str(store)).exit_code == 0
    result = _run("augment", "run", "--store", str(store), "--generator", "diffusion", "--balance-largest",
                  "--mode", "variation", "--strength", "0.4", "--name", "diffvar")
    assert result.exit_code == 0, result.output
    records = LocalImageStore(store).list(augmentation="diffvar")
    assert records and all(r.provenance.parameters["strength"] == 0.4 for r in records)
    assert all(r.provenance.parameters["source"] == r.provenance.source_ids[0] for r in records)
    assert {r.provenance.source_ids[0] for r in records} <= {r.id for r in LocalImageStore(store).list(split=Split.TRAIN)}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--strength", "1.5"), "strength: Input should be less than or equal to 1"),
        (("--mode", "remix"), "mode: Input should be 'sample' or 'variation'"),
    ],
)
def test_bad_options_are_one_line_errors(store: Path, args: tuple[str, ...], message: str) -> None:
    result = _run("augment", "run", "--store", str(store), "--generator", "diffusion", *args)
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output


def test_augmenting_before_training_says_how_to_train(store: Path) -> None:
    result = _run("augment", "run", "--store", str(store), "--generator", "diffusion", "--balance-largest")
    assert result.exit_code == 2
    assert "no trained diffusion model" in result.output and "medaug generator train diffusion" in result.output


def test_unknown_profile_is_a_one_line_error(store: Path) -> None:
    result = _run("generator", "train", "diffusion", "--store", str(store), "--profile", "huge")
    assert result.exit_code == 2 and "unknown diffusion profile 'huge'" in result.output
