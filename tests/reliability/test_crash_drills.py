"""Crash drills: a child indexing, watching or correcting is killed with SIGKILL at a
random moment, again and again. After every kill the sidecar passes
`PRAGMA integrity_check` and has no duplicate rows, every correction the child
reported saved is there, and a re-run finishes the rest.

A kill lands at a random moment after one of two anchors, chosen at random: the
child's start (so start-up, the lock and model loading are hit too) or its first
write to the sidecar (so scanning, tag prompts, tagging and commits are hit; start-up
takes most of a short run's time). CI runs 22 drills (6 index, 4 watch, 12
corrections); `--long-drills` (or ALBUMTAGGER_LONG_DRILLS=1) runs 200 (70, 50, 80).
The seed is in each failure message; ALBUMTAGGER_DRILL_SEED changes it, and
ALBUMTAGGER_DRILL_REPORT=FILE collects the figures (JSON lines).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from albumtagger.config import Settings
from albumtagger.library.db.store import Store
from albumtagger.tagging.tagger import library_tagger
from albumtagger.tagging.vocabulary import parse_spec
from tests.conftest import make_photo
from tests.reliability.correct_driver import library_plan
from tests.reliability.helpers import (
    check_sidecar,
    cli_json,
    connect,
    golden,
    kill_after,
    record,
    start,
    wait_for_first_write,
)

pytestmark = pytest.mark.drills

SEED = int(os.environ.get("ALBUMTAGGER_DRILL_SEED", "12"))


def _runs(long_drills: bool, ci: int, long: int) -> int:
    return long if long_drills else ci


def _phase(before: dict[str, int], after: dict[str, int], killed: bool) -> str:
    """Where a kill landed, judged from what the sidecar holds."""
    if not killed:
        return "after the end"
    if after == before:
        return "before any write (start-up, model loading)"
    if after.get("ok", 0) > before.get("ok", 0) or after.get("damaged", 0) > before.get(
        "damaged", 0
    ):
        return "tagging photos" if after.get("pending", 0) else "end of tagging"
    if after["prompts"] > before["prompts"]:
        return "embedding tag prompts"
    return "scanning"


@pytest.fixture(scope="module")
def tagged_library(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A small folder indexed once with the golden model (tests copy it)."""
    base = tmp_path_factory.mktemp("tagged")
    root = base / "Album"
    for i in range(8):
        make_photo(root / f"p{i}.jpg", 8000 + i, size=(96, 72))
    cli_json("index", str(root), env=golden(base))
    return base, root


def _kill_at_random(
    proc: subprocess.Popen, db: Path, rng: random.Random, startup: float, work: float
) -> tuple[bool, str, float]:
    """Kill `proc` at a random moment after a random anchor: (killed, anchor, delay)."""
    if rng.random() < 0.3:
        delay = rng.uniform(0.0, startup)
        return kill_after(proc, delay), "start", delay
    if not wait_for_first_write(proc, db):
        return False, "first write", 0.0
    delay = rng.uniform(0.0, work)
    return kill_after(proc, delay), "first write", delay


def test_index_killed_at_random_moments(
    tagged_library: tuple[Path, Path], tmp_path: Path, long_drills: bool
) -> None:
    runs = _runs(long_drills, 6, 70)
    rng = random.Random(SEED)
    base, template = tagged_library
    root = tmp_path / "Album"
    shutil.copytree(template, root)
    env = golden(base)
    db = root / ".albumtagger" / "library.sqlite"
    n = 0
    deleted: set[str] = set()
    work = 2.0  # seconds from the first write to the end; updated from whole runs
    phases: dict[str, int] = {}
    for run in range(runs):
        for _ in range(6):  # new work for every run
            make_photo(root / f"run{run:03d}/p{n:03d}.jpg", 5000 + n, size=(96, 72))
            n += 1
        if run % 3 == 2:  # and now and then a change and a deletion
            victim = f"run{run - 1:03d}/p{n - 7:03d}.jpg"
            (root / victim).unlink()
            deleted.add(victim)
            make_photo(root / f"run{run - 2:03d}/p{n - 13:03d}.jpg", 90_000 + run, (80, 64))
            with Store(db, backups=False) as store:  # and a tag whose prompts need the model
                spec = parse_spec(f"drill tag {run}")
                store.add_tag(spec.name, spec.prompts)
        before = check_sidecar(db) if db.exists() else {"prompts": 0}
        proc = start("-m", "albumtagger", "index", str(root), env=env)
        began = time.monotonic()
        killed, anchor, delay = _kill_at_random(proc, db, rng, 6.0, work)
        if not killed:
            assert proc.wait() == 0, f"run {run} (seed {SEED}) failed by itself"
            work = max(work, time.monotonic() - began - delay)
        after = check_sidecar(db) if db.exists() else {"prompts": 0}
        phase = _phase(before, after, killed)
        phases[phase] = phases.get(phase, 0) + 1
        record(
            "index",
            {"run": run, "anchor": anchor, "delay": round(delay, 3), "phase": phase},
        )

    pending = check_sidecar(db)
    summary = cli_json("index", str(root), env=env)
    counts = check_sidecar(db)
    on_disk = {p.relative_to(root).as_posix() for p in root.rglob("*.jpg")}
    assert counts.get("ok", 0) == len(on_disk) and counts.get("pending", 0) == 0
    tagging = summary["tagging"]
    assert tagging["tagged"] + tagging["reused"] <= pending.get("pending", 0) + len(on_disk)
    conn = connect(db)
    try:
        rows = dict(conn.execute("SELECT path, status FROM photos"))
        assert {p for p, s in rows.items() if s == "ok"} == on_disk
        assert {p for p, s in rows.items() if s == "missing"} <= deleted
        untagged = conn.execute(
            "SELECT COUNT(*) FROM photos p WHERE status = 'ok' AND NOT EXISTS "
            "(SELECT 1 FROM embeddings e WHERE e.content_hash = p.content_hash)"
        ).fetchone()[0]
        assert untagged == 0
    finally:
        conn.close()
    # Nothing of the kills is left: once the deleted photos are forgotten (they count
    # in the thresholds until then), the library decides exactly as a clean index of
    # the same folder does.
    cli_json("cleanup", str(root), env=env)
    with Store(db, backups=False) as store:
        library_tagger(store, Settings()).redecide()
    clean = tmp_path / "Clean"
    shutil.copytree(root, clean, ignore=shutil.ignore_patterns(".albumtagger"))
    clean_env = golden(tmp_path / "clean-env")
    cli_json("index", str(clean), env=clean_env)
    cli_json(
        "vocab", str(clean), *[f"--add=drill tag {r}" for r in range(2, runs, 3)], env=clean_env
    )
    assert _decisions(root, env) == _decisions(clean, clean_env)
    record("index-summary", {"runs": runs, "phases": phases, "photos": len(on_disk)})


def _decisions(root: Path, env: dict[str, str]) -> dict[str, list]:
    rows = cli_json("tags", str(root), env=env)
    return {r["path"]: sorted((t["name"], t["state"], t["score"]) for t in r["tags"]) for r in rows}


def test_watch_killed_at_random_moments(
    tagged_library: tuple[Path, Path], tmp_path: Path, long_drills: bool
) -> None:
    runs = _runs(long_drills, 4, 50)
    rng = random.Random(SEED + 1)
    base, template = tagged_library
    root = tmp_path / "Watched"
    shutil.copytree(template, root)
    env = golden(
        base,
        ALBUMTAGGER_WATCH_QUIET_SECONDS="0.2",
        ALBUMTAGGER_WATCH_POLL_SECONDS="0.5",
    )
    db = root / ".albumtagger" / "library.sqlite"
    n = 0
    phases: dict[str, int] = {}
    for run in range(runs):
        before = check_sidecar(db) if db.exists() else {"prompts": 0}
        for _ in range(2):  # work waiting for the watcher when it starts
            make_photo(root / f"p{n:03d}.jpg", 7000 + n, size=(96, 72))
            n += 1
        proc = start("-m", "albumtagger", "watch", str(root), env=env)
        try:
            if rng.random() < 0.3:
                anchor = "start"
            else:
                anchor = "first write"
                wait_for_first_write(proc, db)
            life = rng.uniform(0.0, 6.0)
            ops_at = sorted(rng.uniform(0.0, life) for _ in range(3))
            began = time.monotonic()
            for when in ops_at:
                time.sleep(max(0.0, began + when - time.monotonic()))
                op = rng.choice(("add", "add", "rename", "delete"))
                photos = sorted(root.glob("*.jpg"))
                if op == "add" or len(photos) < 3:
                    make_photo(root / f"p{n:03d}.jpg", 7000 + n, size=(96, 72))
                    n += 1
                elif op == "rename":
                    src = rng.choice(photos)
                    src.rename(root / f"r{n:03d}.jpg")
                    n += 1
                else:
                    rng.choice(photos).unlink()
            killed = kill_after(proc, max(0.0, began + life - time.monotonic()))
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert killed, "watch ended by itself"
        after = check_sidecar(db) if db.exists() else {"prompts": 0}
        phase = _phase(before, after, killed)
        phases[phase] = phases.get(phase, 0) + 1
        record("watch", {"run": run, "anchor": anchor, "delay": round(life, 3), "phase": phase})

    cli_json("index", str(root), env=env)
    check_sidecar(db)
    on_disk = {p.name for p in root.glob("*.jpg")}
    conn = connect(db)
    try:
        rows = dict(conn.execute("SELECT path, status FROM photos"))
    finally:
        conn.close()
    assert {p for p, s in rows.items() if s == "ok"} == on_disk
    assert {s for p, s in rows.items() if p not in on_disk} <= {"missing"}
    record("watch-summary", {"runs": runs, "phases": phases, "photos": len(on_disk)})


def _feedback(db: Path) -> list[tuple[int, str, str, str]]:
    conn = connect(db)
    try:
        return [
            (int(r[0]), r[1], r[2], r[3])
            for r in conn.execute(
                "SELECT f.id, p.path, t.name, f.action FROM feedback f "
                "JOIN photos p ON p.id = f.photo_id JOIN tags t ON t.id = f.tag_id "
                "WHERE f.undone = 0 ORDER BY f.id"
            )
        ]
    finally:
        conn.close()


def _cells(db: Path) -> dict[tuple[str, str], str]:
    conn = connect(db)
    try:
        return {
            (r[0], r[1]): r[2]
            for r in conn.execute(
                "SELECT p.path, t.name, pt.state FROM photo_tags pt "
                "JOIN photos p ON p.id = pt.photo_id JOIN tags t ON t.id = pt.tag_id"
            )
        }
    finally:
        conn.close()


def test_corrections_killed_at_random_moments(
    tagged_library: tuple[Path, Path], tmp_path: Path, long_drills: bool
) -> None:
    runs = _runs(long_drills, 12, 80)
    base, template = tagged_library
    root = tmp_path / "Album"
    shutil.copytree(template, root)
    env = golden(base)
    db = root / ".albumtagger" / "library.sqlite"
    rng = random.Random(SEED + 2)
    total = 60 * runs  # more than the kills let it get through
    from albumtagger.library.db.store import Store

    with Store(db, backups=False) as store:
        steps = library_plan(store, SEED, total)
    reported: set[int] = set()
    after_print = 0
    for run in range(runs):
        proc = start(
            "-m",
            "tests.reliability.correct_driver",
            str(root),
            str(SEED),
            str(total),
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("start "), first
        time.sleep(rng.uniform(0.0, 0.3))  # a few corrections in, at a random moment
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        for line in proc.stdout.read().splitlines():  # printed before the kill
            if line.startswith("saved "):
                reported.add(int(line.split()[1]))
        proc.stdout.close()
        check_sidecar(db)
        events = _feedback(db)
        done = len(events)
        # Exactly the plan's first corrections, in order, once each: nothing lost,
        # nothing twice. What was reported saved is among them.
        assert [e[1:] for e in events] == list(steps[:done]), f"run {run}, seed {SEED}"
        assert all(i < done for i in reported), f"run {run}: a reported correction is lost"
        after_print += done - (max(reported) + 1 if reported else 0)  # saved, not yet said
        expected: dict[tuple[str, str], str] = {}
        for path, tag, action in steps[:done]:
            expected[(path, tag)] = "accepted" if action == "add" else "rejected"
        cells = _cells(db)
        assert {c: cells.get(c) for c in expected} == expected
        record("corrections", {"run": run, "done": done, "reported": len(reported)})
        assert done < total, "the plan ran out before the kills did"

    # A re-run finishes the plan: each correction exactly once.
    proc = start(
        "-m", "tests.reliability.correct_driver", str(root), str(SEED), str(total), env=env
    )
    assert proc.wait(timeout=300) == 0
    events = _feedback(db)
    assert [e[1:] for e in events] == list(steps)
    check_sidecar(db)
    record(
        "corrections-summary",
        {
            "runs": runs,
            "reported_before_kills": len(reported),
            "saved_not_yet_reported": after_print,
            "total": total,
        },
    )
