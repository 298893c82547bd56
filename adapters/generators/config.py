"""``[generators]``: the settings of every generator, each under its name (pure pydantic, no torch)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from medaug.adapters.generators.classic.config import ClassicConfig
from medaug.adapters.generators.dcgan.config import DCGANConfig
from medaug.adapters.generators.diffusion.config import DiffusionConfig
from medaug.adapters.generators.latent_diffusion.config import LatentDiffusionConfig
from medaug.adapters.generators.openai_edits.config import OpenAIConfig
from medaug.application.errors import ConfigError, validation_problem


class GeneratorsConfig(BaseModel):
    """Per-generator settings; a generator is chosen by name (``classic``, ``diffusion``...)."""

    model_config = ConfigDict(extra="forbid")

    classic: ClassicConfig = ClassicConfig()
    diffusion: DiffusionConfig = DiffusionConfig()
    dcgan: DCGANConfig = DCGANConfig()
    openai: OpenAIConfig = OpenAIConfig()
    latent_diffusion: LatentDiffusionConfig = LatentDiffusionConfig()

    def with_options(self, name: str, options: dict[str, Any]) -> GeneratorsConfig:
        """These settings with an arm's ``options`` for generator ``name`` merged over its own.

        Raises:
            ConfigError: the generator takes no options, or an option is invalid (one line).
        """
        if not options:
            return self
        current = getattr(self, name.replace("-", "_"), None)
        if current is None:
            raise ConfigError(f"generator {name!r} takes no options")
        try:
            updated = type(current).model_validate({**current.model_dump(), **options})
        except ValidationError as exc:
            raise ConfigError(validation_problem(exc, f"arm options for {name}")) from None
        except ValueError as exc:
            raise ConfigError(f"arm options for {name}: {str(exc).splitlines()[0]}") from None
        return self.model_copy(update={name.replace("-", "_"): updated})
