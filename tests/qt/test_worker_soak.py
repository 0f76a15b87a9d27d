"""The app's worker under a stream of file operations: copies written in pieces,
renames, moves between folders and deletes while the window is open; afterwards the
sidecar matches the folder (every file there is tagged at its path, every file gone is
missing, no duplicates). CI: 60 operations; long mode (`ALBUMTAGGER_LONG_DRILLS=1`):
600."""

from __future__ import annotations

import os
import random
import sqlite3
from pathlib import Path

from tests.conftest import make_photo
from tests.qt.conftest import PHOTOS, wait_indexed


def _sidecar(root: Path) -> dict[str, str]:
    conn = sqlite3.connect(root / ".albumtagger" / "library.sqlite")
    rows = conn.execute("SELECT path, status FROM photos").fetchall()
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    return dict(rows)


def _on_disk(root: Path) -> set[str]:
    return {
        p.relative_to(root).as_posix() for p in root.rglob("*.jpg") if ".albumtagger" not in p.parts
    }


def test_worker_keeps_the_sidecar_in_line_with_the_folder(
    qtbot, make_window, photo_folder: Path
) -> None:
    operations = 600 if os.environ.get("ALBUMTAGGER_LONG_DRILLS") else 60
    window = make_window()
    window.open_folder(photo_folder)
    wait_indexed(qtbot, window, PHOTOS)
    rng = random.Random(12)
    folders = ["", "a", "b/c"]
    seed = 10_000
    done = {"copy": 0, "rename": 0, "move": 0, "delete": 0}
    for _ in range(operations):
        present = sorted(_on_disk(photo_folder))
        kind = rng.choice(["copy", "copy", "rename", "move", "delete"]) if present else "copy"
        if kind == "copy":
            seed += 1
            target = photo_folder / rng.choice(folders) / f"new_{seed}.jpg"
            staging = photo_folder.parent / f"staging_{seed}.jpg"
            make_photo(staging, seed, size=(96, 64))
            data = staging.read_bytes()
            staging.unlink()
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "wb") as out:  # written in pieces, as a slow copy would
                for start in range(0, len(data), 700):
                    out.write(data[start : start + 700])
                    out.flush()
                    qtbot.wait(2)
        else:
            source = photo_folder / rng.choice(present)
            if kind == "delete":
                source.unlink()
            else:
                folder = source.parent if kind == "rename" else photo_folder / rng.choice(folders)
                folder.mkdir(parents=True, exist_ok=True)
                seed += 1
                target = folder / f"moved_{seed}.jpg"
                os.rename(source, target)
        done[kind] += 1
        qtbot.wait(rng.choice([0, 5, 20]))

    def in_line() -> bool:
        rows = _sidecar(photo_folder)
        ok = {p for p, status in rows.items() if status == "ok"}
        return ok == _on_disk(photo_folder) and not any(s == "pending" for s in rows.values())

    qtbot.waitUntil(in_line, timeout=120_000)
    rows = _sidecar(photo_folder)
    gone = set(rows) - _on_disk(photo_folder)
    assert all(rows[p] == "missing" for p in gone)
    assert sum(done.values()) == operations and all(done.values())
    window.close()
