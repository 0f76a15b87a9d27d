"""The sidecar store on real SQLite files: schema, migrations, backups, user decisions."""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

import numpy as np
import pytest

from albumtagger.errors import SchemaTooNewError, SidecarError
from albumtagger.library.db import schema
from albumtagger.library.db import store as store_mod
from albumtagger.library.db import vectors as vectors_mod
from albumtagger.library.db.store import SCHEMA_VERSION, AutoTag, Store


def _old_sidecar(path: Path) -> None:
    """A sidecar as albumtagger 1.0 wrote it, with a photo and a tag on it."""
    conn = sqlite3.connect(path)
    conn.executescript(dict(schema.MIGRATIONS)[100])
    conn.execute(
        "INSERT INTO photos(path, size, mtime_ns, content_hash, status, added_at, updated_at) "
        "VALUES ('a/b.jpg', 10, 20, 'h1', 'ok', 0, 0)"
    )
    conn.execute("INSERT INTO tags(name, prompts, created_at) VALUES ('beach', '[\"beach\"]', 0)")
    conn.execute(
        "INSERT INTO photo_tags(photo_id, tag_id, score, source, state, updated_at) "
        "VALUES (1, 1, 0.4, 'auto', 'accepted', 0)"
    )
    conn.execute("PRAGMA user_version = 100")
    conn.commit()
    conn.close()


def test_new_sidecar_is_wal_with_foreign_keys_and_current_schema(tmp_path: Path) -> None:
    with Store(tmp_path / "lib.sqlite") as store:
        assert store.schema_version() == store_mod.SCHEMA_VERSION
        assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store.conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        indexes = {r[0] for r in store.conn.execute("SELECT name FROM sqlite_master")}
        assert "photo_tags_by_tag" in indexes


def test_migration_from_older_schema_keeps_data_and_backs_up_first(tmp_path: Path) -> None:
    db = tmp_path / "lib.sqlite"
    _old_sidecar(db)
    with Store(db) as store:
        assert store.schema_version() == SCHEMA_VERSION
        rows = store.photo_tags()
        assert [(r.name, r.state) for r in rows] == [("beach", "accepted")]
        assert store.feedback() == []
        backups = store.backups()
        assert len(backups) == 1 and "before-migration-1.0" in backups[0].name
        old = sqlite3.connect(backups[0])
        assert old.execute("PRAGMA user_version").fetchone()[0] == 100
        assert old.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        old.close()


def test_failed_migration_rolls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "lib.sqlite"
    _old_sidecar(db)
    broken = (store_mod.MIGRATIONS[0], (101, "CREATE TABLE feedback(id INTEGER); BROKEN SQL"))
    monkeypatch.setattr(store_mod, "MIGRATIONS", broken)
    with pytest.raises(sqlite3.DatabaseError):  # found by the rolled-back trial run
        Store(db)
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 100
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "feedback" not in tables
    conn.close()


def test_newer_major_schema_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    db = tmp_path / "lib.sqlite"
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA user_version = 203")
    conn.close()
    with pytest.raises(SchemaTooNewError, match=r"newer albumtagger \(schema 2\.3.*Update"):
        Store(db)


def test_newer_minor_schema_opens(tmp_path: Path) -> None:
    db = tmp_path / "lib.sqlite"
    Store(db).close()
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA user_version = 109")
    conn.close()
    with Store(db) as store:
        assert store.schema_version() == 109


def test_not_a_database_says_what_to_do(tmp_path: Path) -> None:
    db = tmp_path / "lib.sqlite"
    db.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(SidecarError, match="Restore a copy"):
        Store(db)


def test_backups_are_verified_and_only_the_last_few_kept(tmp_path: Path) -> None:
    with Store(tmp_path / "lib.sqlite") as store:
        for _ in range(store_mod.BACKUPS_KEPT + 3):
            store.backup()
        backups = store.backups()
        assert len(backups) == store_mod.BACKUPS_KEPT
        for b in backups:
            conn = sqlite3.connect(b)
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            conn.close()


def test_daily_backup_only_when_due(tmp_path: Path) -> None:
    db = tmp_path / "lib.sqlite"
    Store(db).close()
    with Store(db) as store:
        assert store.backups() == []  # opening never copies the library
        store.backup_if_due()
        first = store.backups()
        assert len(first) == 1
        assert store.backup_if_due() is None
        two_days_ago = first[0].stat().st_mtime - 2 * 24 * 3600
        os.utime(first[0], (two_days_ago, two_days_ago))
        made = store.backup_if_due()
        assert made is not None and made.exists() and len(store.backups()) == 2


def _library(store: Store) -> tuple[int, int, int]:
    with store.transaction():
        pid = store.add_photo("p.jpg", 1, 1)
        store.add_tags([("dog", ["dog"]), ("cat", ["cat"]), ("beach", ["beach"])])
    tags = {t.name: t.id for t in store.tags()}
    return pid, tags["dog"], tags["cat"]


def test_user_decisions_survive_automatic_tagging(tmp_path: Path) -> None:
    with Store(tmp_path / "lib.sqlite") as store:
        pid, dog, cat = _library(store)
        beach = store.tag_by_name("beach").id
        store.replace_suggestions({pid: [AutoTag(dog, 0.3, False, "medium")]})
        store.set_user_decision(pid, dog, "rejected", "auto", 0.3)
        store.set_user_decision(pid, cat, "accepted", "user", 0.1)
        # Automatic tagging now wants dog back and has no opinion on cat.
        store.replace_suggestions(
            {pid: [AutoTag(dog, 0.5, False, "high"), AutoTag(beach, 0.4, False, "high")]}
        )
        cells = {t.name: (t.state, t.source) for t in store.photo_tags([pid])}
        assert cells == {
            "dog": ("rejected", "auto"),
            "cat": ("accepted", "user"),
            "beach": ("suggested", "auto"),
        }
        # And an empty suggestion list removes only the suggestion.
        store.replace_suggestions({pid: []})
        cells = {t.name: t.state for t in store.photo_tags([pid])}
        assert cells == {"dog": "rejected", "cat": "accepted"}


def test_undo_snapshot_puts_rows_back_exactly(tmp_path: Path) -> None:
    with Store(tmp_path / "lib.sqlite") as store:
        pid, dog, _ = _library(store)
        store.replace_suggestions({pid: [AutoTag(dog, 0.3, True, "low")]})
        prev = store.photo_tag(pid, dog)
        snapshot = store.photo_tag_rows([pid])
        with store.transaction():
            fid = store.add_feedback(
                pid, dog, "reject", 0.3, positive=False, was_suggested=True, previous=prev
            )
            store.set_user_decision(pid, dog, "rejected", "auto", 0.3)
            store.set_feedback_undo(fid, {"rows": snapshot})
        assert store.photo_tag(pid, dog).state == "rejected"
        event, previous, data = store.last_feedback()
        assert (event.id, previous.state, previous.fallback) == (fid, "suggested", True)
        with store.transaction():
            store.restore_photo_tag_rows([pid], data["rows"])
            store.mark_feedback_undone(fid)
        assert store.photo_tag_rows([pid]) == snapshot
        assert store.feedback() == [] and store.last_feedback() is None


def test_scores_are_multiplied_a_block_of_vectors_at_a_time(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(vectors_mod, "VECTOR_BLOCK_ROWS", 3)
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(8, 16)).astype(np.float32)
    tags = rng.normal(size=(5, 16)).astype(np.float32)
    with Store(tmp_path / "lib.sqlite") as store:
        with store.transaction():
            for i, vec in enumerate(vectors):
                pid = store.add_photo(f"p{i}.jpg", 1, 1)
                store.record_read(pid, content_hash=f"h{i}", size=1, mtime_ns=1, width=2, height=3)
                store.set_status([pid], "damaged" if i == 4 else "ok")
                store.put_embeddings("m", [(f"h{i}", vec)])
        ids, scores = store.photo_scores("m", tags)
        want_ids, matrix = store.photo_vectors("m")
        assert ids.tolist() == want_ids.tolist() and len(ids) == 7
        assert scores.dtype == np.float32 and scores.shape == (7, 5)
        np.testing.assert_allclose(scores, matrix @ tags.T, rtol=1e-6, atol=1e-6)
        none_ids, none = store.photo_scores("other", tags)
        assert none_ids.shape == (0,) and none.shape == (0, 5)


def test_vectors_round_trip_and_one_connection_per_thread(tmp_path: Path) -> None:
    with Store(tmp_path / "lib.sqlite") as store:
        with store.transaction():
            pid = store.add_photo("p.jpg", 1, 1)
            store.record_read(pid, content_hash="h", size=1, mtime_ns=1, width=2, height=3)
            store.set_status([pid], "ok")
            vec = np.linspace(-1, 1, 8, dtype=np.float32)
            store.put_embeddings("m", [("h", vec)])
        ids, matrix = store.photo_vectors("m")
        assert ids.tolist() == [pid]
        np.testing.assert_allclose(matrix[0], vec, atol=1e-3)
        seen = []

        def worker() -> None:
            seen.append(store.conn)
            seen.append(len(store.photos()))

        t = threading.Thread(target=worker)
        t.start()
        t.join()
        assert seen[0] is not store.conn and seen[1] == 1


def test_crash_inside_a_transaction_leaves_nothing_half_written(tmp_path: Path) -> None:
    with Store(tmp_path / "lib.sqlite") as store:
        pid, _, _ = _library(store)
        with pytest.raises(RuntimeError), store.transaction():
            store.put_embeddings("m", [("h", np.ones(4, np.float32))])
            store.set_status([pid], "ok")
            raise RuntimeError("power cut")
        assert store.photo(pid).status == "pending"
        assert store.embedding_hashes("m", ["h"]) == set()
        assert store.integrity_ok()
