"""The whole task graph on a private 3-CPU Ray runtime: a tiny k-fold experiment with a diffusion
arm (3 folds) trains its three fold generators side by side and gives the same per-cell metrics and
the same synthetic images, byte for byte, as the local executor.

Each run has its own work folder (store, generators, run folder), so the Ray run trains and
generates everything again instead of finding the local run's results.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.test_experiment_cli import invoke
from tests.ray_runtime import private_ray

EXPERIMENT = """
name = "graph"
[dataset]
kind = "phantom"
n = {n}
[experiment]
protocol = "kfold"
folds = 3
repeats = 1
arms = {arms}
baseline = "{baseline}"
classifiers = ["cnn"]
seeds = [0]
policy = {{ kind = "balance-largest" }}
[settings]
image_size = 16
device = "cpu"
[settings.executor]
generator_cpus = 1
[settings.trainers.cnn]
epochs = 1
num_threads = 1
[settings.generators.diffusion]
profile = "tiny"
train_steps = {steps}
checkpoint_every = {steps}
sheet_per_grade = 1
sample_steps = 2
[settings.quality]
in_experiments = false
"""


@pytest.fixture(scope="module")
def ray_3_cpus() -> Iterator[object]:
    """A private Ray runtime with 3 CPUs for this module (one per fold generator)."""
    with private_ray(num_cpus=3) as ray:
        yield ray


def _digests(work: Path) -> dict[str, str]:
    """sha256 of every image the run made or stored under ``work`` (store images, generators'
    contact sheets; not the report's), by path relative to ``work``. A generator's folder is named
    by the store's random identity (``diffusion-<identity>-f0r0``): that part is left out."""
    digests = {}
    for path in sorted(work.rglob("*.png")):
        parts = list(path.relative_to(work).parts)
        if parts[0] == "runs":
            continue
        if parts[0] == "generators":
            name = parts[1].split("-")
            parts[1] = f"{name[0]}-{name[-1]}"
        digests["/".join(parts)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digests


def _cells(run: Path) -> dict[str, object]:
    cells = json.loads((run / "results.json").read_text())["cells"]
    return {json.dumps(c["key"], sort_keys=True): (c["metrics"], c["predictions"]) for c in cells}


def _local_and_ray(folder: Path, monkeypatch: pytest.MonkeyPatch, *, n: int, arms: list[str], steps: int) -> list[dict]:
    """Runs the experiment locally, then on Ray; checks they agree; returns Ray's generator rows of tasks.json."""
    baseline = "none" if "none" in arms else arms[0]
    (folder / "graph.toml").write_text(EXPERIMENT.format(n=n, arms=json.dumps(arms), baseline=baseline, steps=steps))
    for name, executor in (("local", "local"), ("ray", "ray")):
        monkeypatch.setenv("MEDAUG_WORK_DIR", str(folder / name))
        result = invoke("experiment", "run", "graph.toml", "--executor", executor)
        assert result.exit_code == 0, result.output
    local, ray = folder / "local", folder / "ray"
    synthetic = [path for path in _digests(local) if "diffusion" in path and not path.startswith("generators/")]
    assert len(synthetic) >= 3, sorted(_digests(local))  # each fold's arm made images
    assert _digests(ray) == _digests(local)  # every synthetic image and contact sheet, byte for byte
    cells = _cells(local / "runs" / "graph")
    assert len(cells) == 3 * len(arms)
    assert _cells(ray / "runs" / "graph") == cells
    rows = json.loads((ray / "runs" / "graph" / "tasks.json").read_text())["tasks"]
    assert {row["executor"] for row in rows} == {"ray"}
    return [row for row in rows if row["task"].startswith("generator:")]


def _side_by_side(generators: list[dict]) -> None:
    """The three fold generators trained at the same time, in three worker processes."""
    assert len(generators) == 3, generators
    assert max(row["started_s"] for row in generators) < min(row["ended_s"] for row in generators), generators
    assert len({row["where"] for row in generators}) == 3


# In the default suite: the fewest images and steps that still train, sample and score each fold.
def test_three_fold_generators_train_side_by_side_on_ray_and_match_the_local_run(
    cli_folder: Path, ray_3_cpus, monkeypatch: pytest.MonkeyPatch
) -> None:
    _side_by_side(_local_and_ray(cli_folder, monkeypatch, n=24, arms=["diffusion"], steps=8))


@pytest.mark.slow
def test_the_same_against_a_real_images_arm_with_longer_trainings(
    cli_folder: Path, ray_3_cpus, monkeypatch: pytest.MonkeyPatch
) -> None:
    _side_by_side(_local_and_ray(cli_folder, monkeypatch, n=45, arms=["none", "diffusion"], steps=40))
