"""Issue 26 item 5: ``store check`` reads every image and finds a 0-byte or altered one; ``--quick``
skips that; ``store repair`` drops the damaged image so the check is clean again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medaug.adapters.stores.local import MANIFEST, LocalImageStore
from medaug.cli.app import app
from tests.conftest import png_bytes, real_record


def check(store: Path, *extra: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, ["store", "check", str(store), *extra])


@pytest.fixture
def store(tmp_path: Path) -> LocalImageStore:
    store = LocalImageStore(tmp_path / "store")
    with store.writing("test"):
        for number, name in enumerate("abc"):
            store.put(real_record(name), png_bytes(number, size=32))
    return store


def _flip_one_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def test_check_finds_an_empty_and_an_altered_image_and_repair_clears_them(store: LocalImageStore) -> None:
    assert check(store.root).exit_code == 0
    (store.root / store.record("a").key).write_bytes(b"")
    _flip_one_byte(store.root / store.record("b").key)
    found = check(store.root)
    assert found.exit_code == 1
    assert "image of record a is damaged" in found.output and "image of record b is damaged" in found.output
    assert "2 problem(s)" in found.output
    quick = check(store.root, "--quick")
    assert quick.exit_code == 0 and "0 problem(s)" in quick.output
    assert CliRunner().invoke(app, ["store", "repair", str(store.root)]).exit_code == 0
    assert check(store.root).exit_code == 0
    assert [r.id for r in LocalImageStore(store.root).list()] == ["c"]


def test_images_put_before_checksums_were_recorded_must_decode_whole(store: LocalImageStore) -> None:
    manifest = store.root / MANIFEST
    lines = [json.loads(line) for line in manifest.read_text().splitlines()]
    manifest.write_text("".join(json.dumps({k: v for k, v in e.items() if k != "sha256"}) + "\n" for e in lines))
    assert check(store.root).exit_code == 0
    _flip_one_byte(store.root / store.record("b").key)
    found = check(store.root)
    assert found.exit_code == 1 and "image of record b is damaged (not a whole PNG" in found.output


def test_s3_check_reads_every_image_and_quick_only_compares_metadata(s3_store_config) -> None:  # type: ignore[no-untyped-def]
    from tests.contracts.test_s3_store_contract import open_store

    s3 = open_store(s3_store_config)
    s3.put(real_record("a"), png_bytes(1, size=32))
    key = s3.object_key(s3.record("a").key)
    head = s3._client.head_object(Bucket=s3.bucket, Key=key)
    altered = bytearray(png_bytes(1, size=32))
    altered[len(altered) // 2] ^= 0x01
    s3._client.put_object(Bucket=s3.bucket, Key=key, Body=bytes(altered), Metadata=head["Metadata"])
    problems = s3.check()
    assert len(problems) == 1 and "checksum mismatch for image a" in problems[0]
    assert s3.check(quick=True) == []
