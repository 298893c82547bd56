"""The in-memory fake store used by service tests keeps the ImageStore contract too."""

from __future__ import annotations

import pytest

from tests.contracts.image_store import ImageStoreContract
from tests.fakes import InMemoryImageStore


class TestInMemoryImageStore(ImageStoreContract):
    @pytest.fixture
    def other_store(self) -> InMemoryImageStore:
        return InMemoryImageStore()

    @pytest.fixture
    def store(self) -> InMemoryImageStore:
        return InMemoryImageStore()
