"""The ImageGenerator contract: every generator adapter must pass these.

Subclass ``ImageGeneratorContract`` and provide a ``generator`` fixture returning a ready
generator (trained, if it needs training; tiny and fast) and, optionally, ``size``.
"""

from __future__ import annotations

import pytest

from medaug.adapters.png import decode_png
from medaug.application.ports import GenerationRequest, GenerationResult
from medaug.domain import Grade
from tests.conftest import png_bytes


class ImageGeneratorContract:
    """Behaviour every ImageGenerator must show."""

    @pytest.fixture
    def size(self) -> int:
        return 32

    def _requests(self, generator, size: int, seeds=(1, 2), grade: int = 2):  # type: ignore[no-untyped-def]
        source = png_bytes(seed=11, size=size) if generator.needs_source else None
        return [
            GenerationRequest(image_id=f"syn-{s}", grade=Grade(grade), seed=s, source_id="src" if source else None,
                              source=source, size=size)
            for s in seeds
        ]

    def test_describes_itself(self, generator) -> None:  # type: ignore[no-untyped-def]
        assert isinstance(generator.name, str) and generator.name
        assert isinstance(generator.needs_source, bool)
        assert generator.batch_size >= 1

    def test_one_png_of_the_requested_size_per_request_in_order(self, generator, size) -> None:  # type: ignore[no-untyped-def]
        requests = self._requests(generator, size, seeds=(3, 4, 5))
        results = generator.generate(requests)
        assert [r.image_id for r in results] == ["syn-3", "syn-4", "syn-5"]
        for result in results:
            assert isinstance(result, GenerationResult)
            assert decode_png(result.data).shape == (size, size, 3)

    def test_same_seed_same_pixels_other_seed_other_pixels(self, generator, size) -> None:  # type: ignore[no-untyped-def]
        first = generator.generate(self._requests(generator, size, seeds=(7, 8)))
        again = generator.generate(self._requests(generator, size, seeds=(7,)))
        assert (decode_png(first[0].data) == decode_png(again[0].data)).all()
        assert (decode_png(first[0].data) != decode_png(first[1].data)).any()

    def test_parameters_are_json_serialisable(self, generator, size) -> None:  # type: ignore[no-untyped-def]
        import json

        result = generator.generate(self._requests(generator, size, seeds=(9,)))[0]
        json.dumps(result.parameters)
