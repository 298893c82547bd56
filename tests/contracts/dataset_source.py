"""The DatasetSource contract: every data-set adapter must pass these.

Subclass ``DatasetSourceContract`` and provide a ``source`` fixture (a small, valid data set).
"""

from __future__ import annotations

from medaug.adapters.png import decode_png  # noqa: F401  (Pillow must read what read() returns)
from medaug.application.ports import ScanResult


class DatasetSourceContract:
    """Behaviour every DatasetSource must show."""

    def test_scan_finds_unique_ids(self, source) -> None:  # type: ignore[no-untyped-def]
        result = source.scan()
        assert isinstance(result, ScanResult)
        assert result.items, "the fixture data set must not be empty"
        ids = [item.id for item in result.items]
        assert len(ids) == len(set(ids))

    def test_scan_is_repeatable(self, source) -> None:  # type: ignore[no-untyped-def]
        assert source.scan() == source.scan()

    def test_read_returns_decodable_image_bytes(self, source) -> None:  # type: ignore[no-untyped-def]
        item = source.scan().items[0]
        data = source.read(item)
        assert isinstance(data, bytes) and data
        import io

        from PIL import Image

        with Image.open(io.BytesIO(data)) as image:
            image.load()
            assert image.size[0] > 0

    def test_name_is_set(self, source) -> None:  # type: ignore[no-untyped-def]
        assert isinstance(source.name, str) and source.name
