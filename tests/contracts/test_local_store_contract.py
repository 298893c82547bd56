"""LocalImageStore against the shared ImageStore contract, plus its crash behaviour."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from medaug.adapters.stores.local import MANIFEST, LocalImageStore
from medaug.application.errors import StoreError
from tests.conftest import png_bytes, real_record
from tests.contracts.image_store import ImageStoreContract


class TestLocalImageStore(ImageStoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> LocalImageStore:
        return LocalImageStore(tmp_path / "store")

    @pytest.fixture
    def reopen(self, tmp_path: Path):  # type: ignore[no-untyped-def]
        return lambda: LocalImageStore(tmp_path / "store")

    @pytest.fixture
    def other_store(self, tmp_path: Path) -> LocalImageStore:
        return LocalImageStore(tmp_path / "other")


def test_layout_is_split_grade_id(tmp_path: Path) -> None:
    store = LocalImageStore(tmp_path)
    store.put(real_record("IDRiD_001", 3), png_bytes())
    assert (tmp_path / "train" / "3" / "IDRiD_001.png").read_bytes() == png_bytes()
    assert (tmp_path / MANIFEST).is_file()


def test_truncated_manifest_line_is_ignored_and_store_keeps_working(tmp_path: Path) -> None:
    store = LocalImageStore(tmp_path)
    store.put(real_record("a", 0), png_bytes(1))
    with (tmp_path / MANIFEST).open("ab") as fh:
        fh.write(b'{"op":"put","record":{"id":"half')  # a crash mid-append
    reopened = LocalImageStore(tmp_path)
    assert [r.id for r in reopened.list()] == ["a"]
    reopened.put(real_record("b", 1), png_bytes(2))
    assert [r.id for r in LocalImageStore(tmp_path).list()] == ["a", "b"]


def test_image_without_record_is_invisible_and_can_be_rewritten(tmp_path: Path) -> None:
    store = LocalImageStore(tmp_path)
    orphan = tmp_path / "train" / "0" / "a.png"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"half-written")
    assert not store.exists("a")
    store.put(real_record("a", 0), png_bytes(1))
    assert store.get("a") == png_bytes(1)


def test_two_instances_see_each_others_writes(tmp_path: Path) -> None:
    first, second = LocalImageStore(tmp_path), LocalImageStore(tmp_path)
    first.put(real_record("a", 0), png_bytes(1))
    assert second.exists("a")
    with pytest.raises(StoreError):
        second.put(real_record("a", 0), png_bytes(1))


def test_unwritable_store_is_a_clear_error(tmp_path: Path) -> None:
    # /proc refuses new folders to every user, root included (CI runs as root, who may write
    # into a chmod 0o500 folder); a chmod-ed folder is tried too where that means something.
    places = [Path("/proc/medaug-store")]
    if os.geteuid() != 0:
        tmp_path.chmod(0o500)
        places.append(tmp_path / "store")
    try:
        for place in places:
            with pytest.raises(StoreError, match=f"^{place}.*cannot write"):
                LocalImageStore(place).put(real_record("a", 0), png_bytes())
            assert not place.exists()
    finally:
        tmp_path.chmod(0o700)


def test_store_under_a_file_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(StoreError, match="cannot write"):
        LocalImageStore(blocker / "store").put(real_record("a", 0), png_bytes())
