"""The on-disk thumbnail cache, keyed by content hash (shared by every library).

Layout: `CACHE/thumbnails/<size>/<hash[:2]>/<hash>.jpg` (or `.webp`), where CACHE is
the constructor's directory, else `ALBUMTAGGER_CACHE_DIR`, else the user cache dir.
A moved or renamed photo keeps its thumbnail; a changed one gets a new one. Files are
written to a temporary name and renamed into place, so a reader never sees half a file
and threads (the app's loader pool, the tagging worker) can share one cache freely.

Thumbnails come from images already decoded, oriented and RGB: the tagging pipeline
hands each photo it decodes to `put_image`; `make` decodes a photo not tagged yet
through `library.images`, with its safety rules (allow-listed formats, pixel limit,
EXIF orientation, reduced JPEG decoding). Nothing is ever evicted here.
"""

from __future__ import annotations

import io
import logging
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

import platformdirs
from PIL import Image

from albumtagger import safe_io
from albumtagger.library.db.store import PhotoRow
from albumtagger.library.images import WEBP_SUPPORTED, read_photo

log = logging.getLogger(__name__)

APP_NAME = "albumtagger"
CACHE_ENV = "ALBUMTAGGER_CACHE_DIR"
THUMBNAIL_SIZE = 256
"""Default long side of a thumbnail, in pixels."""
FORMATS = {"jpeg": ("JPEG", ".jpg"), "webp": ("WEBP", ".webp")}
MAX_THUMBNAIL_BYTES = 16 * 2**20
"""A cached file larger than this is not a thumbnail of ours and is not read."""

_HASH = re.compile(r"[0-9a-f]{16,128}")


def cache_dir() -> Path:
    """albumtagger's cache folder: `ALBUMTAGGER_CACHE_DIR`, else the user cache dir."""
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path(platformdirs.user_cache_dir(APP_NAME))


@dataclass(frozen=True)
class Thumbnail:
    content_hash: str
    path: Path
    data: bytes
    """The encoded file (JPEG or WebP)."""


class ThumbnailCache:
    """Thumbnails of long side `size`, as JPEG (default) or WebP files."""

    def __init__(
        self,
        directory: Path | str | None = None,
        *,
        size: int = THUMBNAIL_SIZE,
        format: str = "jpeg",
        quality: int = 85,
    ) -> None:
        """`directory`: the thumbnails folder itself (tests); default under `cache_dir()`."""
        if size < 16:
            raise ValueError(f"thumbnail size must be at least 16 pixels, got {size}")
        fmt = format.lower()
        if fmt not in FORMATS:
            raise ValueError(f"unknown thumbnail format {format!r}; one of {sorted(FORMATS)}")
        if fmt == "webp" and not WEBP_SUPPORTED:
            log.warning("This Pillow cannot write WebP; thumbnails are JPEG")
            fmt = "jpeg"
        self.root = Path(directory) if directory is not None else cache_dir() / "thumbnails"
        self.size = int(size)
        self.quality = int(quality)
        self._pil_format, self._suffix = FORMATS[fmt]

    def path(self, content_hash: str) -> Path:
        """Where the thumbnail of this content hash lives (whether or not it exists)."""
        if not _HASH.fullmatch(content_hash):
            raise ValueError(f"not a content hash: {content_hash!r}")
        return self.root / str(self.size) / content_hash[:2] / (content_hash + self._suffix)

    def get(self, content_hash: str) -> bytes | None:
        """The encoded thumbnail, or None when it is not cached (or what is there is not
        a plain file of a thumbnail's size: a link or a pipe planted there is not read)."""
        try:
            return safe_io.read_regular(
                self.path(content_hash), MAX_THUMBNAIL_BYTES, follow_links=False
            )
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("Ignoring the cached thumbnail %s: %s", self.path(content_hash), exc)
            return None

    def __contains__(self, content_hash: str) -> bool:
        try:
            return stat.S_ISREG(self.path(content_hash).lstat().st_mode)
        except OSError:
            return False

    def put_image(self, content_hash: str, image: Image.Image) -> Thumbnail:
        """Store the thumbnail of a decoded, oriented RGB image (left unchanged)."""
        data = self._encode(image)
        target = self.path(content_hash)
        _write_atomic(target, data)
        return Thumbnail(content_hash, target, data)

    def make(self, root: Path, photo: PhotoRow) -> Thumbnail:
        """The thumbnail of a photo of the library at `root`, made when not cached.

        The cached one is trusted when the sidecar knows the photo's content (it is not
        pending: a pending photo may have changed since). Otherwise the file is read
        once, hashed and decoded (safely, see `library.images`), and the thumbnail is
        stored under the hash of what was read. A damaged or unsupported file raises
        `ImageError` (its `reason` says what is wrong) and stores nothing; `OSError`
        from reading the file (gone, no permission) propagates.
        """
        if photo.content_hash is not None and photo.status != "pending":
            data = self.get(photo.content_hash)
            if data is not None:
                return Thumbnail(photo.content_hash, self.path(photo.content_hash), data)
        read = read_photo(Path(root) / photo.path, target_pixels=self.size * self.size)
        cached = self.get(read.content_hash)
        if cached is not None:
            return Thumbnail(read.content_hash, self.path(read.content_hash), cached)
        return self.put_image(read.content_hash, read.image)

    def _encode(self, image: Image.Image) -> bytes:
        w, h = image.size
        scale = self.size / max(w, h)
        small = image
        if scale < 1:
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            small = image.resize(size, Image.Resampling.BICUBIC, reducing_gap=3.0)
        if small.mode != "RGB":
            small = small.convert("RGB")
        buffer = io.BytesIO()
        small.save(buffer, self._pil_format, quality=self.quality)
        return buffer.getvalue()


def _write_atomic(target: Path, data: bytes) -> None:
    """Write to a new temporary file beside `target`, then rename it into place (which
    replaces a link planted at `target`, never writing through it)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    safe_io.write_atomic(target, data)
