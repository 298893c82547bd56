"""``medaug augment run --generator openai`` end to end against the local fake images API."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medaug.adapters.stores.local import LocalImageStore
from medaug.cli.app import app
from tests.conftest import png_bytes, real_record
from tests.fake_openai_server import FakeOpenAI, image, rate_limit, server_error, slow

KEY = "medaug-cli-test-key-93be7d01"
REPO = Path(__file__).resolve().parents[2]




@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(key=KEY) as server:
        yield server


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """Six real training images (grades 0,0,1,2,3,4): ``--multiply 2`` plans six openai images."""
    root = tmp_path / "store"
    images = LocalImageStore(root)
    for i, grade in enumerate([0, 0, 1, 2, 3, 4]):
        images.put(real_record(f"R{i}", grade), png_bytes(seed=i, size=32))
    return root


@pytest.fixture
def env(tmp_path: Path, fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.chdir(tmp_path)  # no stray ./medaug.toml
    return {
        "MEDAUG_WORK_DIR": str(tmp_path / "work"),
        "MEDAUG_IMAGE_SIZE": "32",
        "MEDAUG_LOG_FORMAT": "json",
        "MEDAUG_GENERATORS__OPENAI__API_KEY": KEY,
        "MEDAUG_GENERATORS__OPENAI__BASE_URL": fake.base_url,
        "MEDAUG_GENERATORS__OPENAI__ALLOW_EXTERNAL_UPLOAD": "true",
        "MEDAUG_GENERATORS__OPENAI__BACKOFF_S": "0",
        "MEDAUG_GENERATORS__OPENAI__TIMEOUT_S": "1.5",
        "MEDAUG_GENERATORS__OPENAI__UPLOAD_MAX_SIDE": "64",
    }


def run_cli(env: dict[str, str], *args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, ["--quiet", "augment", "run", *args], env=env, catch_exceptions=False)


def stored(store: Path) -> list:  # type: ignore[type-arg]
    return LocalImageStore(store).list(augmentation="openai")


def written_text(root: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in root.rglob("*") if p.suffix in (".json", ".jsonl"))


def test_fills_the_plan_through_faults_without_leaking_the_key(env, store, fake, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fake.script(rate_limit(0.01), server_error(), slow(6.0), image())
    result = run_cli(env, "--store", str(store), "--generator", "openai", "--multiply", "2")

    assert result.exit_code == 0, result.output
    assert "6 generated" in result.output
    images = stored(store)
    assert len(images) == 6 and all(img.provenance.generator == "openai" for img in images)
    assert len(fake.served("image")) == 6  # each planned image paid once, faults retried
    assert "openai_upload" in result.output  # the log names each image that left the machine
    assert KEY not in result.output and KEY not in written_text(tmp_path)


def test_refuses_without_the_privacy_flag(env, store: Path, fake: FakeOpenAI) -> None:  # type: ignore[no-untyped-def]
    env["MEDAUG_GENERATORS__OPENAI__ALLOW_EXTERNAL_UPLOAD"] = "false"
    result = run_cli(env, "--store", str(store), "--generator", "openai", "--multiply", "2")

    assert result.exit_code == 2
    assert "allow_external_upload = true" in result.output and "Traceback" not in result.output
    assert fake.calls == 0 and stored(store) == []


def test_dry_run_prints_calls_and_cost_and_sends_nothing(env, store: Path, fake: FakeOpenAI) -> None:  # type: ignore[no-untyped-def]
    env["MEDAUG_GENERATORS__OPENAI__ALLOW_EXTERNAL_UPLOAD"] = "false"
    result = run_cli(env, "--store", str(store), "--generator", "openai", "--multiply", "2", "--dry-run")

    assert result.exit_code == 0, result.output
    assert "6 API calls" in result.output and "$0.07" in result.output  # 6 x $0.011 (low quality)
    assert "allow_external_upload is false" in result.output
    assert fake.calls == 0 and stored(store) == []


def test_budget_stop_is_a_clean_message(env, store: Path, fake: FakeOpenAI) -> None:  # type: ignore[no-untyped-def]
    env["MEDAUG_GENERATORS__OPENAI__BUDGET_IMAGES"] = "4"  # calls run at the default concurrency
    result = run_cli(env, "--store", str(store), "--generator", "openai", "--multiply", "2")

    assert result.exit_code == 3 and "budget reached" in result.output and "Traceback" not in result.output
    assert len(stored(store)) == 4 and fake.calls == 4


def test_a_killed_run_resumes_without_repeating_a_paid_call(env, store: Path, fake: FakeOpenAI) -> None:  # type: ignore[no-untyped-def]
    env |= {"MEDAUG_GENERATORS__OPENAI__TIMEOUT_S": "60", "MEDAUG_GENERATORS__OPENAI__MAX_CONCURRENCY": "2"}
    fake.script(image(), image(), slow(120.0))
    args = ["--quiet", "augment", "run", "--store", str(store), "--generator", "openai", "--multiply", "2"]
    process = subprocess.Popen(
        [sys.executable, "-c", "from cli.app import main; main()", *args],
        env={**os.environ, **env, "PYTHONPATH": os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), str(REPO)]))}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        results = Path(env["MEDAUG_WORK_DIR"])
        deadline = time.monotonic() + 60
        while (fake.calls < 4 or len(list(results.rglob("results/*/*.png"))) < 3) and time.monotonic() < deadline:
            time.sleep(0.05)  # until the third paid image is on disk and the other call hangs
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert fake.calls == 4, "the first run should hang on its third call"
    paid_before = len(fake.served("image"))
    assert len(stored(store)) < 6

    result = run_cli(env, "--store", str(store), "--generator", "openai", "--multiply", "2")

    assert result.exit_code == 0, result.output
    assert len(stored(store)) == 6
    assert len(fake.served("image")) == 6 and paid_before == 3  # 3 paid before the kill, 3 after
    ledger_file = next(Path(env["MEDAUG_WORK_DIR"]).rglob("ledger.jsonl"))
    ledger = [json.loads(line) for line in ledger_file.read_text().splitlines()]
    ok_ids = [e["image_id"] for e in ledger if e["status"] == "ok"]
    assert sorted(ok_ids) == sorted(img.id for img in stored(store))  # one paid call per image
