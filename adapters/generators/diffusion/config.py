"""Configuration of the diffusion generator: named profiles plus per-field overrides.

A *profile* (``tiny``, ``quick``, ``standard``) is a complete :class:`DiffusionRecipe`: model
size, resolution, training length, noise schedule and sampler. :class:`DiffusionConfig` (the
``[generators.diffusion]`` table of ``medaug.toml``) names a profile and may override any field
of it; what it does not set comes from the profile. Pure pydantic: no heavy imports.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from medaug.adapters.generators.profiles import ProfileConfig, recipe_overrides, validate_recipe

RESOLUTIONS: tuple[int, ...] = (16, 32, 64, 128, 256)
"""Training resolutions: 64, 128 and 256 for real work; 16 and 32 for tests and smoke runs."""

NULL_CLASS = 5
"""Class index meaning "no grade" (classifier-free guidance); grades are classes 0-4."""

NUM_CLASSES = 6

SamplerName = Literal["dpmsolver++", "unipc", "ddim", "ddpm"]
Schedule = Literal["linear", "cosine"]
PredictionType = Literal["epsilon", "v_prediction"]
Mode = Literal["sample", "variation"]
Flips = Literal["none", "horizontal", "both"]
MixedPrecision = Literal["auto", "no", "fp16", "bf16"]
SamplePrecision = Literal["auto", "fp32", "bf16"]

ARCHITECTURE_FIELDS: tuple[str, ...] = (
    "resolution",
    "channels",
    "layers_per_block",
    "attention_levels",
    "schedule",
    "prediction_type",
    "num_train_timesteps",
    "patch_size",
    "coordinate_channels",
)
"""Recipe fields a checkpoint is bound to: changing one needs a fresh training run."""

SAMPLING_FIELDS: tuple[str, ...] = (
    "sampler", "sample_steps", "guidance_scale", "generate_batch_size", "sample_precision"
)
"""Recipe fields that only affect generation: they may differ from what training used."""


class DiffusionRecipe(BaseModel):
    """Everything that defines one diffusion model, how it is trained and how it samples.

    Attributes:
        resolution: side of the square images the model samples and varies (one of
            ``RESOLUTIONS``); the training images are decoded at this size.
        patch_size: Patch Diffusion (Wang et al. 2023): train on random ``patch_size`` crops of
            the ``resolution`` images instead of whole images (None = whole images). The
            convolutional UNet still samples the whole canvas.
        coordinate_channels: feed the UNet two extra input channels holding each pixel's x and y
            position in the full image, in [-1, 1] (what tells a patch where it sits in the fundus).
        channels: UNet channels per level (each level halves the resolution).
        layers_per_block: ResNet layers per UNet block.
        attention_levels: how many of the deepest levels use self-attention (0 = none).
        train_steps: optimisation steps in total.
        batch_size: images per process per micro-step.
        grad_accumulation: micro-steps per optimisation step.
        learning_rate: AdamW peak learning rate (after warm-up; cosine decay to 0).
        warmup_steps: linear learning-rate warm-up steps.
        weight_decay: AdamW weight decay.
        ema_decay: largest EMA decay; the EMA warms up towards it (``ema_power``).
        ema_power: EMA warm-up exponent (decay = 1 - (1 + step) ** -power, capped).
        cfg_dropout: share of training images whose grade is replaced by the null class.
        schedule: ``linear`` or ``cosine`` (``squaredcos_cap_v2``) beta schedule.
        prediction_type: ``epsilon`` or ``v_prediction``.
        num_train_timesteps: diffusion steps of the training process.
        snr_gamma: min-SNR-gamma loss weighting (None: every timestep weighs the same).
        flips: augmentation of training images (``horizontal`` swaps left and right eyes).
        mixed_precision: ``auto`` = bf16/fp16 on CUDA, none on CPU.
        checkpoint_every: steps between checkpoints (and contact sheets).
        keep_checkpoints: how many checkpoints to keep.
        sheet_per_grade: samples per grade on each contact sheet (0 = no sheet).
        sampler: ``dpmsolver++``, ``unipc``, ``ddim`` or ``ddpm``.
        sample_steps: denoising steps when sampling.
        guidance_scale: classifier-free guidance (1 = conditional only, no extra pass).
        generate_batch_size: images per UNet batch when generating. Results are reproducible
            for a given value, whatever the order or grouping of requests.
        sample_precision: the UNet's arithmetic when sampling: ``bf16`` (autocast), ``fp32``,
            or ``auto``: bf16 where the processor computes it natively (a CUDA GPU that supports
            it, a CPU with AVX-512 BF16 or AMX), else fp32. Training is not affected.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    resolution: int
    channels: tuple[int, ...] = Field(min_length=1, max_length=6)
    layers_per_block: int = Field(ge=1, le=4)
    attention_levels: int = Field(ge=0)
    train_steps: int = Field(ge=1)
    batch_size: int = Field(ge=1)
    grad_accumulation: int = Field(default=1, ge=1)
    learning_rate: float = Field(gt=0, le=1)
    warmup_steps: int = Field(ge=0)
    weight_decay: float = Field(default=1e-4, ge=0)
    ema_decay: float = Field(ge=0, lt=1)
    ema_power: float = Field(default=0.75, gt=0, le=1)
    cfg_dropout: float = Field(default=0.15, ge=0, lt=1)
    schedule: Schedule = "cosine"
    # v-prediction: a 40k-parameter epsilon model trained 800 steps on plain discs still sampled
    # grey noise (its x0 estimate at high noise is epsilon error / sqrt(alpha_bar), ~150x at
    # t=999); the same model predicting v drew the discs after 150 steps, with every sampler.
    prediction_type: PredictionType = "v_prediction"
    num_train_timesteps: int = Field(default=1000, ge=10, le=4000)
    # Min-SNR-gamma loss weighting (Hang et al. 2023): each timestep's loss is weighted by
    # min(SNR, gamma) / (SNR + 1) (v-prediction) or min(SNR, gamma) / SNR (epsilon), so the
    # nearly clean timesteps, whose targets are easy, stop dominating the gradient.
    snr_gamma: float | None = Field(default=None, gt=0, le=100)
    patch_size: int | None = Field(default=None, ge=8)
    coordinate_channels: bool = False
    flips: Flips = "horizontal"
    mixed_precision: MixedPrecision = "auto"
    checkpoint_every: int = Field(ge=1)
    keep_checkpoints: int = Field(default=2, ge=1)
    sheet_per_grade: int = Field(default=4, ge=0, le=16)
    sampler: SamplerName = "dpmsolver++"
    sample_steps: int = Field(default=20, ge=1, le=1000)
    guidance_scale: float = Field(default=2.0, ge=0, le=20)
    generate_batch_size: int = Field(default=8, ge=1)
    sample_precision: SamplePrecision = "fp32"

    @model_validator(mode="after")
    def _shape_is_consistent(self) -> DiffusionRecipe:
        if self.resolution not in RESOLUTIONS:
            raise ValueError(
                f"resolution {self.resolution} is not supported; choose one of {', '.join(map(str, RESOLUTIONS))}"
            )
        levels = len(self.channels)
        if self.resolution % 2 ** (levels - 1) or self.resolution // 2 ** (levels - 1) < 4:
            raise ValueError(f"resolution {self.resolution} is too small for {levels} UNet levels")
        if self.patch_size is not None:
            if self.patch_size > self.resolution:
                raise ValueError(f"patch_size {self.patch_size} exceeds resolution {self.resolution}")
            if self.patch_size % 2 ** (levels - 1) or self.patch_size // 2 ** (levels - 1) < 4:
                raise ValueError(f"patch_size {self.patch_size} is too small for {levels} UNet levels")
        if any(c < 4 for c in self.channels):
            raise ValueError(f"channels {self.channels} must each be at least 4")
        if self.attention_levels > levels:
            raise ValueError(f"attention_levels {self.attention_levels} exceeds the {levels} UNet levels")
        if self.sample_steps > self.num_train_timesteps:
            raise ValueError(f"sample_steps {self.sample_steps} exceeds num_train_timesteps {self.num_train_timesteps}")
        return self

    @property
    def training_size(self) -> int:
        """Side of the images the UNet sees in training: the patch, or the whole image."""
        return self.patch_size or self.resolution

    def architecture(self) -> dict[str, Any]:
        """The fields a checkpoint is bound to (see ``ARCHITECTURE_FIELDS``)."""
        return {name: getattr(self, name) for name in ARCHITECTURE_FIELDS}


PROFILES: dict[str, dict[str, Any]] = {
    "tiny": dict(
        resolution=16, channels=(8, 16), layers_per_block=1, attention_levels=0, train_steps=20, batch_size=8,
        learning_rate=2e-3, warmup_steps=2, ema_decay=0.9, ema_power=1.0, checkpoint_every=10, sheet_per_grade=2,
        sample_steps=4, guidance_scale=2.0, generate_batch_size=4, mixed_precision="no",
    ),
    "quick": dict(
        resolution=64, channels=(32, 64, 128, 128), layers_per_block=1, attention_levels=1, train_steps=1500,
        batch_size=16, learning_rate=1e-3, warmup_steps=100, ema_decay=0.999, ema_power=0.75, checkpoint_every=100,
        # UniPC at 10 steps in bf16 where native: measured (benchmarks/diffusion.py) at the FID of
        # 20 DPM-Solver++ steps in fp32, within its bootstrap interval, at 3x the speed.
        sampler="unipc", sample_steps=10, sample_precision="auto", guidance_scale=2.0, generate_batch_size=8,
    ),
    # Patch Diffusion on the 256 px store: 64 px crops with coordinate channels, no attention (a
    # patch's 8x8 bottleneck would not prepare attention for the whole canvas's 32x32). About 30
    # minutes on 2 idle cores; meant for low-strength variations of real images.
    "cpu": dict(
        resolution=256, patch_size=64, coordinate_channels=True, channels=(24, 48, 96, 96), layers_per_block=1,
        attention_levels=0, train_steps=2000, batch_size=16, learning_rate=1e-3, warmup_steps=100, ema_decay=0.999,
        ema_power=0.75, checkpoint_every=800, sheet_per_grade=1, sample_steps=20, guidance_scale=2.0,
        generate_batch_size=4,
    ),
    "standard": dict(
        resolution=256, patch_size=64, coordinate_channels=True, channels=(64, 128, 256, 256, 512), layers_per_block=2,
        attention_levels=0, train_steps=60000, batch_size=64, learning_rate=2e-4, warmup_steps=1000, ema_decay=0.9999,
        ema_power=0.75, checkpoint_every=2000, sheet_per_grade=8, sample_steps=25, guidance_scale=2.0,
        generate_batch_size=32,
    ),
}
"""Built-in profiles: ``tiny`` (tests, seconds), ``quick`` (CPU, minutes, 64 px whole images), ``cpu`` (CPU,
about 30 minutes, 256 px by 64 px patches), ``standard`` (GPU, 256 px by 64 px patches)."""


class DiffusionConfig(ProfileConfig[DiffusionRecipe], recipe_overrides(DiffusionRecipe)):  # type: ignore[misc]
    """Settings of the diffusion generator (``[generators.diffusion]``).

    ``profile`` picks a built-in recipe; every :class:`DiffusionRecipe` field set here (left
    ``None`` = the profile's value) overrides it, e.g. ``resolution = 128`` or
    ``sampler = "ddim"``. ``mode``, ``strength``, ``seed`` and ``device`` are about generation
    and training runs, not the model.

    Attributes:
        profile: ``tiny``, ``quick`` (CPU, 64 px), ``cpu`` (CPU, 256 px patch model) or ``standard`` (GPU).
        mode: ``sample`` (new images of a grade from noise) or ``variation`` (SDEdit of a real
            training image of that grade).
        strength: for variations, how far the source is noised (0 = the source itself,
            1 = pure noise, i.e. a fresh sample).
        source_detail_sigma: for variations, keep the source's detail finer than a Gaussian of
            this many pixels (at the model's resolution): vessels and lesions come from the
            source, illumination, colour and background from the model. None keeps the model's
            output whole.
        seed: training seed (default: the global ``seed``).
        device: ``auto``, ``cpu`` or ``cuda`` (default: the global ``device``).
    """

    model_config = ConfigDict(extra="forbid")
    generator_name = "diffusion"
    recipe_type = DiffusionRecipe
    profiles = PROFILES

    mode: Mode = "sample"
    strength: float = Field(default=0.5, ge=0, le=1)
    source_detail_sigma: float | None = Field(default=None, gt=0, le=64)
    seed: int | None = None
    device: Literal["auto", "cpu", "cuda"] | None = None

    @model_validator(mode="after")
    def _detail_needs_a_source(self) -> DiffusionConfig:
        if self.source_detail_sigma is not None and self.mode != "variation":
            raise ValueError("source_detail_sigma keeps a source image's detail: it needs mode = 'variation'")
        return self


def recipe_from(values: dict[str, Any], *, where: str) -> DiffusionRecipe:
    """Validate ``values`` as a recipe, turning pydantic errors into one-line ``ConfigError``s."""
    return validate_recipe(DiffusionRecipe, values, where=where)
