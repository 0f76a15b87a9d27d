"""The desktop app at library scale: start-up, filtering, scrolling, and how long the GUI
thread is ever blocked while the worker works. Prints one JSON object.

    python benchmarks/app_responsiveness.py --photos 100000 --dir /tmp/lib100k

Runs the real main window offscreen over a generated library (`build_library` from
benchmarks/library_scale.py: a real sidecar, no photo files). Thumbnails of the photos
the measured views show are written to a benchmark cache first (small generated JPEGs),
so the grid draws real thumbnails there; other cells show placeholders.

- `usable_s`: from creating the window to a window that answers input, with every
  photo's id in the grid and the first page of thumbnails drawn;
  `startup_max_blocked_ms` the longest stall in that time (building the window's widgets,
  before it is shown, is most of it).
- `filter_s`: the slowest of a few tag-filter changes (include, exclude, include a
  second tag, any instead of all, clear),
  from the click until the grid has drawn the result (`filter_each_s` lists them).
- `scroll_s`: the slowest of three one-page scrolls, until the page is drawn.
- `max_blocked_ms`: the longest stall of the GUI thread, measured by a 5 ms QTimer
  probe, while the worker re-decides tags after corrections (each re-decides the tag
  over the whole library) and answers a search (loading the vectors of every photo).
- The folder tree and the activity panel are open throughout (`panels_open`).
- The library is a copy (corrections change it); its daily backup is not made in the
  run, as it would be on the first opening of the day.
- With `--real-photos N`: also a small real library of N generated photos tagged by the
  golden checkpoint (`--model`), with the same probe: `model_load_max_blocked_ms` from
  opening the folder in a new window until the model is loaded (once per run of the
  app), then `tagging_max_blocked_ms` while the photos are tagged.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.library_scale import build_library  # noqa: E402

PROBE_MS = 5
PAGE_PHOTOS = 600
"""Thumbnails made for the first this-many photos of each measured view."""


class Probe:
    """A QTimer that measures how late it fires: the GUI thread's longest stall."""

    def __init__(self) -> None:
        from PySide6.QtCore import QTimer

        self._timer = QTimer()
        self._timer.setInterval(PROBE_MS)
        self._timer.timeout.connect(self._tick)
        self._last = 0.0
        self.max_gap_ms = 0.0

    def start(self) -> None:
        self.max_gap_ms = 0.0
        self._last = time.perf_counter()
        self._timer.start()

    def _tick(self) -> None:
        now = time.perf_counter()
        self.max_gap_ms = max(self.max_gap_ms, (now - self._last) * 1000 - PROBE_MS)
        self._last = now

    def stop(self) -> float:
        self._timer.stop()
        return round(max(0.0, self.max_gap_ms), 1)


def spin_until(pred: Callable[[], bool], timeout: float = 120.0) -> None:
    """Run the event loop (as `app.exec()` does) until `pred()`, checked every 5 ms."""
    from PySide6.QtCore import QEventLoop, QTimer

    if pred():
        return
    end = time.perf_counter() + timeout
    loop = QEventLoop()
    failed: list[bool] = []

    def check() -> None:
        if pred():
            loop.quit()
        elif time.perf_counter() > end:
            failed.append(True)
            loop.quit()

    timer = QTimer()
    timer.timeout.connect(check)
    timer.start(5)
    loop.exec()
    timer.stop()
    if failed:
        raise TimeoutError("benchmark step timed out")


def drawn(window) -> Callable[[], bool]:
    """True once the grid has the visible cells' summaries and thumbnails (or knows there
    are none) and has painted them; the last paint is done here, so its cost counts."""

    def check() -> bool:
        grid = window.grid
        if window.libraries.reads is None or window.model.rowCount() == 0:
            return False
        if window.libraries.reads.pending("ids") or window.model.pending():
            return False
        ids = grid.visible_ids()
        if any(window.model.summary_of(i) is None for i in ids):
            return False
        if not window.loader.settled(ids) or window.loader._batch.isActive():
            return False
        grid.viewport().repaint()  # a paint may ask for thumbnails still missing
        return window.loader.settled(ids)

    return check


def make_thumbnails(db: Path, cache_root: Path, tag_id: int, tags: int) -> int:
    """Small generated JPEG thumbnails for the photos the measured views show first."""
    from PIL import Image

    from albumtagger.library.db.queries import LibraryQueries, PhotoFilter
    from albumtagger.library.thumbnails import ThumbnailCache

    cache = ThumbnailCache(cache_root / "thumbnails")
    with LibraryQueries(db) as q:
        wanted = list(q.photo_ids(PhotoFilter())[: 3 * PAGE_PHOTOS])
        wanted += list(q.photo_ids(PhotoFilter(tags=(tag_id,)))[:PAGE_PHOTOS])
        summaries = q.summaries(wanted)
    rng = np.random.default_rng(1)
    made = 0
    for s in summaries:
        if s.content_hash is None or s.content_hash in cache:
            continue
        w, h = (192, 144) if (s.width or 4) >= (s.height or 3) else (144, 192)
        base = rng.integers(30, 225, size=3)
        grad = np.linspace(0, 1, w)[None, :, None] * rng.integers(0, 80, size=3)
        pixels = np.clip(base + grad + rng.integers(0, 20, size=(h, w, 3)), 0, 255)
        cache.put_image(s.content_hash, Image.fromarray(pixels.astype(np.uint8), "RGB"))
        made += 1
    return made


def popular(db: Path, k: int) -> list[tuple[int, str]]:
    from albumtagger.library.db.queries import LibraryQueries, PhotoFilter

    with LibraryQueries(db) as q:
        counts = q.tag_counts(PhotoFilter())
        names = {t.id: t.name for t in q.tags()}
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
    return [(t, names[t]) for t, _ in top]


def measure_large(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from PySide6.QtCore import QSettings

    from albumtagger.app.qtcompat import tune_app_process
    from albumtagger.app.window import MainWindow
    from albumtagger.app.worker import default_session_factory
    from albumtagger.config import Settings

    tune_app_process()  # as run_app does
    out: dict[str, Any] = {}
    t0 = time.perf_counter()
    built = build_library(args.dir, args.photos, args.tags, args.seed)
    out["build_s"] = round(time.perf_counter() - t0, 1)
    # Work on a copy: the corrections measured below change the library.
    root = work / Path(args.dir).name
    shutil.copytree(built.parent, root / built.parent.name)
    db = root / built.parent.name / built.name
    tags = popular(db, 6)
    with closing(sqlite3.connect(db)) as conn:  # missing photos show under their filter
        (missing,) = conn.execute("SELECT COUNT(*) FROM photos WHERE status = 'missing'").fetchone()
    out["grid_photos"] = args.photos - int(missing)
    cache_root = Path(args.dir).parent / (Path(args.dir).name + "-benchmark-cache")
    os.environ["ALBUMTAGGER_CACHE_DIR"] = str(cache_root)
    t0 = time.perf_counter()
    out["thumbnails_made"] = make_thumbnails(db, cache_root, tags[0][0], args.tags)
    out["thumbnails_s"] = round(time.perf_counter() - t0, 1)

    qsettings = QSettings(str(work / "qt.ini"), QSettings.Format.IniFormat)
    probe = Probe()
    probe.start()
    t0 = time.perf_counter()
    # The copy would get its daily verified backup on opening, a background load that
    # has nothing to do with the window: off here (see the module doc).
    factory = functools.partial(default_session_factory, backup=False)
    window = MainWindow(
        Settings(), qsettings, session_factory=factory, auto_index=False, watch=False
    )
    try:
        _measure_window(window, root, args, out, probe, t0, tags)
    finally:
        t = time.perf_counter()
        window.close()
        out["close_s"] = round(time.perf_counter() - t, 2)
    return out


def _measure_window(
    window, root: Path, args, out: dict[str, Any], probe: Probe, t0: float, tags
) -> None:
    from albumtagger.library.db.queries import PhotoFilter

    window.resize(1400, 900)
    window.folders_dock.show()  # as a user who keeps the folder tree and the activity
    window.activity.show()  # panel open: both follow every change the worker reports
    window.show()
    window.open_folder(root)
    spin_until(lambda: window.model.rowCount() == out["grid_photos"])
    spin_until(drawn(window))
    # answers input: a queued event comes back at once
    spin_until(lambda: True)
    out["usable_s"] = round(time.perf_counter() - t0, 3)
    out["startup_max_blocked_ms"] = probe.stop()
    out["visible_cells"] = len(window.grid.visible_ids())
    out["panels_open"] = window.folders_dock.isVisible() and window.activity.isVisible()

    # -- filters ------------------------------------------------------------------------
    panel = window.tags_panel
    (a, _), (b, _), (c, _) = tags[:3]
    steps: list[tuple[str, Callable[[], None]]] = [
        ("include", lambda: panel.set_tag_state(a, "include")),
        ("exclude", lambda: panel.set_tag_state(c, "exclude")),
        ("include_second", lambda: panel.set_tag_state(b, "include")),
        ("any", lambda: panel.set_match_any(True)),
        ("clear", window.clear_filters),
    ]
    each: dict[str, float] = {}
    for name, action in steps:
        spin_until(lambda: not window.browsing.counts_pending())
        t = time.perf_counter()
        action()
        spin_until(drawn(window))
        each[name] = round(time.perf_counter() - t, 4)
    out["filter_s"] = max(each.values())
    out["filter_each_s"] = each
    out["filter_one_photos"] = len(window.libraries.queries.photo_ids(PhotoFilter(tags=(a,))))

    # -- scrolling ------------------------------------------------------------------------
    grid = window.grid
    grid.scrollToTop()
    spin_until(drawn(window))
    bar = grid.verticalScrollBar()
    scrolls = []
    for _ in range(3):
        t = time.perf_counter()
        bar.setValue(bar.value() + bar.pageStep())
        spin_until(drawn(window))
        scrolls.append(time.perf_counter() - t)
    out["scroll_s"] = round(max(scrolls), 4)
    out["scroll_median_s"] = round(statistics.median(scrolls), 4)

    # -- the worker re-decides tags while the window runs ---------------------------------
    replies: list[Any] = []
    window.libraries.correction_done.connect(replies.append)
    searched: list[Any] = []
    window.browsing.search_done.connect(searched.append)
    # The corrections are chosen first: the benchmark's own queries must not run in the
    # GUI thread while the probe measures it.
    ids = window.model.ids
    planned = []
    for k, (tag_id, tag_name) in enumerate(tags):
        pid = int(ids[(k * 7919) % len(ids)])
        action = "accept" if k % 2 == 0 else "reject"
        if action == "reject":
            carried = window.libraries.queries.photo_ids(PhotoFilter(tags=(tag_id,)))
            pid = int(carried[len(carried) // 2])
        planned.append(((pid,), tag_name, action))
    probe.start()
    t = time.perf_counter()
    corrections = 0
    for photo_ids, tag_name, action in planned:
        window.libraries.correct(photo_ids, tag_name, action)
        corrections += 1
    spin_until(lambda: len(replies) == corrections, timeout=600)
    spin_until(
        lambda: not window.browsing.requery_pending() and not window.browsing.counts_pending()
    )
    out["redecide_s"] = round(time.perf_counter() - t, 2)
    out["correction_reply_s"] = [round(r.seconds, 3) for r in replies]
    out["correction_errors"] = [r.error for r in replies if r.error]
    blocked_redecide = probe.stop()
    probe.start()
    window.search.setText(tags[3][1])
    t = time.perf_counter()
    window.run_search()
    spin_until(lambda: bool(searched), timeout=600)
    spin_until(drawn(window))
    out["first_search_s"] = round(time.perf_counter() - t, 2)
    out["search_error"] = searched[0].error
    blocked_search = probe.stop()
    out["redecide_max_blocked_ms"] = blocked_redecide
    out["search_max_blocked_ms"] = blocked_search
    out["max_blocked_ms"] = max(blocked_redecide, blocked_search)


def measure_tagging(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """A small real library tagged by the golden model, with the probe running."""
    from PIL import Image
    from PySide6.QtCore import QSettings

    from albumtagger.app.window import MainWindow
    from albumtagger.config import load_settings

    folder = work / "real"
    rng = np.random.default_rng(5)
    for i in range(args.real_photos):
        w, h = 320, 240
        base = rng.integers(0, 255, size=3)
        grad = np.linspace(0, 1, w)[None, :, None] * rng.integers(0, 120, size=3)
        pixels = np.clip(base + grad + rng.integers(0, 60, size=(h, w, 3)), 0, 255)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels.astype(np.uint8), "RGB").save(folder / f"photo_{i:03d}.jpg")
    os.environ.update(
        {
            "ALBUMTAGGER_MODEL": str(args.model),
            "ALBUMTAGGER_DEVICE": "cpu",
            "ALBUMTAGGER_DTYPE": "float32",
            "ALBUMTAGGER_MIN_IMAGE_TOKENS": "4",
            "ALBUMTAGGER_MAX_IMAGE_TOKENS": "16",
            "ALBUMTAGGER_BATCH_SIZE": "8",
            "ALBUMTAGGER_CACHE_DIR": str(work / "real-cache"),
        }
    )
    qsettings = QSettings(str(work / "qt-real.ini"), QSettings.Format.IniFormat)
    probe = Probe()
    t = time.perf_counter()
    window = MainWindow(load_settings(), qsettings)  # building a window: `startup_...`
    try:
        window.resize(1400, 900)
        window.show()
        probe.start()
        window.open_folder(folder)

        def finished() -> bool:
            p = window.libraries.last_progress
            return p is not None and p.finished and p.job == "index"

        # Loading the model once (importing torch loads large native libraries while
        # holding the GIL) is measured apart from tagging itself.
        spin_until(lambda: window.libraries.model_state == "ready" or finished(), timeout=600)
        loading = probe.stop()
        probe.start()
        spin_until(finished, timeout=600)
        return {
            "tagging_photos": args.real_photos,
            "tagging_s": round(time.perf_counter() - t, 2),
            "model_load_max_blocked_ms": loading,
            "tagging_max_blocked_ms": probe.stop(),
        }
    finally:
        window.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=int, default=100_000)
    parser.add_argument("--tags", type=int, default=300)
    parser.add_argument("--dir", type=Path, required=True, help="where the library is built")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--real-photos", type=int, default=0, metavar="N")
    parser.add_argument(
        "--model", type=Path, default=REPO / "tests" / "data" / "gme-golden" / "model"
    )
    args = parser.parse_args(argv)

    from PySide6.QtWidgets import QApplication

    work = Path(tempfile.mkdtemp(prefix="albumtagger-app-bench-"))
    os.environ["ALBUMTAGGER_CONFIG"] = str(work / "config.toml")
    os.environ["ALBUMTAGGER_DATA_DIR"] = str(work / "data")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    app = QApplication.instance() or QApplication([])
    out: dict[str, Any] = {"photos": args.photos, "tags": args.tags}
    try:
        out.update(measure_large(args, work))
        if args.real_photos:
            out.update(measure_tagging(args, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)  # the library's copy: half a GB at 100k
    out["platform"] = os.environ.get("QT_QPA_PLATFORM")
    out["cpu"] = os.cpu_count()
    out["python"] = sys.version.split()[0]
    del app
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
