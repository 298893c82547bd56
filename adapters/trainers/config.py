"""Configuration of the classifier trainers (filled in by the experiments issue)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class TrainersConfig(BaseModel):
    """Settings of the classifiers."""

    model_config = ConfigDict(extra="allow")
