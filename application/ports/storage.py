"""Ports: Where images and run results are kept."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Protocol, runtime_checkable

from medaug.domain import FundusImage, Grade, Origin, Split
from medaug.domain.experiment import (
    CellKey,
    CellResult,
    ExperimentResult,
)

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
        - ``identity`` is the store's id, written when the store is created: the same storage
          gives the same id however it is reached (relative or absolute path, another instance),
          and two stores never share one. Anything kept *for* a store (generator models, feature
          caches, run folders) is keyed by it, never by ``location``.
        - ``writing(command)`` is the writer lock, a context manager held by a whole writing
          command (ingest, augment, sync into, repair): while one holder has it, ``writing`` on
          the same storage from another process (or another store object) waits up to the
          store's lock wait, then raises ``StoreError`` in one line naming the holder (its
          command, pid, host and since when). It is re-entrant within one store object, a
          holder that dies releases it (or its lease expires), and readers are never blocked.
        - ``claim_names(names)`` binds the store to one way of naming its real images
          (``"plain"``: the data set's names; ``"pseudonyms:<check>"``: pseudonyms of one key,
          ``<check>`` telling keys apart). The first claim is kept with the store's identity;
          a different later one raises ``StoreError`` in one line, nothing written.
    """

    @property
    def location(self) -> str: ...

    @property
    def identity(self) -> str: ...

    def writing(self, command: str) -> AbstractContextManager[None]: ...

    def claim_names(self, names: str) -> None: ...

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


@runtime_checkable
class MaintainableStore(Protocol):
    """An ImageStore that can check and repair its own index (``medaug store check/repair``).

    Contract:
        - ``check()`` only reads, and returns one line per problem (naming the file or object
          and, for a manifest, the line number); an empty list means healthy. It reads every
          image and compares it with the checksum recorded when it was put (a truncated or
          altered image is a problem); ``check(quick=True)`` skips reading the images.
        - ``repair()`` holds the writer lock, rebuilds the index from the records and images
          that are intact (a damaged manifest line or record object is dropped, a record whose
          image is gone is dropped, an image without a record and stray temporary files are
          removed) and returns one line per thing it did; ``check()`` is empty afterwards.
    """

    def check(self, *, quick: bool = False) -> list[str]: ...

    def repair(self) -> list[str]: ...


@runtime_checkable
class RunRepository(Protocol):
    """Keeps an experiment run's results so that a killed run continues where it stopped.

    Contract:
        - ``claim(fingerprint, arms)`` binds the run folder to one experiment definition (the
          shared ``fingerprint``) and to one definition per arm name (``arms``: name ->
          definition): a folder holding another fingerprint, or another definition under an
          arm's name, raises ``ConfigError`` (finished cells are never mixed). New arms are added.
        - ``save_cell`` is atomic; ``load_cell`` returns a saved cell or None.
        - ``save_result`` writes ``results.json`` atomically and returns its path;
          ``load_result`` reads it back (``ConfigError`` if absent or unreadable).
        - ``checkpoint_path(slug)`` is where a cell may write its weights.
        - ``location`` is the run folder.
    """

    @property
    def location(self) -> str: ...

    def claim(self, fingerprint: str, arms: Mapping[str, str]) -> None: ...

    def load_cell(self, key: CellKey) -> CellResult | None: ...

    def save_cell(self, cell: CellResult) -> None: ...

    def save_result(self, result: ExperimentResult) -> str: ...

    def load_result(self) -> ExperimentResult: ...

    def checkpoint_path(self, slug: str) -> str: ...
