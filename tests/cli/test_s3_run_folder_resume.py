"""A k-fold experiment whose work folder and store are on S3 (moto's server on 127.0.0.1), killed
mid-run (SIGKILL) and restarted on "another machine" (an empty scratch folder): it finishes with
nothing done twice and nothing lost.

Nothing done twice is read from S3 itself: the bucket keeps every version of every object, so a
cell saved twice, or a generator checkpoint trained twice (rewritten locally, so pushed again),
shows as a second version. Nothing lost: the per-cell metrics equal those of an uninterrupted run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from medaug.adapters.stores.s3_client import make_s3_client
from tests.s3_server import ACCESS_KEY, REGION, SECRET_KEY, s3_config

REPO = Path(__file__).resolve().parents[2]

EXPERIMENT = """
name = "tiny-s3"
[dataset]
kind = "phantom"
n = 40
[experiment]
protocol = "kfold"
folds = 3
repeats = 1
arms = {arms}
baseline = "none"
classifiers = ["cnn"]
seeds = [0]
policy = {{ kind = "balance-largest" }}
[settings]
image_size = 32
device = "cpu"
[settings.executor]
generator_cpus = 1
[settings.trainers.cnn]
epochs = 1
num_threads = 1
[settings.generators.dcgan]
profile = "tiny"
[settings.generators.diffusion]
profile = "tiny"
train_steps = 40
checkpoint_every = 20
sheet_per_grade = 1
sample_steps = 2
[settings.quality]
in_experiments = false
"""


def _environment(endpoint: str, bucket: str, work: str, scratch: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), str(REPO)])),
        "MEDAUG_WORK_DIR": f"s3://{bucket}/{work}",
        "MEDAUG_SCRATCH_DIR": str(scratch),
        "MEDAUG_STORE__KIND": "s3",
        "MEDAUG_STORE__S3__BUCKET": bucket,
        "MEDAUG_STORE__S3__PREFIX": f"{work}-stores",
        "MEDAUG_STORE__S3__ENDPOINT_URL": endpoint,
        "MEDAUG_STORE__S3__REGION": REGION,
        # the killed run's writer lease on the store lapses in seconds, and the restart waits for it
        "MEDAUG_STORE__S3__LEASE_SECONDS": "5",
        "MEDAUG_STORE__LOCK_WAIT_SECONDS": "30",
        "MEDAUG_LOG_FORMAT": "json",
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }


def _start(env: dict[str, str], experiment: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", "from cli.app import main; main()", "experiment", "run", str(experiment)],
        env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, cwd=experiment.parent,
    )


def _versions(client, bucket: str, prefix: str) -> Counter[str]:  # type: ignore[no-untyped-def]
    """How many times each object under ``prefix`` was written (delete markers not counted)."""
    counts: Counter[str] = Counter()
    for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        for version in page.get("Versions", []):
            counts[version["Key"]] += 1
    return counts


def _metrics(client, bucket: str, work: str) -> dict[str, dict[str, object]]:  # type: ignore[no-untyped-def]
    body = client.get_object(Bucket=bucket, Key=f"{work}/runs/tiny-s3/results.json")["Body"].read()
    return {
        "__".join(str(v) for v in cell["key"].values()): cell["metrics"]
        for cell in json.loads(body)["cells"]
    }


def _events(log: Path, event: str) -> int:
    return sum(1 for line in log.read_text().splitlines() if f'"event": "{event}"' in line)


def _on_ray(env: dict[str, str]) -> dict[str, str]:
    """The same run on a private 2-CPU Ray runtime (each fold's generator asks for one: side by side)."""
    return {**env, "MEDAUG_EXECUTOR__KIND": "ray", "MEDAUG_EXECUTOR__LOCAL_CPUS": "2"}


def _killed_and_restarted(tmp_path: Path, moto_endpoint: str, arms: list[str], *, ray: bool = False) -> None:
    cells = 3 * len(arms)
    client = make_s3_client(s3_config(moto_endpoint, "unused"))
    bucket = f"medaug-resume-{os.getpid()}-{time.monotonic_ns() % 10**9}"
    client.create_bucket(Bucket=bucket)
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    experiment = tmp_path / "tiny.toml"
    experiment.write_text(EXPERIMENT.format(arms=json.dumps(arms)))

    executor = _on_ray if ray else dict
    reference = _start(_environment(moto_endpoint, bucket, "ref", tmp_path / "ref"), experiment, tmp_path / "ref.log")
    assert reference.wait(timeout=300) == 0, (tmp_path / "ref.log").read_text()[-3000:]

    env = executor(_environment(moto_endpoint, bucket, "w", tmp_path / "machine-a"))
    first = _start(env, experiment, tmp_path / "first.log")
    deadline = time.monotonic() + 300
    saved = 0
    while time.monotonic() < deadline and first.poll() is None:
        listed = client.list_objects_v2(Bucket=bucket, Prefix="w/runs/tiny-s3/cells/").get("KeyCount", 0)
        saved = int(listed)
        if saved >= len(arms) + 1:  # the first fold done, the second under way
            break
        time.sleep(0.05)
    assert first.poll() is None, "the run finished before it could be killed"
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert 0 < saved < cells

    restart = executor(_environment(moto_endpoint, bucket, "w", tmp_path / "machine-b"))  # an empty scratch: another machine
    second = _start(restart, experiment, tmp_path / "second.log")
    assert second.wait(timeout=300) == 0, (tmp_path / "second.log").read_text()[-3000:]

    assert _metrics(client, bucket, "w") == _metrics(client, bucket, "ref")  # nothing lost
    assert len(_metrics(client, bucket, "w")) == cells
    written = _versions(client, bucket, "w/")
    cell_writes = {k: n for k, n in written.items() if "/cells/" in k}
    assert len(cell_writes) == cells and set(cell_writes.values()) == {1}, cell_writes  # no cell done twice
    trained = _events(tmp_path / "first.log", "cell_done") + _events(tmp_path / "second.log", "cell_done")
    assert trained <= cells  # a cell killed after its save but before its log line is not logged
    checkpoints = {k: n for k, n in written.items() if "/generators/" in k and k.endswith(".safetensors")}
    assert all(n == 1 for n in checkpoints.values()), checkpoints  # no checkpoint trained twice
    if {"dcgan", "diffusion"} & set(arms):
        assert {k.split("/")[2][-4:] for k in checkpoints} == {"f0r0", "f1r0", "f2r0"}  # one model per fold, on S3
    if "dcgan" in arms:
        assert _events(tmp_path / "second.log", "dcgan_already_trained") <= 1  # only the interrupted fold's


def test_a_killed_s3_run_restarted_elsewhere_finishes_with_nothing_twice_and_nothing_lost(
    tmp_path: Path, moto_endpoint: str
) -> None:
    _killed_and_restarted(tmp_path, moto_endpoint, ["none", "classic"])


@pytest.mark.slow
def test_the_same_with_a_dcgan_arm_trains_each_fold_generator_once(tmp_path: Path, moto_endpoint: str) -> None:
    _killed_and_restarted(tmp_path, moto_endpoint, ["none", "classic", "dcgan"])


@pytest.mark.slow
def test_a_killed_ray_run_with_a_diffusion_arm_on_s3_finishes_like_the_local_one(tmp_path: Path, moto_endpoint: str) -> None:
    """The reference runs on the local executor; the killed run and its restart on Ray."""
    pytest.importorskip("ray")
    _killed_and_restarted(tmp_path, moto_endpoint, ["none", "diffusion"], ray=True)
