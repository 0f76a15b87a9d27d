"""Tests for albumtagger.library.images: safe decoding, modes, orientation, draft."""

from __future__ import annotations

import hashlib
import io
import os
import random
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile, ImageOps, JpegImagePlugin

from albumtagger import safe_io
from albumtagger.errors import ImageError, UserError
from albumtagger.library import images
from albumtagger.library.images import (
    ALLOWED_FORMATS,
    MAX_IMAGE_PIXELS,
    PHOTO_SUFFIXES,
    Photo,
    PhotoDecodeError,
    decode_image,
    hash_bytes,
    load_thumbnail,
    read_photo,
)

RED = (255, 0, 0)
GREEN = (0, 255, 0)
BLUE = (0, 0, 255)
WHITE = (255, 255, 255)


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def close_to(actual: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 6) -> bool:
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True))


def noise_jpeg(size: tuple[int, int] = (96, 64)) -> bytes:
    return encode(Image.effect_noise(size, 60).convert("RGB"), "JPEG", quality=90)


def gradient(width: int, height: int) -> Image.Image:
    x = np.linspace(0, 255, width, dtype=np.float32)
    y = np.linspace(0, 255, height, dtype=np.float32)
    xx, yy = np.meshgrid(x, y)
    return Image.fromarray(np.stack([xx, yy, (xx + yy) / 2], axis=-1).astype(np.uint8))


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload)
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def raw_png(width: int, height: int, colour_type: int, depth: int, rows: bytes) -> bytes:
    header = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(rows))
        + png_chunk(b"IEND", b"")
    )


# --- constants ---------------------------------------------------------------------


def test_suffixes_and_formats() -> None:
    base = {".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif"}
    assert base <= PHOTO_SUFFIXES
    assert all(s.startswith(".") and s == s.lower() for s in PHOTO_SUFFIXES)
    assert {"JPEG", "PNG", "WEBP", "TIFF", "BMP", "GIF", "MPO"} <= ALLOWED_FORMATS
    assert not {"PSD", "ICO", "PCX", "TGA", "PPM", "EPS", "JPEG2000"} & ALLOWED_FORMATS
    assert (".avif" in PHOTO_SUFFIXES) == ("AVIF" in ALLOWED_FORMATS) == images.AVIF_SUPPORTED
    assert (".heic" in PHOTO_SUFFIXES) == ("HEIF" in ALLOWED_FORMATS) == images.HEIF_SUPPORTED
    assert MAX_IMAGE_PIXELS >= 16320 * 12240  # a 200 MP phone photo


def test_importing_changes_no_pillow_globals() -> None:
    assert Image.MAX_IMAGE_PIXELS == (1024 * 1024 * 1024 // 4 // 3)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_error_type() -> None:
    assert issubclass(PhotoDecodeError, ImageError)
    assert issubclass(ImageError, UserError)


# --- read_photo --------------------------------------------------------------------


def test_read_photo_hash_size_and_image(tmp_path: Path) -> None:
    data = encode(Image.new("RGB", (40, 30), RED), "PNG")
    photo = read_photo(write(tmp_path, "a.png", data))
    assert isinstance(photo, Photo)
    assert photo.content_hash == hashlib.sha256(data).hexdigest() == hash_bytes(data)
    assert photo.size == len(data)
    assert (photo.width, photo.height) == (40, 30) == photo.image.size
    assert photo.image.mode == "RGB"
    assert photo.image.getpixel((5, 5)) == RED
    # a standalone image: no open file object or source bytes kept alive
    assert not isinstance(photo.image, ImageFile.ImageFile)
    with pytest.raises(AttributeError):
        photo.size = 1  # type: ignore[misc]


def test_read_photo_reads_the_file_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "a.jpg", noise_jpeg())
    opened: list[object] = []

    real_open = os.open

    def counting_open(file: object, *args: object, **kwargs: object) -> int:
        opened.append(file)
        return real_open(file, *args, **kwargs)  # type: ignore[arg-type]

    def no_path_open(*args: object, **kwargs: object) -> None:
        raise AssertionError("decoding must use the bytes already read")

    monkeypatch.setattr(safe_io.os, "open", counting_open)  # photos are opened there
    monkeypatch.setattr(Image, "open", no_path_open)
    read_photo(path)
    assert opened == [path]


def test_unicode_file_names(tmp_path: Path) -> None:
    path = write(tmp_path, "фото été 写真 📷.jpg", encode(Image.new("RGB", (64, 48), BLUE), "JPEG"))
    photo = read_photo(path)
    assert (photo.width, photo.height) == (64, 48)
    assert close_to(photo.image.getpixel((10, 10)), BLUE)
    assert load_thumbnail(path, 32).size == (32, 24)


def test_os_errors_propagate_unchanged(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_photo(tmp_path / "gone.jpg")
    with pytest.raises(FileNotFoundError):
        load_thumbnail(tmp_path / "gone.jpg", 64)
    folder = tmp_path / "folder.jpg"
    folder.mkdir()
    with pytest.raises(IsADirectoryError):
        read_photo(folder)


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_device_files_are_refused_not_read() -> None:
    with pytest.raises(PhotoDecodeError, match="not a regular file"):
        read_photo(Path("/dev/zero"))


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs POSIX non-root")
def test_permission_denied_propagates(tmp_path: Path) -> None:
    path = write(tmp_path, "secret.jpg", noise_jpeg())
    path.chmod(0)
    try:
        with pytest.raises(PermissionError):
            read_photo(path)
    finally:
        path.chmod(0o644)


def test_damaged_photo_error_carries_hash_and_size(tmp_path: Path) -> None:
    data = noise_jpeg()[:300]
    with pytest.raises(PhotoDecodeError) as info:
        read_photo(write(tmp_path, "cut.jpg", data))
    assert info.value.content_hash == hash_bytes(data)
    assert info.value.size == len(data)
    assert info.value.reason == str(info.value) == "damaged: file is truncated"


# --- formats -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "params"),
    [
        ("JPEG", {"quality": 95}),
        ("PNG", {}),
        ("WEBP", {"lossless": True}),
        ("TIFF", {}),
        ("BMP", {}),
        ("GIF", {}),
        pytest.param(
            "AVIF",
            {"quality": 90},
            marks=pytest.mark.skipif(not images.AVIF_SUPPORTED, reason="no AVIF support"),
        ),
    ],
)
def test_allowed_formats_decode_to_rgb(fmt: str, params: dict[str, object]) -> None:
    source = Image.new("RGB", (48, 32), (200, 40, 40))
    image, width, height = decode_image(encode(source, fmt, **params))
    assert image.mode == "RGB"
    assert image.size == (width, height) == (48, 32)
    assert close_to(image.getpixel((10, 10)), (200, 40, 40), tolerance=8)


def test_mpo_gives_first_picture() -> None:
    first = Image.new("RGB", (64, 48), RED)
    data = encode(first, "MPO", save_all=True, append_images=[Image.new("RGB", (64, 48), GREEN)])
    image, width, height = decode_image(data)
    assert (width, height) == (64, 48)
    assert close_to(image.getpixel((5, 5)), RED, tolerance=10)


@pytest.mark.parametrize(
    ("fmt", "params"),
    [("GIF", {}), ("WEBP", {"lossless": True}), ("PNG", {})],
)
def test_animations_give_first_frame(fmt: str, params: dict[str, object]) -> None:
    frames = [Image.new("RGB", (32, 32), colour) for colour in (RED, GREEN, BLUE)]
    data = encode(
        frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0, **params
    )
    assert getattr(Image.open(io.BytesIO(data)), "n_frames", 1) == 3
    image, _, _ = decode_image(data)
    assert image.getpixel((16, 16)) == RED


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", "damaged: file is empty"),
        (bytes(random.Random(7).randrange(256) for _ in range(4000)), "unrecognised content"),
        (b"<!DOCTYPE html>\n<html><body>Not found</body></html>\n", "looks like an HTML page"),
        (b"just some notes\nabout the trip\n", "looks like a text file"),
        (b"MZ\x90\x00\x03" + bytes(200), "looks like a Windows program"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n" + bytes(100), "looks like a PDF document"),
        (b"PK\x03\x04" + bytes(100), "looks like a ZIP archive"),
        (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"/>', "an SVG drawing"),
        (b"\x00\x00\x00\x20ftypisom" + bytes(100), "looks like a video"),
    ],
)
def test_not_images_are_reported(tmp_path: Path, data: bytes, expected: str) -> None:
    path = write(tmp_path, "photo.jpg", data)
    with pytest.raises(ImageError) as info:
        read_photo(path)
    assert expected in info.value.reason
    if data:
        assert info.value.reason.startswith("not a supported image format")


def test_heic_without_plugin_says_what_to_install() -> None:
    if images.HEIF_SUPPORTED:
        pytest.skip("pillow-heif is installed")
    with pytest.raises(ImageError, match="pillow-heif"):
        decode_image(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64))


@pytest.mark.parametrize(
    ("fmt", "reason"),
    [
        ("ICO", "looks like an icon"),
        ("PSD", "looks like a Photoshop document"),
        ("PCX", "not a supported image format"),
        ("TGA", "not a supported image format"),
        ("PPM", "not a supported image format"),
    ],
)
def test_images_outside_the_allow_list_are_refused(fmt: str, reason: str) -> None:
    if fmt == "PSD":
        data = b"8BPS\x00\x01" + bytes(200)  # Pillow cannot write PSD
    else:
        data = encode(Image.new("RGB", (16, 16), RED), fmt)
        assert Image.open(io.BytesIO(data)).format == fmt  # Pillow itself would open it
    with pytest.raises(ImageError) as info:
        decode_image(data)
    assert reason in info.value.reason


# --- damage ------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF", "TIFF", "BMP"])
@pytest.mark.parametrize("kept", [0.3, 0.6, 0.95])
def test_truncated_files_are_damaged(fmt: str, kept: float) -> None:
    data = encode(Image.effect_noise((64, 64), 60).convert("RGB"), fmt)
    with pytest.raises(ImageError) as info:
        decode_image(data[: int(len(data) * kept)])
    assert info.value.reason == "damaged: file is truncated"


def test_jpeg_missing_only_its_end_marker_is_truncated() -> None:
    with pytest.raises(ImageError, match="truncated"):
        decode_image(noise_jpeg()[:-2])


def test_corrupt_jpeg_tables_are_damaged() -> None:
    data = bytearray(noise_jpeg((128, 128)))
    counts = data.index(b"\xff\xc4") + 5  # first Huffman table: 16 code-length counts
    data[counts : counts + 16] = b"\xff" * 16  # more codes than any table can hold
    with pytest.raises(ImageError) as info:
        decode_image(bytes(data))
    assert info.value.reason.startswith("damaged: cannot decode the JPEG data")


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow's notes on broken TIFF tags
@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF", "TIFF", "BMP"])
def test_random_corruption_gives_an_image_or_a_reason(fmt: str) -> None:
    clean = encode(Image.effect_noise((32, 24), 60).convert("RGB"), fmt)
    rng = random.Random(fmt)
    for _ in range(40):
        data = bytearray(clean)
        for _ in range(rng.randrange(1, 6)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        try:
            image, width, height = decode_image(bytes(data))
        except ImageError as exc:
            assert exc.reason.startswith(("damaged:", "not a supported", "too large"))
        else:
            assert image.mode == "RGB"
            assert image.size in ((width, height), (height, width))


@pytest.mark.parametrize(
    ("magic", "kind"), [(b"\xff\xd8\xff\xe0", "JPEG"), (b"\x89PNG\r\n\x1a\n", "PNG")]
)
def test_image_signature_with_garbage_is_damaged(magic: bytes, kind: str) -> None:
    garbage = bytes(random.Random(3).randrange(256) for _ in range(2000))
    with pytest.raises(ImageError) as info:
        decode_image(magic + garbage)
    assert info.value.reason in (
        f"damaged: the {kind} header is unreadable (corrupt or truncated)",
        "damaged: file is truncated",  # a bogus segment length runs past the end
    )


def test_bad_crc_png_is_damaged() -> None:
    data = bytearray(encode(Image.new("RGB", (16, 16), RED), "PNG"))
    data[data.index(b"IDAT") + 6] ^= 0x55
    with pytest.raises(ImageError, match=r"^damaged:"):
        decode_image(bytes(data))


# --- decompression bombs -----------------------------------------------------------


def test_pixel_limit_is_per_call() -> None:
    data = encode(Image.new("RGB", (200, 100), RED), "PNG")
    with pytest.raises(ImageError) as info:
        decode_image(data, max_pixels=10_000)
    assert info.value.reason.startswith("too large to open safely: 200 x 100 pixels")
    assert decode_image(data)[0].size == (200, 100)
    assert Image.MAX_IMAGE_PIXELS == (1024 * 1024 * 1024 // 4 // 3)


def test_bomb_is_refused_from_its_header_without_decoding(tmp_path: Path) -> None:
    # 100k x 100k RGB PNG: 30 GB of pixels behind a few dozen bytes.
    data = raw_png(100_000, 100_000, 2, 8, b"\x00" * 64)
    start = time.perf_counter()
    with pytest.raises(PhotoDecodeError, match="too large to open safely"):
        read_photo(write(tmp_path, "bomb.png", data))
    with pytest.raises(ImageError, match="too large"):
        load_thumbnail(tmp_path / "bomb.png", 64)
    assert time.perf_counter() - start < 1.0


def test_pillow_global_limit_does_not_refuse_allowed_images(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Pillow's own Image.open refuses over 2 x MAX_IMAGE_PIXELS; our limit is ours.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    data = encode(Image.new("RGB", (100, 100), RED), "JPEG")
    with pytest.raises(Image.DecompressionBombError):
        Image.open(io.BytesIO(data))
    assert decode_image(data)[0].size == (100, 100)


def test_oversized_file_is_not_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(images, "MAX_FILE_BYTES", 1000)
    path = write(tmp_path, "huge.jpg", noise_jpeg())
    with pytest.raises(PhotoDecodeError, match="file too large") as info:
        read_photo(path)
    assert info.value.content_hash is None
    assert info.value.size == path.stat().st_size


# --- orientation -------------------------------------------------------------------


def two_halves(size: tuple[int, int] = (40, 20)) -> Image.Image:
    """Left half red, right half blue."""
    image = Image.new("RGB", size, BLUE)
    image.paste(RED, (0, 0, size[0] // 2, size[1]))
    return image


def with_orientation(image: Image.Image, orientation: int) -> Image.Exif:
    exif = image.getexif()
    exif[0x0112] = orientation
    return exif


def test_jpeg_orientation_6_rotates_clockwise(tmp_path: Path) -> None:
    source = two_halves()
    data = encode(source, "JPEG", quality=95, exif=with_orientation(source, 6))
    photo = read_photo(write(tmp_path, "rotated.jpg", data))
    assert (photo.width, photo.height) == (20, 40) == photo.image.size
    # the stored left edge is the displayed top: red above, blue below
    assert close_to(photo.image.getpixel((10, 5)), RED, tolerance=20)
    assert close_to(photo.image.getpixel((10, 35)), BLUE, tolerance=20)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_orientation_matches_pillow_exif_transpose(orientation: int) -> None:
    source = Image.effect_noise((30, 20), 60).convert("RGB")
    data = encode(source, "PNG", exif=with_orientation(source, orientation))
    image, width, height = decode_image(data)
    expected = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
    assert image.size == expected.size == (width, height)
    assert image.tobytes() == expected.tobytes()


@pytest.mark.parametrize("orientation", [0, 9, 300])
def test_invalid_orientation_is_ignored(orientation: int) -> None:
    source = two_halves()
    data = encode(source, "JPEG", exif=with_orientation(source, orientation))
    image, width, height = decode_image(data)
    assert image.size == (width, height) == (40, 20)


def test_thumbnail_is_oriented_and_bounded(tmp_path: Path) -> None:
    source = two_halves((400, 200))
    data = encode(source, "JPEG", exif=with_orientation(source, 8))
    thumb = load_thumbnail(write(tmp_path, "t.jpg", data), 100)
    assert thumb.mode == "RGB"
    assert thumb.size == (50, 100)
    # orientation 8 rotates counter-clockwise: the stored left edge ends up at the bottom
    assert close_to(thumb.getpixel((25, 90)), RED, tolerance=20)
    assert close_to(thumb.getpixel((25, 10)), BLUE, tolerance=20)


def test_thumbnail_never_upscales(tmp_path: Path) -> None:
    path = write(tmp_path, "small.png", encode(Image.new("RGB", (30, 20), RED), "PNG"))
    assert load_thumbnail(path, 256).size == (30, 20)
    with pytest.raises(ValueError):
        load_thumbnail(path, 0)


# --- colour modes ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "fmt", "value"),
    [
        ("I;16", "PNG", 32768),
        ("I;16", "TIFF", 32768),
        ("I;16B", "TIFF", 32768),
        ("I", "TIFF", 32768),
        ("F", "TIFF", 0.5),
    ],
)
def test_high_bit_depth_mid_grey_stays_mid_grey(mode: str, fmt: str, value: float) -> None:
    data = encode(Image.new(mode, (8, 8), value), fmt)
    assert Image.open(io.BytesIO(data)).mode == mode
    image, _, _ = decode_image(data)
    assert image.mode == "RGB"
    assert close_to(image.getpixel((3, 3)), (128, 128, 128), tolerance=1)


def test_16_bit_grey_keeps_its_range() -> None:
    values = np.array([[0, 257 * 64, 65535]], dtype=np.uint16)
    image, _, _ = decode_image(encode(Image.fromarray(values), "PNG"))
    assert [image.getpixel((x, 0))[0] for x in range(3)] == [0, 64, 255]


@pytest.mark.parametrize(("colour_type", "samples"), [(2, 3), (6, 4), (4, 2)])
def test_16_bit_colour_png_is_scaled(colour_type: int, samples: int) -> None:
    pixel = struct.pack(">" + "H" * samples, *([32896] * (samples - 1) + [65535]))
    if colour_type == 2:
        pixel = struct.pack(">HHH", 32896, 32896, 32896)
    rows = (b"\x00" + pixel * 4) * 4
    image, _, _ = decode_image(raw_png(4, 4, colour_type, 16, rows))
    assert close_to(image.getpixel((1, 1)), (128, 128, 128), tolerance=1)


@pytest.mark.parametrize("fmt", ["JPEG", "TIFF"])
def test_cmyk_converts_with_sane_colours(fmt: str) -> None:
    source = Image.new("CMYK", (32, 32), (0, 255, 255, 0))  # pure red ink
    source.paste((255, 0, 255, 0), (16, 0, 32, 32))  # pure green ink
    data = encode(source, fmt)
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    image, _, _ = decode_image(data)
    assert close_to(image.getpixel((4, 16)), RED, tolerance=12)
    assert close_to(image.getpixel((28, 16)), GREEN, tolerance=12)


def test_cmyk_with_unusable_icc_profile_falls_back() -> None:
    data = encode(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "JPEG", icc_profile=b"junk" * 40)
    assert close_to(decode_image(data)[0].getpixel((8, 8)), RED, tolerance=12)


def test_lab_tiff_is_colour_managed() -> None:
    data = encode(Image.new("LAB", (8, 8), (136, 208, 195)), "TIFF")  # L*=53 a*=80 b*=67
    assert close_to(decode_image(data)[0].getpixel((4, 4)), (250, 3, 11), tolerance=10)


@pytest.mark.parametrize("fmt", ["PNG", "GIF"])
def test_palette_transparency_is_composited_on_white(fmt: str) -> None:
    source = Image.new("P", (20, 20), 1)
    source.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    source.paste(0, (0, 0, 10, 20))  # index 0 is transparent, left half
    data = encode(source, fmt, transparency=0)
    image, _, _ = decode_image(data)
    assert image.getpixel((5, 10)) == WHITE
    assert image.getpixel((15, 10)) == RED


def test_palette_with_partial_alpha_is_composited_on_white() -> None:
    source = Image.new("P", (8, 8), 1)
    source.putpalette([255, 0, 0, 0, 0, 0] + [0] * 762)
    data = encode(source, "PNG", transparency=bytes([255, 128]))  # index 1: black, half alpha
    image, _, _ = decode_image(data)
    assert close_to(image.getpixel((4, 4)), (127, 127, 127), tolerance=2)


@pytest.mark.parametrize(
    ("mode", "colour", "fmt"),
    [
        ("RGBA", (0, 0, 0, 128), "PNG"),
        ("RGBA", (0, 0, 0, 128), "WEBP"),
        ("LA", (0, 128), "PNG"),
    ],
)
def test_alpha_is_composited_on_white(mode: str, colour: tuple[int, ...], fmt: str) -> None:
    source = Image.new(mode, (16, 16), colour)
    params = {"lossless": True} if fmt == "WEBP" else {}
    image, _, _ = decode_image(encode(source, fmt, **params))
    assert close_to(image.getpixel((8, 8)), (127, 127, 127), tolerance=2)


def test_rgb_colour_key_transparency_becomes_white() -> None:
    source = Image.new("RGB", (8, 8), GREEN)
    source.paste(RED, (0, 0, 4, 8))
    data = encode(source, "PNG", transparency=RED)
    image, _, _ = decode_image(data)
    assert image.getpixel((1, 1)) == WHITE
    assert image.getpixel((6, 1)) == GREEN


@pytest.mark.parametrize(
    ("mode", "value", "expected"),
    [("1", 1, WHITE), ("L", 100, (100, 100, 100)), ("P", 3, (3, 3, 3))],
)
def test_simple_modes_convert_to_rgb(mode: str, value: int, expected: tuple[int, ...]) -> None:
    source = Image.new(mode, (8, 8), value)
    if mode == "P":
        source.putpalette([i for i in range(256) for _ in range(3)])
    image, _, _ = decode_image(encode(source, "PNG"))
    assert image.mode == "RGB"
    assert image.getpixel((2, 2)) == expected


# --- draft decoding ----------------------------------------------------------------


def test_draft_decoding_is_smaller_and_faster() -> None:
    data = encode(gradient(2400, 1600), "JPEG", quality=90)
    target = 150_000

    def best_time(target_pixels: int | None) -> tuple[float, Image.Image]:
        times = []
        for _ in range(3):
            start = time.perf_counter()
            image, width, height = decode_image(data, target_pixels=target_pixels)
            times.append(time.perf_counter() - start)
            assert (width, height) == (2400, 1600)
        return min(times), image

    full_time, full = best_time(None)
    draft_time, small = best_time(target)
    assert full.size == (2400, 1600)
    assert small.size == (600, 400)  # scale 1/4; 1/8 (300 x 200) would be below target
    assert small.width * small.height >= target
    assert draft_time < full_time


def test_draft_never_goes_below_the_target() -> None:
    rng = random.Random(5)
    sizes = [(17, 9), (9, 17), (8, 8), (15, 1), (1, 40), (1001, 7), (333, 250), (640, 480)]
    sizes += [(rng.randrange(1, 700), rng.randrange(1, 700)) for _ in range(12)]
    for width, height in sizes:
        data = encode(Image.new("RGB", (width, height), RED), "JPEG")
        full = width * height
        for target in {1, full // 70, full // 17, full // 5, full // 2, full, full * 2}:
            image, w, h = decode_image(data, target_pixels=target)
            assert (w, h) == (width, height)
            pixels = image.width * image.height
            assert pixels >= min(target, full), (width, height, target, image.size)
            scale = images._draft_scale(width, height, lambda a, b, t=target: a * b >= t)
            assert image.size == (-(-width // scale), -(-height // scale))


def test_no_draft_without_a_target_or_for_other_formats() -> None:
    data = encode(Image.new("RGB", (800, 600), RED), "PNG")
    assert decode_image(data, target_pixels=100)[0].size == (800, 600)
    assert decode_image(noise_jpeg((800, 600)))[0].size == (800, 600)


def test_draft_keeps_orientation_and_full_size() -> None:
    source = two_halves((1600, 800))
    data = encode(source, "JPEG", exif=with_orientation(source, 6))
    image, width, height = decode_image(data, target_pixels=20_000)
    assert (width, height) == (800, 1600)
    assert image.size == (100, 200)
    assert close_to(image.getpixel((50, 20)), RED, tolerance=20)


def test_thumbnail_of_large_jpeg_uses_draft(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = write(tmp_path, "big.jpg", encode(gradient(1600, 1200), "JPEG"))
    requests: list[tuple[int, int] | None] = []
    original = JpegImagePlugin.JpegImageFile.draft

    def spy(self: JpegImagePlugin.JpegImageFile, mode: str | None, size: tuple[int, int] | None):
        requests.append(size)
        return original(self, mode, size)

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    thumb = load_thumbnail(path, 256)
    assert thumb.size == (256, 192)
    assert requests == [(400, 300)]  # scale 1/4 keeps the longest side >= 256


def test_draft_decode_to_patches_matches_the_full_decode() -> None:
    """The pipeline's fast path (draft decode at the budget, one resize) gives the patches
    of the naive path (full decode, then resize) within JPEG's own error."""
    from albumtagger.model.encoder import prepare_image
    from albumtagger.service.indexing import decode_target_pixels

    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[0:1512, 0:2016].astype(np.float32)
    pixels = np.stack([xx / 8, yy / 6, (xx + yy) / 14], -1) + rng.normal(0, 4, (1512, 2016, 3))
    buffer = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=90)
    data = buffer.getvalue()
    for tokens in (64, 256):
        fast, width, height = decode_image(data, target_pixels=decode_target_pixels(tokens))
        assert fast.width < width  # drafted
        naive, _, _ = decode_image(data)
        a = prepare_image(fast, min_tokens=tokens, max_tokens=tokens, full_size=(width, height))
        b = prepare_image(naive, min_tokens=tokens, max_tokens=tokens)
        assert a.grid_thw == b.grid_thw
        x, y = a.pixel_values.ravel(), b.pixel_values.ravel()
        assert float(x @ y / (np.linalg.norm(x) * np.linalg.norm(y))) > 0.999
