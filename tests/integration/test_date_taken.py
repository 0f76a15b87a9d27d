"""The date a photo was taken: read from its EXIF at index time, stored (schema 1.5),
shown and sorted by; photos that do not say fall back to the file's time."""

from __future__ import annotations

import datetime as dt
import io
import os
import sqlite3
from pathlib import Path

import pytest
from PIL import Image

from albumtagger.config import load_settings
from albumtagger.library.db import store as store_mod
from albumtagger.library.db.queries import LibraryQueries, PhotoFilter
from albumtagger.library.db.store import Store
from albumtagger.library.folder import open_library
from albumtagger.library.images import date_taken
from albumtagger.service.indexing import index_folder

EXIF_IFD, ORIGINAL, DIGITIZED, OFFSET, DATE_TIME = 0x8769, 0x9003, 0x9004, 0x9011, 0x0132


def jpeg(seed: int, **tags: str) -> bytes:
    """A small JPEG with these EXIF dates (names: original, digitized, offset, file)."""
    image = Image.new("RGB", (64, 48), (seed * 37 % 255, 90, 160))
    exif = Image.Exif()
    ifd = exif.get_ifd(EXIF_IFD)
    for name, key in (("original", ORIGINAL), ("digitized", DIGITIZED), ("offset", OFFSET)):
        if name in tags:
            ifd[key] = tags[name]
    if "file" in tags:
        exif[DATE_TIME] = tags["file"]
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif)
    return out.getvalue()


def local(*args: int) -> float:
    return dt.datetime(*args).timestamp()


def test_exif_dates_in_order_of_trust() -> None:
    utc = dt.timezone.utc
    assert date_taken(jpeg(1, original="2024:07:14 18:03:59", offset="+02:00")) == (
        dt.datetime(2024, 7, 14, 16, 3, 59, tzinfo=utc).timestamp()
    )
    assert date_taken(jpeg(1, original="2024:07:14 18:03:59")) == local(2024, 7, 14, 18, 3, 59)
    assert date_taken(jpeg(1, digitized="2021:01:02 03:04:05", file="2023:01:01 00:00:00")) == (
        local(2021, 1, 2, 3, 4, 5)
    )
    assert date_taken(jpeg(1, file="2023:01:01 00:00:00")) == local(2023, 1, 1)
    assert date_taken(jpeg(1)) is None
    assert date_taken(jpeg(1, original="0000:00:00 00:00:00")) is None  # a blank camera clock
    assert date_taken(jpeg(1, original="    :  :     :  :  ")) is None
    assert date_taken(b"not a photo at all") is None


def test_indexed_photos_sort_and_show_by_date_taken(
    golden_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in golden_env.items():
        monkeypatch.setenv(key, value)
    root = tmp_path / "photos"
    root.mkdir()
    # File names, file times and EXIF dates all disagree on the order.
    (root / "a.jpg").write_bytes(jpeg(1, original="2019:05:01 10:00:00"))
    (root / "b.jpg").write_bytes(jpeg(2, original="2015:05:01 10:00:00"))
    (root / "c.jpg").write_bytes(jpeg(3))  # says nothing: its file time counts
    os.utime(root / "c.jpg", (local(2017, 1, 1), local(2017, 1, 1)))
    with open_library(root, tmp_path / "data") as library:
        index_folder(library, load_settings())
        db = library.store.db_path
    queries = LibraryQueries(db)
    try:
        order = queries.photo_ids(PhotoFilter(order="taken"))
        names = [queries.photo_detail(int(i)).path for i in order]
        assert names == ["b.jpg", "c.jpg", "a.jpg"]
        newest = queries.photo_ids(PhotoFilter(order="taken", descending=True))
        assert [queries.photo_detail(int(i)).path for i in newest] == ["a.jpg", "c.jpg", "b.jpg"]
        details = {queries.photo_detail(int(i)).path: queries.photo_detail(int(i)) for i in order}
        assert details["a.jpg"].taken_at == local(2019, 5, 1, 10)
        assert details["c.jpg"].taken_at is None
    finally:
        queries.close()
    conn = sqlite3.connect(db)
    try:
        plan = " ".join(
            str(r)
            for r in conn.execute(
                f"EXPLAIN QUERY PLAN SELECT id FROM photos ORDER BY {store_mod.TAKEN_SQL}, id"
            )
        )
    finally:
        conn.close()
    assert "photos_by_taken" in plan  # no sort of the whole library for this order


def test_a_1_4_sidecar_gains_the_column(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "lib.sqlite"
    with monkeypatch.context() as m:
        m.setattr(store_mod, "MIGRATIONS", store_mod.MIGRATIONS[:5])
        m.setattr(store_mod, "SCHEMA_VERSION", 104)
        with Store(db, backups=False) as store, store.transaction():
            photo = store.add_photo("a.jpg", 10, 20)
    with Store(db) as store:
        assert store.schema_version() >= 105
        row = store.conn.execute("SELECT taken_at FROM photos WHERE id = ?", (photo,)).fetchone()
        assert tuple(row) == (None,)
