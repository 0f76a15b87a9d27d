"""I/O faults: a full disk or an I/O error during a commit rolls back cleanly with a
clear message and a retry works; a damaged sidecar is refused at open with nothing
written to it and the last verified backup offered; rotation never loses the last good
backup."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

import albumtagger.library.db.store as store_module
from albumtagger.config import load_settings
from albumtagger.events import TagsChanged
from albumtagger.library.db.store import (
    BACKUPS_KEPT,
    SidecarDamagedError,
    SidecarWriteError,
    Store,
    latest_good_backup,
)
from albumtagger.service.session import LibrarySession
from tests.conftest import REPO, make_photo
from tests.reliability.helpers import cli, golden


@pytest.fixture
def album(tmp_path: Path) -> Path:
    root = tmp_path / "Album"
    for i in range(4):
        make_photo(root / f"p{i}.jpg", 400 + i)
    assert cli("index", str(root), "--scan-only", env=golden(tmp_path)).returncode == 0
    return root


def _db(root: Path) -> Path:
    return root / ".albumtagger" / "library.sqlite"


def _feedback(db: Path) -> list[tuple[str, str]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(
            "SELECT p.path, t.name FROM feedback f JOIN photos p ON p.id = f.photo_id "
            "JOIN tags t ON t.id = f.tag_id ORDER BY f.id"
        ).fetchall()
    finally:
        conn.close()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- a full disk, for real ------------------------------------------------------------

FULL_DISK = """
import json, resource, signal, sys
from pathlib import Path
from albumtagger.config import load_settings
from albumtagger.errors import UserError
from albumtagger.service.session import LibrarySession

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
out = {}
with LibrarySession(Path(sys.argv[1]), load_settings(), backup=False) as s:
    ids = {r.path: r.id for r in s.store.photos()}
    s.correct([ids["p0.jpg"]], "before", "add")
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, hard))  # no file may grow now
    try:
        s.correct([ids["p1.jpg"]], "during", "add")
        out["during"] = "saved"
    except UserError as exc:
        out["during"] = type(exc).__name__
        out["message"] = str(exc)
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))  # space again
    s.correct([ids["p1.jpg"]], "during", "add")  # the retry
    out["retry"] = "saved"
print(json.dumps(out))
"""


@pytest.mark.skipif(not hasattr(os, "setpgid"), reason="needs POSIX resource limits")
def test_a_real_write_failure_rolls_back_and_a_retry_works(album: Path, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", FULL_DISK, str(album)],
        env=golden(tmp_path),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["during"] == "SidecarWriteError", out
    message = out["message"]
    assert "the last change was not saved" in message and "try again" in message
    assert str(_db(album)) in message
    conn = sqlite3.connect(_db(album))
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    assert _feedback(_db(album)) == [("p0.jpg", "before"), ("p1.jpg", "during")]


# -- injected faults at the store boundary ------------------------------------------


class _Faults:
    """Make chosen statements fail as SQLite would on a full disk or a bad drive."""

    def __init__(self) -> None:
        self.when: str | None = None
        self.error = "database or disk is full"
        self.count = 0

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        faults = self
        base = store_module._Connection

        class Faulty(base):  # type: ignore[misc, valid-type]
            def execute(self, sql, parameters=(), /):
                faults._maybe(self, sql)
                return super().execute(sql, parameters)

            def executemany(self, sql, parameters, /):
                faults._maybe(self, sql)
                return super().executemany(sql, parameters)

        monkeypatch.setattr(store_module, "_Connection", Faulty)

    def _maybe(self, conn, sql: str) -> None:
        if self.when is not None and sql.lstrip().upper().startswith(self.when):
            self.count += 1
            exc = sqlite3.OperationalError(self.error)
            raise conn._mapped(exc) from exc


@pytest.mark.parametrize(
    ("when", "error", "words"),
    [
        ("COMMIT", "database or disk is full", "is full"),
        ("COMMIT", "disk I/O error", "disk I/O error"),
        ("INSERT", "database or disk is full", "is full"),
        ("UPDATE", "disk I/O error", "the drive may have been unplugged"),
    ],
)
def test_a_failed_commit_rolls_back_says_why_and_a_retry_works(
    album: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, when, error, words
) -> None:
    faults = _Faults()
    faults.install(monkeypatch)
    events: list = []
    settings = load_settings()
    with LibrarySession(album, settings, backup=False, on_event=events.append) as session:
        ids = {r.path: r.id for r in session.store.photos()}
        session.correct([ids["p0.jpg"]], "before", "add")
        events.clear()
        faults.when, faults.error = when, error
        with pytest.raises(SidecarWriteError) as info:
            session.correct([ids["p1.jpg"]], "during", "add")
        assert faults.count >= 1
        message = str(info.value)
        assert words in message and "the last change was not saved" in message
        assert "try again" in message
        assert not session.store.conn.in_transaction
        assert not any(isinstance(e, TagsChanged) for e in events)  # nothing was saved
        assert session.store.photo_tags([ids["p1.jpg"]]) == []
        faults.when = None
        session.correct([ids["p1.jpg"]], "during", "add")  # the retry
    assert _feedback(_db(album)) == [("p0.jpg", "before"), ("p1.jpg", "during")]


def test_the_cli_says_the_disk_is_full_in_one_line(album: Path, tmp_path: Path) -> None:
    script = (
        "import sys, sqlite3\n"
        "import albumtagger.library.db.store as m\n"
        "class F(m._Connection):\n"
        "    def execute(self, sql, parameters=(), /):\n"
        "        if sql == 'COMMIT':\n"
        "            e = sqlite3.OperationalError('database or disk is full')\n"
        "            raise self._mapped(e) from e\n"
        "        return super().execute(sql, parameters)\n"
        "m._Connection = F\n"
        "from albumtagger.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    env = golden(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-c", script, "correct", str(album), "p2.jpg", "--add", "dog"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "is full" in lines[0] and "Free some space" in lines[0], lines
    assert "internal error" not in proc.stderr
    retry = cli("correct", str(album), "p2.jpg", "--add", "dog", env=env)
    assert retry.returncode == 0, retry.stderr
    assert _feedback(_db(album)) == [("p2.jpg", "dog")]


# -- a damaged sidecar ---------------------------------------------------------------


def _checkpointed_with_backup(album: Path) -> Path:
    """Make a verified backup, and leave the database with its WAL folded in."""
    db = _db(album)
    with Store(db) as store:
        backup = store.backup(reason="drill")
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return backup


def _damage_page(db: Path, table: str) -> None:
    conn = sqlite3.connect(db)
    page = conn.execute("PRAGMA page_size").fetchone()[0]
    root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0]
    conn.close()
    with open(db, "r+b") as f:
        f.seek((root - 1) * page)
        f.write(b"\xff" * 64)  # the b-tree page header and cell pointers


@pytest.mark.parametrize("damage", ["header", "page"])
def test_a_damaged_sidecar_is_refused_untouched_with_the_backup_offered(
    album: Path, tmp_path: Path, damage: str
) -> None:
    env = golden(tmp_path)
    backup = _checkpointed_with_backup(album)
    db = _db(album)
    if damage == "header":
        with open(db, "r+b") as f:
            f.write(os.urandom(100))
    else:
        _damage_page(db, "photos")
    before = _sha(db)
    for args in (
        ("correct", str(album), "p0.jpg", "--add", "dog"),
        ("index", str(album), "--scan-only"),
        ("tags", str(album)),
        ("vocab", str(album), "--add", "cat"),
    ):
        proc = cli(*args, env=env)
        assert proc.returncode == 1, (args, proc.stdout)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1, proc.stderr
        assert "is damaged" in lines[0] and str(backup) in lines[0], lines[0]
        assert _sha(db) == before, f"{args[0]} wrote to a damaged sidecar"
    # The offered backup is good: put it back and the library works.
    for extra in ("-wal", "-shm"):
        Path(str(db) + extra).unlink(missing_ok=True)
    shutil.copyfile(backup, db)
    proc = cli("correct", str(album), "p0.jpg", "--add", "dog", env=env)
    assert proc.returncode == 0, proc.stderr


def test_damage_met_after_open_is_reported_and_nothing_is_written(
    album: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A library too big for the check at open: the damage is met on first use.
    monkeypatch.setattr(store_module, "QUICK_CHECK_MAX_BYTES", 0)
    backup = _checkpointed_with_backup(album)
    db = _db(album)
    _damage_page(db, "photos")
    before = _sha(db)
    with (
        pytest.raises(SidecarDamagedError) as info,
        LibrarySession(album, load_settings(), backup=False) as session,
    ):
        row = session.store.photos()[0]
        session.correct([row.id], "dog", "add")
    assert info.value.backup == backup and str(backup) in str(info.value)
    assert _sha(db) == before


def test_no_backup_says_so(tmp_path: Path) -> None:
    db = tmp_path / "lib.sqlite"
    db.write_bytes(b"not a database at all" * 10)
    with pytest.raises(SidecarDamagedError, match="There is no backup") as info:
        Store(db)
    assert info.value.backup is None
    assert db.read_bytes() == b"not a database at all" * 10


# -- backups ------------------------------------------------------------------------


def test_rotation_keeps_the_newest_and_never_the_last_good_one(tmp_path: Path) -> None:
    db = tmp_path / "lib.sqlite"
    with Store(db) as store:
        made = [store.backup(reason=f"n{i}") for i in range(BACKUPS_KEPT + 2)]
        assert store.backups() == made[-BACKUPS_KEPT:]
        # The library goes bad: its backup fails the check, and nothing is rotated out.
        good = store.backups()
        with store.transaction():
            store.set_setting("x", "1")
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    _damage_page(db, "settings")
    monkeypatch_check = store_module.QUICK_CHECK_MAX_BYTES
    store_module.QUICK_CHECK_MAX_BYTES = 0  # open it anyway, as a big library would be
    try:
        with Store(db) as broken, pytest.raises(store_module.SidecarError):
            broken.backup(reason="of-damage")
    finally:
        store_module.QUICK_CHECK_MAX_BYTES = monkeypatch_check
    backups = sorted((tmp_path / "backups").glob("library-*"))
    assert backups == good, "a failed backup rotated a good one out, or was kept"
    assert latest_good_backup(tmp_path / "backups") == good[-1]


def test_a_damaged_newest_backup_is_not_offered(tmp_path: Path) -> None:
    db = tmp_path / "lib.sqlite"
    with Store(db) as store:
        older = store.backup(reason="a")
        newer = store.backup(reason="b")
    with open(newer, "r+b") as f:
        f.write(b"garbage" * 20)
    assert latest_good_backup(tmp_path / "backups") == older


def test_an_interrupted_backup_is_cleaned_up_not_counted(tmp_path: Path) -> None:
    db = tmp_path / "lib.sqlite"
    with Store(db) as store:
        store.backup(reason="first")
        stale = tmp_path / "backups" / "library-20000101T000000000000Z-crash.partial"
        fresh = tmp_path / "backups" / "library-20990101T000000000000Z-running.partial"
        stale.write_bytes(b"half a copy")
        fresh.write_bytes(b"another process is copying")
        old = time.time() - 2 * store_module.STALE_PARTIAL_S
        os.utime(stale, (old, old))
        assert len(store.backups()) == 1  # partials are never backups
        store.backup(reason="second")
    assert not stale.exists() and fresh.exists()
