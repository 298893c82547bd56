"""The installed distribution: one import root, every module of the design's folders inside it."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LAYERS = ("domain", "application", "adapters", "cli", "composition")


@pytest.fixture(scope="module")
def wheel_names(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    # Built from a copy: setuptools writes build/ and *.egg-info/ beside the sources it builds.
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy2(REPO / name, source / name)
    for layer in LAYERS:
        shutil.copytree(REPO / layer, source / layer, ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(source)],
        check=True,
        capture_output=True,
    )
    (wheel,) = out.glob("medaug-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def test_the_wheel_installs_one_top_level_name(wheel_names: list[str]) -> None:
    top_level = {name.split("/")[0] for name in wheel_names if ".dist-info/" not in name}
    assert top_level == {"medaug"}
    (listing,) = [name for name in wheel_names if name.endswith(".dist-info/top_level.txt")]
    assert listing


def test_every_module_of_the_design_folders_is_in_the_wheel(wheel_names: list[str]) -> None:
    expected = {
        f"medaug/{path.relative_to(REPO).as_posix()}" for layer in LAYERS for path in (REPO / layer).rglob("*.py")
    }
    assert expected - set(wheel_names) == set()
    assert "medaug/adapters/reporting/templates/report.html" in wheel_names
    assert "medaug/composition/experiments/quick.toml" in wheel_names


def test_a_foreign_top_level_adapters_package_does_not_break_medaug(tmp_path: Path) -> None:
    # AdapterHub's `adapters` (PyPI) claims the bare name: medaug must not need it nor shadow it.
    foreign = tmp_path / "site" / "adapters"
    foreign.mkdir(parents=True)
    (foreign / "__init__.py").write_text("WHO = 'adapterhub'\n")
    script = (
        "import adapters, medaug.adapters.stores.local, medaug.cli.app\n"
        "assert adapters.WHO == 'adapterhub', adapters.__file__\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path / "site"), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )
    assert result.stdout.strip() == "ok", result.stderr
