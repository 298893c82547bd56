"""S3RunFolder against the RunRepository contract (on moto's S3 server), plus its scratch mirror:
files written locally reach S3 before the cell that made them, and a worker with an empty
scratch (another machine) gets them back; a bad bucket is one line before any work."""

from __future__ import annotations

from pathlib import Path

import pytest

from medaug.adapters.runs_s3 import S3RunFolder
from medaug.adapters.stores.config import S3StoreConfig
from medaug.adapters.stores.s3_client import make_s3_client
from medaug.adapters.stores.s3_mirror import ScratchMirror
from medaug.adapters.stores.s3_objects import S3Objects
from medaug.application.errors import ConfigError, StoreError
from medaug.composition.factories import build_run_folder
from medaug.composition.settings import Settings
from tests.contracts.run_repository import RunRepositoryContract, cell, experiment_result  # noqa: F401 - fixture


def open_runs(config: S3StoreConfig, scratch: Path) -> S3RunFolder:
    """A run folder at ``s3://<bucket>/work/runs/r`` mirroring ``scratch`` (as build_run_folder makes it)."""
    client = make_s3_client(config)
    work = S3Objects(client, bucket=config.bucket, prefix="work")
    mirror = ScratchMirror(work, scratch, ("generators", "runs/r"))
    return S3RunFolder(S3Objects(client, bucket=config.bucket, prefix="work/runs/r"), scratch / "runs" / "r", mirror)


class TestS3RunFolder(RunRepositoryContract):
    @pytest.fixture
    def runs(self, s3_store_config: S3StoreConfig, tmp_path: Path) -> S3RunFolder:
        return open_runs(s3_store_config, tmp_path / "machine-a")

    @pytest.fixture
    def reopen(self, s3_store_config: S3StoreConfig, tmp_path: Path):  # type: ignore[no-untyped-def]
        machines = iter(range(1000))
        return lambda: open_runs(s3_store_config, tmp_path / f"machine-{next(machines)}")


def _keys(config: S3StoreConfig) -> set[str]:
    """Every object key in the test bucket."""
    listed = make_s3_client(config).list_objects_v2(Bucket=config.bucket).get("Contents", [])
    return {obj["Key"] for obj in listed}


def test_local_files_reach_s3_with_the_cell_and_come_back_on_another_machine(
    s3_store_config: S3StoreConfig, tmp_path: Path
) -> None:
    a = open_runs(s3_store_config, tmp_path / "a")
    a.claim("f", {"classic": "A"})
    weights = Path(a.checkpoint_path(cell(0).key.slug))
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"w" * 100)
    checkpoint = tmp_path / "a" / "generators" / "dcgan-x-f0r0" / "step-000010"
    checkpoint.mkdir(parents=True)
    (checkpoint / "model.safetensors").write_bytes(b"m" * 50)
    (checkpoint.parent / ".step-000020.tmp-1").mkdir()  # a checkpoint being written: not pushed
    (checkpoint.parent / ".step-000020.tmp-1" / "model.safetensors").write_bytes(b"half")
    a.save_cell(cell(0))
    keys = _keys(s3_store_config)
    assert {"work/runs/r/checkpoints/classic__cnn__s0.safetensors", "work/runs/r/cells/classic__cnn__s0.json"} <= keys
    assert not any(".tmp" in key for key in keys)
    b = open_runs(s3_store_config, tmp_path / "b")
    assert b.load_cell(cell(0).key) == cell(0)  # the first read pulls
    assert Path(b.checkpoint_path(cell(0).key.slug)).read_bytes() == b"w" * 100
    pulled = tmp_path / "b" / "generators" / "dcgan-x-f0r0"
    assert (pulled / "step-000010" / "model.safetensors").read_bytes() == b"m" * 50
    assert sorted(p.name for p in pulled.iterdir()) == ["step-000010"]


def test_a_pruned_checkpoint_is_removed_from_s3_and_a_half_pushed_folder_is_never_pulled(
    s3_store_config: S3StoreConfig, tmp_path: Path
) -> None:
    a = open_runs(s3_store_config, tmp_path / "a")
    a.claim("f", {})
    old = tmp_path / "a" / "generators" / "g" / "step-000001"
    old.mkdir(parents=True)
    (old / "m.safetensors").write_bytes(b"1")
    a.push()
    for path in old.iterdir():
        path.unlink()
    old.rmdir()
    new = old.parent / "step-000002"
    new.mkdir()
    (new / "m.safetensors").write_bytes(b"2")
    a.push()
    keys = _keys(s3_store_config)
    assert not any("step-000001" in k for k in keys) and any("step-000002/m.safetensors" in k for k in keys)
    # an object uploaded without its manifest entry (a pusher killed in between) stays invisible
    a._objects.put_plain("work/generators/g/step-000003/m.safetensors", b"half")
    b = open_runs(s3_store_config, tmp_path / "b")
    b.pull()
    assert sorted(p.name for p in (tmp_path / "b" / "generators" / "g").iterdir()) == ["step-000002"]


def _versions(config: S3StoreConfig, key: str) -> int:
    listed = make_s3_client(config).list_object_versions(Bucket=config.bucket, Prefix=key).get("Versions", [])
    return sum(1 for version in listed if version["Key"] == key)


def test_a_later_task_on_the_same_machine_pushes_only_what_s3_lacks(
    s3_store_config: S3StoreConfig, tmp_path: Path
) -> None:
    """Each Ray task opens its own mirror of the machine's scratch; one task's files are not pushed again by the next."""
    make_s3_client(s3_store_config).put_bucket_versioning(
        Bucket=s3_store_config.bucket, VersioningConfiguration={"Status": "Enabled"}
    )
    scratch = tmp_path / "machine"
    checkpoint = scratch / "generators" / "g" / "step-000001" / "m.safetensors"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(b"trained once")
    work = S3Objects(make_s3_client(s3_store_config), bucket=s3_store_config.bucket, prefix="work")
    assert ScratchMirror(work, scratch, ("generators",)).push() == 1
    later = ScratchMirror(work, scratch, ("generators",))  # another task, another process: it has not seen the file
    assert later.push() == 0
    key = "work/generators/g/step-000001/m.safetensors"
    assert _versions(s3_store_config, key) == 1
    checkpoint.write_bytes(b"trained again")  # changed bytes are pushed
    assert later.push() == 1 and _versions(s3_store_config, key) == 2


def test_a_missing_bucket_is_one_line_when_the_job_is_built(moto_endpoint: str, tmp_path: Path) -> None:
    settings = Settings(work_dir="s3://medaug-no-such-bucket/work", scratch_dir=tmp_path,
                        store={"s3": _store_settings(moto_endpoint)})
    with pytest.raises(StoreError) as caught:
        build_run_folder(f"{settings.work_url}/runs/r", settings)
    message = str(caught.value)
    assert "\n" not in message and "medaug-no-such-bucket" in message and "does not exist" in message


def test_a_bucket_refusing_writes_is_one_line(s3_store_config: S3StoreConfig, tmp_path: Path) -> None:
    client = make_s3_client(s3_store_config)
    client.put_bucket_policy(Bucket=s3_store_config.bucket, Policy=_DENY_PUT % s3_store_config.bucket)
    settings = Settings(work_dir=f"s3://{s3_store_config.bucket}/work", scratch_dir=tmp_path,
                        store={"s3": _store_settings(s3_store_config.endpoint_url or "")})
    with pytest.raises(StoreError) as caught:
        build_run_folder(f"{settings.work_url}/runs/r", settings)
    message = str(caught.value)
    assert "\n" not in message and s3_store_config.bucket in message and "access denied" in message


def test_a_run_folder_inside_an_s3_work_dir_mirrors_generators_too(
    s3_store_config: S3StoreConfig, tmp_path: Path
) -> None:
    settings = Settings(work_dir=f"s3://{s3_store_config.bucket}/work", scratch_dir=tmp_path,
                        store={"s3": _store_settings(s3_store_config.endpoint_url or "")})
    runs = build_run_folder(f"{settings.work_url}/runs/r", settings)
    assert isinstance(runs, S3RunFolder)
    assert runs.scratch == tmp_path / s3_store_config.bucket / "work" / "runs" / "r" == settings.work_dir / "runs" / "r"
    assert build_run_folder(Path(f"{settings.work_url}/runs/r"), settings).location == runs.location  # via Path()


def test_a_job_pulls_only_its_own_store_generators_and_run_folder(
    s3_store_config: S3StoreConfig, tmp_path: Path
) -> None:
    def settings(machine: str) -> Settings:
        return Settings(work_dir=f"s3://{s3_store_config.bucket}/work", scratch_dir=tmp_path / machine,
                        store={"s3": _store_settings(s3_store_config.endpoint_url or "")})

    a = settings("a")
    for folder in ("generators/dcgan-mine-f0r0/step-000006", "generators/dcgan-other-f0r0/step-000006",
                   "runs/r/features", "runs/r-two/features"):
        (a.work_dir / folder).mkdir(parents=True)
        (a.work_dir / folder / "x.safetensors").write_bytes(b"x")
    for name in ("r", "r-two"):
        runs = build_run_folder(f"{a.work_url}/runs/{name}", a, store_identity="mine")
        assert isinstance(runs, S3RunFolder)
        runs.push()
    b = settings("b")
    pulling = build_run_folder(f"{b.work_url}/runs/r", b, store_identity="mine")
    assert isinstance(pulling, S3RunFolder)
    pulling.pull()
    found = sorted(p.relative_to(b.work_dir).as_posix() for p in b.work_dir.rglob("*.safetensors"))
    assert found == ["generators/dcgan-mine-f0r0/step-000006/x.safetensors", "runs/r/features/x.safetensors"]


def test_fresh_discards_a_run_folder_but_nothing_else(s3_store_config: S3StoreConfig, tmp_path: Path) -> None:
    runs = open_runs(s3_store_config, tmp_path / "a")
    runs.claim("f", {})
    runs.save_cell(cell(0))
    neighbour = runs._objects.object_key("").rstrip("/") + "-two/cells/x.json"  # runs/r-two: another run
    runs._objects.put_plain(neighbour, b"{}")
    runs.discard()
    assert runs.load_cell(cell(0).key) is None
    assert _keys(s3_store_config) == {neighbour}
    client = make_s3_client(s3_store_config)
    client.put_object(Bucket=s3_store_config.bucket, Key="work/runs/r/photo.png", Body=b"not a run")
    with pytest.raises(ConfigError, match="not a run folder"):
        open_runs(s3_store_config, tmp_path / "b").discard()
    assert "work/runs/r/photo.png" in _keys(s3_store_config)


def _store_settings(endpoint: str) -> dict[str, object]:
    from tests.s3_server import ACCESS_KEY, REGION, SECRET_KEY

    return {"endpoint_url": endpoint, "region": REGION, "access_key_id": ACCESS_KEY,
            "secret_access_key": SECRET_KEY, "max_attempts": 2, "connect_timeout": 2.0}


_DENY_PUT = """{"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Principal": "*",
"Action": "s3:PutObject", "Resource": "arn:aws:s3:::%s/*"}]}"""


def test_an_s3_work_dir_becomes_a_local_scratch_and_a_later_local_one_wins(tmp_path: Path) -> None:
    settings = Settings(work_dir="s3://bucket/some/prefix/", scratch_dir=tmp_path)
    assert settings.work_url == "s3://bucket/some/prefix" and settings.work_dir == tmp_path / "bucket" / "some" / "prefix"
    assert Settings(**settings.model_dump()).work_url == settings.work_url  # as a Ray worker rebuilds it
    local = Settings(**{**settings.model_dump(), "work_dir": str(tmp_path / "local")})  # an experiment's [settings]
    assert local.work_url is None and local.work_dir == tmp_path / "local"
    with pytest.raises(ValueError, match="names no bucket"):
        Settings(work_dir="s3:///prefix")
