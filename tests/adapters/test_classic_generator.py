"""ClassicGenerator: the ImageGenerator contract, every named operation, presets, configuration."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from medaug.adapters.generators.classic.config import OPERATION_SPECS, PRESETS, ClassicConfig
from medaug.adapters.generators.classic.generator import ClassicGenerator
from medaug.adapters.generators.classic.operations import OPERATIONS
from medaug.adapters.png import decode_png, encode_png
from medaug.application.errors import ConfigError, GeneratorError
from medaug.application.ports import GenerationRequest, ImageGenerator
from medaug.composition.settings import load_settings
from medaug.domain import Grade
from tests.contracts.image_generator import ImageGeneratorContract

SIZE = 48

# The parameters each operation must record (beyond "op"); presets are checked separately.
RECORDED = {
    "hflip": set(),
    "vflip": set(),
    "rotation": {"angle"},
    "shear": {"shear_x", "shear_y"},
    "crop_and_scale": {"top", "left", "height", "width"},
    "translate": {"dx", "dy"},
    "colour_shift": {"hue", "saturation"},
    "brightness": {"factor"},
    "contrast": {"factor"},
    "blur": {"sigma", "kernel_size"},
    "sharpen": {"factor"},
    "equalize": set(),
    "gaussian_noise": {"sigma", "noise_seed"},
    "poisson_noise": {"peak", "noise_seed"},
    "salt_pepper": {"amount", "noise_seed"},
    "speckle": {"sigma", "noise_seed"},
    "random_erasing": {"top", "left", "height", "width", "value"},
}
GEOMETRIC = ["rotation", "shear", "translate", "crop_and_scale"]


def fundus_png(size: int = SIZE, radius: int = 14, seed: int = 0) -> bytes:
    """A fundus-like image: a textured reddish disc on a black surround."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    disc = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 <= radius**2
    pixels = np.zeros((size, size, 3), dtype=np.uint8)
    texture = rng.integers(60, 200, (size, size, 3))
    texture[..., 0] = rng.integers(120, 220, (size, size))
    pixels[disc] = texture[disc]
    return encode_png(pixels)


def request(seed: int, source: bytes | None = None, size: int = SIZE, image_id: str = "syn") -> GenerationRequest:
    return GenerationRequest(
        image_id=image_id, grade=Grade(2), seed=seed, source_id="src-1",
        source=fundus_png() if source is None else source, size=size,
    )


def one(generator: ClassicGenerator, seed: int = 3, **kwargs) -> tuple[np.ndarray, dict]:  # type: ignore[no-untyped-def]
    result = generator.generate([request(seed, **kwargs)])[0]
    return decode_png(result.data), result.parameters


def custom(*operations: dict) -> ClassicGenerator:
    return ClassicGenerator(ClassicConfig(operations=list(operations)), device="cpu")


# -- the shared contract -------------------------------------------------------------------------


class TestThesisPresetContract(ImageGeneratorContract):
    @pytest.fixture
    def generator(self) -> ClassicGenerator:
        return ClassicGenerator(ClassicConfig(preset="thesis"), device="cpu")


class TestCustomOperationsContract(ImageGeneratorContract):
    @pytest.fixture
    def generator(self) -> ClassicGenerator:
        return custom({"op": "rotation", "degrees": 20}, {"op": "gaussian_noise"}, {"op": "contrast", "p": 0.5})


class TestRandAugmentContract(ImageGeneratorContract):
    @pytest.fixture
    def generator(self) -> ClassicGenerator:
        return ClassicGenerator(ClassicConfig(preset="randaugment"), device="cpu")


def test_describes_itself_as_a_source_needing_generator() -> None:
    generator = ClassicGenerator(ClassicConfig(batch_size=5), device="cpu")
    assert isinstance(generator, ImageGenerator)
    assert (generator.name, generator.needs_source, generator.batch_size) == ("classic", True, 5)


def test_every_configurable_operation_has_an_implementation() -> None:
    assert set(OPERATIONS) == set(OPERATION_SPECS)
    assert set(RECORDED) | set(PRESETS) == set(OPERATION_SPECS)


# -- each named operation ------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_each_operation_changes_pixels_and_records_its_parameters(name: str) -> None:
    generator = custom({"op": name})
    pixels, parameters = one(generator)
    assert (pixels != decode_png(fundus_png())).any()
    assert parameters["preset"] == "custom"
    [record] = parameters["operations"]
    assert record["op"] == name
    assert set(record) - {"op"} == RECORDED[name]
    restored = json.loads(json.dumps(parameters))
    assert generator.replay(fundus_png(), restored) == generator.generate([request(3)])[0].data


@pytest.mark.parametrize("name", GEOMETRIC)
def test_geometric_operations_keep_the_surround_black(name: str) -> None:
    for seed in range(5):
        pixels, _ = one(custom({"op": name}), seed=seed)
        for corner in (pixels[:4, :4], pixels[:4, -4:], pixels[-4:, :4], pixels[-4:, -4:]):
            assert (corner == 0).all(), f"{name} seed {seed} lit a corner"


def test_recorded_angle_is_the_one_applied() -> None:
    source = np.zeros((SIZE, SIZE, 3), dtype=np.uint8)
    source[SIZE // 2 - 1 : SIZE // 2 + 1, SIZE // 2 :] = 255  # a bar pointing right
    pixels, parameters = one(custom({"op": "rotation", "degrees": 90}), seed=5, source=encode_png(source))
    angle = parameters["operations"][0]["angle"]
    ys, xs = np.nonzero(pixels[..., 0] > 128)
    measured = np.degrees(np.arctan2(-(ys - SIZE / 2 + 0.5), xs - SIZE / 2 + 0.5)).mean()
    assert abs(measured - angle) < 6  # counter-clockwise, as torchvision rotates


def test_probability_zero_never_applies_and_half_applies_sometimes() -> None:
    _, parameters = one(custom({"op": "rotation", "p": 0.0}, {"op": "brightness"}))
    assert [r["op"] for r in parameters["operations"]] == ["brightness"]
    halves = custom({"op": "hflip", "p": 0.5}, {"op": "brightness"})
    applied = {len(one(halves, seed=seed)[1]["operations"]) for seed in range(12)}
    assert applied == {1, 2}


def test_operations_apply_in_the_configured_order() -> None:
    _, parameters = one(custom({"op": "blur"}, {"op": "equalize"}, {"op": "speckle"}))
    assert [r["op"] for r in parameters["operations"]] == ["blur", "equalize", "speckle"]


# -- presets -------------------------------------------------------------------------------------


def test_thesis_preset_is_flips_plus_a_brightness_increase_chosen_by_seed() -> None:
    generator = ClassicGenerator(device="cpu")
    combos, factors = set(), []
    for seed in range(24):
        _, parameters = one(generator, seed=seed)
        assert parameters["preset"] == "thesis"
        ops = parameters["operations"]
        assert ops[-1]["op"] == "brightness" and 1.1 <= ops[-1]["factor"] <= 1.4
        combos.add(tuple(r["op"] for r in ops[:-1]))
        factors.append(ops[-1]["factor"])
    assert combos == {(), ("hflip",), ("vflip",), ("hflip", "vflip")}
    assert len(set(factors)) == len(factors)


def test_thesis_preset_brightens() -> None:
    source = fundus_png()
    pixels, _ = one(ClassicGenerator(device="cpu"), seed=1, source=source)
    assert pixels.astype(float).mean() > decode_png(source).astype(float).mean()


def test_thesis_brightness_range_is_configurable() -> None:
    generator = custom({"op": "thesis", "brightness": [1.3, 1.3]})
    _, parameters = one(generator)
    assert parameters["operations"][-1] == {"op": "brightness", "factor": 1.3}


@pytest.mark.parametrize("preset", ["randaugment", "trivialaugment"])
def test_auto_augment_presets_record_their_sampled_transforms(preset: str) -> None:
    generator = ClassicGenerator(ClassicConfig(preset=preset), device="cpu")
    result = generator.generate([request(21)])[0]
    [record] = result.parameters["operations"]
    assert record["op"] == preset and isinstance(record["seed"], int)
    assert len(record["transforms"]) == (2 if preset == "randaugment" else 1)
    assert all({"transform", "magnitude"} == set(step) for step in record["transforms"])
    assert generator.replay(fundus_png(), json.loads(json.dumps(result.parameters))) == result.data


def test_randaugment_parameters_are_configurable() -> None:
    _, parameters = one(custom({"op": "randaugment", "num_ops": 4, "magnitude": 5}))
    record = parameters["operations"][0]
    assert (record["num_ops"], record["magnitude"], len(record["transforms"])) == (4, 5, 4)


def test_seeding_leaves_the_global_random_stream_alone() -> None:
    generator = custom({"op": "randaugment"}, {"op": "crop_and_scale"}, {"op": "random_erasing"})
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    generator.generate([request(4)])
    assert torch.equal(torch.rand(3), expected)


# -- requests ------------------------------------------------------------------------------------


def test_same_seed_gives_the_same_bytes_across_instances() -> None:
    first = ClassicGenerator(ClassicConfig(preset="trivialaugment"), device="cpu").generate([request(9)])[0]
    second = ClassicGenerator(ClassicConfig(preset="trivialaugment"), device="cpu").generate([request(9)])[0]
    assert first == second


def test_output_is_resized_to_the_requested_size() -> None:
    pixels, parameters = one(ClassicGenerator(device="cpu"), source=fundus_png(size=40), size=24)
    assert pixels.shape == (24, 24, 3)
    assert parameters["size"] == 24


def test_grey_and_rgba_sources_become_rgb() -> None:
    buffer = io.BytesIO()
    Image.new("LA", (20, 20), (90, 255)).save(buffer, format="PNG")
    pixels, _ = one(ClassicGenerator(device="cpu"), source=buffer.getvalue(), size=20)
    assert pixels.shape == (20, 20, 3)


def test_request_without_source_is_a_generator_error() -> None:
    bare = GenerationRequest(image_id="syn-x", grade=Grade(1), seed=1, size=16)
    with pytest.raises(GeneratorError, match="syn-x has no source"):
        ClassicGenerator(device="cpu").generate([bare])


def test_unreadable_source_is_a_generator_error_naming_it() -> None:
    with pytest.raises(GeneratorError, match="source src-1 of syn is not a readable image"):
        ClassicGenerator(device="cpu").generate([request(1, source=b"not a png")])


def test_replaying_an_unknown_operation_is_a_generator_error() -> None:
    with pytest.raises(GeneratorError, match="cannot replay operation 'warp'"):
        ClassicGenerator(device="cpu").replay(fundus_png(), {"size": SIZE, "operations": [{"op": "warp"}]})


def test_thesis_on_a_real_fundus_photograph(idrid_root: Path) -> None:
    photo = min((idrid_root / "B. Disease Grading" / "1. Original Images" / "a. Training Set").glob("*.jpg"))
    generator = custom({"op": "rotation", "degrees": 30}, {"op": "thesis"})
    result = generator.generate([request(2, source=photo.read_bytes(), size=64)])[0]
    pixels = decode_png(result.data)
    assert pixels.shape == (64, 64, 3)
    assert pixels[:3, :3].max() < 20 and pixels[-3:, -3:].max() < 20  # surround still dark


# -- configuration -------------------------------------------------------------------------------


def test_unknown_operation_is_one_config_error_listing_valid_names() -> None:
    with pytest.raises(ConfigError) as info:
        ClassicConfig(operations=[{"op": "rotation"}, {"op": "rotate", "degrees": 5}])
    message = str(info.value)
    assert "operations[2]" in message and "'rotate'" in message
    assert all(name in message for name in OPERATION_SPECS)
    assert "\n" not in message


@pytest.mark.parametrize(
    ("operation", "problem"),
    [
        ({"op": "rotation", "degrees": 500}, "degrees"),
        ({"op": "rotation", "angle": 5}, "angle: unknown parameter"),
        ({"op": "blur", "sigma": [2.0, 1.0]}, "low <= high"),
        ({"op": "brightness", "factor": [0, 1]}, "factor"),
        ({"op": "hflip", "p": 1.5}, "p:"),
        ({"op": "randaugment", "magnitude": 40}, "below num_magnitude_bins"),
        ({"op": "thesis", "brightness": [0.8, 0.9]}, "brightness"),
        ({"degrees": 3}, "needs an 'op' name"),
        ("rotation", "needs an 'op' name"),
    ],
)
def test_bad_parameters_are_config_errors(operation: object, problem: str) -> None:
    with pytest.raises(ConfigError, match="generators.classic.operations") as info:
        ClassicConfig(operations=[operation])
    assert problem in str(info.value)


def test_unknown_preset_is_a_config_error_listing_presets() -> None:
    with pytest.raises(ConfigError, match="valid presets: thesis, randaugment, trivialaugment"):
        ClassicConfig(preset="autoaugment")


def test_settings_file_with_a_bad_operation_fails_at_load(tmp_path: Path) -> None:
    config = tmp_path / "medaug.toml"
    config.write_text('[generators.classic]\noperations = [{op = "rotation", degrees = 15}, {op = "twirl"}]\n')
    with pytest.raises(ConfigError, match="unknown operation 'twirl'"):
        load_settings(config)


def test_settings_file_configures_operations(tmp_path: Path) -> None:
    config = tmp_path / "medaug.toml"
    config.write_text('[generators.classic]\noperations = [{op = "blur", sigma = [0.5, 0.5], p = 1.0}]\n')
    generator = ClassicGenerator(load_settings(config).generators.classic, device="cpu")
    _, parameters = one(generator)
    assert parameters["operations"] == [{"op": "blur", "sigma": 0.5, "kernel_size": 5}]
