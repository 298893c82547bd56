"""``medaug store sync`` / ``store digest``: folder -> S3 (moto's server) -> folder, checksums kept."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medaug.adapters.stores.local import LocalImageStore
from medaug.cli.app import app
from medaug.domain import Split
from tests.conftest import png_bytes, real_record, synthetic_record
from tests.s3_server import SECRET_KEY

DIGEST = re.compile(r"digest ([0-9a-f]{64})")


@pytest.fixture
def source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, s3_env: str) -> Path:
    monkeypatch.chdir(tmp_path)  # no stray ./medaug.toml
    root = tmp_path / "src"
    store = LocalImageStore(root)
    store.put(real_record("r0", 0), png_bytes(1))
    store.put(real_record("r1", 3), png_bytes(2))
    store.put(real_record("t0", 2, Split.TEST), png_bytes(3))
    store.put(synthetic_record("s0", 3, source="r1"), png_bytes(4))
    return root


def invoke(*args: str):  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(app, ["--quiet", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def digest_of(output: str) -> str:
    match = DIGEST.search(output)
    assert match, output
    return match.group(1)


def test_sync_round_trips_a_store_with_identical_checksums(source: Path, s3_bucket: str, tmp_path: Path) -> None:
    remote = f"s3://{s3_bucket}/mirror"
    up = invoke("store", "sync", str(source), remote)
    assert up.exit_code == 0, up.output
    assert f"-> {remote}: 4 copied, 0 already identical" in up.output

    again = invoke("store", "sync", str(source), remote)
    assert "0 copied, 4 already identical" in again.output

    back = tmp_path / "back"
    down = invoke("store", "sync", remote, str(back))
    assert down.exit_code == 0, down.output
    assert "4 copied" in down.output
    assert digest_of(up.output) == digest_of(down.output)

    digests = {digest_of(invoke("store", "digest", where).output) for where in (str(source), remote, str(back))}
    assert digests == {digest_of(up.output)}
    original, copy = LocalImageStore(source), LocalImageStore(back)
    assert copy.list() == original.list()
    assert all(copy.get(r.id) == original.get(r.id) for r in original.list())


def test_store_kind_s3_in_the_config_file_moves_every_command_to_the_bucket(
    source: Path, s3_bucket: str, tmp_path: Path
) -> None:
    invoke("store", "sync", str(source), f"s3://{s3_bucket}/configured")
    (tmp_path / "medaug.toml").write_text(f'[store]\nkind = "s3"\n[store.s3]\nbucket = "{s3_bucket}"\nprefix = "configured"\n')
    stats = invoke("data", "stats")
    assert stats.exit_code == 0, stats.output
    assert f"s3://{s3_bucket}/configured: 4 images" in stats.output.replace("\n", " ")
    assert digest_of(invoke("store", "digest").output) == digest_of(invoke("store", "digest", str(source)).output)


def test_sync_repairs_a_differing_copy_and_prunes_extras(source: Path, tmp_path: Path) -> None:
    copy_root = tmp_path / "copy"
    invoke("store", "sync", str(source), str(copy_root))
    copy = LocalImageStore(copy_root)
    (copy_root / "train" / "0" / "r0.png").write_bytes(png_bytes(9))
    copy.put(real_record("extra", 1), png_bytes(8))

    result = invoke("store", "sync", "--prune", str(source), str(copy_root))
    assert result.exit_code == 0, result.output
    assert "1 copied, 3 already identical, 1 pruned" in result.output
    assert LocalImageStore(copy_root).get("r0") == png_bytes(1)
    assert [r.id for r in LocalImageStore(copy_root).list()] == ["r0", "r1", "s0", "t0"]


def test_missing_bucket_is_one_line_without_secrets(source: Path) -> None:
    result = invoke("store", "sync", str(source), "s3://medaug-missing-bucket/x")
    assert result.exit_code == 2
    assert "s3://medaug-missing-bucket/x: bucket medaug-missing-bucket does not exist" in result.output
    assert "Traceback" not in result.output and SECRET_KEY not in result.output


def test_a_store_cannot_be_synced_onto_itself(source: Path) -> None:
    result = invoke("store", "sync", str(source), str(source))
    assert result.exit_code == 2
    assert "source and destination are the same store" in result.output
