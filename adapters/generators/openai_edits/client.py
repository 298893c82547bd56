"""The OpenAI SDK client of the openai generator, built without SDK retries."""

from __future__ import annotations

import os

import openai

from medaug.adapters.generators.openai_edits.config import OpenAIConfig


def make_openai_client(config: OpenAIConfig) -> openai.OpenAI | None:
    """The SDK client for ``config``, without SDK retries (the generator retries visibly).

    The key comes from ``config.api_key`` or else ``OPENAI_API_KEY``; without one, None.
    """
    key = config.api_key.get_secret_value() if config.api_key else os.environ.get("OPENAI_API_KEY")
    if not key:
        return None
    return openai.OpenAI(
        api_key=key,
        base_url=config.base_url,
        organization=config.organization,
        timeout=config.timeout_s,
        max_retries=0,
    )
