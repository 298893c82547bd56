"""Issue 26 item 7: a writer whose store folder or writer lock disappears stops with one line,
never re-creating the folder, and a writer started after the deletion never writes alongside it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from medaug.adapters.stores.local import LocalImageStore
from medaug.application.errors import StoreError
from tests.conftest import png_bytes, real_record


def test_a_writer_whose_store_folder_is_removed_stops_without_re_creating_it(tmp_path: Path) -> None:
    store = LocalImageStore(tmp_path / "store")
    with store.writing("ingest eyes"):
        store.put(real_record("a"), png_bytes(0))
        shutil.rmtree(store.root)
        with pytest.raises(StoreError) as caught:
            store.put(real_record("b"), png_bytes(1))
    message = str(caught.value)
    assert "removed or replaced while 'ingest eyes' was writing" in message and "\n" not in message
    assert not store.root.exists()


def test_a_second_writer_after_the_removal_never_writes_alongside_the_first(tmp_path: Path) -> None:
    first, second = LocalImageStore(tmp_path / "store"), LocalImageStore(tmp_path / "store")
    with first.writing("ingest one"):
        first.put(real_record("a"), png_bytes(0))
        shutil.rmtree(first.root)
        with second.writing("ingest two"):  # a new store in the same place: its own lock
            second.put(real_record("b"), png_bytes(1))
            with pytest.raises(StoreError, match="removed or replaced"):
                first.put(real_record("c"), png_bytes(2))
            with pytest.raises(StoreError, match="removed or replaced"):
                first.delete("b")
    assert [r.id for r in LocalImageStore(tmp_path / "store").list()] == ["b"]
    assert LocalImageStore(tmp_path / "store").check() == []


def test_a_writer_whose_lock_file_is_replaced_stops(tmp_path: Path) -> None:
    store = LocalImageStore(tmp_path / "store")
    with store.writing("augment"):
        store.put(real_record("a"), png_bytes(0))
        lock = store.root / ".writer.lock"
        lock.unlink()
        lock.touch()
        with pytest.raises(StoreError, match="writer lock file was replaced"):
            store.put(real_record("b"), png_bytes(1))
    assert [r.id for r in LocalImageStore(store.root).list()] == ["a"]
