"""Data-parallel training and generation under ``accelerate launch`` with two CPU processes (gloo).

Slow (two fresh interpreters import torch and diffusers): run with ``-m slow``. The module is
also the worker script that ``accelerate launch`` starts in each process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
REQUESTS = [(f"syn-{i}", i % 5, 100 + i) for i in range(5)]
STEPS = dict(train_steps=4, checkpoint_every=2, batch_size=4, sheet_per_grade=1, sample_steps=3)


def _generate(checkpoints: Path) -> list[dict]:
    from medaug.adapters.generators.diffusion.generator import DiffusionGenerator
    from medaug.application.ports import GenerationRequest
    from medaug.domain import Grade
    from tests.adapters.test_diffusion_fixtures import tiny_config

    generator = DiffusionGenerator(tiny_config(**STEPS), checkpoints, device="cpu")
    requests = [GenerationRequest(image_id=i, grade=Grade(g), seed=s, size=16) for i, g, s in REQUESTS]
    return [{"id": r.image_id, "png": r.data.hex(), "parameters": r.parameters} for r in generator.generate(requests)]


def _worker(out: Path) -> None:
    """What each process runs: train the tiny model, then generate; rank 0 writes a summary."""
    from medaug.adapters.generators.diffusion.training import DiffusionTrainer
    from medaug.application.ports import NullProgress
    from tests.adapters.test_diffusion_fixtures import disc_images, tiny_recipe

    torch.set_num_threads(1)
    result = DiffusionTrainer(tiny_recipe(**STEPS), out / "checkpoints", seed=3).train(
        disc_images(12), progress=NullProgress()
    )
    generated = _generate(out / "checkpoints")
    rank = int(os.environ.get("RANK", "0"))
    summary = {"result": result.model_dump(), "generated": generated, "world": os.environ.get("WORLD_SIZE")}
    (out / f"rank-{rank}.json").write_text(json.dumps(summary))


@pytest.mark.slow
def test_two_cpu_processes_train_one_model_and_share_generation(tmp_path: Path) -> None:
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--config_file",
        str(ROOT / "infra" / "accelerate" / "cpu-2proc.yaml"),
        "-m", "tests.adapters.test_diffusion_distributed", str(tmp_path),
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank-{r}.json").read_text()) for r in (0, 1)]
    assert [r["world"] for r in ranks] == ["2", "2"]
    result = ranks[0]["result"]
    assert result["steps"] == 4 and result["metrics"]["processes"] == 2
    config = json.loads((Path(result["checkpoint"]) / "config.json").read_text())
    assert config["world_size"] == 2
    # Both processes hold every image, and sharded generation equals one process making them all.
    assert ranks[0]["generated"] == ranks[1]["generated"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the workers: float results depend on the thread count
    try:
        single = _generate(tmp_path / "checkpoints")
    finally:
        torch.set_num_threads(threads)
    assert [g["png"] for g in single] == [g["png"] for g in ranks[0]["generated"]]


if __name__ == "__main__":
    _worker(Path(sys.argv[1]))
