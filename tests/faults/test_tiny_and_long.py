"""Issue 26 minor items: ``skipped:`` lines are never hard-wrapped (grep finds each whole), and an
image too small to hold a fundus is refused in one line, not upscaled in silence."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

from PIL import Image

from tests.faults.patients import patient_folder

CLI = [sys.executable, "-c", "from medaug.cli.app import main; main()", "-q"]


def _png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (170, 80, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def _ingest(folder: Path, csv: Path, store: Path) -> subprocess.CompletedProcess[str]:
    """The real command, its stderr a pipe (not a terminal), as in a CI log or a grep."""
    args = ["data", "ingest", "folder", str(folder), "--csv", str(csv), "--store", str(store), "--size", "32",
            "--split-column", "split", "--lenient"]
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "MEDAUG_LOG_LEVEL": "error", "COLUMNS": "80"})


def test_skipped_lines_are_whole_and_a_tiny_image_is_refused(tmp_path: Path) -> None:
    folder, csv, _ = patient_folder(tmp_path / "data", n=6, size=32)
    long_name = "corrupt-" + "x" * 180 + ".png"
    (folder / long_name).write_bytes(b"\x89PNG not really")
    (folder / "dot.png").write_bytes(_png(1, 1))
    with csv.open("a") as fh:
        fh.write(f"{long_name},2,train\ndot.png,1,train\n")
    result = _ingest(folder, csv, tmp_path / "store")
    assert result.returncode == 0, result.stderr
    skipped = [line for line in result.stderr.splitlines() if line.startswith("skipped")]
    assert any(long_name in line for line in skipped), result.stderr
    assert any("dot.png" in line and "too small" in line for line in skipped), result.stderr
    assert "6 added" in result.stdout and "2 skipped" in result.stdout
