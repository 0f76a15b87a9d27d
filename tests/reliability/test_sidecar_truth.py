"""The sidecar's own files and errors that tell the truth: a full disk is no damage, a
lost sidecar is not started over beside its backups, an impossible schema version is
refused without a backup, an unreadable sidecar folder is a permission, planted links
are not followed, network shares get a rollback journal, a user's action is committed
with `synchronous = FULL`, and an index that stops early says so in its exit status."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import sqlite3
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from albumtagger import cli
from albumtagger.config import Settings
from albumtagger.errors import SidecarError
from albumtagger.library import netfs
from albumtagger.library.db import store as store_mod
from albumtagger.library.db.queries import LibraryQueries
from albumtagger.library.db.store import (
    SidecarDamagedError,
    SidecarFullError,
    SidecarMissingError,
    SidecarWriteError,
    Store,
    sidecar_path,
)
from albumtagger.model.encoder import QUERY_INSTRUCTION
from albumtagger.service import indexing as pipeline
from albumtagger.tagging.tagger import library_tagger
from tests.conftest import REPO, make_photo, run_cli
from tests.reliability.helpers import NO_DAC

MODEL = "test-model"
NAMES = ["dog", "cat", "beach", "snow"]


@pytest.fixture
def store(tmp_path: Path):
    """40 photos with vectors near one of 4 tags each."""
    store = Store(tmp_path / "lib.sqlite", backups=False)
    rng = np.random.default_rng(0)
    tag_vecs = rng.normal(size=(len(NAMES), 32)).astype(np.float32)
    tag_vecs /= np.linalg.norm(tag_vecs, axis=1, keepdims=True)
    with store.transaction():
        store.add_tags((n, [n]) for n in NAMES)
        store.put_text_vectors(MODEL, QUERY_INSTRUCTION, zip(NAMES, tag_vecs, strict=True))
        store.set_setting("model_id", MODEL)
        items = []
        for i in range(40):
            pid = store.add_photo(f"p{i:02d}.jpg", 1, 1)
            store.record_read(pid, content_hash=f"h{i}", size=1, mtime_ns=1, width=1, height=1)
            v = tag_vecs[i % len(NAMES)] + rng.normal(size=32) / 8
            items.append((f"h{i}", (v / np.linalg.norm(v)).astype(np.float32)))
        store.put_embeddings(MODEL, items)
        store.set_status(range(1, 41), "ok")
    yield store
    store.close()


def _commit_levels(store: Store, action) -> list[str]:
    """The `synchronous` level in force at each COMMIT that `action()` makes."""
    level = ["NORMAL"]
    seen: list[str] = []

    def trace(sql: str) -> None:
        text = " ".join(sql.upper().split())
        if text.startswith("PRAGMA SYNCHRONOUS ="):
            level[0] = text.rsplit("=", 1)[1].strip()
        elif text == "COMMIT":
            seen.append(level[0])

    store.conn.set_trace_callback(trace)
    try:
        action()
    finally:
        store.conn.set_trace_callback(None)
    assert level[0] == "NORMAL"  # back to NORMAL after each user action
    return seen


def test_user_actions_commit_with_full_sync_and_bulk_tagging_with_normal(store) -> None:
    tagger = library_tagger(store, Settings())
    assert set(_commit_levels(store, tagger.redecide)) == {"NORMAL"}
    assert set(_commit_levels(store, lambda: tagger.tag_photos([1, 2]))) <= {"NORMAL"}
    user_actions = {
        "correction": lambda: tagger.correct("p00.jpg", "dog", "reject"),
        "review answer": lambda: tagger.answer("p01.jpg", "cat", True),
        "undo": tagger.undo,
        "pin": lambda: tagger.pin_threshold("beach", 0.3),
        "rename": lambda: tagger.rename_tag("snow", "winter"),
        "removal": lambda: tagger.remove_tags(["winter"]),
    }
    for what, action in user_actions.items():
        assert _commit_levels(store, action) == ["FULL"], what
    assert store.conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL


# -- helpers --------------------------------------------------------------------------


def _library(root: Path, backups: int = 1) -> Path:
    """A sidecar for `root` with one photo and `backups` verified backups."""
    db = sidecar_path(root)
    with Store(db) as store:
        with store.transaction():
            store.add_photo("a.jpg", 1, 1)
        for _ in range(backups):
            store.backup()
    return db


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _one_line_refusal(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "internal error" not in lines[0], proc.stderr
    return lines[0]


@contextlib.contextmanager
def _small_tmpfs(where: Path):
    """A 2 MiB tmpfs mounted at `where` (root only), unmounted after."""
    where.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a small filesystem needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(where)])
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


# -- a full disk ----------------------------------------------------------------------


def test_a_full_disk_at_open_is_called_full_not_damage(tmp_path: Path, isolated_env) -> None:
    with _small_tmpfs(tmp_path / "disk") as disk:
        root = disk / "photos"
        db = _library(root)
        before = _digest(db)
        with open(disk / "filler", "wb") as f, contextlib.suppress(OSError):
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        assert shutil.disk_usage(disk).free < 65536
        for command in (["tags"], ["index", "--scan-only"], ["vocab", "--list"]):
            line = _one_line_refusal(run_cli(*command, str(root), env=isolated_env, check=False))
            assert "full" in line and "damaged" not in line and "Restore" not in line, line
        with pytest.raises(SidecarFullError):
            Store(db)
        with pytest.raises(SidecarFullError):
            LibraryQueries(db)
        assert _digest(db) == before
        (disk / "filler").unlink()
        with Store(db) as store:  # with room again, all is there
            assert [p.path for p in store.photos()] == ["a.jpg"]


@pytest.mark.parametrize(
    ("error", "no_room", "full"),
    [
        (sqlite3.OperationalError("database or disk is full"), False, True),
        (sqlite3.OperationalError("disk I/O error"), True, True),
        (sqlite3.OperationalError("disk I/O error"), False, False),
        (sqlite3.OperationalError("unable to open database file"), True, True),
    ],
)
def test_full_disk_errors_are_told_apart_at_the_store_boundary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error, no_room: bool, full: bool
) -> None:
    with Store(tmp_path / "lib.sqlite") as store:
        monkeypatch.setattr(store_mod, "_no_room", lambda folder: no_room)
        opened = store._open_error(error)
        assert isinstance(opened, SidecarFullError) == full
        assert "damaged" not in str(opened)
        written = store._user_error(error)
        assert written is not None and ("is full" in str(written)) == full


# -- a lost sidecar, an impossible schema version -----------------------------------------


@pytest.mark.parametrize("loss", ["empty", "missing"])
def test_a_lost_sidecar_beside_backups_is_not_started_over(
    tmp_path: Path, isolated_env, loss: str
) -> None:
    root = tmp_path / "photos"
    db = _library(root)
    (newest,) = list((db.parent / "backups").glob("library-*.sqlite"))
    if loss == "empty":
        db.write_bytes(b"")
    else:
        db.unlink()
    with pytest.raises(SidecarMissingError) as refused:
        Store(db)
    assert refused.value.backup == newest
    for command in (["tags"], ["index", "--scan-only"]):
        line = _one_line_refusal(run_cli(*command, str(root), env=isolated_env, check=False))
        assert str(newest) in line and "move" in line, line
    assert (db.stat().st_size == 0) if loss == "empty" else not db.exists()
    # Starting afresh on purpose: move the backups away.
    (db.parent / "backups").rename(tmp_path / "old-backups")
    run_cli("index", "--scan-only", str(root), env=isolated_env)
    with Store(db) as store:
        assert store.photos() == []


def test_a_missing_sidecar_without_backups_is_a_new_library(tmp_path: Path) -> None:
    with Store(tmp_path / "lib.sqlite") as store:
        assert store.schema_version() == store_mod.SCHEMA_VERSION


@pytest.mark.parametrize("version", [0, 104, 57, -1])
def test_an_impossible_schema_version_is_refused_without_a_backup(
    tmp_path: Path, isolated_env, version: int
) -> None:
    root = tmp_path / "photos"
    db = _library(root, backups=2)
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.execute(f"PRAGMA user_version = {version}")
    backups = sorted((db.parent / "backups").iterdir())
    before = _digest(db)
    with pytest.raises(SidecarDamagedError):
        Store(db)
    line = _one_line_refusal(run_cli("tags", str(root), env=isolated_env, check=False))
    assert "schema version" in line and str(backups[-1]) in line, line
    assert sorted((db.parent / "backups").iterdir()) == backups
    assert _digest(db) == before


# -- an unreadable sidecar folder ---------------------------------------------------------


@pytest.mark.skipif(
    os.geteuid() == 0 and not shutil.which("setpriv"),
    reason="needs setpriv to drop root's override",
)
@pytest.mark.parametrize("mode", [0o000, 0o500])
def test_an_unreadable_sidecar_folder_is_a_permission_message(
    tmp_path: Path, isolated_env, mode: int
) -> None:
    root = tmp_path / "photos"
    db = _library(root)
    os.chmod(tmp_path, 0o777)
    os.chmod(db.parent, mode)
    prefix = NO_DAC if os.geteuid() == 0 else []
    try:
        for command in (["tags"], ["index", "--scan-only"], ["correct", "--undo"]):
            proc = subprocess.run(
                [*prefix, "python", "-m", "albumtagger", *command, str(root)],
                env={**os.environ, **isolated_env},
                capture_output=True,
                text=True,
                timeout=120,
                cwd=REPO,
            )
            line = _one_line_refusal(proc)
            assert str(db.parent) in line, line
            # (a writer meets a read-only folder at its lock file first: lock.py says so)
            assert "Permission denied" in line or (mode and command != ["tags"]), line
    finally:
        os.chmod(db.parent, 0o755)


# -- planted links ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["library.sqlite", "library.sqlite-wal", "library.sqlite-shm"])
def test_planted_links_among_the_sidecar_files_are_refused(tmp_path: Path, name: str) -> None:
    db = _library(tmp_path / "photos")
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    planted = db.parent / name
    if name == "library.sqlite":
        db.rename(tmp_path / "moved.sqlite")
        victim = tmp_path / "moved.sqlite"
    planted.symlink_to(victim)
    before = _digest(victim)
    with pytest.raises(SidecarError, match="symbolic link"):
        Store(db)
    with pytest.raises(SidecarError, match="symbolic link"):
        LibraryQueries(db)
    assert _digest(victim) == before


def test_a_planted_backups_link_is_refused(tmp_path: Path) -> None:
    db = _library(tmp_path / "photos", backups=0)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (db.parent / "backups").symlink_to(elsewhere)
    with pytest.raises(SidecarError, match="symbolic link"):
        Store(db)
    assert list(elsewhere.iterdir()) == []


def test_backups_never_follow_a_link_at_their_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = _library(tmp_path / "photos")
    backups = db.parent / "backups"
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    (backups / "library-99990101T000000000000Z-planted.sqlite").symlink_to(victim)
    os.mkfifo(backups / "library-99990102T000000000000Z-fifo.sqlite")
    with Store(db) as store:
        assert all(p.is_file() and not p.is_symlink() for p in store.backups())
        assert store_mod.latest_good_backup(backups) == store.backups()[-1]  # no hang

        class Frozen(datetime):
            @classmethod
            def now(cls, tz=None):
                return datetime(2030, 1, 1, tzinfo=timezone.utc)

        monkeypatch.setattr(store_mod, "datetime", Frozen)
        partial = backups / "library-20300101T000000000000Z-manual.partial"
        partial.symlink_to(victim)
        with pytest.raises(SidecarWriteError):
            store.backup()
        partial.unlink()
        made = store.backup()
        assert made.is_file() and not made.is_symlink()
    assert victim.read_bytes() == b"precious"
    assert not list(backups.glob("*-journal"))


# -- network shares -------------------------------------------------------------------------


def _journal(store: Store) -> str:
    return str(store.conn.execute("PRAGMA journal_mode").fetchone()[0]).lower()


def test_a_network_share_gets_a_rollback_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "lib.sqlite"
    with Store(db) as store:
        assert store.network_fs is None and _journal(store) == "wal"
    monkeypatch.setattr(store_mod, "network_filesystem", lambda folder: "nfs4")
    with caplog.at_level(logging.WARNING), Store(db) as store:
        assert store.network_fs == "nfs4" and _journal(store) == "delete"
        with store.transaction(durable=True):
            store.add_photo("a.jpg", 1, 1)
        assert store.conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL, always
    assert "network share (nfs4)" in caplog.text
    assert not Path(f"{db}-wal").exists()


def test_network_filesystems_are_found_in_mountinfo(tmp_path: Path) -> None:
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(
        "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n"
        "40 22 0:50 / /mnt/nas rw - nfs4 nas:/export rw\n"
        "41 40 0:51 / /mnt/nas/local\\040disk rw - ext4 /dev/sdb1 rw\n"
        "42 22 0:52 / /home/me/remote rw - fuse.sshfs me@host: rw\n"
        "43 22 0:53 / /media/usb rw - fuseblk /dev/sdc1 rw\n"
    )
    cases = {
        "/mnt/nas/photos": "nfs4",
        "/mnt/nas/local disk/photos": "ext4",
        "/mnt/nasty": "ext4",
        "/home/me/remote/x": "fuse.sshfs",
        "/media/usb/x": "fuseblk",
    }
    for path, fstype in cases.items():
        assert netfs._linux_type(Path(path), str(mountinfo)) == fstype, path
    assert [
        t
        for t in ("nfs4", "ext4", "fuse.sshfs", "fuseblk", "cifs", "smb3", "9p", "ceph")
        if netfs.is_network_type(t)
    ] == ["nfs4", "fuse.sshfs", "cifs", "smb3", "9p", "ceph"]


# -- an index that stops early ----------------------------------------------------------------


def test_an_index_whose_folder_goes_away_exits_3_with_its_reason(
    tmp_path: Path, golden_env, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("ALBUMTAGGER_BATCH_SIZE", "2")  # reads stay a few photos ahead
    root = tmp_path / "Album"
    for i in range(24):
        make_photo(root / f"img_{i:02d}.jpg", i)
    real_write = pipeline._write

    def write_then_unplug(*args, **kwargs):
        real_write(*args, **kwargs)
        if not (tmp_path / "elsewhere").exists():  # the drive goes away after one batch
            root.rename(tmp_path / "elsewhere")

    monkeypatch.setattr(pipeline, "_write", write_then_unplug)
    status = cli.main(["index", str(root)])
    err = capsys.readouterr().err
    assert status == cli.EXIT_INTERRUPTED == 3, err
    assert "stopped early: the folder went offline" in err
