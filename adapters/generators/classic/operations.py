"""The named classic operations, on torchvision.transforms.v2.

Each operation works on an 8-bit RGB image tensor (3 x H x W, uint8) in two steps: ``sample``
draws explicit parameters from a ``torch.Generator`` (seeded with the request's seed) and
``apply`` runs the functional torchvision call with exactly those parameters. The parameters
are what provenance records, so ``replay`` reproduces an image from its source and record.
Geometric operations fill uncovered corners with black, like the fundus surround.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar

import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as F

from medaug.adapters.generators.classic.config import OperationSpec
from medaug.application.errors import GeneratorError

Record = dict[str, Any]
"""One applied operation: ``{"op": name, **parameters}``, JSON-serialisable."""

_BILINEAR = InterpolationMode.BILINEAR
_BLACK = 0.0
_DIGITS = 4

OPERATIONS: dict[str, type[Operation]] = {}
"""Operation name -> implementation; the same names as ``config.OPERATION_SPECS``."""


def _register(name: str) -> Callable[[type[Operation]], type[Operation]]:
    def decorate(cls: type[Operation]) -> type[Operation]:
        cls.name = name
        OPERATIONS[name] = cls
        return cls

    return decorate


# -- drawing parameters ------------------------------------------------------------------------


def uniform(gen: torch.Generator, bounds: Sequence[float]) -> float:
    """A value drawn uniformly from ``[low, high]``, rounded so the record is what is applied."""
    low, high = bounds
    return round(low + (high - low) * float(torch.rand((), generator=gen)), _DIGITS)


def symmetric(gen: torch.Generator, limit: float) -> float:
    """A value drawn uniformly from ``[-limit, limit]``."""
    return uniform(gen, (-limit, limit))


def randint(gen: torch.Generator, high: int) -> int:
    """An integer drawn uniformly from ``0 .. high - 1``."""
    return int(torch.randint(high, (), generator=gen))


def subseed(gen: torch.Generator) -> int:
    """A 31-bit seed for work that needs its own random stream (noise, torchvision policies)."""
    return randint(gen, 2**31 - 1)


@contextmanager
def seeded_global_rng(seed: int) -> Iterator[None]:
    """Seed torch's global CPU generator for the block, restoring it afterwards.

    torchvision's random transforms draw from the global generator; forking it keeps their
    draws reproducible without disturbing anyone else's random stream.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def noise_generator(seed: int) -> torch.Generator:
    """The CPU generator a noise operation draws its pixels from (same on CPU and CUDA runs)."""
    return torch.Generator().manual_seed(seed)


def _to_float(image: torch.Tensor) -> torch.Tensor:
    return F.to_dtype(image, torch.float32, scale=True)


def _to_uint8(image: torch.Tensor) -> torch.Tensor:
    return F.to_dtype(image.clamp(0.0, 1.0), torch.uint8, scale=True)


def _size(image: torch.Tensor) -> tuple[int, int]:
    height, width = image.shape[-2:]
    return int(height), int(width)


# -- the operation protocol --------------------------------------------------------------------


class Operation:
    """A named augmentation configured by its ``OperationSpec``.

    Subclasses implement ``sample`` (draw parameters) and ``apply`` (use them); composite
    operations (presets) override ``run`` instead.
    """

    name: ClassVar[str] = ""

    def __init__(self, spec: OperationSpec) -> None:
        self.spec = spec

    def run(self, image: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, list[Record]]:
        """Apply the operation with probability ``p``; return the image and what was applied."""
        if not self._happens(gen):
            return image, []
        record: Record = {"op": self.name, **self.sample(gen, image)}
        return self.apply(image, record), [record]

    def sample(self, gen: torch.Generator, image: torch.Tensor) -> dict[str, Any]:
        """Draw this application's parameters (JSON-serialisable)."""
        return {}

    @classmethod
    def apply(cls, image: torch.Tensor, record: Record) -> torch.Tensor:
        """Apply the operation with the parameters of ``record``."""
        raise NotImplementedError

    def _happens(self, gen: torch.Generator) -> bool:
        p = self.spec.p
        return p >= 1.0 or (p > 0.0 and float(torch.rand((), generator=gen)) < p)


# -- geometry ----------------------------------------------------------------------------------


@_register("hflip")
class HFlip(Operation):
    """Mirror left-right."""

    @classmethod
    def apply(cls, image: torch.Tensor, record: Record) -> torch.Tensor:
        return F.horizontal_flip(image)


@_register("vflip")
class VFlip(Operation):
    """Mirror top-bottom."""

    @classmethod
    def apply(cls, image: torch.Tensor, record: Record) -> torch.Tensor:
        return F.vertical_flip(image)


@_register("rotation")
class Rotation(Operation):
    """Rotate about the centre by ``angle`` degrees."""

    def sample(self, gen: torch.Generator, image: torch.Tensor) -> dict[str, Any]:
        return {"angle": symmetric(gen, self.spec.degrees)}

    @classmethod
    def apply(cls, image: torch.Tensor, record: Record) -> torch.Tensor:
        return F.rotate(image, record["angle"], interpolation=_BILINEAR, fill=_BLACK)


@_register("shear")
class Shear(Operation):
    """Shear by ``shear_x`` and ``shear_y`` degrees."""

    def sample(self, gen: torch.Generator, image: torch.Tensor) -> dict[str, Any]:
        return {"shear_x": symmetric(gen, self.spec.degrees), "shear_y": symmetric(gen, self.spec.degrees)}

    @classmethod
    def apply(cls, image: torch.Tensor, record: Record) -> torch.Tensor:
        return F.affine(
            image, angle=0.0, translate=[0, 0], scale=1.0, shear=[record["shear_x"], record["shear_y"]],
            interpolation=_BILINEAR, fill=_BLACK,
        )


@_register("translate")
class Translate(Operation):
    """Shift by ``dx``, ``dy`` pixels."""

    def sample(self, gen: torch.Generator, image: torch.Tensor) -> dict[str, Any]:
        height, width = _size(image)
        fraction = self.spec.fraction
        return {"dx": round(symmetric(gen, fraction) * width), "dy": round(symmetric(gen, fraction) * height)}

    @classmethod
    def apply(cls, image: torch.Tensor, record: Record) -> torch.Tensor:
        return F.affine(
            image, angle=0.0, translate=[record["dx"], record["dy"]], scale=1.0, shear=[0.0, 0.0],
            interpolation=_BILINEAR, fill=_BLACK,
        )


@_register("crop_and_scale")
class CropAndScale(Operation):
    """Crop ``top, left, height, width`` and scale it back to the image's size.

    The box is drawn by ``v2.RandomResizedCrop``'s own sampler, under a seed from the generator.
    """

    def sample(self, gen: torch.Generator, image: torch.Tensor) -> dict[str, Any]:
        sampler = v2.RandomResizedCrop(_size(image), scale=self.spec.scale, ratio=self.spec.ratio)
        with seeded_global_rng(subseed(gen)):
            box = sampler.make_params([image])
        return {key: int(box[key]) for key in ("top", "left", "height", "width")}

    @classmethod
    def apply(cls, image: torch.Tensor, record: Record) -> torch.Tensor:
        return F.resized_crop(
            image, record["top"], record["left"], record["height"], record["width"], size=list(_size(image)),
            interpolation=_BILINEAR, antialias=True,
        )


# -- colour and intensity ----------------------------------------------------------------------


@_register("colour_shift")
class ColourShift(Operation):
    """Scale saturation by ``saturation`` then rotate hue by ``hue`` (fraction of the wheel)."""

    def sample(self, gen: torch.Generator, image: torch.Tensor) -> dict[str, Any]:
        spread = self.spec.saturation
        return {"hue": symmetric(gen, self.spec.hue), "saturation": uniform(gen, (1 - spread, 1 + spread))}

    @classmethod
    def apply(cls, image: torch.Tensor, record: Record) -> torch.Tensor:
        image = F.adjust_saturation(image, record["saturation"])
        return F.adjust_hue(image, record["hue"]) if record["hue"] else image


@_register("brightness")
class Brightness(Operation):
    """Multiply intensities by ``factor``."""

    def sample(self, gen: torch.Generator, image: torch.Tensor) -> dict[str, Any]:
        return {"factor": uniform(gen, self.spec.factor)}

    @classmethod
    def apply(cls, image: torch.Tensor, record: Record) -> torch.Tensor:
        return F.adjust_brightness(image, record["factor"])


@_register("contrast")
class Contrast(Operation):
    """Scale contrast about the mean grey level by ``factor``."""

    def sample(self, gen: torch.Generator, image: torch.Tensor) -> dict[str, Any]:
        return {"factor": uniform(gen, self.spec.factor)}

    @classmethod
    def apply(cls, image: torch.Tensor, record: Record) -> torch.Tensor:
        return F.adjust_contrast(image, record["factor"])


@_register("blur")
class Blur(Operation):
    """Gaussian blur with deviation ``sigma`` and an odd ``kernel_size`` covering +-3 sigma."""

    def sample(self, gen: torch.Generator, image: torch.Tensor) -> dict[str, Any]:
        sigma = uniform(gen, self.spec.sigma)
        largest_odd = (min(_size(image)) - 1) | 1
        return {"sigma": sigma, "kernel_size": max(3, min(2 * math.ceil(3 * sigma) + 1, largest_odd))}

    @classmethod
    def apply(cls, image: torch.Tensor, record: Record) -> torch.Tensor:
        size, sigma = record["kernel_size"], record["sigma"]
        return F.gaussian_blur(image, kernel_size=[size, size], sigma=[sigma, sigma])


@_register("sharpen")
class Sharpen(Operation):
    """Sharpen by ``factor`` (1 leaves the image unchanged)."""

    def sample(self, gen: torch.Generator, image: torch.Tensor) -> dict[str, Any]:
        return {"factor": uniform(gen, self.spec.factor)}

    @classmethod
    def apply(cls, image: torch.Tensor, record: Record) -> torch.Tensor:
        return F.adjust_sharpness(image, record["factor"])


@_register("equalize")
class Equalize(Operation):
    """Histogram equalisation of each channel."""

    @classmethod
    def apply(cls, image: torch.Tensor, record: Record) -> torch.Tensor:
        return F.equalize(image)


# -- noise and occlusion -----------------------------------------------------------------------


@_register("gaussian_noise")
class GaussianNoise(Operation):
    """Add Gaussian noise of deviation ``sigma`` drawn from ``noise_seed``."""

    def sample(self, gen: torch.Generator, image: torch.Tensor) -> dict[str, Any]:
        return {"sigma": uniform(gen, self.spec.sigma), "noise_seed": subseed(gen)}

    @classmethod
    def apply(cls, image: torch.Tensor, record: Record) -> torch.Tensor:
        noise = torch.randn(image.shape, generator=noise_generator(record["noise_seed"]))
        return _to_uint8(_to_float(image) + record["sigma"] * noise.to(image.device))


@_register("poisson_noise")
class PoissonNoise(Operation):
    """Replace intensities by Poisson counts at ``peak`` photons for white, from ``noise_seed``."""

    def sample(self, gen: torch.Generator, image: torch.Tensor) -> dict[str, Any]:
        return {"peak": uniform(gen, self.spec.peak), "noise_seed": subseed(gen)}

    @classmethod
    def apply(cls, image: torch.Tensor, record: Record) -> torch.Tensor:
        peak = record["peak"]
        counts = torch.poisson(_to_float(image.cpu()) * peak, generator=noise_generator(record["noise_seed"]))
        return _to_uint8(counts / peak).to(image.device)


@_register("salt_pepper")
class SaltPepper(Operation):
    """Turn a share ``amount`` of pixels black or white (half each), chosen from ``noise_seed``."""

    def sample(self, gen: torch.Generator, image: torch.Tensor) -> dict[str, Any]:
        return {"amount": uniform(gen, self.spec.amount), "noise_seed": subseed(gen)}

    @classmethod
    def apply(cls, image: torch.Tensor, record: Record) -> torch.Tensor:
        draw = torch.rand(_size(image), generator=noise_generator(record["noise_seed"])).to(image.device)
        half = record["amount"] / 2
        out = image.clone()
        out[:, draw < half] = 0
        out[:, draw > 1 - half] = 255
        return out


@_register("speckle")
class Speckle(Operation):
    """Multiplicative noise ``x + x * n``, ``n`` Gaussian of deviation ``sigma``, from ``noise_seed``."""

    def sample(self, gen: torch.Generator, image: torch.Tensor) -> dict[str, Any]:
        return {"sigma": uniform(gen, self.spec.sigma), "noise_seed": subseed(gen)}

    @classmethod
    def apply(cls, image: torch.Tensor, record: Record) -> torch.Tensor:
        noise = torch.randn(image.shape, generator=noise_generator(record["noise_seed"])).to(image.device)
        pixels = _to_float(image)
        return _to_uint8(pixels + pixels * record["sigma"] * noise)


@_register("random_erasing")
class RandomErasing(Operation):
    """Erase the rectangle ``top, left, height, width`` to grey level ``value`` (0-1).

    The rectangle is drawn by ``v2.RandomErasing``'s own sampler, under a seed from the generator.
    """

    def sample(self, gen: torch.Generator, image: torch.Tensor) -> dict[str, Any]:
        sampler = v2.RandomErasing(p=1.0, scale=self.spec.scale, ratio=self.spec.ratio, value=self.spec.value)
        with seeded_global_rng(subseed(gen)):
            box = sampler.make_params([image])
        names = {"i": "top", "j": "left", "h": "height", "w": "width"}
        return {**{names[key]: int(box[key]) for key in names}, "value": self.spec.value}

    @classmethod
    def apply(cls, image: torch.Tensor, record: Record) -> torch.Tensor:
        value = torch.tensor(round(record["value"] * 255), dtype=torch.uint8, device=image.device)
        return F.erase(image, record["top"], record["left"], record["height"], record["width"], value)


# -- presets -----------------------------------------------------------------------------------

_FLIPS: tuple[tuple[str, ...], ...] = ((), ("hflip",), ("vflip",), ("hflip", "vflip"))


@_register("thesis")
class Thesis(Operation):
    """The thesis's recipe, chosen per image from its seed: a flip combination and a brightness increase.

    The brightness increase is always part of it, with its factor drawn from the seed, so two
    seeds never give the same pixels (a bare flip would repeat across seeds).
    """

    def run(self, image: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, list[Record]]:
        if not self._happens(gen):
            return image, []
        records: list[Record] = [{"op": flip} for flip in _FLIPS[randint(gen, len(_FLIPS))]]
        records.append({"op": "brightness", "factor": uniform(gen, self.spec.brightness)})
        return replay(image, records), records


class _Recorder:
    """Mixin recording each transform an auto-augment policy applies (and its magnitude)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.applied: list[Record] = []

    def _apply_image_or_video_transform(self, image, transform_id, magnitude, interpolation, fill):  # type: ignore[no-untyped-def]
        self.applied.append({"transform": transform_id, "magnitude": float(magnitude)})
        return super()._apply_image_or_video_transform(image, transform_id, magnitude, interpolation, fill)  # type: ignore[misc]


class _RecordingRandAugment(_Recorder, v2.RandAugment):
    pass


class _RecordingTrivialAugment(_Recorder, v2.TrivialAugmentWide):
    pass


class _AutoAugment(Operation):
    """A torchvision auto-augment policy, seeded from the generator, its sampled transforms recorded."""

    policy: ClassVar[type[v2.Transform]]
    recording: ClassVar[type[v2.Transform]]

    def run(self, image: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, list[Record]]:
        if not self._happens(gen):
            return image, []
        seed = subseed(gen)
        policy = self.recording(**self._arguments(), interpolation=_BILINEAR, fill=_BLACK)
        with seeded_global_rng(seed):
            out = policy(image)
        record = {"op": self.name, **self._arguments(), "seed": seed, "transforms": policy.applied}
        return out, [record]

    def _arguments(self) -> dict[str, Any]:
        return self.spec.model_dump(exclude={"op", "p"})

    @classmethod
    def apply(cls, image: torch.Tensor, record: Record) -> torch.Tensor:
        policy = cls.policy(interpolation=_BILINEAR, fill=_BLACK)
        for step in record["transforms"]:
            # The policy's own per-transform step, so a replay is exactly what the policy did.
            image = policy._apply_image_or_video_transform(  # type: ignore[attr-defined]
                image, step["transform"], step["magnitude"], interpolation=policy.interpolation, fill=policy._fill
            )
        return image


@_register("randaugment")
class RandAugment(_AutoAugment):
    """``v2.RandAugment``."""

    policy = v2.RandAugment
    recording = _RecordingRandAugment


@_register("trivialaugment")
class TrivialAugment(_AutoAugment):
    """``v2.TrivialAugmentWide``."""

    policy = v2.TrivialAugmentWide
    recording = _RecordingTrivialAugment


# -- pipelines ---------------------------------------------------------------------------------


def build_operations(specs: Sequence[OperationSpec]) -> list[Operation]:
    """The operations of validated ``specs``, in order."""
    return [OPERATIONS[spec.op](spec) for spec in specs]


def run_operations(
    operations: Sequence[Operation], image: torch.Tensor, gen: torch.Generator
) -> tuple[torch.Tensor, list[Record]]:
    """Run ``operations`` in order; return the image and every applied operation's record."""
    records: list[Record] = []
    for operation in operations:
        image, applied = operation.run(image, gen)
        records.extend(applied)
    return image, records


def replay(image: torch.Tensor, records: Sequence[Record]) -> torch.Tensor:
    """Apply recorded operations again, exactly.

    Raises:
        GeneratorError: a record names no known operation.
    """
    for record in records:
        implementation = OPERATIONS.get(str(record.get("op")))
        if implementation is None or implementation is Thesis:
            raise GeneratorError(f"cannot replay operation {record.get('op')!r}; known: {', '.join(OPERATIONS)}")
        image = implementation.apply(image, record)
    return image

