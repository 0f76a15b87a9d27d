"""Writers take turns: the writer lock is held per unit of work, so a CLI correction or
an index beside a running `watch` goes through within seconds; a writer that finds a
unit in progress waits for, or is refused by, it (named by pid, command and time);
readers always work; a lock left by a killed process is taken over; two `index` runs at
once tag each photo once; a planted `writer.lock` link is refused, its target intact."""

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
from albumtagger.service.session import LibrarySession
from tests.conftest import REPO, make_photo
from tests.reliability.helpers import cli, cli_json, golden, start

HOLD = """
import sys, time
from pathlib import Path
from albumtagger.library.folder import WriteAccess, open_library
access = WriteAccess(0, command="drill holder")
lib = open_library(Path(sys.argv[1]), Path(sys.argv[2]), write=access)
with lib.writing():  # one (very long) unit of work
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
            ("review", str(album), "--answer", "p0.jpg", "dog", "yes"),
            ("vocab", str(album), "--add", "cat"),
            ("cleanup", str(album)),
            ("export-xmp", str(album)),
            ("index", str(album), "--scan-only"),
        ):
            proc = cli(*args, "--wait", "0", env=env)
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
    waiter = subprocess.Popen(  # a short command waits a few seconds by default
        [sys.executable, "-m", "albumtagger", "correct", str(album), "p1.jpg", "--add", "cat"],
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


def test_writer_sessions_take_turns_unit_by_unit(album: Path, tmp_path: Path) -> None:
    settings = load_settings()
    data = tmp_path / "data"
    lock = WriterLock(album / ".albumtagger")
    with LibrarySession(album, settings, data_dir=data, backup=False) as first:
        assert lock.holder() is None  # open, yet holding nothing between units
        with LibrarySession(album, settings, data_dir=data, backup=False, wait=0) as second:
            with first.unit():
                with first.unit():  # nested: part of the same unit
                    assert first.library.writer is not None and first.library.writer.locked
                with pytest.raises(LibraryBusyError, match=f"pid {os.getpid()}"):
                    second.add_tags(["harbour"])
                assert first.library.writer.locked
                first.add_tags(["quay"])  # inside its own unit: no wait
            assert not first.library.writer.locked and lock.holder() is None
            second.add_tags(["harbour"])  # its turn now
            assert {"quay", "harbour"} <= {t.name for t in first.store.tags()}
            assert first.refresh()  # the other session committed: noticed
            assert not first.refresh()


def test_a_session_that_fails_to_open_leaves_the_lock_free(
    album: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import albumtagger.service.session as session_module

    def broken(*args, **kwargs):
        raise RuntimeError("settings exploded")

    monkeypatch.setattr(session_module, "library_settings", broken)
    with pytest.raises(RuntimeError):
        LibrarySession(album, load_settings(), data_dir=tmp_path / "data", backup=False)
    assert WriterLock(album / ".albumtagger").holder() is None


def test_two_index_runs_at_once_tag_each_photo_once(tmp_path: Path) -> None:
    """Pending photos are picked in the unit of work that writes them: two runs share
    the work and never do a photo twice."""
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
    while time.monotonic() < deadline:  # the first is at work
        holder = read_holder(lock)
        if holder is not None and holder.pid == first.pid:
            break
        assert first.poll() is None, first.communicate()
        time.sleep(0.005)
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
    assert one["tagging"]["tagged"] + two["tagging"]["tagged"] == 10, (one, two)
    assert {t["status"] for t in cli_json("tags", str(root), env=env)} == {"ok"}


# -- cooperating writers: real processes ------------------------------------------------


def _start_watch(root: Path, env: dict[str, str]) -> subprocess.Popen:
    """`albumtagger watch ROOT`, once it has tagged the folder (its stderr is a pipe)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "albumtagger", "watch", str(root)],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    while True:
        line = proc.stderr.readline()
        assert line or proc.poll() is None, "watch ended early"
        if line.startswith("Tagged "):
            return proc


def _tags(root: Path, photo: str, env: dict[str, str]) -> dict[str, str]:
    row = cli_json("tags", str(root), photo, env=env)[0]
    return {t["name"]: t["state"] for t in row["tags"]}


def test_correct_and_index_beside_a_running_watch(album: Path, tmp_path: Path) -> None:
    env = golden(tmp_path)
    watch = _start_watch(album, env)
    try:
        began = time.monotonic()
        proc = cli("correct", str(album), "p0.jpg", "--add", "lighthouse", env=env)
        assert proc.returncode == 0, proc.stderr
        assert time.monotonic() - began < 5.0  # Python's start-up and the model's included
        assert _tags(album, "p0.jpg", env)["lighthouse"] == "accepted"

        proc = cli("index", str(album), "--json", env=env, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["scan"]["unchanged"] == 3

        # Watch goes on: a new photo is tagged, and the correction stays.
        make_photo(album / "p9.jpg", 609)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            rows = {r["path"]: r for r in cli_json("tags", str(album), env=env)}
            if rows.get("p9.jpg", {}).get("status") == "ok":
                break
            time.sleep(0.3)
        else:
            raise AssertionError(f"watch did not tag p9.jpg: {rows}")
        assert watch.poll() is None
        assert _tags(album, "p0.jpg", env)["lighthouse"] == "accepted"
    finally:
        watch.send_signal(signal.SIGTERM)
        _, err = watch.communicate(timeout=60)
    assert watch.returncode == 0, err
    assert "Error" not in err, err


def test_a_planted_lock_link_is_refused_and_its_target_left_intact(
    album: Path, tmp_path: Path
) -> None:
    env = golden(tmp_path)
    assert cli("index", str(album), "--scan-only", env=env).returncode == 0
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n" * 100)
    lock = album / ".albumtagger" / "writer.lock"
    lock.unlink(missing_ok=True)
    lock.symlink_to(victim)
    proc = cli("vocab", str(album), "--add", "x", env=env)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "is a symbolic link" in lines[0] and str(lock) in lines[0], lines
    assert victim.read_text() == "precious\n" * 100
    # A FIFO in its place is refused at once, not waited on.
    lock.unlink()
    os.mkfifo(lock)
    proc = cli("correct", str(album), "p0.jpg", "--add", "dog", env=env, timeout=30)
    assert proc.returncode == 1 and "not a regular file" in proc.stderr, proc.stderr
    # A lock file of its own is written in place, never truncated to a record's length.
    lock.unlink()
    assert cli("vocab", str(album), "--add", "x", env=env).returncode == 0
    assert lock.stat().st_size == 4096 and read_holder(lock) is None
