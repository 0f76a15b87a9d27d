"""Shared checks of the reliability drills."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import GOLDEN_MODEL, REPO

NO_DAC = [
    "setpriv",
    "--bounding-set=-dac_override,-dac_read_search",
    "--inh-caps=-dac_override,-dac_read_search",
]
"""Run a child as root without root's permission override (so mode 000 means it)."""


def golden(tmp: Path, **extra: str) -> dict[str, str]:
    """A full environment for a child process: our own dirs, the golden model."""
    env = {
        **os.environ,
        "ALBUMTAGGER_CONFIG": str(tmp / "config" / "config.toml"),
        "ALBUMTAGGER_DATA_DIR": str(tmp / "data"),
        "ALBUMTAGGER_CACHE_DIR": str(tmp / "cache"),
        "HF_HUB_OFFLINE": "1",
        "ALBUMTAGGER_MODEL": str(GOLDEN_MODEL),
        "ALBUMTAGGER_DEVICE": "cpu",
        "ALBUMTAGGER_DTYPE": "float32",
        "ALBUMTAGGER_MIN_IMAGE_TOKENS": "4",
        "ALBUMTAGGER_MAX_IMAGE_TOKENS": "16",
        "ALBUMTAGGER_BATCH_SIZE": "2",
    }
    env.update(extra)
    return env


def start(
    *args: str, env: dict[str, str], prefix: list[str] | None = None, **kw
) -> subprocess.Popen:
    kw.setdefault("stdout", subprocess.DEVNULL)
    kw.setdefault("stderr", subprocess.DEVNULL)
    return subprocess.Popen([*(prefix or []), sys.executable, *args], env=env, cwd=REPO, **kw)


def cli(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "albumtagger", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def cli_json(*args: str, env: dict[str, str], timeout: float = 300):
    proc = cli(*args, "--json", env=env, timeout=timeout)
    assert proc.returncode == 0, f"albumtagger {args} exited {proc.returncode}: {proc.stderr}"
    return json.loads(proc.stdout)


def connect(db: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)


def check_sidecar(db: Path) -> dict[str, int]:
    """The checks after every kill: integrity, foreign keys, no duplicate rows.
    Returns counts for the drill's record."""
    conn = connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        dup_paths = conn.execute(
            "SELECT path FROM photos GROUP BY path HAVING COUNT(*) > 1"
        ).fetchall()
        assert dup_paths == []
        dup_live = conn.execute(
            "SELECT content_hash FROM photos WHERE content_hash IS NOT NULL AND status != "
            "'missing' GROUP BY content_hash HAVING COUNT(*) > 1"
        ).fetchall()
        assert dup_live == [], "a photo recorded twice"
        dup_tags = conn.execute(
            "SELECT name FROM tags GROUP BY name COLLATE NOCASE HAVING COUNT(*) > 1"
        ).fetchall()
        assert dup_tags == []
        counts = {
            status: n
            for status, n in conn.execute("SELECT status, COUNT(*) FROM photos GROUP BY status")
        }
        counts["prompts"] = conn.execute("SELECT COUNT(*) FROM tag_embeddings").fetchone()[0]
        counts["feedback"] = conn.execute("SELECT COUNT(*) FROM feedback").fetchone()[0]
        counts["photos"] = conn.execute("SELECT COUNT(*) FROM photos").fetchone()[0]
        return counts
    finally:
        conn.close()


def kill_after(proc: subprocess.Popen, seconds: float) -> bool:
    """SIGKILL `proc` after `seconds` (True), unless it ended first (False)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        time.sleep(0.01)
    proc.kill()
    proc.wait()
    return True


def _state(path: Path) -> tuple[int, int]:
    try:
        st = path.stat()
    except OSError:
        return (0, 0)
    return (st.st_size, st.st_mtime_ns)


def wait_for_first_write(proc: subprocess.Popen, db: Path, timeout: float = 120) -> bool:
    """Until the child first writes to the sidecar (True), or ends first (False)."""
    wal = db.with_name(db.name + "-wal")
    db0, wal0 = _state(db), _state(wal)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        db1, wal1 = _state(db), _state(wal)
        if db1 != db0 or (wal1 != wal0 and wal1[0] > 0):
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.005)
    raise AssertionError("the child wrote nothing in time")


def record(name: str, data: dict) -> None:
    """Append a drill's figures to $ALBUMTAGGER_DRILL_REPORT (a JSON-lines file), if set."""
    target = os.environ.get("ALBUMTAGGER_DRILL_REPORT")
    if target:
        with open(target, "a", encoding="utf-8") as f:
            f.write(json.dumps({"drill": name, **data}) + "\n")
