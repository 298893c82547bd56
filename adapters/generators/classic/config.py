"""Configuration of the classic (torchvision transforms) generator: pure pydantic, no torch.

Every named operation has a parameter model here, so a settings file is checked (names, ranges,
unknown keys) as soon as it is loaded; ``operations.py`` holds their torchvision implementations.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, create_model, model_validator

from medaug.application.errors import ConfigError, validation_problem


def _ordered(value: tuple[float, float]) -> tuple[float, float]:
    low, high = value
    if low > high:
        raise ValueError(f"range [{low}, {high}] must be [low, high] with low <= high")
    return value


def _range(**bounds: float) -> Any:
    """A ``[low, high]`` interval, each end within ``bounds`` (pydantic ``gt``/``ge``/``le``)."""
    end = Annotated[float, Field(**bounds)]
    return Annotated[tuple[end, end], AfterValidator(_ordered)]


PositiveRange = _range(gt=0)
"""An interval of positive values a parameter is drawn from, uniformly."""
UnitRange = _range(ge=0, le=1)
"""An interval within [0, 1] a parameter is drawn from, uniformly."""
IncreaseRange = _range(ge=1)
"""An interval of factors >= 1."""


class OperationSpec(BaseModel):
    """One named operation and its parameters.

    Attributes:
        op: the operation's name.
        p: probability of applying it to an image (drawn from the image's seed).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    op: str
    p: float = Field(default=1.0, ge=0.0, le=1.0)


def _spec(name: str, doc: str, **parameters: Any) -> type[OperationSpec]:
    """An operation's parameter model: ``parameters`` are ``(type, default)`` or ``(type, Field(...))``."""
    title = "".join(part.title() for part in name.split("_")) + "Spec"
    return create_model(title, __base__=OperationSpec, __doc__=doc, **parameters)


def _number(default: float, **bounds: float) -> Any:
    return (float, Field(default=default, **bounds))


class ColourShiftSpec(OperationSpec):
    """Shift hue by up to ``hue`` (of the colour wheel) and scale saturation by ``1 +- saturation``."""

    hue: float = Field(default=0.03, ge=0, le=0.5)
    saturation: float = Field(default=0.2, ge=0, lt=1)

    @model_validator(mode="after")
    def _changes_something(self) -> ColourShiftSpec:
        if self.hue == 0 and self.saturation == 0:
            raise ValueError("hue and saturation cannot both be 0")
        return self


class ThesisSpec(OperationSpec):
    """The thesis's recipe: a flip combination (none, h, v, both) and a brightness increase."""

    brightness: IncreaseRange = (1.1, 1.4)

    @model_validator(mode="after")
    def _increases(self) -> ThesisSpec:
        if self.brightness[1] <= 1.0:
            raise ValueError("brightness must reach above 1.0 (it is an increase)")
        return self


class RandAugmentSpec(OperationSpec):
    """torchvision's RandAugment: ``num_ops`` transforms at ``magnitude`` of ``num_magnitude_bins``."""

    num_ops: int = Field(default=2, ge=1, le=10)
    magnitude: int = Field(default=9, ge=0)
    num_magnitude_bins: int = Field(default=31, ge=2, le=100)

    @model_validator(mode="after")
    def _magnitude_in_bins(self) -> RandAugmentSpec:
        if self.magnitude >= self.num_magnitude_bins:
            raise ValueError(f"magnitude {self.magnitude} must be below num_magnitude_bins {self.num_magnitude_bins}")
        return self


_BINS = (int, Field(default=31, ge=2, le=100))

OPERATION_SPECS: dict[str, type[OperationSpec]] = {
    "hflip": _spec("hflip", "Mirror left-right."),
    "vflip": _spec("vflip", "Mirror top-bottom."),
    "rotation": _spec("rotation", "Rotate by an angle drawn from ``[-degrees, degrees]`` (corners filled black).",
                      degrees=_number(15.0, gt=0, le=180)),
    "shear": _spec("shear", "Shear along x and y by angles drawn from ``[-degrees, degrees]``.",
                   degrees=_number(10.0, gt=0, lt=90)),
    "crop_and_scale": _spec("crop_and_scale", "Crop a random area (``scale`` of the image, aspect ``ratio``) and "
                            "scale it back up.", scale=(UnitRange, (0.7, 1.0)), ratio=(PositiveRange, (3 / 4, 4 / 3))),
    "translate": _spec("translate", "Shift by up to ``fraction`` of the side along x and y.",
                       fraction=_number(0.1, gt=0, le=0.5)),
    "colour_shift": ColourShiftSpec,
    "brightness": _spec("brightness", "Multiply brightness by a factor drawn from ``factor``.",
                        factor=(PositiveRange, (0.8, 1.2))),
    "contrast": _spec("contrast", "Scale contrast by a factor drawn from ``factor``.",
                      factor=(PositiveRange, (0.8, 1.2))),
    "blur": _spec("blur", "Gaussian blur with a standard deviation (pixels) drawn from ``sigma``.",
                  sigma=(PositiveRange, (0.3, 1.5))),
    "sharpen": _spec("sharpen", "Sharpen by a factor drawn from ``factor`` (1 = unchanged).",
                     factor=(PositiveRange, (1.5, 3.0))),
    "equalize": _spec("equalize", "Histogram equalisation of each channel."),
    "gaussian_noise": _spec("gaussian_noise", "Additive Gaussian noise, standard deviation drawn from ``sigma`` "
                            "(intensities in 0-1).", sigma=(UnitRange, (0.01, 0.05))),
    "poisson_noise": _spec("poisson_noise", "Shot noise: intensities become Poisson counts at ``peak`` photons for "
                           "full white.", peak=(PositiveRange, (30.0, 200.0))),
    "salt_pepper": _spec("salt_pepper", "Set a share of pixels drawn from ``amount`` to black or white.",
                         amount=(UnitRange, (0.002, 0.02))),
    "speckle": _spec("speckle", "Multiplicative noise ``x + x * n``, ``n`` Gaussian with deviation drawn from "
                     "``sigma``.", sigma=(UnitRange, (0.05, 0.15))),
    "random_erasing": _spec("random_erasing", "Erase a rectangle (``scale`` of the image, aspect ``ratio``) to grey "
                            "level ``value``.", scale=(UnitRange, (0.02, 0.1)), ratio=(PositiveRange, (0.3, 3.3)),
                            value=(float, Field(default=0.0, ge=0, le=1))),
    "thesis": ThesisSpec,
    "randaugment": RandAugmentSpec,
    "trivialaugment": _spec("trivialaugment", "torchvision's TrivialAugmentWide: one transform at a random "
                            "magnitude.", num_magnitude_bins=_BINS),
}  # fmt: skip
"""Every operation name a configuration may use, with its parameter model (one table; the three
with cross-parameter rules are classes above)."""

PRESETS: tuple[str, ...] = ("thesis", "randaugment", "trivialaugment")
"""Named recipes: each is its operation with default parameters."""


class ClassicConfig(BaseModel):
    """Settings of the ``classic`` generator.

    ``preset`` names a recipe: ``thesis`` (a flip combination and a brightness increase, chosen
    per image from its seed, as the thesis balanced its grades), ``randaugment`` or
    ``trivialaugment``. ``operations``, when given, replaces the preset with a list of named
    operations applied in order, e.g. ``[{"op": "rotation", "degrees": 15, "p": 0.5}]``.

    Attributes:
        preset: the recipe used when ``operations`` is empty.
        operations: named operations with their parameters (see ``OPERATION_SPECS``).
        batch_size: requests per ``generate`` call.

    Raises:
        ConfigError: an unknown preset or operation, or a bad parameter (one line).
    """

    model_config = ConfigDict(extra="forbid")

    preset: str = "thesis"
    operations: list[Any] = Field(default_factory=list)
    batch_size: int = Field(default=16, ge=1, le=1024)

    @model_validator(mode="after")
    def _operations_are_valid(self) -> ClassicConfig:
        # ConfigError is not a ValueError, so pydantic lets it through unchanged: a bad settings
        # file, environment variable or constructor call all end in the same one-line error.
        self.specs()
        return self

    @property
    def label(self) -> str:
        """What provenance records as the recipe: the preset, or ``custom`` for an operation list."""
        return "custom" if self.operations else self.preset

    def specs(self) -> list[OperationSpec]:
        """The validated operations this configuration applies, in order.

        Raises:
            ConfigError: an unknown preset or operation, or a bad parameter.
        """
        if self.preset not in PRESETS:
            raise ConfigError(
                f"generators.classic.preset: unknown preset {self.preset!r}; valid presets: {', '.join(PRESETS)}"
            )
        if not self.operations:
            return [OPERATION_SPECS[self.preset](op=self.preset)]
        return [parse_operation(index, raw) for index, raw in enumerate(self.operations, start=1)]


def parse_operation(index: int, raw: object) -> OperationSpec:
    """Validate one entry of ``operations`` (``index`` counts from 1, for the message).

    Raises:
        ConfigError: the entry is not a mapping with a known ``op``, or a parameter is invalid.
    """
    where = f"generators.classic.operations[{index}]"
    valid = ", ".join(OPERATION_SPECS)
    if not isinstance(raw, dict) or "op" not in raw:
        raise ConfigError(f"{where}: {raw!r} needs an 'op' name; valid operations: {valid}")
    name = raw["op"]
    spec_type = OPERATION_SPECS.get(name) if isinstance(name, str) else None
    if spec_type is None:
        raise ConfigError(f"{where}: unknown operation {name!r}; valid operations: {valid}")
    try:
        return spec_type.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{where} ({name}): {_first_problem(exc)}; parameters: {_parameters(spec_type)}") from None


def _first_problem(exc: ValidationError) -> str:
    return validation_problem(exc).replace("unknown field", "unknown parameter")


def _parameters(spec_type: type[OperationSpec]) -> str:
    return ", ".join(
        f"{name}={field.default!r}" for name, field in spec_type.model_fields.items() if name != "op"
    )
