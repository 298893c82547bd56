"""Configuration of the dcgan generator (filled in by its issue)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class DCGANConfig(BaseModel):
    """Settings of the dcgan generator."""

    model_config = ConfigDict(extra="allow")

    profile: str = "quick"
