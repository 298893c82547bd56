"""Ports: the interfaces through which application services reach the outside world.

Every port is a ``typing.Protocol`` whose docstring is its contract; each adapter of a port
passes the shared contract suite in ``tests/contracts``. Images cross ports as encoded PNG
bytes (8-bit RGB), so services never touch pixel libraries.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from domain import FundusImage, Grade, Origin, Split

PngBytes = bytes
"""An image encoded as PNG, 8-bit RGB, as exchanged by every port."""


@runtime_checkable
class ImageStore(Protocol):
    """Stores fundus images (pixels) and their records (``FundusImage``).

    Contract:
        - ``put`` is atomic: after it returns, ``exists``/``get``/``record``/``list`` see the
          image; if it fails or the process dies, neither the pixels nor the record are
          visible (no record without its image, no half-written file).
        - Putting an id that already exists raises ``StoreError`` unless ``overwrite=True``.
        - ``get`` returns exactly the bytes that were put; an unknown id raises ``KeyError``.
        - ``list`` returns records sorted by id, filtered by any given split/grade/origin/
          augmentation (``augmentation=None`` means any).
        - ``delete`` removes the record and the pixels; deleting an unknown id raises ``KeyError``.
        - Keys follow ``<split>/<grade>/<id>.png`` (see ``domain.images.storage_key``).
        - ``location`` is a human-readable description (a path or ``s3://bucket/prefix``).
    """

    @property
    def location(self) -> str: ...

    def put(self, image: FundusImage, data: PngBytes, *, overwrite: bool = False) -> None: ...

    def get(self, image_id: str) -> PngBytes: ...

    def record(self, image_id: str) -> FundusImage: ...

    def exists(self, image_id: str) -> bool: ...

    def list(
        self,
        *,
        split: Split | None = None,
        grade: Grade | None = None,
        origin: Origin | None = None,
        augmentation: str | None = None,
    ) -> list[FundusImage]: ...

    def delete(self, image_id: str) -> None: ...


class SourceItem(BaseModel):
    """One labelled image found in a data set, not yet read.

    Attributes:
        id: the unique id it will have in the store.
        grade: its label.
        split: the split the data set puts it in.
        locator: where the source reads it from (a path, or a generator index).
        original_name: its name in the data set, for provenance.
    """

    model_config = ConfigDict(frozen=True)

    id: str
    grade: Grade
    split: Split
    locator: str
    original_name: str


class ScanResult(BaseModel):
    """The items a data-set scan found, and the problems it met (one line each)."""

    model_config = ConfigDict(frozen=True)

    items: tuple[SourceItem, ...]
    problems: tuple[str, ...] = ()


@runtime_checkable
class DatasetSource(Protocol):
    """A labelled data set that can be listed and read.

    Contract:
        - ``name`` is the data set's short name, used as the provenance generator of its images.
        - ``scan`` reads labels only (no pixels) and never raises for a bad row: each problem
          (missing image, image without label, grade outside 0-4, duplicate id, unsafe path...)
          becomes one line in ``ScanResult.problems`` naming the file and the problem, and the
          offending item is left out. Ids are unique across splits.
        - ``read`` returns the raw encoded bytes of the item (any format Pillow reads); it raises
          ``InputError`` naming the file when it cannot be read.
        - Scanning twice gives the same items in the same order.
    """

    @property
    def name(self) -> str: ...

    def scan(self) -> ScanResult: ...

    def read(self, item: SourceItem) -> bytes: ...


@runtime_checkable
class Preprocessor(Protocol):
    """Turns a raw fundus photograph into the store's working form.

    Contract:
        - ``preprocess(raw, name)`` returns a square 8-bit RGB PNG of ``size`` x ``size`` pixels
          cropped to the retina, without EXIF or other metadata.
        - Undecodable, truncated or non-image input raises ``InputError`` with a one-line
          message naming ``name`` and the problem.
        - Deterministic: the same bytes give the same PNG.
    """

    @property
    def size(self) -> int: ...

    def preprocess(self, raw: bytes, name: str) -> PngBytes: ...


class GenerationRequest(BaseModel):
    """One image a generator must make.

    Attributes:
        image_id: id the result will be stored under.
        grade: the grade to make.
        seed: the seed that makes the result reproducible.
        source_id: the real image it derives from, if any.
        source: that image's PNG bytes, if any.
        size: the side of the square output in pixels.
    """

    model_config = ConfigDict(frozen=True)

    image_id: str
    grade: Grade
    seed: int
    source_id: str | None = None
    source: PngBytes | None = None
    size: int


class GenerationResult(BaseModel):
    """A generated image and the parameters that made it (recorded in its provenance)."""

    model_config = ConfigDict(frozen=True)

    image_id: str
    data: PngBytes
    parameters: dict[str, Any] = Field(default_factory=dict)


@runtime_checkable
class ImageGenerator(Protocol):
    """Makes synthetic fundus images of a given grade, optionally from a real source image.

    Contract:
        - ``name`` identifies the generator in provenance (``"classic"``, ``"diffusion"``...).
        - ``needs_source``: True when every request must carry ``source`` bytes.
        - ``batch_size``: how many requests the service should pass per ``generate`` call.
        - ``generate`` returns one result per request, in order, each a ``size`` x ``size`` RGB
          PNG. The same request (same seed) gives the same pixels; different seeds differ.
          ``parameters`` are JSON-serialisable and enough to reproduce the image.
        - A generator that needs training and has none raises ``GeneratorError`` saying how to
          train it; a request the generator cannot honour raises ``GeneratorError``.
    """

    @property
    def name(self) -> str: ...

    @property
    def needs_source(self) -> bool: ...

    @property
    def batch_size(self) -> int: ...

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]: ...


class ProgressTask(Protocol):
    """One bar of progress: advance it as work is done; extra fields are shown beside it."""

    def advance(self, steps: int = 1, **fields: Any) -> None: ...


@runtime_checkable
class ProgressSink(Protocol):
    """Where long work reports progress (a rich bar in the CLI, callbacks when embedded).

    Contract: ``task(description, total)`` is a context manager yielding a ``ProgressTask``;
    ``total`` may be None when unknown. Sinks never raise into the work they observe.
    """

    def task(self, description: str, total: int | None) -> AbstractContextManager[ProgressTask]: ...


class _NullTask:
    def advance(self, steps: int = 1, **fields: Any) -> None:
        return None


class _NullContext(AbstractContextManager[ProgressTask]):
    def __enter__(self) -> ProgressTask:
        return _NullTask()

    def __exit__(self, *exc: object) -> None:
        return None


class NullProgress:
    """A ProgressSink that shows nothing (the default for embedded use and tests)."""

    def task(self, description: str, total: int | None) -> AbstractContextManager[ProgressTask]:
        return _NullContext()


def iter_batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    """Consecutive slices of at most ``size`` items."""
    for start in range(0, len(items), max(size, 1)):
        yield items[start : start + max(size, 1)]
