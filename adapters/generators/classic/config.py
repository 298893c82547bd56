"""Configuration of the classic (torchvision transforms) generator."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ClassicConfig(BaseModel):
    """``preset`` names a recipe (``thesis`` = flips + brightness increase); ``operations``
    overrides it with a list of named operations and their parameters."""

    model_config = ConfigDict(extra="forbid")

    preset: str = "thesis"
    operations: list[dict[str, Any]] = Field(default_factory=list)
