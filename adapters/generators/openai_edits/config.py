"""Configuration of the OpenAI image-edit generator (pure pydantic, no SDK import)."""

from __future__ import annotations

import string
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

THESIS_PROMPT = (
    "photographs of the retina, which is the layer of tissue at the back of the eye that its "
    "Retinopathy grade = {grade}/4 and its Risk of macular edema = 0 for medical purposes"
)
"""The thesis's DALL-E 2 prompt, with its grade made a placeholder."""

DEFAULT_MODEL = "gpt-image-2.5-sunburst"
"""A current GPT Image model (the SDK lists gpt-image-1 as shut down on 2026-10-23)."""

_PLACEHOLDERS = {"grade", "grade_name"}
_VARIATION_SIZES = {"256x256", "512x512", "1024x1024"}

DEFAULT_PRICES_USD: dict[str, float] = {
    "low": 0.011,
    "medium": 0.042,
    "high": 0.167,
    "auto": 0.167,
    "variation": 0.020,
}
"""USD per output image at 1024x1024, by quality (``variation`` for the legacy endpoint).

Conservative published GPT Image 1 / DALL-E 2 list prices; ``auto`` is priced as ``high``.
Set ``prices_usd`` from your provider's price list: it only feeds estimates and budgets.
"""


class OpenAIConfig(BaseModel):
    """Settings of the ``openai`` generator. Never on by accident: see ``allow_external_upload``.

    Attributes:
        allow_external_upload: must be true before any training image is uploaded to the API.
        api_key: the API key (else ``OPENAI_API_KEY``); a secret, never logged or recorded.
        base_url: another endpoint: Azure OpenAI (``https://<res>.openai.azure.com/openai/v1``)
            or an OpenAI-compatible server.
        organization: the OpenAI organization id, if any.
        model: the image model; a GPT Image model for ``edit``, e.g. ``dall-e-2`` for ``variation``.
        mode: ``edit`` (``images.edit`` with a prompt) or ``variation`` (the legacy
            ``images.create_variation``, for compatible servers that still offer it).
        prompt_template: the edit prompt; ``{grade}`` (0-4) and ``{grade_name}`` are filled in.
        prompt_by_grade: per-grade prompt templates that replace ``prompt_template``.
        size: output size asked of the API (results are resized to the working size).
        quality: GPT Image quality (``low``, ``medium``, ``high``, ``auto``...).
        images_per_call: images asked per call (``n``); extras are kept as spares for later
            requests with the same source image and grade, which the plan makes round-robin.
        upload_max_side: the source image is downscaled to at most this side before upload.
        max_concurrency: calls in flight at once.
        max_retries: retries after the first attempt on 429, 5xx, timeouts and connection errors.
        backoff_s: first backoff delay; doubles per retry, with full jitter, capped at ``max_backoff_s``.
        max_backoff_s: longest wait between retries, Retry-After included.
        timeout_s: per-request timeout.
        budget_images: most images this store may ever pay for (all runs); None = no cap.
        budget_usd: most estimated USD this store may ever spend (all runs); None = no cap. A call
            is only sent when the budget left covers it at the dearest price per image seen so far
            (``prices_usd`` or what calls have billed), so usage-based costs above the table's
            price can overshoot only by the calls in flight when that price is first seen.
        prices_usd: USD per image by quality, for estimates and the budget.
        usd_per_1m_input_tokens: when set with the output price, the cost of a call is taken
            from the usage the API reports instead of ``prices_usd``.
        usd_per_1m_output_tokens: see ``usd_per_1m_input_tokens``.
    """

    model_config = ConfigDict(extra="forbid")

    allow_external_upload: bool = False
    api_key: SecretStr | None = None
    base_url: str | None = None
    organization: str | None = None
    model: str = DEFAULT_MODEL
    mode: Literal["edit", "variation"] = "edit"
    prompt_template: str = THESIS_PROMPT
    prompt_by_grade: dict[int, str] = Field(default_factory=dict)
    size: str = "1024x1024"
    quality: str = "low"
    images_per_call: int = Field(default=1, ge=1, le=10)
    upload_max_side: int = Field(default=1024, ge=64, le=4096)
    max_concurrency: int = Field(default=2, ge=1, le=32)
    max_retries: int = Field(default=5, ge=0, le=20)
    backoff_s: float = Field(default=1.0, ge=0.0)
    max_backoff_s: float = Field(default=60.0, ge=0.0)
    timeout_s: float = Field(default=120.0, gt=0.0)
    budget_images: int | None = Field(default=None, ge=0)
    budget_usd: float | None = Field(default=None, ge=0.0)
    prices_usd: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_PRICES_USD))
    usd_per_1m_input_tokens: float | None = Field(default=None, ge=0.0)
    usd_per_1m_output_tokens: float | None = Field(default=None, ge=0.0)

    @field_validator("prompt_template")
    @classmethod
    def _template_placeholders(cls, value: str) -> str:
        return _check_template(value)

    @field_validator("prompt_by_grade")
    @classmethod
    def _grade_templates(cls, value: dict[int, str]) -> dict[int, str]:
        for grade, template in value.items():
            if not 0 <= grade <= 4:
                raise ValueError(f"prompt_by_grade has grade {grade}, outside 0-4")
            _check_template(template)
        return value

    @field_validator("size")
    @classmethod
    def _size_shape(cls, value: str) -> str:
        width, sep, height = value.partition("x")
        if value != "auto" and not (sep and width.isdigit() and height.isdigit()):
            raise ValueError(f"size {value!r} must be WIDTHxHEIGHT (e.g. 1024x1024) or 'auto'")
        return value

    @model_validator(mode="after")
    def _variation_rules(self) -> OpenAIConfig:
        if self.mode == "variation" and self.size not in _VARIATION_SIZES:
            raise ValueError(f"mode 'variation' needs size 256x256, 512x512 or 1024x1024, not {self.size!r}")
        return self

    def prompt(self, grade: int, grade_name: str) -> str:
        """The prompt for one grade."""
        template = self.prompt_by_grade.get(grade, self.prompt_template)
        return template.format(grade=grade, grade_name=grade_name)

    def price_per_image(self) -> float:
        """Estimated USD per output image for the configured mode and quality."""
        key = "variation" if self.mode == "variation" else self.quality
        if key in self.prices_usd:
            return self.prices_usd[key]
        return max(self.prices_usd.values(), default=0.0)


def _check_template(template: str) -> str:
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as exc:
        raise ValueError(f"prompt template is malformed ({exc})") from None
    unknown = fields - _PLACEHOLDERS
    if unknown:
        raise ValueError(
            f"prompt template has unknown placeholder(s) {sorted(unknown)}; use {{grade}} or {{grade_name}}"
        )
    return template
