"""Safe photo loading: one read per file, content hash, allow-listed formats, RGB out.

Every decoded image comes out RGB, EXIF-oriented, first frame only, transparent
pixels composited onto white. Damaged or unsupported files raise `ImageError` (a
`PhotoDecodeError` from `read_photo`) whose `reason` is a sentence for the user;
`OSError` from reading the file itself (permission denied, file vanished) propagates
unchanged so the scanner can tell "unreadable" from "damaged".

Safety rules:
- Only the plugins of `ALLOWED_FORMATS` are tried, chosen by content, never by name.
- The pixel count from the header is checked against a per-call limit before any
  pixel is decoded. Pillow's own global guard (`Image.MAX_IMAGE_PIXELS`) is left
  untouched; where a plugin still trips it, the file is reported as too large.
- A truncated file is an error: `ImageFile.LOAD_TRUNCATED_IMAGES` is never set.
"""

from __future__ import annotations

import hashlib
import io
import logging
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import (
    BmpImagePlugin,
    ExifTags,
    GifImagePlugin,
    Image,
    ImageFile,
    JpegImagePlugin,
    MpoImagePlugin,
    PngImagePlugin,
    TiffImagePlugin,
    WebPImagePlugin,
    features,
)

from albumtagger import safe_io
from albumtagger.errors import ImageError

log = logging.getLogger(__name__)

# Importing the plugins above registers them with Pillow; keep the names referenced.
_PLUGINS = (
    BmpImagePlugin,
    GifImagePlugin,
    JpegImagePlugin,
    MpoImagePlugin,
    PngImagePlugin,
    TiffImagePlugin,
    WebPImagePlugin,
)

MAX_IMAGE_PIXELS: int = 200_000_000
"""Default decompression-bomb limit (a 200 MP phone photo is 16320 x 12240 = 199.8 MP)."""

MAX_FILE_BYTES: int = 1 << 30
"""Files larger than this (1 GiB) are not read into memory."""


def _native_avif() -> bool:
    try:
        from PIL import AvifImagePlugin  # noqa: F401  (registers the plugin)
    except ImportError:
        return False
    return bool(features.check_module("avif"))


def _register_heif(native_avif: bool) -> tuple[bool, bool]:
    """Register the optional pillow-heif plugin; returns (heif, avif) availability."""
    try:
        import pillow_heif  # type: ignore[import-not-found]
    except ImportError:
        return False, False
    try:
        pillow_heif.register_heif_opener()
    except Exception:
        log.warning("pillow-heif is installed but could not be registered", exc_info=True)
        return False, False
    avif = False
    if not native_avif and hasattr(pillow_heif, "register_avif_opener"):
        try:
            pillow_heif.register_avif_opener()
            avif = True
        except Exception:
            log.warning("pillow-heif could not register its AVIF opener", exc_info=True)
    return True, avif


_AVIF_NATIVE = _native_avif()
_HEIF, _AVIF_FROM_HEIF = _register_heif(_AVIF_NATIVE)
HEIF_SUPPORTED: bool = _HEIF
AVIF_SUPPORTED: bool = _AVIF_NATIVE or _AVIF_FROM_HEIF
WEBP_SUPPORTED: bool = bool(features.check_module("webp"))

# Pillow plugin ids tried when opening, in order (content decides, never the suffix).
_OPENERS: tuple[str, ...] = (
    "JPEG",
    "PNG",
    *(("WEBP",) if WEBP_SUPPORTED else ()),
    "GIF",
    "TIFF",
    "BMP",
    *(("HEIF",) if HEIF_SUPPORTED else ()),
    *(("AVIF",) if AVIF_SUPPORTED else ()),
)

ALLOWED_FORMATS: frozenset[str] = frozenset({*_OPENERS, "MPO"})
"""Pillow format names accepted (MPO is the multi-picture JPEG some cameras write)."""

PHOTO_SUFFIXES: frozenset[str] = frozenset(
    {
        ".jpg",
        ".jpeg",
        ".jfif",
        ".png",
        ".tif",
        ".tiff",
        ".bmp",
        ".gif",
        *((".webp",) if WEBP_SUPPORTED else ()),
        *((".heic", ".heif") if HEIF_SUPPORTED else ()),
        *((".avif",) if AVIF_SUPPORTED else ()),
    }
)
"""Lowercase file suffixes the scanner considers."""

_PILLOW_LIMIT = "too large to open safely (over Pillow's own pixel limit)"
_JPEG_FORMATS = frozenset({"JPEG", "MPO"})
_DRAFT_SCALES = (8, 4, 2)  # the DCT scales libjpeg decodes at, besides 1
_WHITE = (255, 255, 255)
_HIGH_DEPTH_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


class PhotoDecodeError(ImageError):
    """`read_photo` could not decode a file; carries what was learnt from its bytes."""

    def __init__(self, reason: str, *, content_hash: str | None, size: int) -> None:
        super().__init__(reason)
        self.content_hash = content_hash
        self.size = size


@dataclass(frozen=True, eq=False)
class Photo:
    """What one read of a photo file gives."""

    content_hash: str
    size: int
    width: int
    height: int
    image: Image.Image


def hash_bytes(data: bytes) -> str:
    """Content hash of a photo: SHA-256, lowercase hex."""
    return hashlib.sha256(data).hexdigest()


def read_photo(
    path: Path, *, target_pixels: int | None = None, max_pixels: int = MAX_IMAGE_PIXELS
) -> Photo:
    """Read `path` once, hash its bytes and decode those same bytes.

    With `target_pixels`, a JPEG may be decoded at a reduced DCT scale that still
    has at least `target_pixels` pixels. Raises `PhotoDecodeError` (an `ImageError`)
    for damaged or unsupported files; `OSError` from reading propagates.
    """
    data = read_file_bytes(path)
    content_hash = hash_bytes(data)
    try:
        image, width, height = decode_image(
            data, target_pixels=target_pixels, max_pixels=max_pixels
        )
    except ImageError as exc:
        log.debug("%s: %s", path, exc.reason)
        raise PhotoDecodeError(exc.reason, content_hash=content_hash, size=len(data)) from exc
    return Photo(content_hash, len(data), width, height, image)


def decode_image(
    data: bytes, *, target_pixels: int | None = None, max_pixels: int = MAX_IMAGE_PIXELS
) -> tuple[Image.Image, int, int]:
    """Decode image bytes to (RGB oriented image, full width, full height).

    Width and height are the displayed full-size dimensions; the image itself may be
    smaller when `target_pixels` allows JPEG draft decoding (never below the target).
    """
    if target_pixels is None:
        return _decode(data, None, max_pixels)
    target = max(1, int(target_pixels))
    return _decode(data, lambda w, h: w * h >= target, max_pixels)


def load_thumbnail(path: Path, size: int, *, max_pixels: int = MAX_IMAGE_PIXELS) -> Image.Image:
    """Load an RGB, oriented thumbnail whose longest side is at most `size`."""
    if size < 1:
        raise ValueError(f"thumbnail size must be positive, got {size}")
    data = read_file_bytes(path)
    image, _, _ = _decode(data, lambda w, h: max(w, h) >= size, max_pixels)
    image.thumbnail((size, size), Image.Resampling.BICUBIC)
    return image


# --- reading -----------------------------------------------------------------------


def read_file_bytes(path: Path) -> bytes:
    """The whole file, read once (`safe_io.read_regular`): a pipe named like a photo
    cannot hang the caller, nor a device fill its memory. Raises `PhotoDecodeError` for
    a file that is not a regular one or is too large, OSError else."""
    try:
        return safe_io.read_regular(path, MAX_FILE_BYTES)
    except safe_io.NotRegularFileError:
        raise PhotoDecodeError("not a regular file", content_hash=None, size=0) from None
    except safe_io.FileTooLargeError as exc:
        raise _file_too_large(exc.size) from None


def _file_too_large(size: int) -> PhotoDecodeError:
    reason = (
        f"file too large to open safely: {size / 2**20:.0f} MiB "
        f"(the limit is {MAX_FILE_BYTES / 2**20:.0f} MiB)"
    )
    return PhotoDecodeError(reason, content_hash=None, size=size)


# --- decoding ----------------------------------------------------------------------


def _decode(
    data: bytes, enough: Callable[[int, int], bool] | None, max_pixels: int
) -> tuple[Image.Image, int, int]:
    """Open, guard, draft, load and convert; every failure becomes an `ImageError`."""
    if not data:
        raise ImageError("damaged: file is empty")
    image = _open(data)
    try:
        with image:
            return _load(image, enough, max_pixels)
    except ImageError:
        raise
    except MemoryError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageError(_PILLOW_LIMIT) from exc
    except Exception as exc:
        log.debug("decoding %s data failed", image.format, exc_info=True)
        raise ImageError(_damage_reason(exc, data, image.format or "image")) from exc


def _open(data: bytes) -> ImageFile.ImageFile:
    """Identify `data` with the allow-listed Pillow plugins only (header only).

    This mirrors `Image.open` but never consults Pillow's global pixel limit, which
    is below the limit photos here need (it refuses 200 MP phone photos).
    """
    prefix = data[:16]
    buffer = io.BytesIO(data)
    notes: list[str] = []
    for name in _OPENERS:
        entry = Image.OPEN.get(name)
        if entry is None:
            continue
        factory, accept = entry
        verdict = accept(prefix) if accept else True
        if isinstance(verdict, str):
            notes.append(verdict)
            continue
        if not verdict:
            continue
        buffer.seek(0)
        try:
            image = factory(buffer, "")
        except (SyntaxError, IndexError, TypeError, struct.error) as exc:
            # what Pillow itself takes to mean "not this format"
            notes.append(f"{name}: {exc}")
            continue
        except MemoryError:
            raise
        except Image.DecompressionBombError as exc:
            raise ImageError(_PILLOW_LIMIT) from exc
        except Exception as exc:
            log.debug("opening as %s failed", name, exc_info=True)
            raise ImageError(_damage_reason(exc, data, name)) from exc
        if image.format not in ALLOWED_FORMATS:
            fmt = image.format
            image.close()
            raise ImageError(f"not a supported image format ({fmt})")
        return image
    if notes:
        log.debug("no plugin accepted the data: %s", "; ".join(notes))
    raise ImageError(_unidentified_reason(data))


def _load(
    image: ImageFile.ImageFile, enough: Callable[[int, int], bool] | None, max_pixels: int
) -> tuple[Image.Image, int, int]:
    width, height = image.size
    if width < 1 or height < 1:
        raise ImageError(f"damaged: the header says the image is {width} x {height} pixels")
    if width * height > max_pixels:
        raise ImageError(_too_large(width, height, max_pixels))
    if enough is not None and image.format in _JPEG_FORMATS:
        scale = _draft_scale(width, height, enough)
        if scale > 1:
            # Pillow picks exactly `scale` for this request (see _draft_scale).
            image.draft("RGB", (width // scale, height // scale))
    image.load()
    orientation = _orientation(image)
    rgb = _to_rgb(image)
    if orientation in _TRANSPOSE:
        rgb = rgb.transpose(_TRANSPOSE[orientation])
    if orientation >= 5:
        width, height = height, width
    return rgb, width, height


def _draft_scale(width: int, height: int, enough: Callable[[int, int], bool]) -> int:
    """The largest JPEG DCT scale whose decoded size is still `enough`.

    Decoding at scale s gives ceil(w/s) x ceil(h/s). Asking Pillow's draft for
    (w // s, h // s) makes it pick exactly s whenever w and h are both >= s.
    """
    for scale in _DRAFT_SCALES:
        if width < scale or height < scale:
            continue
        if enough(-(-width // scale), -(-height // scale)):
            return scale
    return 1


def _orientation(image: Image.Image) -> int:
    """EXIF (or XMP) orientation 1..8; 1 when absent or unreadable."""
    try:
        value = image.getexif().get(ExifTags.Base.Orientation, 1)
        value = int(value)
    except Exception:
        log.debug("unreadable EXIF orientation; ignoring it", exc_info=True)
        return 1
    return value if value in _TRANSPOSE else 1


_EXIF_IFD = 0x8769
_DATE_TIME_ORIGINAL = 0x9003
_DATE_TIME_DIGITIZED = 0x9004
_OFFSET_TIME_ORIGINAL = 0x9011
_DATE_TIME = 0x0132


def date_taken(data: bytes) -> float | None:
    """When the photo was taken (a POSIX timestamp) from its EXIF: DateTimeOriginal, else
    DateTimeDigitized, else the file's DateTime; with OffsetTimeOriginal when the camera
    wrote one, else as local time. None when the photo says nothing usable. Reads the
    header only (no decode)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            exif = image.getexif()
            sub = exif.get_ifd(_EXIF_IFD)
            raw = (
                sub.get(_DATE_TIME_ORIGINAL)
                or sub.get(_DATE_TIME_DIGITIZED)
                or exif.get(_DATE_TIME)
            )
            offset = sub.get(_OFFSET_TIME_ORIGINAL)
    except Exception:
        log.debug("unreadable EXIF date; ignoring it", exc_info=True)
        return None
    return _exif_timestamp(raw, offset)


def _exif_timestamp(raw: object, offset: object = None) -> float | None:
    """ "2024:07:14 18:03:59" (+ "+02:00") as a timestamp; None for blanks and nonsense."""
    import datetime as dt

    if isinstance(raw, bytes):
        raw = raw.decode("ascii", "replace")
    if not isinstance(raw, str):
        return None
    text = raw.strip().strip("\x00").strip()
    try:
        when = dt.datetime.strptime(text[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    if when.year < 1826:  # before photography: a blank "0000:00:00" or a wrong clock
        return None
    if isinstance(offset, str) and len(offset.strip()) == 6:
        try:
            sign = -1 if offset.strip()[0] == "-" else 1
            hours, minutes = int(offset.strip()[1:3]), int(offset.strip()[4:6])
            zone = dt.timezone(sign * dt.timedelta(hours=hours, minutes=minutes))
            return when.replace(tzinfo=zone).timestamp()
        except (ValueError, IndexError):
            pass
    try:
        return when.timestamp()  # local time, as cameras without an offset mean it
    except (OverflowError, OSError, ValueError):
        return None


# --- colour ------------------------------------------------------------------------


def _to_rgb(image: Image.Image) -> Image.Image:
    """A new RGB image: alpha composited on white, high bit depths scaled, CMYK via ICC."""
    mode = image.mode
    if mode in _HIGH_DEPTH_MODES:
        return _high_depth_to_rgb(image)
    if mode == "CMYK":
        return _cmyk_to_rgb(image)
    if mode == "LAB":
        return _lab_to_rgb(image)
    if image.has_transparency_data:
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, _WHITE)
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def _high_depth_to_rgb(image: Image.Image) -> Image.Image:
    """Scale 16-bit, 32-bit integer and float greyscale to 8 bits (never clip to white)."""
    if image.mode == "F":
        low, high = image.getextrema()
        if low >= 0.0 and high <= 1.0:
            low, high = 0.0, 1.0
        channel = image
    else:
        channel = image.convert("I")
        low, high = channel.getextrema()
        if low >= 0 and high <= 65535:
            low, high = 0, 65535  # 16-bit samples, whatever the container
    span = float(high - low) or 1.0
    scale = 255.0 / span
    offset = 0.5 - low * scale
    scaled = channel.point(lambda v: v * scale + offset)
    return scaled.convert("L").convert("RGB")


def _cmyk_to_rgb(image: Image.Image) -> Image.Image:
    """CMYK through its embedded ICC profile when there is one, else Pillow's formula."""
    icc = image.info.get("icc_profile")
    if icc:
        try:
            from PIL import ImageCms

            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            converted = ImageCms.profileToProfile(
                image, source, ImageCms.createProfile("sRGB"), outputMode="RGB"
            )
            if converted is not None:
                return converted
        except Exception:
            log.debug("CMYK ICC conversion failed; using the plain formula", exc_info=True)
    return image.convert("RGB")


def _lab_to_rgb(image: Image.Image) -> Image.Image:
    try:
        from PIL import ImageCms

        transform = ImageCms.buildTransform(
            ImageCms.createProfile("LAB"), ImageCms.createProfile("sRGB"), "LAB", "RGB"
        )
        converted = ImageCms.applyTransform(image, transform)
    except Exception as exc:
        raise ImageError("not a supported image format (CIELAB colour)") from exc
    if converted is None:
        raise ImageError("not a supported image format (CIELAB colour)")
    return converted


# --- reasons -----------------------------------------------------------------------


def _too_large(width: int, height: int, max_pixels: int) -> str:
    return (
        f"too large to open safely: {width} x {height} pixels "
        f"({width * height / 1e6:.0f} MP; the limit is {max_pixels / 1e6:.0f} MP)"
    )


_UNSUPPORTED_HINTS = (
    "not available",
    "unsupported",
    "not supported",
    "unknown compression",
    "unknown pixel mode",
    "unrecognized mode",
    "unrecognised mode",
)
"""Pillow's words for a well-formed file it has no decoder for (a TIFF compression, a
pixel layout): such a file is not damaged, just not supported."""


def _damage_reason(exc: BaseException, data: bytes, fmt: str) -> str:
    text = str(exc).strip()
    if isinstance(exc, EOFError) or "truncated" in text.lower() or _riff_truncated(data):
        return "damaged: file is truncated"
    detail = text.splitlines()[0][:200] if text else type(exc).__name__
    if any(hint in detail.lower() for hint in _UNSUPPORTED_HINTS):
        return f"not supported ({fmt}: {detail})"
    return f"damaged: cannot decode the {fmt} data ({detail})"


def _riff_truncated(data: bytes) -> bool:
    """A RIFF (WebP) file shorter than its own header says."""
    if len(data) < 12 or data[:4] != b"RIFF":
        return False
    return len(data) < 8 + int.from_bytes(data[4:8], "little")


_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"BM", "BMP"),
    (b"8BPS", "a Photoshop document (PSD)"),
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive or office document"),
    (b"MZ", "a Windows program"),
    (b"\x7fELF", "a program"),
    (b"\x00\x00\x01\x00", "an icon (ICO)"),
    (b"\xff\x0a", "a JPEG XL image"),
    (b"\x00\x00\x00\x0cJXL ", "a JPEG XL image"),
    (b"\x00\x00\x00\x0cjP  ", "a JPEG 2000 image"),
    (b"\xff\x4f\xff\x51", "a JPEG 2000 image"),
    (b"qoif", "a QOI image"),
    (b"ID3", "an MP3 audio file"),
    (b"OggS", "an Ogg media file"),
    (b"\x1aE\xdf\xa3", "a Matroska or WebM video"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!", "a RAR archive"),
)
_HEIF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"})
_AVIF_BRANDS = frozenset({b"avif", b"avis"})


def _sniff(data: bytes) -> str | None:
    """What the bytes look like: a Pillow format name, a description, or None."""
    if data[:4] == b"RIFF" and len(data) >= 12:
        kind = data[8:12]
        return {b"WEBP": "WEBP", b"AVI ": "an AVI video", b"WAVE": "a WAV audio file"}.get(
            kind, "a RIFF media file"
        )
    if data[4:8] == b"ftyp":
        brand = data[8:12]
        if brand in _AVIF_BRANDS:
            return "AVIF"
        if brand in _HEIF_BRANDS:
            return "HEIF"
        if brand == b"crx ":
            return "a Canon raw photo (CR3)"
        return "a video (MP4/MOV)"
    for magic, kind in _SIGNATURES:
        if data.startswith(magic):
            return kind
    return _sniff_text(data[:2048])


def _sniff_text(head: bytes) -> str | None:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a character cut at the end
            return None
        text = head[: exc.start].decode("utf-8")
    text = text.lstrip("\ufeff \t\r\n")
    if not text or any(ch < " " and ch not in "\t\r\n" for ch in text):
        return None
    lower = text[:512].lower()
    if lower.startswith(("<!doctype html", "<html")) or "<html" in lower:
        return "an HTML page"
    if lower.startswith("<svg") or (lower.startswith("<?xml") and "<svg" in lower):
        return "an SVG drawing"
    if lower.startswith("<?xml"):
        return "an XML file"
    return "a text file"


def _tiff_compression(data: bytes) -> int | None:
    """The compression code of a TIFF whose first directory is well formed, else None."""
    order = {b"II": "<", b"MM": ">"}.get(data[:2])
    if order is None or len(data) < 8:
        return None
    magic, offset = struct.unpack(order + "HI", data[2:8])
    if magic != 42 or offset + 2 > len(data):
        return None
    (count,) = struct.unpack(order + "H", data[offset : offset + 2])
    if count == 0 or offset + 2 + 12 * count > len(data):
        return None
    for i in range(count):
        entry = offset + 2 + 12 * i
        tag, kind = struct.unpack(order + "HH", data[entry : entry + 4])
        if tag == 259:  # Compression, a SHORT stored in the entry itself
            fmt = order + ("H" if kind == 3 else "I")
            return int(struct.unpack_from(fmt, data, entry + 8)[0])
    return None


def _unidentified_reason(data: bytes) -> str:
    kind = _sniff(data)
    if kind == "HEIF" and not HEIF_SUPPORTED:
        return "not a supported image format (HEIC/HEIF; install the optional pillow-heif package)"
    if kind == "AVIF" and not AVIF_SUPPORTED:
        return "not a supported image format (AVIF; this Pillow has no AVIF support)"
    if kind == "WEBP" and not WEBP_SUPPORTED:
        return "not a supported image format (WebP; this Pillow has no WebP support)"
    if kind in ALLOWED_FORMATS:
        if _riff_truncated(data) or len(data) < 64:
            return "damaged: file is truncated"
        if kind == "TIFF":
            compression = _tiff_compression(data)
            if compression is not None and compression not in TiffImagePlugin.COMPRESSION_INFO:
                return f"not supported (TIFF compression {compression}, which Pillow cannot decode)"
        return f"damaged: the {kind} header is unreadable (corrupt or truncated)"
    if kind is None:
        return "not a supported image format (unrecognised content)"
    if kind in ("HEIF", "AVIF", "WEBP"):
        return f"not a supported image format ({kind})"
    return f"not a supported image format (looks like {kind})"
