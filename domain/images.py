"""Image records: what a stored fundus image is, where it came from and how it may be used."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from medaug.domain.grades import Grade

_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class Split(StrEnum):
    """Which part of the data set an image belongs to. Only ``train`` is ever augmented."""

    TRAIN = "train"
    VAL = "val"
    TEST = "test"


class Origin(StrEnum):
    """Whether an image is a real photograph or made by a generator."""

    REAL = "real"
    SYNTHETIC = "synthetic"


class Provenance(BaseModel):
    """How an image came to be: enough to reproduce or audit it.

    Attributes:
        source_ids: ids of the real images it was derived from (empty for unconditional samples
            and for real images).
        generator: name of the generator (``"classic"``, ``"diffusion"``...) or of the data set
            for a real image (``"idrid"``).
        parameters: generator parameters, JSON-serialisable (operations, strength, prompt...).
        seed: the random seed the image was generated with.
        original_name: for a real image, its file name in the source data set.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    source_ids: tuple[str, ...] = ()
    generator: str
    parameters: dict[str, Any] = Field(default_factory=dict)
    seed: int | None = None
    original_name: str | None = None


class FundusImage(BaseModel):
    """The record of one stored fundus photograph, real or synthetic.

    Attributes:
        id: unique across the whole store (letters, digits, ``.``, ``_``, ``-``).
        key: storage key of the pixels, relative to the store root.
        grade: the retinopathy grade it is labelled with.
        split: train, val or test.
        origin: real or synthetic.
        augmentation: for a synthetic image, the augmentation set (experiment arm) it belongs to.
        provenance: where it came from.
        group: the patient (or other unit) of a real image when its data set records one:
            images of one group are kept in the same split or fold. ``None``: its own group.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    key: str
    grade: Grade
    split: Split
    origin: Origin = Origin.REAL
    augmentation: str | None = None
    provenance: Provenance
    group: str | None = None

    @field_validator("id")
    @classmethod
    def _id_is_safe(cls, value: str) -> str:
        if not _SAFE_ID.match(value):
            raise ValueError(
                f"image id {value!r} must be 1-128 letters, digits, '.', '_' or '-' "
                "and start with a letter or digit"
            )
        return value

    @field_validator("key")
    @classmethod
    def _key_is_relative(cls, value: str) -> str:
        parts = value.split("/")
        if value.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise ValueError(f"storage key {value!r} must be a relative path without '..'")
        return value

    @model_validator(mode="after")
    def _synthetic_rules(self) -> FundusImage:
        if self.origin is Origin.SYNTHETIC:
            if self.split is not Split.TRAIN:
                raise ValueError(f"synthetic image {self.id} must be in the train split")
            if not self.augmentation:
                raise ValueError(f"synthetic image {self.id} must name its augmentation set")
        elif self.augmentation is not None:
            raise ValueError(f"real image {self.id} cannot belong to augmentation set")
        return self


def storage_key(split: Split, grade: Grade, image_id: str) -> str:
    """The canonical storage key ``<split>/<grade>/<id>.png`` used by every store."""
    return f"{split.value}/{int(grade)}/{image_id}.png"
