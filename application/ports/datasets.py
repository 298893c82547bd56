"""Ports: Where labelled real images come from, and how they are prepared."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from medaug.application.ports.storage import PngBytes
from medaug.domain import Grade, Split


class SourceItem(BaseModel):
    """One labelled image found in a data set, not yet read.

    Attributes:
        id: the unique id it will have in the store.
        grade: its label.
        split: the split the data set puts it in.
        locator: where the source reads it from (a path, or a generator index).
        original_name: its name in the data set, for provenance.
        group: the patient (or other unit) it belongs to, when the data set says so: images of
            one group are kept in the same split or fold. ``None``: the image is its own group.
    """

    model_config = ConfigDict(frozen=True)

    id: str
    grade: Grade
    split: Split
    locator: str
    original_name: str
    group: str | None = None


class ScanResult(BaseModel):
    """The items a data-set scan found, the problems it met and what it left out on purpose.

    Attributes:
        items: the labelled, gradable images, in a stable order.
        problems: one line per bad row or file (an error unless the ingest is lenient).
        notices: one line per kind of image left out on purpose, with its count (ungradable
            images, an unlabelled test part, images the labels file does not list): not errors.
    """

    model_config = ConfigDict(frozen=True)

    items: tuple[SourceItem, ...]
    problems: tuple[str, ...] = ()
    notices: tuple[str, ...] = ()


@runtime_checkable
class DatasetSource(Protocol):
    """A labelled data set that can be listed and read.

    Contract:
        - ``name`` is the data set's short name, used as the provenance generator of its images.
        - ``scan`` reads labels only (no pixels) and never raises for a bad row: each problem
          (missing image, image without label, grade outside 0-4, duplicate id, unsafe path...)
          becomes one line in ``ScanResult.problems`` naming the file and the problem, and the
          offending item is left out. Images left out on purpose (ungradable, unlabelled) are
          counted in ``ScanResult.notices``, one line per kind, and are not problems.
        - Ids are injective: distinct files always get distinct ids (``x.jpg`` and ``x.png``,
          ``a b`` and ``a_b``), across splits too; a collision is impossible, not refused.
        - Nothing outside the data-set folder is read: a symlink leading out of it is a problem
          naming the file.
        - ``SourceItem.group`` names the patient when the layout records one (two eyes).
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
