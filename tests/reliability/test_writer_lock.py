"""One worker per library: a second writer waits for, or is refused by, the first (named
by pid, command and time); readers always work; a lock left by a killed process is
taken over; two `index` runs at once tag each photo once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from albumtagger.config import load_settings
from albumtagger.library.folder import WriteAccess, open_library
from albumtagger.library.lock import LibraryBusyError, WriterLock, read_holder
from albumtagger.session import LibrarySession
from tests.conftest import REPO, make_photo
from tests.reliability.helpers import cli, cli_json, golden, start

HOLD = """
import sys, time
from pathlib import Path
from albumtagger.library.folder import WriteAccess, open_library
access = WriteAccess(0, command="drill holder")
lib = open_library(Path(sys.argv[1]), Path(sys.argv[2]), write=access)
print("held", flush=True)
time.sleep(600)
"""


@pytest.fixture
def album(tmp_path: Path) -> Path:
    root = tmp_path / "Album"
    for i in range(3):
        make_photo(root / f"p{i}.jpg", 600 + i)
    return root


def _hold(root: Path, tmp_path: Path) -> subprocess.Popen:
    proc = start(
        "-c",
        HOLD,
        str(root),
        str(tmp_path / "data"),
        env=golden(tmp_path),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_second_writer_is_refused_naming_the_holder_and_readers_work(
    album: Path, tmp_path: Path
) -> None:
    env = golden(tmp_path)
    assert cli("index", str(album), "--scan-only", env=env).returncode == 0
    holder = _hold(album, tmp_path)
    try:
        lock = WriterLock(album / ".albumtagger")
        who = lock.holder()
        assert who is not None and who.pid == holder.pid and who.command == "drill holder"
        with pytest.raises(LibraryBusyError) as info:
            open_library(album, tmp_path / "data", write=WriteAccess(0))
        assert info.value.holder.pid == holder.pid
        assert f"pid {holder.pid}" in str(info.value) and "drill holder" in str(info.value)

        for args in (
            ("correct", str(album), "p0.jpg", "--add", "dog"),
            ("vocab", str(album), "--add", "cat"),
            ("cleanup", str(album)),
            ("export-xmp", str(album)),
            ("index", str(album), "--scan-only", "--wait", "0"),
        ):
            proc = cli(*args, env=env)
            assert proc.returncode == 1, (args, proc.stderr)
            lines = proc.stderr.strip().splitlines()
            assert len(lines) == 1 and f"pid {holder.pid}" in lines[0], (args, proc.stderr)
            assert "Another albumtagger is working on this library" in lines[0]
            assert "--wait" in lines[0]
        began = time.monotonic()
        proc = cli("correct", str(album), "p0.jpg", "--add", "dog", "--wait", "1", env=env)
        assert proc.returncode == 1 and time.monotonic() - began >= 1.0

        # Reading always works.
        assert len(cli_json("tags", str(album), env=env)) == 3
        assert cli("vocab", str(album), "--list", env=env).returncode == 0
        with LibrarySession(album, load_settings(), write=False, backup=False) as session:
            assert len(session.store.photos()) == 3
    finally:
        holder.kill()
        holder.wait()
    # The holder was killed: its lock is free at once, and the next writer takes it.
    proc = cli("correct", str(album), "p0.jpg", "--add", "dog", env=env)
    assert proc.returncode == 0, proc.stderr
    assert read_holder(album / ".albumtagger" / "writer.lock") is None  # released at exit


def test_a_waiting_writer_takes_over_when_the_holder_is_killed(album: Path, tmp_path: Path) -> None:
    env = golden(tmp_path)
    assert cli("index", str(album), "--scan-only", env=env).returncode == 0
    holder = _hold(album, tmp_path)
    waiter = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "albumtagger",
            "correct",
            str(album),
            "p1.jpg",
            "--add",
            "cat",
            "--wait",
            "60",
        ],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert waiter.stderr is not None
        line = waiter.stderr.readline()
        assert "Waiting for another albumtagger" in line and f"pid {holder.pid}" in line
    finally:
        os.kill(holder.pid, signal.SIGKILL)  # a crash: no clean-up runs
        holder.wait()
    _, err = waiter.communicate(timeout=60)
    assert waiter.returncode == 0, err
    tags = cli_json("tags", str(album), "p1.jpg", env=env)[0]["tags"]
    assert [t["name"] for t in tags] == ["cat"]


def test_one_process_holds_one_writer_session(album: Path, tmp_path: Path) -> None:
    settings = load_settings()
    data = tmp_path / "data"
    with LibrarySession(album, settings, data_dir=data, backup=False) as first:
        with pytest.raises(LibraryBusyError, match=f"pid {os.getpid()}"):
            LibrarySession(album, settings, data_dir=data, backup=False)
        with LibrarySession(album, settings, data_dir=data, backup=False, write=False) as reader:
            assert reader.store.photos() == first.store.photos()
        lock = first.library.writer
        assert lock is not None and lock.locked
    # Closed: the lock is free, and taken again at once.
    with LibrarySession(album, settings, data_dir=data, backup=False) as again:
        assert again.library.writer is not None and again.library.writer.locked


def test_a_session_that_fails_to_open_leaves_the_lock_free(
    album: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import albumtagger.session as session_module

    def broken(*args, **kwargs):
        raise RuntimeError("settings exploded")

    monkeypatch.setattr(session_module, "library_settings", broken)
    with pytest.raises(RuntimeError):
        LibrarySession(album, load_settings(), data_dir=tmp_path / "data", backup=False)
    assert WriterLock(album / ".albumtagger").holder() is None


def test_two_index_runs_at_once_tag_each_photo_once(tmp_path: Path) -> None:
    root = tmp_path / "Twice"
    for i in range(10):
        make_photo(root / f"p{i:02d}.jpg", 700 + i, size=(96, 72))
    env = golden(tmp_path)
    first = subprocess.Popen(
        [sys.executable, "-m", "albumtagger", "index", str(root), "--json"],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lock = root / ".albumtagger" / "writer.lock"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        holder = read_holder(lock)
        if holder is not None and holder.pid == first.pid:
            break
        assert first.poll() is None, first.communicate()
        time.sleep(0.02)
    second = subprocess.Popen(
        [sys.executable, "-m", "albumtagger", "index", str(root), "--json"],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out1, err1 = first.communicate(timeout=300)
    out2, err2 = second.communicate(timeout=300)
    assert first.returncode == 0 and second.returncode == 0, (err1, err2)
    one, two = json.loads(out1), json.loads(out2)
    assert one["tagging"]["tagged"] == 10
    assert two["tagging"]["tagged"] == 0 and two["scan"]["unchanged"] == 10
    assert f"Waiting for another albumtagger working on this library (pid {first.pid}" in err2
    assert "albumtagger index" in err2
