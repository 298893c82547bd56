"""The ImageStore contract: every store adapter must pass these.

Use it by subclassing ``ImageStoreContract`` in a test module and providing a ``store`` fixture
that returns an empty store (and, optionally, ``reopen`` returning a fresh instance over the same
storage to check persistence).
"""

from __future__ import annotations

import pytest

from medaug.application.errors import StoreError
from medaug.domain import Grade, Origin, Split
from tests.conftest import png_bytes, real_record, synthetic_record


class ImageStoreContract:
    """Behaviour every ImageStore must show."""

    @pytest.fixture
    def reopen(self, store):  # type: ignore[no-untyped-def]
        """A fresh store instance over the same storage (override where possible)."""
        return lambda: store

    def test_put_then_get_returns_the_same_bytes(self, store) -> None:  # type: ignore[no-untyped-def]
        data = png_bytes(1)
        store.put(real_record("img-1", 2), data)
        assert store.get("img-1") == data
        assert store.exists("img-1")
        assert store.record("img-1").grade == Grade(2)

    def test_unknown_id_raises_key_error(self, store) -> None:  # type: ignore[no-untyped-def]
        assert not store.exists("nope")
        with pytest.raises(KeyError):
            store.get("nope")
        with pytest.raises(KeyError):
            store.record("nope")
        with pytest.raises(KeyError):
            store.delete("nope")

    def test_putting_an_existing_id_needs_overwrite(self, store) -> None:  # type: ignore[no-untyped-def]
        store.put(real_record("img-1", 0), png_bytes(1))
        with pytest.raises(StoreError):
            store.put(real_record("img-1", 0), png_bytes(2))
        store.put(real_record("img-1", 1), png_bytes(2), overwrite=True)
        assert store.get("img-1") == png_bytes(2)
        assert store.record("img-1").grade == Grade(1)
        assert [r.id for r in store.list()] == ["img-1"]

    def test_list_filters_and_sorts(self, store) -> None:  # type: ignore[no-untyped-def]
        store.put(real_record("b", 1), png_bytes(1))
        store.put(real_record("a", 0, Split.TEST), png_bytes(2))
        store.put(synthetic_record("c", 1, "classic", source="b"), png_bytes(3))
        store.put(synthetic_record("d", 1, "diffusion", source="b"), png_bytes(4))
        assert [r.id for r in store.list()] == ["a", "b", "c", "d"]
        assert [r.id for r in store.list(split=Split.TRAIN, origin=Origin.REAL)] == ["b"]
        assert [r.id for r in store.list(grade=Grade(1), origin=Origin.SYNTHETIC)] == ["c", "d"]
        assert [r.id for r in store.list(augmentation="diffusion")] == ["d"]
        assert store.list(split=Split.VAL) == []

    def test_records_keep_provenance(self, store) -> None:  # type: ignore[no-untyped-def]
        record = synthetic_record("s1", 3, source="src-9")
        store.put(record, png_bytes(5))
        assert store.record("s1") == record

    def test_delete_removes_record_and_pixels(self, store) -> None:  # type: ignore[no-untyped-def]
        store.put(real_record("x", 0), png_bytes(1))
        store.delete("x")
        assert not store.exists("x")
        assert store.list() == []
        with pytest.raises(KeyError):
            store.get("x")

    def test_state_persists_across_instances(self, store, reopen) -> None:  # type: ignore[no-untyped-def]
        store.put(real_record("p", 4), png_bytes(7))
        store.put(real_record("q", 4), png_bytes(8))
        store.delete("q")
        again = reopen()
        assert [r.id for r in again.list()] == ["p"]
        assert again.get("p") == png_bytes(7)

    def test_location_is_descriptive(self, store) -> None:  # type: ignore[no-untyped-def]
        assert isinstance(store.location, str) and store.location

    def test_identity_is_stable_and_shared_by_every_instance(self, store, reopen) -> None:  # type: ignore[no-untyped-def]
        store.put(real_record("a", 0), png_bytes(1))
        identity = store.identity
        assert isinstance(identity, str) and len(identity) >= 8
        assert store.identity == identity
        assert reopen().identity == identity

    def test_distinct_stores_have_distinct_identities(self, store, other_store) -> None:  # type: ignore[no-untyped-def]
        store.put(real_record("a", 0), png_bytes(1))
        other_store.put(real_record("a", 0), png_bytes(1))
        assert store.identity != other_store.identity

    def test_writer_lock_is_reentrant_and_does_not_block_readers(self, store, reopen) -> None:  # type: ignore[no-untyped-def]
        store.put(real_record("a", 0), png_bytes(1))
        with store.writing("test writer"), store.writing("nested"):
            store.put(real_record("b", 0), png_bytes(2))
            reader = reopen()
            assert [r.id for r in reader.list()] == ["a", "b"]
            assert reader.get("a") == png_bytes(1)
        with store.writing("again"):
            pass

    def test_second_writer_is_refused_naming_the_holder(self, store, reopen) -> None:  # type: ignore[no-untyped-def]
        second = reopen()
        if second is store:
            pytest.skip("this store has no second instance over the same storage")
        with store.writing("augment run first"):
            with pytest.raises(StoreError) as info, second.writing("augment run second"):
                pass
            message = str(info.value)
            assert "augment run first" in message and "pid" in message and "\n" not in message
        with second.writing("augment run second"):  # released: the next writer gets it
            pass

    def test_the_first_naming_claim_binds_the_store(self, store, reopen) -> None:  # type: ignore[no-untyped-def]
        store.claim_names("pseudonyms:p-abc")
        store.claim_names("pseudonyms:p-abc")  # the same naming again: fine
        with pytest.raises(StoreError):
            store.claim_names("plain")
        with pytest.raises(StoreError):
            reopen().claim_names("pseudonyms:p-other")
        reopen().claim_names("pseudonyms:p-abc")
