"""The grid's thumbnails: read from the cache at the window's priority, made from the
photo (decoding it) at a lower one."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import pytest
from PIL import Image

from albumtagger.app.thumbnails import ThumbnailLoader
from albumtagger.library.db.queries import PhotoSummary
from albumtagger.library.thumbnails import ThumbnailCache
from tests.conftest import make_photo


@pytest.mark.skipif(sys.platform != "linux", reason="per-thread priorities")
def test_cached_thumbnails_are_read_at_once_new_ones_made_in_the_background(
    qtbot, tmp_path: Path, monkeypatch
) -> None:
    root = tmp_path / "photos"
    root.mkdir()
    make_photo(root / "cached.jpg", seed=1)
    make_photo(root / "new.jpg", seed=2)
    cache = ThumbnailCache(tmp_path / "thumbs")
    with Image.open(root / "cached.jpg") as im:
        cache.put_image("a1" * 32, im.convert("RGB"))
    niceness: dict[str, int] = {}
    real_make = ThumbnailCache.make

    def make(self, folder, photo):
        niceness[photo.path] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        return real_make(self, folder, photo)

    monkeypatch.setattr(ThumbnailCache, "make", make)
    loader = ThumbnailLoader(root, cache, size=64)
    try:
        cached = PhotoSummary(1, "cached.jpg", "ok", None, 96, 64, 1, "a1" * 32, 0, False)
        new = PhotoSummary(2, "new.jpg", "pending", None, None, None, 1, None, 0, False)
        assert loader.pixmap(cached) is None and loader.pixmap(new) is None  # asked for
        qtbot.waitUntil(lambda: loader.loaded == 2, timeout=10_000)
        assert loader.pixmap(cached) is not None and loader.pixmap(new) is not None
        ours = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        assert niceness == {"cached.jpg": ours, "new.jpg": min(19, ours + 10)}
    finally:
        loader.shutdown()
