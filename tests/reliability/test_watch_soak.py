"""Watch soak: thousands of mixed file operations (copies written in pieces, renames,
moves between folders, folder moves, deletes, rewrites, the root taken away and brought
back) under `LibrarySession.watch_step`, then the sidecar must equal a fresh full scan
of the folder. Tagging is a stand-in that reads each photo and marks it ok (no model).

CI: 300 operations; long mode (`--long-drills` / `ALBUMTAGGER_LONG_DRILLS=1`): 5,000.
`ALBUMTAGGER_DRILL_SEED=N` picks another sequence; `ALBUMTAGGER_DRILL_REPORT=FILE` gets
the figures as a JSON line."""

from __future__ import annotations

import io
import json
import os
import random
import shutil
import sqlite3
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from albumtagger.config import Settings
from albumtagger.library.folder import open_library
from albumtagger.service import watching
from albumtagger.service.session import LibrarySession
from tests.conftest import scan_and_read

FOLDERS = ["", "a", "b", "a/deep", "c"]
POPULATION = 60


@pytest.fixture
def fake_tagging(watch_fake_tagging: list[str], monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """`watch_fake_tagging` (tests/conftest.py), with short watch steps: the test drives
    them."""
    monkeypatch.setattr(watching, "POLL_STEP_S", 0.02)
    return watch_fake_tagging


def photo_bytes(seed: int) -> bytes:
    """A small JPEG whose content is unique to `seed`."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 255, size=(24 + seed % 7, 32 + seed % 5, 3)).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(out, "JPEG", quality=70)
    return out.getvalue()


class Soak:
    """Random file operations on `root`, with the session's watch steps in between."""

    def __init__(self, root: Path, session: LibrarySession, seed: int) -> None:
        self.root = root
        self.session = session
        self.rng = random.Random(seed)
        self.files: list[str] = []
        self.folders = list(FOLDERS)
        self.seed = 1000
        self.ops: Counter[str] = Counter()
        self.log: list[str] = []
        """What each operation did, to tell the story of a path that went wrong."""
        for folder in self.folders:
            (root / folder).mkdir(parents=True, exist_ok=True)

    def step(self, seconds: float = 0.01) -> None:
        self.session.watch_step(seconds)

    def new_name(self, folder: str) -> str:
        self.seed += 1
        name = f"img_{self.seed:05d}.{self.rng.choice(['jpg', 'jpg', 'jpeg', 'JPG'])}"
        return f"{folder}/{name}" if folder else name

    def write_pieces(self, rel: str, data: bytes) -> None:
        """A copy written in 2-5 pieces, the watcher stepping between some of them."""
        pieces = self.rng.randint(2, 5)
        size = -(-len(data) // pieces)
        with open(self.root / rel, "wb") as f:
            for i in range(0, len(data), size):
                f.write(data[i : i + size])
                f.flush()
                if self.rng.random() < 0.3:
                    self.step()

    def create(self) -> None:
        rel = self.new_name(self.rng.choice(self.folders))
        self.seed += 1
        self.write_pieces(rel, photo_bytes(self.seed))
        self.files.append(rel)
        self.log.append(f"create {rel}")

    def rewrite(self) -> None:
        rel = self.rng.choice(self.files)
        self.seed += 1
        self.write_pieces(rel, photo_bytes(self.seed))
        self.log.append(f"rewrite {rel}")

    def rename(self) -> None:
        rel = self.files.pop(self.rng.randrange(len(self.files)))
        dest = self.new_name(rel.rpartition("/")[0])
        os.rename(self.root / rel, self.root / dest)
        self.files.append(dest)
        self.log.append(f"rename {rel} -> {dest}")

    def move(self) -> None:
        rel = self.files.pop(self.rng.randrange(len(self.files)))
        folder = self.rng.choice([f for f in self.folders if f != rel.rpartition("/")[0]])
        dest = f"{folder}/{rel.rpartition('/')[2]}" if folder else rel.rpartition("/")[2]
        if (self.root / dest).exists():
            dest = self.new_name(folder)
        os.rename(self.root / rel, self.root / dest)
        self.files.append(dest)
        self.log.append(f"move {rel} -> {dest}")

    def delete(self) -> None:
        rel = self.files.pop(self.rng.randrange(len(self.files)))
        (self.root / rel).unlink()
        self.log.append(f"delete {rel}")

    def move_folder(self) -> None:
        """Rename the folder `c` (or `c2`) with all it holds."""
        src = "c" if "c" in self.folders else "c2"
        dest = "c2" if src == "c" else "c"
        os.rename(self.root / src, self.root / dest)
        self.folders[self.folders.index(src)] = dest
        self.log.append(f"move folder {src} -> {dest}")
        self.files = [dest + f[len(src) :] if f.startswith(src + "/") else f for f in self.files]

    def root_away_and_back(self) -> None:
        """The root is moved away (an unplugged drive), changed there, and comes back."""
        away = self.root.with_name(self.root.name + "-away")
        os.rename(self.root, away)
        self.log.append("root away")
        for _ in range(3):
            self.step(0.05)
        saved = self.root
        self.root = away
        for _ in range(self.rng.randint(1, 4)):
            self.rng.choice([self.create, self.delete, self.rename])()
        self.root = saved
        os.rename(away, self.root)
        self.log.append("root back")
        for _ in range(3):
            self.step(0.05)

    def run(self, operations: int) -> None:
        kinds = [
            (self.create, 30),
            (self.rename, 15),
            (self.move, 15),
            (self.delete, 14),
            (self.rewrite, 8),
            (self.move_folder, 2),
        ]
        funcs, weights = zip(*kinds, strict=True)
        away_every = max(50, operations // 12)
        for i in range(operations):
            if i and i % away_every == 0:
                op = self.root_away_and_back
            elif len(self.files) < 5:
                op = self.create
            elif len(self.files) > POPULATION:
                op = self.delete
            else:
                op = self.rng.choices(funcs, weights)[0]
            op()
            self.ops[op.__name__] += 1
            if self.rng.random() < 0.5:
                self.step()


def table(db: Path) -> list[tuple[str, str, str]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute(
            "SELECT path, status, content_hash FROM photos ORDER BY path"
        ).fetchall()
    finally:
        conn.close()


def story(soak: Soak, paths: list[str]) -> list[str]:
    """The operations that touched these paths' photos, and the folder and root moves."""
    names = {p.rpartition("/")[2].partition(".")[0] for p in paths}
    return [
        f"{i}: {e}"
        for i, e in enumerate(soak.log)
        if any(n in e for n in names) or e.startswith(("move folder", "root"))
    ]


def test_watch_soak(
    tmp_path: Path, fake_tagging: list[str], long_drills: bool, monkeypatch
) -> None:
    operations = 5000 if long_drills else 300
    seed = int(os.environ.get("ALBUMTAGGER_DRILL_SEED", "12"))
    root = tmp_path / "Photos"
    root.mkdir()
    settings = Settings()
    settings.watch.quiet_seconds = 0.1
    settings.watch.reconcile_seconds = 1e9  # events only: no periodic rescan to hide misses
    start = time.monotonic()
    session = LibrarySession(root, settings, data_dir=tmp_path / "data", encoder=object())
    try:
        soak = Soak(root, session, seed)
        soak.step()
        soak.run(operations)
        ops_seconds = time.monotonic() - start

        # The truth: a fresh full scan of a copy of the folder as it now is.
        copy = tmp_path / "fresh"
        shutil.copytree(root, copy, ignore=shutil.ignore_patterns(".albumtagger"))
        fresh = open_library(copy, tmp_path / "fresh-data")
        try:
            scan_and_read(fresh)
            db_fresh = fresh.store.db_path
            expected = {p: h for p, s, h in table(db_fresh) if s == "ok"}
        finally:
            fresh.close()
        on_disk = {
            str(p.relative_to(root)).replace(os.sep, "/")
            for p in root.rglob("*")
            if p.is_file() and ".albumtagger" not in p.parts
        }
        assert set(expected) == on_disk == set(soak.files)

        def watched() -> dict[str, str]:
            return {p: h for p, s, h in table(session.db_path) if s == "ok"}

        deadline = time.monotonic() + (30 if long_drills else 10)
        while watched() != expected and time.monotonic() < deadline:
            session.watch_step(0.2)
        by_events = watched()
        # The backstop the watch loop runs every `reconcile_seconds` (10 minutes): a full
        # rescan. After it, nothing may differ.
        session._keeper.watcher.request_rescan()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            session.watch_step(0.2)
            if watched() == expected:
                break
        settle_seconds = time.monotonic() - start - ops_seconds
        rows = table(session.db_path)
        db = session.db_path
    finally:
        session.close()

    got = {p: h for p, s, h in rows if s == "ok"}
    missed = sorted(set(by_events) ^ set(expected)) + [
        p for p in by_events if p in expected and by_events[p] != expected[p]
    ]
    wrong = sorted(set(got) ^ set(expected)) + [
        p for p in got if p in expected and got[p] != expected[p]
    ]
    assert got == expected, (
        f"history: {story(soak, wrong)}; "
        f"only in the sidecar: {sorted(set(got) - set(expected))[:10]}; "
        f"not in the sidecar: {sorted(set(expected) - set(got))[:10]}; "
        f"other content: {[p for p in got if p in expected and got[p] != expected[p]][:10]}"
    )
    # The events alone kept the sidecar in line (a photo still being written when its
    # folder was renamed included: the watcher looks at a moved folder once more).
    assert not missed, f"missed by the events: {missed}; history: {story(soak, missed)}"
    statuses = Counter(s for _, s, _ in rows)
    assert set(statuses) <= {"ok", "missing"}, statuses
    missing = [p for p, s, _ in rows if s == "missing"]
    assert not set(missing) & on_disk
    assert len({p for p, _, _ in rows}) == len(rows)
    hashes = Counter(h for _, s, h in rows if s == "ok")
    assert max(hashes.values(), default=1) == 1, "two photos with one content"
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    finally:
        conn.close()
    figures = {
        "operations": sum(soak.ops.values()),
        "kinds": dict(soak.ops),
        "seed": seed,
        "ops_seconds": round(ops_seconds, 1),
        "settle_seconds": round(settle_seconds, 1),
        "photos_ok": len(got),
        "missing_rows": len(missing),
        "missed_by_events": missed,
        "tagged": len(fake_tagging),
    }
    print("watch soak:", json.dumps(figures))
    report = os.environ.get("ALBUMTAGGER_DRILL_REPORT")
    if report:
        with open(report, "a", encoding="utf-8") as f:
            f.write(json.dumps({"drill": "watch-soak", **figures}) + "\n")
