"""Issue 18: stores that cannot be corrupted or confused, tried as a user would (one test per case)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from medaug.adapters.stores.local import MANIFEST, LocalImageStore
from medaug.application.services.augment import plan_augmentation
from medaug.cli.app import app
from medaug.composition import factories
from medaug.composition.settings import load_settings
from medaug.domain import Origin, PlanPolicy, Split
from tests.cli.test_ingest_cli import fundus_jpeg
from tests.conftest import png_bytes, real_record, synthetic_record

COUNTS = {0: 6, 1: 1, 2: 4, 3: 3, 4: 2}


def invoke(*args: str):  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(app, ["--quiet", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def one_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip() and not line.lstrip().startswith("{")]
    assert len(lines) == 1, text
    return lines[0]


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MEDAUG_IMAGE_SIZE", "24")
    monkeypatch.setenv("MEDAUG_WORK_DIR", str(tmp_path / "work"))
    monkeypatch.setenv("MEDAUG_LOG_LEVEL", "error")
    monkeypatch.setenv("COLUMNS", "200")
    return tmp_path


def small_store(root: Path) -> LocalImageStore:
    store = LocalImageStore(root)
    seed = 0
    for grade, count in COUNTS.items():
        for index in range(count):
            seed += 1
            store.put(real_record(f"r{grade}-{index}", grade), png_bytes(seed, 20))
    return store


# -- 1. a generator trained on one store never serves another ----------------------------------


def test_models_are_keyed_by_store_identity_not_by_path(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    for folder in ("a", "b"):
        (env / folder).mkdir()
        small_store(env / folder / "store")
    monkeypatch.chdir(env / "a")
    relative_a = factories.generator_dir(settings, "dcgan", factories.build_store(settings, "store"))
    absolute_a = factories.generator_dir(settings, "dcgan", factories.build_store(settings, str(env / "a" / "store")))
    monkeypatch.chdir(env / "b")
    relative_b = factories.generator_dir(settings, "dcgan", factories.build_store(settings, "store"))
    assert relative_a == absolute_a  # the same store, however it is typed
    assert relative_b != relative_a  # the same relative path from elsewhere is another store
    assert factories.quality_dir(settings, factories.build_store(settings, "store")) != factories.quality_dir(
        settings, factories.build_store(settings, str(env / "a" / "store"))
    )


# -- 2. two writing commands on one store ------------------------------------------------------


def test_a_second_writer_is_refused_in_one_line_naming_the_holder(env: Path) -> None:
    store = small_store(env / "store")
    with store.writing("augment run --multiply 2"):
        result = invoke("augment", "run", "--store", str(env / "store"), "--target-total", "30")
    assert result.exit_code == 2
    line = one_line(result.output)
    assert "store is being written by 'augment run --multiply 2'" in line and f"pid {os.getpid()}" in line
    assert store.list(origin=Origin.SYNTHETIC) == []
    again = invoke("augment", "run", "--store", str(env / "store"), "--target-total", "30")
    assert again.exit_code == 0, again.output


FIRST_WRITER = """
import pathlib, sys, time
from medaug.adapters.stores.local import LocalImageStore
from medaug.cli.app import main
from medaug.composition import factories
root, held, go = sys.argv[1:4]
store = LocalImageStore(root)
factories.build_store = lambda settings, location=None: store  # the command runs on the held store object
with store.writing("augment run --multiply 3"):
    pathlib.Path(held).touch()
    while not pathlib.Path(go).exists():  # hold the lock until the second writer has tried
        time.sleep(0.05)
    sys.argv = ["medaug", "--quiet", "augment", "run", "--store", root, "--multiply", "3"]
    try:
        main()
    except SystemExit as done:
        code = done.code
sys.exit(code)
"""


def test_two_overlapping_augment_runs_with_different_plans_lose_nothing(env: Path) -> None:
    """The overlap is forced: the first writer holds the lock until the second has tried, so
    without a working lock the second would write its plan and the stored set would be mixed."""
    store = small_store(env / "store")
    held, go = env / "held", env / "go"
    first = subprocess.Popen([sys.executable, "-c", FIRST_WRITER, str(env / "store"), str(held), str(go)],
                             env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(600):
            if held.exists() or first.poll() is not None:
                break
            time.sleep(0.05)
        assert held.exists(), first.communicate()
        second = subprocess.run([sys.executable, "-c", "from medaug.cli.app import main; main()", "--quiet", "augment",
                                 "run", "--store", str(env / "store"), "--target-total", "40"],
                                env={**os.environ, "MEDAUG_STORE__LOCK_WAIT_SECONDS": "0"}, capture_output=True,
                                text=True, timeout=300)
        assert second.returncode == 2, second.stdout + second.stderr
        assert "store is being written by 'augment run --multiply 3'" in one_line(second.stderr)
        assert LocalImageStore(env / "store").list(origin=Origin.SYNTHETIC) == []  # it wrote nothing
    finally:
        go.touch()
        out, err = first.communicate(timeout=300)
    assert first.returncode == 0, out + err
    synthetic = {r.id for r in LocalImageStore(env / "store").list(origin=Origin.SYNTHETIC)}
    multiply = plan_augmentation(store, PlanPolicy.multiply(3), seed=0, augmentation="classic", generators=["classic"])
    assert synthetic == {j.image_id for j in multiply.jobs}  # exactly the first plan, complete, nothing mixed


def test_readers_are_not_blocked_by_a_writer(env: Path) -> None:
    store = small_store(env / "store")
    with store.writing("ingest"):
        result = invoke("data", "stats", "--store", str(env / "store"))
    assert result.exit_code == 0 and "16 images" in result.output


# -- 3. changed labels and pixels on re-ingest -------------------------------------------------


def _dataset(root: Path, grades: dict[str, int]) -> tuple[Path, Path]:
    folder = root / "images"
    folder.mkdir(parents=True, exist_ok=True)
    for seed, name in enumerate(sorted(grades)):
        if not (folder / name).exists():
            (folder / name).write_bytes(fundus_jpeg(seed))
    csv_path = root / "labels.csv"
    csv_path.write_text("image,grade\n" + "".join(f"{n},{g}\n" for n, g in grades.items()))
    return folder, csv_path


def _ingest(folder: Path, csv_path: Path, store: Path, *extra: str):  # type: ignore[no-untyped-def]
    return invoke("data", "ingest", "folder", str(folder), "--csv", str(csv_path), "--store", str(store),
                  "--size", "32", *extra)


def test_reingest_reports_changed_labels_and_pixels_and_update_applies_them(env: Path) -> None:
    folder, csv_path = _dataset(env, {"a.jpg": 0, "b.jpg": 1, "c.jpg": 2})
    assert _ingest(folder, csv_path, env / "store").exit_code == 0
    store = LocalImageStore(env / "store")
    store.put(synthetic_record("syn-b", 1, source="folder-b"), png_bytes(5))
    old_b = store.get("folder-b")
    _dataset(env, {"a.jpg": 3, "b.jpg": 1, "c.jpg": 2})  # a relabelled
    (folder / "b.jpg").write_bytes(fundus_jpeg(40))  # b's pixels replaced

    result = _ingest(folder, csv_path, env / "store")
    assert result.exit_code == 0
    assert "folder-a: grade 0 -> 3" in result.output and "folder-b: pixels changed" in result.output
    assert "2 changed in the source (not applied; --update applies them)" in result.output
    assert int(store.record("folder-a").grade) == 0 and store.get("folder-b") == old_b  # nothing applied

    updated = _ingest(folder, csv_path, env / "store", "--update")
    assert updated.exit_code == 0 and "2 updated (1 derived synthetic images removed as stale)" in updated.output
    assert int(store.record("folder-a").grade) == 3 and (env / "store" / "train" / "3" / "folder-a.png").is_file()
    assert store.get("folder-b") != old_b and not store.exists("syn-b")
    assert "0 added, 3 already present, 0 skipped" in _ingest(folder, csv_path, env / "store").output


# -- 5. store sync does not follow symlinks ----------------------------------------------------


def test_sync_refuses_a_symlink_inside_a_local_store(env: Path) -> None:
    store = small_store(env / "store")
    secret = env / "outside.png"
    secret.write_bytes(png_bytes(77, 20))
    image = env / "store" / store.record("r1-0").key
    image.unlink()
    image.symlink_to(secret)
    result = invoke("store", "sync", str(env / "store"), str(env / "copy"))
    assert result.exit_code == 2
    assert "is a symbolic link" in one_line(result.output)
    assert not LocalImageStore(env / "copy").exists("r1-0")
    assert any("symbolic link" in p for p in store.check())


# -- 6. checked before any work ----------------------------------------------------------------


@pytest.mark.parametrize(("value", "problem"), [("1e5", "less than or equal to 100"), ("inf", "finite"), ("nan", "finite")])
def test_multiply_is_bounded_before_any_work(env: Path, value: str, problem: str) -> None:
    small_store(env / "store")
    result = invoke("augment", "run", "--store", str(env / "store"), "--multiply", value)
    assert result.exit_code == 2
    assert one_line(result.output).startswith("error: --multiply: factor:") and problem in result.output
    assert LocalImageStore(env / "store").list(origin=Origin.SYNTHETIC) == []


def test_train_checkpoint_folder_is_refused_before_training(env: Path) -> None:
    small_store(env / "store")
    (env / "ckpt").mkdir()
    result = invoke("train", "--store", str(env / "store"), "--checkpoint", str(env / "ckpt"))
    assert result.exit_code == 2
    assert "--checkpoint needs a file name" in one_line(result.output)


def test_a_small_16_bit_png_of_huge_size_is_refused_from_its_header(env: Path) -> None:
    folder = env / "images"
    folder.mkdir()
    Image.fromarray(np.zeros((9400, 9400), dtype=np.uint16)).save(folder / "big.png")
    assert (folder / "big.png").stat().st_size < 400_000
    (env / "labels.csv").write_text("image,grade\nbig.png,0\n")
    result = _ingest(folder, env / "labels.csv", env / "store")
    assert result.exit_code == 2
    assert "9400 x 9400 px x 1 channel(s) x 16 bit = 169 MiB decoded, over the 128 MiB budget" in one_line(result.output)


# -- 7. manifest damage ------------------------------------------------------------------------


def test_a_garbage_manifest_line_stops_commands_and_repair_rebuilds(env: Path) -> None:
    small_store(env / "store")
    manifest = env / "store" / MANIFEST
    lines = manifest.read_bytes().split(b"\n")
    lines[3] = b"\x00garbage{"
    manifest.write_bytes(b"\n".join(lines))
    (env / "store" / "train" / "0" / ".r0-0.png.x1y2.tmp").write_bytes(b"half")
    result = invoke("data", "stats", "--store", str(env / "store"))
    assert result.exit_code == 2
    assert one_line(result.output) == f"error: {manifest}:4: damaged manifest line (not JSON); run 'medaug store repair'"
    checked = invoke("store", "check", str(env / "store"))
    assert checked.exit_code == 1 and f"{manifest}:4" in checked.output and ".tmp" in checked.output
    assert invoke("store", "repair", str(env / "store")).exit_code == 0
    assert invoke("store", "check", str(env / "store")).exit_code == 0
    assert len(LocalImageStore(env / "store").list()) == 15  # the damaged line's record is dropped, not the rest
    assert not list((env / "store").rglob("*.tmp"))


def test_an_invalid_record_is_one_line_naming_file_and_line(env: Path) -> None:
    small_store(env / "store")
    manifest = env / "store" / MANIFEST
    entry = json.loads(manifest.read_bytes().split(b"\n")[1])
    entry["record"]["grade"] = 9
    with manifest.open("ab") as fh:
        fh.write(json.dumps(entry).encode() + b"\n")
    result = invoke("data", "stats", "--store", str(env / "store"))
    assert result.exit_code == 2
    assert one_line(result.output).startswith(f"error: {manifest}:17: invalid record (grade:")


def test_a_line_cut_by_a_kill_is_cut_off_by_the_next_write(env: Path) -> None:
    small_store(env / "store")
    manifest = env / "store" / MANIFEST
    with manifest.open("ab") as fh:
        fh.write(b'{"op":"put","record":{"id":"half')
    store2 = LocalImageStore(env / "store")
    assert len(store2.list()) == 16
    store2.put(real_record("new", 1), png_bytes(3))
    assert len(LocalImageStore(env / "store").list()) == 17
    assert LocalImageStore(env / "store").check() == []


# -- 9. pseudonymised ingest -------------------------------------------------------------------


def test_pseudonymised_ingest_keeps_no_original_names(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDAUG_PSEUDONYM_KEY", "k" * 32)
    folder, csv_path = _dataset(env, {"patient-4711.jpg": 0, "patient-4712.jpg": 2})
    inside = _ingest(folder, csv_path, env / "store", "--pseudonymise", "--mapping", str(env / "store" / "map.csv"))
    assert inside.exit_code == 2 and "must be kept outside the store" in inside.output
    result = _ingest(folder, csv_path, env / "store", "--pseudonymise", "--mapping", str(env / "private" / "map.csv"))
    assert result.exit_code == 0, result.output
    ids = [r.id for r in LocalImageStore(env / "store").list()]
    assert len(ids) == 2 and all(i.startswith("p-") for i in ids)
    everything = b"".join(p.read_bytes() for p in (env / "store").rglob("*") if p.is_file())
    assert b"4711" not in everything and b"4712" not in everything and b"k" * 32 not in everything
    mapping = (env / "private" / "map.csv").read_text()
    assert "patient-4711" in mapping and ids[0] in mapping
    assert oct((env / "private" / "map.csv").stat().st_mode)[-3:] == "600"
    again = _ingest(folder, csv_path, env / "store", "--pseudonymise")
    assert "0 added, 2 already present" in again.output  # the same key gives the same pseudonyms


def test_pseudonymising_without_a_key_is_refused_before_work(env: Path) -> None:
    folder, csv_path = _dataset(env, {"a.jpg": 0})
    result = _ingest(folder, csv_path, env / "store", "--pseudonymise")
    assert result.exit_code == 2 and "needs a key" in one_line(result.output)
    assert not (env / "store" / MANIFEST).exists()


# -- 10. messages ------------------------------------------------------------------------------


def test_a_store_setting_that_is_not_json_names_the_variable(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDAUG_STORE", "notjson")
    result = invoke("data", "stats")
    assert result.exit_code == 2
    line = one_line(result.output)
    assert line.startswith("error: MEDAUG_STORE: not valid JSON") and "None" not in line


def test_an_empty_arms_list_names_the_setting(env: Path) -> None:
    (env / "e.toml").write_text('name = "x"\n[experiment]\narms = []\n')
    result = invoke("experiment", "run", str(env / "e.toml"))
    assert result.exit_code == 2
    assert one_line(result.output) == (
        f"error: {env / 'e.toml'}: experiment.arms: an experiment needs at least one arm "
        '(e.g. arms = ["none", "classic"])'
    )


def test_a_text_file_given_as_weights_names_the_file(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    weights = env / "weights.pth"
    weights.write_text("e" * 200)
    store = small_store(env / "store")
    for grade in COUNTS:
        store.put(real_record(f"t{grade}", grade, Split.TEST), png_bytes(50 + grade, 20))
    monkeypatch.setenv("MEDAUG_TRAINERS__RESNET50__WEIGHTS", str(weights))
    result = invoke("train", "--store", str(env / "store"), "--classifier", "resnet50")
    assert result.exit_code == 2
    assert one_line(result.output) == (
        f"error: {weights}: cannot read resnet50 weights (neither safetensors nor a torch.save state dict)"
    )
