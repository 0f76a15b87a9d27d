"""The thumbnail cache: sharded by content hash, atomic, oriented, safe on damaged files."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from albumtagger.errors import ImageError
from albumtagger.library.db.store import PhotoRow
from albumtagger.library.images import read_photo
from albumtagger.library.thumbnails import CACHE_ENV, ThumbnailCache
from tests.conftest import make_photo

RED, BLUE = (220, 20, 20), (20, 20, 220)


def row(path: str, content_hash: str | None = None, status: str = "ok") -> PhotoRow:
    return PhotoRow(1, path, 0, 0, content_hash, None, None, status, None)


def rotated_jpeg(path: Path) -> Path:
    """Stored 400 x 200 (left half red, right half blue) with EXIF orientation 6:
    shown rotated 90 degrees clockwise, 200 x 400 with red on top."""
    pixels = np.zeros((200, 400, 3), dtype=np.uint8)
    pixels[:, :200] = RED
    pixels[:, 200:] = BLUE
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(pixels).save(path, "JPEG", quality=95, exif=exif.tobytes())
    return path


def close(pixel: tuple[int, ...], colour: tuple[int, int, int]) -> bool:
    return all(abs(a - b) < 40 for a, b in zip(pixel, colour, strict=True))


def cached_files(cache: ThumbnailCache) -> list[Path]:
    return [p for p in cache.root.rglob("*") if p.is_file()]


def test_exif_orientation_applied(tmp_path: Path) -> None:
    cache = ThumbnailCache(tmp_path / "thumbs", size=64)
    (tmp_path / "lib").mkdir()
    rotated_jpeg(tmp_path / "lib" / "r.jpg")
    thumb = cache.make(tmp_path / "lib", row("r.jpg"))
    image = Image.open(io.BytesIO(thumb.data))
    assert image.format == "JPEG"
    assert image.size == (32, 64)  # portrait once oriented, long side 64
    assert close(image.getpixel((16, 12)), RED)  # top quadrant
    assert close(image.getpixel((16, 52)), BLUE)  # bottom quadrant
    assert thumb.path == cache.path(thumb.content_hash)
    assert cache.get(thumb.content_hash) == thumb.data
    assert thumb.content_hash == read_photo(tmp_path / "lib" / "r.jpg").content_hash


def test_damaged_file_gives_a_clear_error_and_no_entry(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    good = make_photo(lib / "good.jpg", size=(300, 200))
    data = good.read_bytes()
    (lib / "cut.jpg").write_bytes(data[: len(data) // 2])
    (lib / "text.jpg").write_text("hello, not a photo")
    cache = ThumbnailCache(tmp_path / "thumbs")
    with pytest.raises(ImageError, match="damaged"):
        cache.make(lib, row("cut.jpg"))
    with pytest.raises(ImageError, match="not a supported image format"):
        cache.make(lib, row("text.jpg"))
    with pytest.raises(FileNotFoundError):
        cache.make(lib, row("gone.jpg"))
    assert cached_files(cache) == []


def test_layout_and_put_image(tmp_path: Path) -> None:
    cache = ThumbnailCache(tmp_path / "thumbs", size=128)
    h = "ab" + "0" * 62
    assert cache.path(h) == tmp_path / "thumbs" / "128" / "ab" / f"{h}.jpg"
    assert cache.get(h) is None and h not in cache
    source = Image.new("RGB", (1000, 500), RED)
    thumb = cache.put_image(h, source)
    assert source.size == (1000, 500)  # the caller's image is left alone
    assert Image.open(io.BytesIO(cache.get(h) or b"")).size == (128, 64)
    assert h in cache and thumb.data == cache.get(h)
    small = Image.new("RGB", (40, 20), BLUE)  # never enlarged
    assert Image.open(io.BytesIO(cache.put_image("cd" + "1" * 62, small).data)).size == (40, 20)
    assert [p.name for p in cached_files(cache) if p.name.startswith(".tmp")] == []
    for bad in ("../../etc/passwd", "AB" + "0" * 62, "ab"):
        with pytest.raises(ValueError):
            cache.path(bad)


def test_webp_format(tmp_path: Path) -> None:
    cache = ThumbnailCache(tmp_path / "t", format="webp")
    data = cache.put_image("ef" + "2" * 62, Image.new("RGB", (600, 300), RED)).data
    assert Image.open(io.BytesIO(data)).format in ("WEBP", "JPEG")


def test_cache_dir_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "c"))
    assert ThumbnailCache().root == tmp_path / "c" / "thumbnails"
    assert ThumbnailCache(tmp_path / "x").root == tmp_path / "x"


def test_uses_the_cache_and_rereads_pending_photos(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    photo = make_photo(lib / "p.png", seed=1, size=(300, 200))
    cache = ThumbnailCache(tmp_path / "thumbs", size=64)
    first = cache.make(lib, row("p.png"))
    # Known content: served from the cache without reading the file.
    photo.unlink()
    assert cache.make(lib, row("p.png", first.content_hash)).data == first.data
    # A pending photo may have changed since its hash was recorded: read again.
    make_photo(lib / "p.png", seed=2, size=(300, 200))
    again = cache.make(lib, row("p.png", first.content_hash, status="pending"))
    assert again.content_hash != first.content_hash
    assert len(cached_files(cache)) == 2


def test_threads_share_one_cache(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    for i in range(6):
        make_photo(lib / f"{i}.jpg", seed=i, size=(320, 240))
    cache = ThumbnailCache(tmp_path / "thumbs", size=32)
    results: list[str] = []
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            for i in range(6):
                results.append(cache.make(lib, row(f"{(i + k) % 6}.jpg")).content_hash)
        except BaseException as exc:  # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(set(results)) == 6 and len(results) == 24
    files = cached_files(cache)
    assert len(files) == 6 and all(not f.name.startswith(".tmp") for f in files)
