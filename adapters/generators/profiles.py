"""Generator settings as a named profile plus per-field overrides, shared by dcgan and diffusion.

A generator's *recipe* is a frozen pydantic model that fully defines its model and training; a
*profile* is a named, complete set of recipe values. A generator's settings table (e.g.
``[generators.dcgan]`` of ``medaug.toml``) is a :class:`ProfileConfig`: it names a profile and
may override any recipe field, leaving the rest to the profile. Pure pydantic: no heavy imports.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Generic, Self, TypeVar, cast

from pydantic import BaseModel, ValidationError, create_model, model_validator

from medaug.application.errors import ConfigError, validation_problem

RecipeT = TypeVar("RecipeT", bound=BaseModel)


def validate_recipe(recipe_type: type[RecipeT], values: Mapping[str, Any], *, where: str) -> RecipeT:
    """Validate ``values`` as a ``recipe_type``, turning pydantic errors into one-line ``ConfigError``s.

    Args:
        recipe_type: the generator's recipe model.
        values: every recipe field's value.
        where: what the values come from, to start the message with (e.g. ``dcgan profile 'quick'``).

    Raises:
        ConfigError: an invalid value: ``"<where>: <field>: <problem>"`` for the first one.
    """
    try:
        return recipe_type.model_validate(values)
    except ValidationError as exc:
        raise ConfigError(validation_problem(exc, where)) from None


def recipe_overrides(recipe_type: type[BaseModel]) -> type[BaseModel]:
    """A model holding every field of ``recipe_type`` as optional (``None`` = the profile's value).

    A generator's settings inherit from it, so each recipe field is declared once, on the recipe;
    the bounds are checked when the settings resolve to a recipe.
    """
    fields: dict[str, Any] = {name: (field.annotation | None, None) for name, field in recipe_type.model_fields.items()}
    return create_model(f"{recipe_type.__name__}Overrides", **fields)


class ProfileConfig(BaseModel, Generic[RecipeT]):
    """A generator's settings: a built-in profile plus optional overrides of its recipe fields.

    A subclass also inherits ``recipe_overrides(its recipe)`` (every recipe field, optional) and
    sets the class variables below. It is checked on construction: settings that do not
    resolve to a valid recipe fail to load.

    Attributes:
        generator_name: the generator, for messages (``dcgan``).
        recipe_type: the recipe model the settings resolve to.
        profiles: the built-in profiles: complete recipe values by name.
        profile: the chosen profile.
    """

    generator_name: ClassVar[str]
    recipe_type: ClassVar[type[BaseModel]]
    profiles: ClassVar[Mapping[str, Mapping[str, Any]]]

    profile: str = "quick"

    @model_validator(mode="after")
    def _resolves(self) -> Self:
        try:
            self.resolve()
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return self

    def overrides(self, fields: tuple[str, ...] | None = None) -> dict[str, Any]:
        """The recipe fields set explicitly here (optionally only those in ``fields``)."""
        names = fields if fields is not None else tuple(self.recipe_type.model_fields)
        return {name: getattr(self, name) for name in names if getattr(self, name) is not None}

    def resolve(self, profile: str | None = None) -> RecipeT:
        """The full recipe: ``profile`` (default: this config's) with this config's overrides.

        Raises:
            ConfigError: unknown profile or an invalid value (one line naming the field).
        """
        name = profile or self.profile
        if name not in self.profiles:
            raise ConfigError(
                f"unknown {self.generator_name} profile {name!r}; choose one of: {', '.join(self.profiles)}"
            )
        values = {**self.profiles[name], **self.overrides()}
        recipe = validate_recipe(self.recipe_type, values, where=f"{self.generator_name} profile {name!r}")
        return cast(RecipeT, recipe)
