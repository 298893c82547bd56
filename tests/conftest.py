"""Shared fixtures: small PNG images, records, the shared data folder."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medaug.domain import FundusImage, Grade, Origin, Provenance, Split
from medaug.domain.images import storage_key

os.environ.setdefault("MEDAUG_LOG_FORMAT", "json")

pytest_plugins = ["tests.s3_server"]  # S3 fixtures: moto's server on 127.0.0.1, buckets, outages

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
# Where the IDRiD tests find the data set: MEDAUG_TEST_IDRID (its official layout) and
# MEDAUG_TEST_IDRID_ORIGINALS (full-size originals), by default the maintainers' folder beside the checkout.
IDRID = Path(os.environ.get("MEDAUG_TEST_IDRID", SHARED / "datasets" / "idrid"))
IDRID_ORIGINALS = Path(os.environ.get("MEDAUG_TEST_IDRID_ORIGINALS", SHARED / "datasets" / "idrid-originals"))


def png_bytes(seed: int = 0, size: int = 16) -> bytes:
    """A small random RGB PNG."""
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def real_record(image_id: str, grade: int = 0, split: Split = Split.TRAIN) -> FundusImage:
    """A real image record with its canonical key."""
    g = Grade(grade)
    return FundusImage(
        id=image_id,
        key=storage_key(split, g, image_id),
        grade=g,
        split=split,
        origin=Origin.REAL,
        provenance=Provenance(generator="test", original_name=f"{image_id}.jpg"),
    )


def synthetic_record(image_id: str, grade: int = 0, augmentation: str = "classic", source: str = "a") -> FundusImage:
    """A synthetic training image record."""
    g = Grade(grade)
    return FundusImage(
        id=image_id,
        key=storage_key(Split.TRAIN, g, image_id),
        grade=g,
        split=Split.TRAIN,
        origin=Origin.SYNTHETIC,
        augmentation=augmentation,
        provenance=Provenance(source_ids=(source,), generator="classic", parameters={"op": "hflip"}, seed=1),
    )


@pytest.fixture
def idrid_root() -> Path:
    """The real IDRiD grading set, or a clean skip when it is absent."""
    if not (IDRID / "B. Disease Grading").is_dir():
        pytest.skip(f"IDRiD is not at {IDRID} (set MEDAUG_TEST_IDRID)")
    return IDRID


@pytest.fixture
def idrid_originals() -> Path:
    """The four full-resolution IDRiD originals, or a clean skip."""
    if not IDRID_ORIGINALS.is_dir():
        pytest.skip(f"the IDRiD originals are not at {IDRID_ORIGINALS} (set MEDAUG_TEST_IDRID_ORIGINALS)")
    return IDRID_ORIGINALS


@pytest.fixture(autouse=True)
def _restore_logging():  # type: ignore[no-untyped-def]
    """CLI tests configure structlog; put the defaults back so tests stay independent."""
    import structlog

    yield
    structlog.reset_defaults()


@pytest.fixture
def cli_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``tmp_path`` as the working directory (no stray ./medaug.toml) and ``tmp_path/work`` as
    the work folder, with wide terminal output (one line per table row)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MEDAUG_WORK_DIR", str(tmp_path / "work"))
    monkeypatch.setenv("COLUMNS", "200")
    return tmp_path
