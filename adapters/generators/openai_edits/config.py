"""Configuration of the OpenAI image-edit generator (filled in by its issue)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, SecretStr


class OpenAIConfig(BaseModel):
    """Settings of the openai generator. Never on by accident: see ``allow_external_upload``."""

    model_config = ConfigDict(extra="allow")

    allow_external_upload: bool = False
    api_key: SecretStr | None = None
    base_url: str | None = None
