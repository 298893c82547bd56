"""Generators and their trainers, by name: adding a generator = one adapter module + one entry in
``GENERATORS`` (and ``GENERATOR_TRAINERS`` when it learns).

Adapters are imported inside the factories: nothing heavy loads until a service needs it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from medaug.application.errors import ConfigError
from medaug.application.ports import (
    GeneratorTrainer,
    ImageGenerator,
    ImageStore,
)
from medaug.composition.settings import Settings, device_of, seed_of


def _classic(settings: Settings, store: ImageStore, scope: str | None = None) -> ImageGenerator:
    from medaug.adapters.generators.classic.generator import ClassicGenerator

    return ClassicGenerator(settings.generators.classic, device=device_of(settings))


def _openai(settings: Settings, store: ImageStore, scope: str | None = None) -> ImageGenerator:
    # The privacy gate (allow_external_upload) and the key are checked when it is first used, so
    # that ``augment run --dry-run`` can estimate costs before either is set.
    from medaug.adapters.generators.openai_edits.client import make_openai_client
    from medaug.adapters.generators.openai_edits.generator import OpenAIGenerator

    config = settings.generators.openai
    return OpenAIGenerator(make_openai_client(config), config, generator_dir(settings, "openai", store, scope))


def _learned(name: str, module: str, cls: str) -> GeneratorFactory:
    """The factory of learned generator ``name`` (class ``cls`` of ``adapters.generators.<module>.generator``),
    configured by ``[generators.<module>]`` and sampling from its checkpoints in ``generator_dir``."""

    def factory(settings: Settings, store: ImageStore, scope: str | None = None) -> ImageGenerator:
        generator = getattr(importlib.import_module(f"medaug.adapters.generators.{module}.generator"), cls)
        config = getattr(settings.generators, module)
        return generator(config, generator_dir(settings, name, store, scope), device=device_of(settings, config.device))

    return factory


GeneratorFactory = Callable[[Settings, ImageStore, str | None], ImageGenerator]


GENERATORS: dict[str, GeneratorFactory] = {
    "classic": _classic,
    "dcgan": _learned("dcgan", "dcgan", "DCGANGenerator"),
    "diffusion": _learned("diffusion", "diffusion", "DiffusionGenerator"),
    "latent-diffusion": _learned("latent-diffusion", "latent_diffusion", "LatentDiffusionGenerator"),
    "openai": _openai,
}


def generator_names() -> list[str]:
    """Names of every generator this build can make."""
    return sorted(GENERATORS)


def build_generator(name: str, settings: Settings, store: ImageStore, scope: str | None = None) -> ImageGenerator:
    """The generator called ``name``, configured from settings (``scope``: see ``generator_dir``).

    Raises:
        ConfigError: no generator has that name.
    """
    try:
        factory = GENERATORS[name]
    except KeyError:
        raise ConfigError(f"unknown generator {name!r}; choose one of: {', '.join(generator_names())}") from None
    return factory(settings, store, scope)


def generator_dir(settings: Settings, name: str, store: ImageStore, scope: str | None = None) -> Path:
    """Where generator ``name`` keeps its checkpoints for ``store`` (one model per store), and per
    ``scope`` within it: a k-fold experiment trains one model per fold (``f0r0``...) on that
    fold's training images only.

    Keyed by the store's identity, never its path as typed: the same store reached by a
    relative or an absolute path finds the same model, and a model never serves another store.
    """
    return settings.work_dir / "generators" / (f"{name}-{store.identity}" + (f"-{scope}" if scope else ""))


def _trainer_arguments(
    settings: Settings, name: str, store: ImageStore, profile: str | None, scope: str | None
) -> dict[str, Any]:
    """What every generator trainer is built from: its recipe, folder, seed, device and profile."""
    config = getattr(settings.generators, name.replace("-", "_"))
    return {
        "recipe": config.resolve(profile),
        "checkpoint_dir": generator_dir(settings, name, store, scope),
        "seed": seed_of(settings, config.seed),
        "device": device_of(settings, config.device),
        "profile": profile or config.profile,
    }


def _diffusion_trainer(
    settings: Settings, store: ImageStore, profile: str | None, scope: str | None = None
) -> GeneratorTrainer:
    from medaug.adapters.generators.diffusion.training import DiffusionTrainer

    return DiffusionTrainer(**_trainer_arguments(settings, "diffusion", store, profile, scope))


def _dcgan_trainer(
    settings: Settings, store: ImageStore, profile: str | None, scope: str | None = None
) -> GeneratorTrainer:
    from medaug.adapters.generators.dcgan.training import DCGANTrainer

    arguments = _trainer_arguments(settings, "dcgan", store, profile, scope)
    return DCGANTrainer(**arguments, num_threads=settings.generators.dcgan.num_threads)


def _latent_diffusion_trainer(
    settings: Settings, store: ImageStore, profile: str | None, scope: str | None = None
) -> GeneratorTrainer:
    from medaug.adapters.generators.latent_diffusion.training import LatentDiffusionTrainer

    arguments = _trainer_arguments(settings, "latent-diffusion", store, profile, scope)
    return LatentDiffusionTrainer(**arguments, weights=settings.generators.latent_diffusion.weights_source())


GeneratorTrainerFactory = Callable[[Settings, ImageStore, str | None, str | None], GeneratorTrainer]


GENERATOR_TRAINERS: dict[str, GeneratorTrainerFactory] = {
    "dcgan": _dcgan_trainer,
    "diffusion": _diffusion_trainer,
    "latent-diffusion": _latent_diffusion_trainer,
}


def build_generator_trainer(
    name: str, settings: Settings, store: ImageStore, profile: str | None = None, scope: str | None = None
) -> GeneratorTrainer:
    """The trainer of generator ``name`` (checkpoints under ``generator_dir``, per ``scope``).

    Raises:
        ConfigError: no trainable generator has that name.
    """
    try:
        factory = GENERATOR_TRAINERS[name]
    except KeyError:
        names = ", ".join(sorted(GENERATOR_TRAINERS)) or "none in this build"
        raise ConfigError(f"generator {name!r} cannot be trained; trainable generators: {names}") from None
    return factory(settings, store, profile, scope)
