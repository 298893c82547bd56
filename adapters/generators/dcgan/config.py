"""Configuration of the dcgan generator: named profiles plus per-field overrides.

A *profile* (``tiny``, ``quick``, ``standard``) is a complete :class:`DCGANRecipe`: network size,
resolution, training length, optimiser and stabilisation options. :class:`DCGANConfig` (the
``[generators.dcgan]`` table of ``medaug.toml``) names a profile and may override any field of
it; what it does not set comes from the profile. Pure pydantic: no heavy imports.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from medaug.adapters.generators.profiles import ProfileConfig, recipe_overrides, validate_recipe

RESOLUTIONS: tuple[int, ...] = (16, 32, 64, 128)
"""Training resolutions: 64 (as in the thesis) and 128 for real work; 16 and 32 for tests."""

DIFFAUGMENT_OPERATIONS: tuple[str, ...] = ("color", "translation", "cutout")
"""DiffAugment operations (Zhao et al. 2020) a policy may combine, comma-separated."""

Flips = Literal["none", "horizontal"]

ARCHITECTURE_FIELDS: tuple[str, ...] = (
    "resolution",
    "latent_dim",
    "embed_dim",
    "g_channels",
    "d_channels",
    "max_multiplier",
    "spectral_norm",
)
"""Recipe fields a checkpoint is bound to: changing one needs a fresh training run."""

SAMPLING_FIELDS: tuple[str, ...] = ("generate_batch_size",)
"""Recipe fields that only affect generation: they may differ from what training used."""


class DCGANRecipe(BaseModel):
    """Everything that defines one class-conditional DCGAN and how it is trained.

    Attributes:
        resolution: side of the square training images (one of ``RESOLUTIONS``).
        latent_dim: size of the noise vector z.
        embed_dim: size of the grade embedding concatenated to z in the generator.
        g_channels: generator channels of its last (largest) feature map; each coarser level
            doubles them, up to ``max_multiplier`` times.
        d_channels: discriminator channels of its first feature map, doubled per level likewise.
        max_multiplier: cap on the channel doubling (keeps 128 px nets as light as 64 px ones).
        train_steps: optimisation steps (one discriminator and one generator update each).
        epochs: when set, the training length in passes over the training images instead
            (``ceil(epochs * images / batch_size)`` steps); overrides ``train_steps``.
        batch_size: real images per step (and as many generated ones).
        g_lr: generator Adam learning rate.
        d_lr: discriminator Adam learning rate (TTUR: set it above ``g_lr``, e.g. 4e-4 vs 1e-4).
        betas: Adam betas (DCGAN: 0.5, 0.999).
        label_smoothing: one-sided label smoothing: real images are labelled ``1 - value`` for
            the discriminator; generated ones stay 0 (Salimans et al. 2016).
        spectral_norm: spectral normalisation of the discriminator (Miyato et al. 2018); it then
            uses no batch normalisation.
        diffaugment: DiffAugment policy, comma-separated operations of
            ``DIFFAUGMENT_OPERATIONS`` applied to real and generated images alike before the
            discriminator ("" = none).
        flips: random horizontal flips of the real images (left and right eyes mirror).
        ema_decay: decay of the generator's weight average used for sampling (0 = live weights).
        checkpoint_every: steps between checkpoints (each with a contact sheet and a diversity check).
        keep_checkpoints: how many checkpoints to keep.
        sheet_per_grade: samples per grade on each contact sheet (0 = no sheet).
        diversity_samples: samples per grade for the mode-collapse signal (at least 2).
        collapse_threshold: a grade whose sample diversity falls below this share of its real
            images' diversity is reported as possibly collapsed.
        generate_batch_size: latents per generator batch when generating.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    resolution: int
    latent_dim: int = Field(default=100, ge=2, le=1024)
    embed_dim: int = Field(default=32, ge=1, le=512)
    g_channels: int = Field(ge=2, le=1024)
    d_channels: int = Field(ge=2, le=1024)
    max_multiplier: int = Field(default=8, ge=1, le=32)
    train_steps: int = Field(ge=1)
    epochs: int | None = Field(default=None, ge=1)
    batch_size: int = Field(ge=2, le=4096)
    g_lr: float = Field(default=2e-4, gt=0, le=1)
    d_lr: float = Field(default=2e-4, gt=0, le=1)
    betas: tuple[float, float] = (0.5, 0.999)
    label_smoothing: float = Field(default=0.1, ge=0, lt=0.5)
    spectral_norm: bool = True
    diffaugment: str = "color,translation,cutout"
    flips: Flips = "horizontal"
    ema_decay: float = Field(default=0.999, ge=0, lt=1)
    checkpoint_every: int = Field(ge=1)
    keep_checkpoints: int = Field(default=2, ge=1)
    sheet_per_grade: int = Field(default=8, ge=0, le=32)
    diversity_samples: int = Field(default=32, ge=2, le=512)
    collapse_threshold: float = Field(default=0.5, gt=0, le=1)
    generate_batch_size: int = Field(default=32, ge=1, le=4096)

    @field_validator("betas")
    @classmethod
    def _betas_in_range(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not all(0 <= beta < 1 for beta in value):
            raise ValueError(f"betas {value} must each be in [0, 1)")
        return value

    @field_validator("diffaugment")
    @classmethod
    def _known_operations(cls, value: str) -> str:
        operations = diffaugment_operations(value)
        unknown = [op for op in operations if op not in DIFFAUGMENT_OPERATIONS]
        if unknown:
            raise ValueError(
                f"unknown DiffAugment operation(s) {', '.join(unknown)}; "
                f"choose from {', '.join(DIFFAUGMENT_OPERATIONS)}"
            )
        if len(set(operations)) != len(operations):
            raise ValueError(f"DiffAugment policy {value!r} repeats an operation")
        return ",".join(operations)

    @model_validator(mode="after")
    def _shape_is_consistent(self) -> DCGANRecipe:
        if self.resolution not in RESOLUTIONS:
            raise ValueError(
                f"resolution {self.resolution} is not supported; choose one of {', '.join(map(str, RESOLUTIONS))}"
            )
        return self

    @property
    def policy(self) -> tuple[str, ...]:
        """The DiffAugment operations, in order."""
        return diffaugment_operations(self.diffaugment)

    def total_steps(self, images: int) -> int:
        """Training length in steps for a training set of ``images`` images."""
        if self.epochs is None:
            return self.train_steps
        return max(1, math.ceil(self.epochs * images / self.batch_size))

    def architecture(self) -> dict[str, Any]:
        """The fields a checkpoint is bound to (see ``ARCHITECTURE_FIELDS``)."""
        return {name: getattr(self, name) for name in ARCHITECTURE_FIELDS}


def diffaugment_operations(policy: str) -> tuple[str, ...]:
    """The operations of a comma-separated DiffAugment policy (blank parts ignored)."""
    return tuple(part.strip() for part in policy.split(",") if part.strip())


PROFILES: dict[str, dict[str, Any]] = {
    "tiny": {
        "resolution": 16, "latent_dim": 16, "embed_dim": 4, "g_channels": 8, "d_channels": 8,
        "train_steps": 6, "batch_size": 8, "checkpoint_every": 3, "sheet_per_grade": 2,
        "diversity_samples": 4, "ema_decay": 0.9, "generate_batch_size": 4,
    },
    "quick": {
        "resolution": 64, "latent_dim": 100, "embed_dim": 16, "g_channels": 32, "d_channels": 32,
        "train_steps": 600, "batch_size": 32, "checkpoint_every": 100, "sheet_per_grade": 8,
        "diversity_samples": 32, "ema_decay": 0.99, "generate_batch_size": 32,
    },
    "standard": {
        "resolution": 128, "latent_dim": 128, "embed_dim": 64, "g_channels": 64, "d_channels": 64,
        "train_steps": 30000, "batch_size": 64, "checkpoint_every": 2000, "sheet_per_grade": 8,
        "diversity_samples": 64, "ema_decay": 0.999, "generate_batch_size": 64,
    },
}
"""Built-in profiles: ``tiny`` (tests, seconds), ``quick`` (CPU, minutes, 64 px), ``standard`` (GPU, 128 px)."""


class DCGANConfig(ProfileConfig[DCGANRecipe], recipe_overrides(DCGANRecipe)):  # type: ignore[misc]
    """Settings of the dcgan generator (``[generators.dcgan]``).

    ``profile`` picks a built-in recipe; every recipe field set here overrides it.

    Attributes:
        profile: ``tiny``, ``quick`` (CPU, 64 px) or ``standard`` (GPU, 128 px).
        seed: training seed (default: the global ``seed``).
        device: ``auto``, ``cpu`` or ``cuda`` (default: the global ``device``).
        num_threads: torch CPU threads while training and generating (None: torch's own
            default). 1 by default: the DCGAN's small convolutions gain little from more threads,
            and on a busy CPU extra threads cost far more than they give (2 cores shared with other
            work: 58 img/s training the quick networks at 64 px on 1 thread, 5 img/s on 2; see
            benchmarks/dcgan.py).
    """

    model_config = ConfigDict(extra="forbid")
    generator_name = "dcgan"
    recipe_type = DCGANRecipe
    profiles = PROFILES

    seed: int | None = None
    device: Literal["auto", "cpu", "cuda"] | None = None
    num_threads: int | None = Field(default=1, ge=1, le=256)


def recipe_from(values: dict[str, Any], *, where: str) -> DCGANRecipe:
    """Validate ``values`` as a recipe, turning pydantic errors into one-line ``ConfigError``s."""
    return validate_recipe(DCGANRecipe, values, where=where)
