"""Configuration of the latent-diffusion generator: named profiles plus per-field overrides.

A profile (``gpu``, ``cpu-smoke``) is a complete :class:`LatentDiffusionRecipe`: LoRA rank,
resolution, training length and sampler. :class:`LatentDiffusionConfig` (the
``[generators.latent_diffusion]`` table of ``medaug.toml``) names a profile, may override any
field of it, and says where the pretrained weights are. Pure pydantic: no heavy imports.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from medaug.adapters.generators.profiles import ProfileConfig, recipe_overrides, validate_recipe
from medaug.application.errors import ConfigError

Mode = Literal["sample", "variation"]
SamplerName = Literal["ddim", "dpmsolver++", "pndm"]
MixedPrecision = Literal["auto", "no", "fp16", "bf16"]
Switch = Literal["auto", "on", "off"]

ARCHITECTURE_FIELDS: tuple[str, ...] = ("lora_rank", "lora_alpha", "prompt", "grade_tokens")
"""Recipe fields a LoRA checkpoint is bound to: changing one needs a fresh training run."""

SAMPLING_FIELDS: tuple[str, ...] = ("sampler", "sample_steps", "guidance_scale", "generate_batch_size", "resolution")
"""Recipe fields that only affect generation: they may differ from what training used."""

GRADE_WORDS: tuple[str, ...] = ("no", "mild", "moderate", "severe", "proliferative")
"""The word for each grade 0-4 in the prompts (lowercase, so any CLIP vocabulary has it)."""


GRADE_TOKEN = "<dr-grade-{}>"
"""The learned token of a grade (``components.GRADE_TOKENS``) when ``grade_tokens`` is on."""


class LatentDiffusionRecipe(BaseModel):
    """Everything that defines a per-grade LoRA of Stable Diffusion, its training and sampling.

    Attributes:
        resolution: side of the images LoRA trains on and the pipelines make (a multiple of 8;
            Stable Diffusion 1.5's native size is 512).
        lora_rank: rank of the LoRA matrices on the UNet's attention projections.
        lora_alpha: LoRA scale numerator (None = the rank, i.e. scale 1).
        prompt: the prompt of a grade; ``{grade}`` becomes the grade's word (``no``, ``mild``,
            ``moderate``, ``severe``, ``proliferative``) and ``{index}`` its number.
        grade_tokens: also learn a token per grade (textual inversion, as DA-Fusion): the word
            ``{grade}`` becomes ``<dr-grade-N> word``, and the token's embedding (started from
            the word's) trains beside LoRA.
        token_learning_rate: AdamW learning rate of those token embeddings.
        class_prompt: the prompt of the prior-preservation images (the class without a grade).
        prior_preservation: DreamBooth's prior-preservation loss: also fit ``prior_images``
            images the base model made from ``class_prompt``, so LoRA keeps what the base knew.
        prior_weight: weight of that loss.
        prior_images: how many prior images to make (once, before training).
        train_steps: optimisation steps in total.
        batch_size: images per process per micro-step.
        grad_accumulation: micro-steps per optimisation step.
        learning_rate: AdamW learning rate of the LoRA weights (after warm-up).
        lr_schedule: ``constant`` or ``cosine`` (after ``warmup_steps`` of linear warm-up).
        warmup_steps: learning-rate warm-up steps.
        weight_decay: AdamW weight decay.
        flips: flip training images left-right at random (swaps left and right eyes).
        mixed_precision: ``auto`` = bf16/fp16 on CUDA, none on CPU (LoRA weights stay fp32).
        gradient_checkpointing: ``auto`` = on a CUDA GPU of under 24 GiB.
        checkpoint_every: steps between checkpoints.
        keep_checkpoints: how many checkpoints to keep.
        sampler: ``ddim``, ``dpmsolver++`` or ``pndm``.
        sample_steps: denoising steps of a full sample (a variation runs ``strength`` of them).
        guidance_scale: classifier-free guidance (against the empty prompt).
        generate_batch_size: images per pipeline call; results are reproducible for a given value.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    resolution: int = Field(ge=16, le=1024, multiple_of=8)
    lora_rank: int = Field(ge=1, le=256)
    lora_alpha: float | None = Field(default=None, gt=0)
    prompt: str = Field(default="a fundus photograph with {grade} diabetic retinopathy", min_length=1)
    grade_tokens: bool = False
    token_learning_rate: float = Field(default=5e-4, gt=0, le=1)
    class_prompt: str = Field(default="a fundus photograph", min_length=1)
    prior_preservation: bool = False
    prior_weight: float = Field(default=1.0, ge=0)
    prior_images: int = Field(default=100, ge=1)
    train_steps: int = Field(ge=1)
    batch_size: int = Field(ge=1)
    grad_accumulation: int = Field(default=1, ge=1)
    learning_rate: float = Field(gt=0, le=1)
    lr_schedule: Literal["constant", "cosine"] = "constant"
    warmup_steps: int = Field(default=0, ge=0)
    weight_decay: float = Field(default=1e-2, ge=0)
    flips: bool = True
    mixed_precision: MixedPrecision = "auto"
    gradient_checkpointing: Switch = "auto"
    checkpoint_every: int = Field(ge=1)
    keep_checkpoints: int = Field(default=2, ge=1)
    sampler: SamplerName = "dpmsolver++"
    sample_steps: int = Field(default=25, ge=1, le=1000)
    guidance_scale: float = Field(default=5.0, ge=0, le=30)
    generate_batch_size: int = Field(default=4, ge=1)

    @model_validator(mode="after")
    def _prompt_names_the_grade(self) -> LatentDiffusionRecipe:
        if "{grade}" not in self.prompt and "{index}" not in self.prompt:
            raise ValueError(f"prompt {self.prompt!r} must contain {{grade}} or {{index}}: it conditions on the grade")
        if self.grade_tokens and "{grade}" not in self.prompt:
            raise ValueError(f"grade_tokens puts each grade's token before {{grade}}: prompt {self.prompt!r} has none")
        return self

    def grade_prompt(self, grade: int) -> str:
        """The prompt of ``grade`` (0-4)."""
        word = f"{GRADE_TOKEN.format(grade)} {GRADE_WORDS[grade]}" if self.grade_tokens else GRADE_WORDS[grade]
        return self.prompt.replace("{grade}", word).replace("{index}", str(grade))

    def architecture(self) -> dict[str, Any]:
        """The fields a checkpoint is bound to (see ``ARCHITECTURE_FIELDS``)."""
        return {name: getattr(self, name) for name in ARCHITECTURE_FIELDS}


PROFILES: dict[str, dict[str, Any]] = {
    # Stable Diffusion 1.5 at its native 512 px: LoRA rank 8 on the attention projections, AdamW
    # 1e-4 (as diffusers' train_text_to_image_lora and the DreamBooth-LoRA recipes: rank 4-16,
    # 1e-4, a few thousand steps for a few hundred images). Batch 8: on an H200 a step of 8 takes
    # as long as one of 4 (measured 50 vs 25 images/s, 11 GiB); 3000 steps = 24000 images, about
    # 8 minutes there.
    "gpu": dict(
        resolution=512, lora_rank=8, train_steps=3000, batch_size=8, learning_rate=1e-4, lr_schedule="cosine",
        warmup_steps=100, checkpoint_every=500, sampler="dpmsolver++", sample_steps=25, guidance_scale=5.0,
        generate_batch_size=8,
    ),
    # The smallest that runs: for tests and smoke runs with tiny components (figures meaningless).
    "cpu-smoke": dict(
        resolution=32, lora_rank=2, train_steps=4, batch_size=2, learning_rate=1e-3, checkpoint_every=2,
        sampler="ddim", sample_steps=4, guidance_scale=2.0, generate_batch_size=2, prior_images=4,
        mixed_precision="no", gradient_checkpointing="off",
    ),
}
"""Built-in profiles: ``gpu`` (SD 1.5, 512 px) and ``cpu-smoke`` (tiny, seconds)."""


class LatentDiffusionConfig(ProfileConfig[LatentDiffusionRecipe], recipe_overrides(LatentDiffusionRecipe)):  # type: ignore[misc]
    """Settings of the latent-diffusion generator (``[generators.latent_diffusion]``).

    ``profile`` picks a built-in recipe; every :class:`LatentDiffusionRecipe` field set here
    overrides it. Nothing is downloaded unless ``allow_hub = true`` and ``hub_id`` are set.

    Attributes:
        profile: ``gpu`` (SD 1.5, 512 px) or ``cpu-smoke`` (tiny components, tests).
        weights: a local diffusers Stable Diffusion folder (``model_index.json``, ``unet/``,
            ``vae/``, ``text_encoder/``, ``tokenizer/``, ``scheduler/``).
        hub_id: a Hugging Face hub id to download the weights from instead (needs ``allow_hub``).
        allow_hub: allow that download (off: nothing is ever downloaded).
        mode: ``variation`` (img2img of a real training image at ``strength``, prompt of the
            target grade) or ``sample`` (text-to-image from the grade's prompt).
        strength: for variations, how far the source is noised (1 = a fresh sample).
        seed: training seed (default: the global ``seed``).
        device: ``auto``, ``cpu`` or ``cuda`` (default: the global ``device``).
    """

    model_config = ConfigDict(extra="forbid")
    generator_name = "latent-diffusion"
    recipe_type = LatentDiffusionRecipe
    profiles = PROFILES

    profile: str = "gpu"
    weights: Path | None = None
    hub_id: str | None = None
    allow_hub: bool = False
    mode: Mode = "variation"
    strength: float = Field(default=0.5, gt=0, le=1)
    seed: int | None = None
    device: Literal["auto", "cpu", "cuda"] | None = None

    @model_validator(mode="after")
    def _one_weights_source(self) -> LatentDiffusionConfig:
        if self.hub_id is not None and not self.allow_hub:
            raise ValueError("hub_id downloads weights: set allow_hub = true to allow it, or set weights = PATH")
        if self.hub_id is not None and self.weights is not None:
            raise ValueError("set either weights (a local folder) or hub_id, not both")
        return self

    def weights_source(self) -> tuple[str, bool]:
        """Where the Stable Diffusion weights come from: ``(folder or hub id, is_local)``.

        Raises:
            ConfigError: neither is set (one line saying what to put where).
        """
        if self.weights is not None:
            return str(Path(self.weights).expanduser()), True
        if self.hub_id is not None:
            return self.hub_id, False
        raise ConfigError(
            "generators.latent_diffusion.weights: not set; download a diffusers Stable Diffusion folder "
            "(e.g. `huggingface-cli download stable-diffusion-v1-5/stable-diffusion-v1-5 --local-dir PATH`) "
            "and set weights = PATH"
        )


def recipe_from(values: dict[str, Any], *, where: str) -> LatentDiffusionRecipe:
    """Validate ``values`` as a recipe, turning pydantic errors into one-line ``ConfigError``s."""
    return validate_recipe(LatentDiffusionRecipe, values, where=where)
