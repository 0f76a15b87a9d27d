"""Schema 1.4 on real SQLite files: pinned thresholds and photo views, migrated from 1.3
after a verified backup."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from albumtagger.library.db import store as store_mod
from albumtagger.library.db.store import Store


def _sidecar_1_3(path: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    """A sidecar as albumtagger wrote it at schema 1.3, with a photo and a tag."""
    with monkeypatch.context() as m:
        m.setattr(store_mod, "MIGRATIONS", store_mod.MIGRATIONS[:4])
        m.setattr(store_mod, "SCHEMA_VERSION", 103)
        with Store(path, backups=False) as store:
            assert store.schema_version() == 103
            with store.transaction():
                photo = store.add_photo("a.jpg", 10, 20)
                store.add_tag("beach", ["beach"])
    return photo


def test_migration_to_1_4_keeps_data_and_backs_up_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "lib.sqlite"
    photo = _sidecar_1_3(db, monkeypatch)
    with Store(db) as store:
        assert store.schema_version() >= 104
        [backup] = store.backups()
        assert "before-migration-1.3" in backup.name
        old = sqlite3.connect(backup)
        assert old.execute("PRAGMA user_version").fetchone()[0] == 103
        old.close()
        assert store.photo_views(photo) == (0, None)
        columns = {r[1] for r in store.conn.execute("PRAGMA table_info(tags)")}
        assert "pinned_threshold" in columns


def test_note_view_counts_and_reports_no_change(tmp_path: Path) -> None:
    with Store(tmp_path / "lib.sqlite") as store:
        with store.transaction():
            photo = store.add_photo("a.jpg", 10, 20)
        seen: list = []
        store.listen(seen.append)
        store.note_view(photo)
        store.note_view(photo)
        views, at = store.photo_views(photo)
        assert views == 2 and at is not None and at > 0
        assert seen == []
        store.note_view(12345)  # a photo gone meanwhile: nothing happens
        assert store.photo_views(12345) == (0, None)
