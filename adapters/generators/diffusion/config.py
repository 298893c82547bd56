"""Configuration of the diffusion generator (filled in by its issue)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class DiffusionConfig(BaseModel):
    """Settings of the diffusion generator."""

    model_config = ConfigDict(extra="allow")

    profile: str = "quick"
