"""A child process for the crash drills: corrections in a loop, without the model.

    python -m tests.reliability.correct_driver FOLDER SEED COUNT [--delay S]

Works through a plan of COUNT corrections (made from SEED and the library's photos
and tags, the same every time), starting after those the library already holds,
through `LibrarySession.correct` (the one writer, its lock, one transaction each).
After each commit it prints `saved I FEEDBACK_ID` and flushes: what it reported saved
must survive a SIGKILL at any moment.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path


def plan(paths: list[str], tags: list[str], seed: int, count: int) -> list[tuple[str, str, str]]:
    """(photo, tag, action): each one changes its cell (add and reject by turns)."""
    rng = random.Random(seed)
    state: dict[tuple[str, str], str] = {}
    out = []
    for _ in range(count):
        cell = (rng.choice(paths), rng.choice(tags))
        action = "reject" if state.get(cell) == "accepted" else "add"
        state[cell] = "accepted" if action == "add" else "rejected"
        out.append((*cell, action))
    return out


def library_plan(store, seed: int, count: int) -> list[tuple[str, str, str]]:
    paths = [r.path for r in store.photos(statuses=("ok",))]
    tags = sorted(t.name for t in store.tags())[:6]
    return plan(paths, tags, seed, count)


def done_so_far(store) -> int:
    return int(store.conn.execute("SELECT COUNT(*) FROM feedback").fetchone()[0])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("folder", type=Path)
    parser.add_argument("seed", type=int)
    parser.add_argument("count", type=int)
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args()

    from albumtagger.config import load_settings
    from albumtagger.service.session import LibrarySession

    with LibrarySession(args.folder, load_settings(), create=False, backup=False, wait=60) as s:
        steps = library_plan(s.store, args.seed, args.count)
        start = done_so_far(s.store)
        print(f"start {start}", flush=True)
        for i in range(start, len(steps)):
            path, tag, action = steps[i]
            row = s.store.photo_by_path(path)
            assert row is not None
            s.correct([row.id], tag, action)
            feedback_id = s.store.conn.execute("SELECT MAX(id) FROM feedback").fetchone()[0]
            sys.stdout.write(f"saved {i} {feedback_id}\n")
            sys.stdout.flush()
            if args.delay:
                time.sleep(args.delay)
        print("done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
