"""FundusPreprocessor: every odd input mode, the retina crop, and one-line errors for bad bytes."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms, ImageFile

from medaug.adapters.imaging.preprocess import FundusPreprocessor, decode_image, to_rgb
from medaug.adapters.png import decode_png
from medaug.application.errors import InputError
from medaug.application.ports import Preprocessor

SIZE = 64


def encode(image: Image.Image, fmt: str = "PNG", **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def fundus(width: int = 300, height: int = 200, centre: tuple[int, int] = (200, 90), radius: int = 60,
           noise: float = 0.0, seed: int = 0) -> Image.Image:
    """A bright orange disc on black, optionally with sensor noise and salt specks everywhere."""
    yy, xx = np.mgrid[0:height, 0:width]
    inside = (xx - centre[0]) ** 2 + (yy - centre[1]) ** 2 <= radius**2
    pixels = np.zeros((height, width, 3), dtype=np.float64)
    pixels[inside] = (200, 110, 40)
    rng = np.random.default_rng(seed)
    if noise:
        pixels += rng.normal(0, noise, pixels.shape)
        specks = rng.integers(0, [height, width], size=(40, 2))
        pixels[specks[:, 0], specks[:, 1]] = 255
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def output(raw: bytes, size: int = SIZE, **kwargs: object) -> np.ndarray:
    png = FundusPreprocessor(size=size, **kwargs).preprocess(raw, "eye.jpg")
    with Image.open(io.BytesIO(png)) as image:
        assert image.format == "PNG" and image.mode == "RGB"
        assert "exif" not in image.info and not image.getexif() and "icc_profile" not in image.info
    return decode_png(png)


def bright_extent(pixels: np.ndarray) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of the pixels brighter than 60."""
    rows = np.flatnonzero((pixels.max(axis=2) > 60).any(axis=1))
    cols = np.flatnonzero((pixels.max(axis=2) > 60).any(axis=0))
    return int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])


def test_implements_the_port() -> None:
    assert isinstance(FundusPreprocessor(size=SIZE), Preprocessor)
    assert FundusPreprocessor(size=SIZE).size == SIZE


@pytest.mark.parametrize("noise", [0.0, 6.0])
def test_off_centre_disc_is_cropped_to_fill_the_frame(noise: float) -> None:
    pixels = output(encode(fundus(noise=noise)))
    assert pixels.shape == (SIZE, SIZE, 3)
    top, bottom, left, right = bright_extent(pixels)
    assert top <= 2 and left <= 2 and bottom >= SIZE - 3 and right >= SIZE - 3
    assert pixels[:3, :3].max() < 40, "the corners outside the disc stay dark"
    assert pixels[SIZE // 2, SIZE // 2, 0] > 150


def test_caption_in_the_dark_corner_does_not_stretch_the_crop() -> None:
    pixels_in = np.asarray(fundus()).copy()
    pixels_in[4:12, 4:40] = 255  # a white caption box in the top-left corner
    pixels_in[150:190, 5:8] = 255  # and a thin vertical mark low on the left
    pixels = output(encode(Image.fromarray(pixels_in)))
    top, bottom, left, right = bright_extent(pixels)
    assert top <= 2 and left <= 2 and bottom >= SIZE - 3 and right >= SIZE - 3
    assert pixels[:3, :3].max() < 40


def test_wide_retina_cut_at_top_and_bottom_is_padded_with_black() -> None:
    image = fundus(width=300, height=120, centre=(150, 60), radius=100)
    pixels = output(encode(image))
    top, bottom, left, right = bright_extent(pixels)
    assert left <= 2 and right >= SIZE - 3
    assert top > 8 and bottom < SIZE - 9, "black bands pad the short side"
    assert pixels[0].max() == 0 and pixels[-1].max() == 0


def test_image_without_dark_border_is_kept_whole() -> None:
    pixels_in = np.zeros((20, 40, 3), dtype=np.uint8)
    pixels_in[:, :20] = (220, 30, 30)
    pixels_in[:, 20:] = (30, 30, 220)
    pixels = output(encode(Image.fromarray(pixels_in)))
    assert pixels[SIZE // 2, 2, 0] > 180 and pixels[SIZE // 2, SIZE - 3, 2] > 180
    assert pixels[0].max() == 0, "padding above the whole (wide) image"


def test_all_black_image_is_kept_whole() -> None:
    pixels = output(encode(Image.new("RGB", (30, 10))))
    assert pixels.shape == (SIZE, SIZE, 3) and pixels.max() == 0


@pytest.mark.parametrize("shape", [(3, 5), (1, 1), (1, 7)])
def test_tiny_images_work(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(1)
    tiny = Image.fromarray(rng.integers(0, 256, (*shape, 3), dtype=np.uint8))
    assert output(encode(tiny)).shape == (SIZE, SIZE, 3)


def _grey16() -> bytes:
    values = np.full((8, 8), 65535, dtype=np.uint16)
    values[:, 4:] = 32896  # half of 65535: must become ~128, not be clipped to 255
    return encode(Image.fromarray(values))


def _rgba() -> bytes:
    pixels = np.zeros((8, 8, 4), dtype=np.uint8)
    pixels[:, :4] = (255, 255, 255, 0)  # transparent white: must composite to black
    pixels[:, 4:] = (255, 255, 255, 255)
    return encode(Image.fromarray(pixels, "RGBA"))


def _palette_with_transparency() -> bytes:
    image = Image.new("P", (8, 8), 0)
    image.putpalette([255, 255, 255, 250, 250, 250] + [0] * 762)
    image.paste(1, (4, 0, 8, 8))
    return encode(image, transparency=0)


def _int32() -> bytes:
    values = np.full((8, 8), 65535, dtype=np.int32)
    values[:, 4:] = 32896
    return encode(Image.fromarray(values, "I"), "TIFF")


ODD_INPUTS = {
    "grey L": lambda: encode(Image.new("L", (8, 8), 200)),
    "grey+alpha LA": lambda: encode(Image.new("LA", (8, 8), (200, 255))),
    "RGBA": _rgba,
    "palette": lambda: encode(Image.new("RGB", (8, 8), (200, 100, 50)).convert("P")),
    "palette+transparency": _palette_with_transparency,
    "16-bit I;16": _grey16,
    "32-bit I": _int32,
    "bilevel 1": lambda: encode(Image.new("1", (8, 8), 1)),
    "CMYK JPEG": lambda: encode(Image.new("CMYK", (8, 8), (0, 50, 100, 0)), "JPEG"),
    "grey JPEG": lambda: encode(Image.new("L", (8, 8), 200), "JPEG"),
    "float F TIFF": lambda: encode(Image.new("F", (8, 8), 0.5), "TIFF"),
}


@pytest.mark.parametrize("make", ODD_INPUTS.values(), ids=ODD_INPUTS.keys())
def test_every_mode_becomes_square_rgb(make) -> None:  # type: ignore[no-untyped-def]
    pixels = output(make())
    assert pixels.shape == (SIZE, SIZE, 3) and pixels.dtype == np.uint8
    assert pixels.max() > 100, "the content survives the conversion"


@pytest.mark.parametrize("mode", ["LAB", "HSV", "YCbCr", "RGBX", "RGBa", "La", "I;16B"])
def test_in_memory_modes_convert_to_rgb(mode: str) -> None:
    assert to_rgb(Image.new(mode, (3, 2)), "x.tif").mode == "RGB"


def test_16_bit_is_scaled_not_clipped() -> None:
    pixels = output(_grey16())
    assert pixels[SIZE // 2, 5, 0] == 255
    assert 120 <= pixels[SIZE // 2, SIZE - 6, 0] <= 136


def test_dark_16_bit_image_stays_dark() -> None:
    values = np.zeros((8, 8), dtype=np.uint16)
    values[2:6, 2:6] = 200  # 200 of 65535: nearly black, not grey 200
    assert output(encode(Image.fromarray(values))).max() <= 1


def test_transparent_pixels_become_black() -> None:
    pixels = output(_rgba())
    # the transparent half turned black, so it was cropped away like a dark surround
    assert pixels[SIZE // 2, SIZE // 2].min() > 240
    assert pixels[SIZE // 2, 2].max() == 0 and pixels[SIZE // 2, SIZE - 3].max() == 0


def test_exif_orientation_is_applied_and_stripped() -> None:
    pixels_in = np.zeros((20, 40, 3), dtype=np.uint8)
    pixels_in[:, :20] = (230, 20, 20)  # left red, right blue, stored sideways
    pixels_in[:, 20:] = (20, 20, 230)
    image = Image.fromarray(pixels_in)
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display": left becomes the top
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    pixels = output(encode(image, "JPEG", exif=exif.tobytes(), icc_profile=srgb, quality=95))
    assert pixels[4, SIZE // 2, 0] > 180 and pixels[4, SIZE // 2, 2] < 80
    assert pixels[SIZE - 5, SIZE // 2, 2] > 180 and pixels[SIZE - 5, SIZE // 2, 0] < 80
    assert pixels[:, 2].max() < 30, "padding left of the (tall) image"


def test_same_bytes_same_png() -> None:
    raw = encode(fundus(noise=5.0), "JPEG")
    preprocessor = FundusPreprocessor(size=SIZE)
    assert preprocessor.preprocess(raw, "a.jpg") == preprocessor.preprocess(raw, "a.jpg")


def test_draft_decodes_large_jpegs_at_reduced_scale_but_at_least_twice_the_target() -> None:
    raw = encode(fundus(width=2048, height=1024, centre=(1024, 512), radius=500), "JPEG")
    assert decode_image(raw, "big.jpg", draft_size=2 * SIZE).size == (256, 128)
    assert decode_image(raw, "big.jpg").size == (2048, 1024)
    with_draft, without = output(raw), output(raw, draft=False)
    assert np.abs(with_draft.astype(int) - without.astype(int)).mean() < 3


def test_real_original_is_cropped_to_its_retina(idrid_originals: Path) -> None:
    pixels = output((idrid_originals / "IDRiD_001.jpg").read_bytes(), size=128)
    assert pixels.shape == (128, 128, 3)
    assert pixels[:4, :4].max() < 30 and pixels[64, 64].mean() > 60
    top, bottom, left, right = bright_extent(pixels)
    assert left <= 4 and right >= 123


def _truncated_jpeg() -> bytes:
    raw = encode(fundus(noise=20.0), "JPEG")
    return raw[: len(raw) // 2]


def _corrupt_png() -> bytes:
    raw = bytearray(encode(fundus(noise=20.0)))
    raw[200:260] = b"\x00" * 60
    return bytes(raw)


BAD_INPUTS = {
    "empty file": (lambda: b"", "empty file"),
    "text file": (lambda: b"Image name,Retinopathy grade\n", "not an image"),
    "truncated JPEG": (_truncated_jpeg, "truncated or corrupt"),
    "corrupt PNG": (_corrupt_png, "truncated or corrupt"),
    "JPEG header only": (lambda: encode(fundus(), "JPEG")[:40], "truncated or corrupt"),
}


@pytest.mark.parametrize("case", BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_bad_bytes_raise_one_line_naming_the_file(case) -> None:  # type: ignore[no-untyped-def]
    make, problem = case
    with pytest.raises(InputError) as caught:
        FundusPreprocessor(size=SIZE).preprocess(make(), "IDRiD_001.jpg")
    message = str(caught.value)
    assert message.startswith("IDRiD_001.jpg: ") and problem in message
    assert "\n" not in message
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_decompression_bomb_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = encode(Image.new("RGB", (64, 64), (200, 0, 0)))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(InputError, match=r"^bomb.png: .*decompression bomb"):
        FundusPreprocessor(size=SIZE).preprocess(raw, "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 3000)  # 4096 px: only Pillow's warning zone
    with pytest.raises(InputError, match="decompression bomb"):
        FundusPreprocessor(size=SIZE).preprocess(raw, "bomb.png")


def test_batch_keeps_order_and_reports_bad_images_in_place() -> None:
    good = encode(fundus(), "JPEG")
    results = FundusPreprocessor(size=SIZE).preprocess_many([(good, "a.jpg"), (b"", "b.jpg"), (good, "c.jpg")])
    assert isinstance(results[0], bytes) and results[0] == results[2]
    assert isinstance(results[1], InputError) and str(results[1]) == "b.jpg: empty file"


def test_batch_on_a_process_pool_gives_the_same_pngs() -> None:
    raws = [(encode(fundus(seed=s, noise=4.0), "JPEG"), f"{s}.jpg") for s in range(4)] + [(b"x", "bad.jpg")]
    preprocessor = FundusPreprocessor(size=SIZE)
    pooled = preprocessor.preprocess_many(raws, workers=2)
    serial = preprocessor.preprocess_many(raws)
    assert pooled[:4] == serial[:4]
    assert isinstance(pooled[4], InputError) and str(pooled[4]).startswith("bad.jpg: ")
