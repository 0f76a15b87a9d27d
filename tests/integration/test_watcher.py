"""The folder watcher with real files and real filesystem events.

Three layers: `FolderWatcher` + `apply_changes` on their own (no model), the watch
loop with a stand-in for the tagging pipeline (fast, no model), and end to end with
the golden checkpoint (skipped until the encoder is there).
"""

from __future__ import annotations

import errno
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from albumtagger.config import Settings
from albumtagger.library import fs_events as watcher_mod
from albumtagger.library.folder import Library, open_library
from albumtagger.library.fs_events import ChangeSet, FolderWatcher, Move, apply_changes
from albumtagger.library.scanner import (
    CancelToken,
)
from albumtagger.service import watching
from tests.conftest import GOLDEN_MODEL, REPO, accept_tag, make_photo, scan_and_read

QUIET = 0.3
SMALL = (64, 48)
HAVE_ENCODER = importlib.util.find_spec("albumtagger.model.encoder") is not None


# -- helpers ----------------------------------------------------------------------------


def wait_until(predicate: Callable[[], object], timeout: float = 20.0, step: float = 0.05):
    """Poll `predicate` until it is truthy (returned) or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(step)


def collect(
    watcher: FolderWatcher, done: Callable[[list[ChangeSet]], bool], timeout: float = 15.0
) -> list[ChangeSet]:
    """Change sets from `watcher` until `done(sets)` holds."""
    sets: list[ChangeSet] = []
    deadline = time.monotonic() + timeout
    while not done(sets):
        if time.monotonic() > deadline:
            raise AssertionError(f"watcher did not deliver in {timeout} s: {sets}")
        changes = watcher.poll_changes(0.2)
        if changes:
            sets.append(changes)
    return sets


def settled(sets: list[ChangeSet]) -> list[str]:
    return [p for c in sets for p in c.settled]


def index_now(library: Library) -> None:
    """Scan and read every pending photo, marking it ok (what tagging would do)."""
    scan_and_read(library)


def tags_of(library: Library, path: str) -> list[tuple[str, str]]:
    row = library.store.photo_by_path(path)
    assert row is not None, path
    return sorted((t.name, t.state) for t in library.store.photo_tags([row.id]))


def status_of(library: Library, path: str) -> str | None:
    row = library.store.photo_by_path(path)
    return None if row is None else row.status


def write_in_chunks(source: bytes, dest: Path, chunks: int, pause: float) -> float:
    """Write `source` to `dest` piece by piece; returns when the last byte was written."""
    step = -(-len(source) // chunks)
    with open(dest, "wb") as f:
        for i in range(0, len(source), step):
            f.write(source[i : i + step])
            f.flush()
            os.fsync(f.fileno())
            time.sleep(pause)
    return time.monotonic()


@pytest.fixture
def watch_root(tmp_path: Path) -> Path:
    folder = tmp_path / "Photos"
    make_photo(folder / "a.jpg", 1, SMALL)
    make_photo(folder / "trip" / "b.png", 2, SMALL)
    make_photo(folder / "trip" / "deep" / "c.jpg", 3, SMALL)
    return folder


@pytest.fixture
def watch_library(watch_root: Path, tmp_path: Path) -> Iterator[Library]:
    library = open_library(watch_root, tmp_path / "data")
    yield library
    library.close()


@pytest.fixture
def watch_watcher(watch_root: Path) -> Iterator[FolderWatcher]:
    watcher = FolderWatcher(watch_root, quiet_seconds=QUIET)
    watcher.start()
    yield watcher
    watcher.stop()


# -- FolderWatcher and apply_changes ------------------------------------------------------


def test_file_written_in_chunks_settles_once_after_the_copy(
    watch_watcher: FolderWatcher, watch_root: Path, tmp_path: Path
) -> None:
    data = make_photo(tmp_path / "src.jpg", 7, (320, 240)).read_bytes()
    sets: list[ChangeSet] = []
    stop = threading.Event()

    def consume() -> None:
        while not stop.is_set():
            changes = watch_watcher.poll_changes(0.1)
            if changes.settled:
                sets.append(changes)
                for p in changes.settled:
                    assert (watch_root / p).stat().st_size == len(data), "read before complete"

    consumer = threading.Thread(target=consume)
    consumer.start()
    try:
        finished = write_in_chunks(data, watch_root / "new.jpg", chunks=20, pause=0.1)
        wait_until(lambda: settled(sets), timeout=10)
        settled_at = time.monotonic()
        time.sleep(3 * QUIET)  # nothing more may come
    finally:
        stop.set()
        consumer.join()
    assert settled(sets) == ["new.jpg"]
    assert settled_at - finished >= QUIET * 0.9


def test_burst_of_files_coalesced_and_each_settled_once(
    watch_watcher: FolderWatcher, watch_root: Path, tmp_path: Path
) -> None:
    staging = tmp_path / "staging"
    sources = [make_photo(staging / f"p{i:04d}.jpg", 100 + i, (16, 16)) for i in range(1000)]
    target = watch_root / "dropped"
    target.mkdir()
    for src in sources:
        shutil.copy(src, target / src.name)
    sets = collect(watch_watcher, lambda s: len(settled(s)) >= 1000, timeout=30)
    time.sleep(2 * QUIET)
    sets.append(watch_watcher.changes())
    paths = settled(sets)
    assert len(paths) == len(set(paths)) == 1000
    assert set(paths) == {f"dropped/{s.name}" for s in sources}
    assert len(sets) < 50, "a burst must be coalesced, not handed out event by event"


def test_sidecar_hidden_and_non_photo_files_are_ignored(
    watch_watcher: FolderWatcher, watch_root: Path
) -> None:
    side = watch_root / ".albumtagger"
    side.mkdir(exist_ok=True)
    (side / "library.sqlite-wal").write_bytes(b"x" * 100)
    make_photo(side / "thumb.jpg", 5, SMALL)
    make_photo(watch_root / ".hidden.jpg", 6, SMALL)
    (watch_root / "notes.txt").write_text("hello")
    make_photo(watch_root / "real.jpg", 8, SMALL)
    sets = collect(watch_watcher, lambda s: bool(settled(s)))
    time.sleep(2 * QUIET)
    sets.append(watch_watcher.changes())
    assert settled(sets) == ["real.jpg"]


def test_moves_keep_identity_and_deletes_mark_missing(
    watch_library: Library, watch_root: Path, tmp_path: Path
) -> None:
    index_now(watch_library)
    accept_tag(watch_library, "a.jpg")
    accept_tag(watch_library, "trip/deep/c.jpg", "beach")
    ids = {r.path: r.id for r in watch_library.store.photos()}
    with FolderWatcher(watch_root, quiet_seconds=QUIET) as watcher:
        (watch_root / "renamed").mkdir()
        os.rename(watch_root / "a.jpg", watch_root / "renamed" / "x.jpg")
        os.rename(watch_root / "trip", watch_root / "travel")
        os.rename(watch_root / "travel" / "b.png", tmp_path / "b-outside.png")
        sets = collect(watcher, lambda s: any(c.deleted for c in s))
        summary = apply_changes(watch_library, _merge(sets))
    # A move into a folder made a moment ago can outrun its watch: it then shows as a
    # delete plus a new file, and reading the new file merges it back by content hash.
    index_now(watch_library)
    store = watch_library.store
    assert store.photo_by_path("renamed/x.jpg").id == ids["a.jpg"]
    assert store.photo_by_path("travel/deep/c.jpg").id == ids["trip/deep/c.jpg"]
    assert tags_of(watch_library, "renamed/x.jpg") == [("dog", "accepted")]
    assert tags_of(watch_library, "travel/deep/c.jpg") == [("beach", "accepted")]
    assert status_of(watch_library, "travel/b.png") == "missing"
    assert store.photo_by_path("travel/b.png").id == ids["trip/b.png"]
    assert summary.moved >= 1 and summary.missing >= 1
    assert store.photo_by_path("a.jpg") is None


def test_apply_checks_the_filesystem(watch_library: Library, watch_root: Path) -> None:
    index_now(watch_library)
    make_photo(watch_root / "late.jpg", 20, SMALL)
    changes = ChangeSet(
        settled=["ghost.jpg", "late.jpg"],  # created, then gone again; really there
        deleted=["a.jpg"],  # reported deleted but still there
        deleted_dirs=["trip"],  # reported deleted but still there
    )
    summary = apply_changes(watch_library, changes)
    assert summary.added == 1 and summary.missing == 0 and summary.ignored == 1
    assert status_of(watch_library, "late.jpg") == "pending"
    assert status_of(watch_library, "ghost.jpg") is None
    assert status_of(watch_library, "a.jpg") == "ok"


def test_rename_over_another_photo_keeps_the_moved_photos_tags(
    watch_library: Library, watch_root: Path
) -> None:
    index_now(watch_library)
    accept_tag(watch_library, "a.jpg")
    moved_id = watch_library.store.photo_by_path("a.jpg").id
    os.replace(watch_root / "a.jpg", watch_root / "trip" / "deep" / "c.jpg")
    apply_changes(watch_library, ChangeSet(moves=[Move("a.jpg", "trip/deep/c.jpg")]))
    index_now(watch_library)  # reading the destination merges it into the moved row
    row = watch_library.store.photo_by_path("trip/deep/c.jpg")
    assert row.id == moved_id and row.status == "ok"
    assert tags_of(watch_library, "trip/deep/c.jpg") == [("dog", "accepted")]


def test_nothing_is_written_while_the_root_is_gone(
    watch_library: Library, watch_root: Path, tmp_path: Path
) -> None:
    index_now(watch_library)
    with FolderWatcher(watch_root, quiet_seconds=QUIET) as watcher:
        away = tmp_path / "away"
        os.rename(watch_root, away)
        assert wait_until(lambda: watcher.changes().root_gone, timeout=5)
        summary = apply_changes(watch_library, ChangeSet(deleted=["a.jpg"], deleted_dirs=["trip"]))
        assert summary.offline and summary.missing == 0
        os.rename(away, watch_root)
        assert not watcher.changes().root_gone
    assert {r.status for r in watch_library.store.photos()} == {"ok"}


def test_new_folder_is_scanned(
    watch_watcher: FolderWatcher, watch_root: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "card"
    for i in range(5):
        make_photo(outside / "DCIM" / f"img{i}.jpg", 30 + i, SMALL)
    shutil.move(str(outside), str(watch_root / "card"))  # a whole tree moved in at once
    sets = collect(watch_watcher, lambda s: len(settled(s)) >= 5)
    assert sorted(settled(sets)) == [f"card/DCIM/img{i}.jpg" for i in range(5)]


def test_root_that_is_a_symbolic_link(watch_root: Path, tmp_path: Path) -> None:
    link = tmp_path / "Pictures"
    link.symlink_to(watch_root, target_is_directory=True)
    with FolderWatcher(link, quiet_seconds=QUIET) as watcher:
        make_photo(link / "top.jpg", 44, SMALL)
        make_photo(link / "trip" / "inner.jpg", 45, SMALL)
        sets = collect(watcher, lambda s: len(settled(s)) >= 2)
    assert sorted(settled(sets)) == ["top.jpg", "trip/inner.jpg"]


def test_handler_error_does_not_stop_later_events(
    watch_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = FolderWatcher._record
    failures: list[str] = []

    def flaky(self: FolderWatcher, event) -> None:
        if "boom" in str(event.src_path):
            failures.append(str(event.src_path))
            raise RuntimeError("handler bug")
        original(self, event)

    monkeypatch.setattr(FolderWatcher, "_record", flaky)
    with FolderWatcher(watch_root, quiet_seconds=QUIET) as watcher:
        make_photo(watch_root / "boom.jpg", 40, SMALL)
        wait_until(lambda: failures)
        make_photo(watch_root / "after.jpg", 41, SMALL)
        sets = collect(watcher, lambda s: "after.jpg" in settled(s))
        assert watcher.is_alive()
        assert watcher.handler_errors >= 1
        assert any(c.rescan for c in sets), "a lost event asks for a rescan"


def test_dead_observer_is_noticed_and_restarted(
    watch_watcher: FolderWatcher, watch_root: Path
) -> None:
    watch_watcher._observer.stop()  # simulate the observer dying
    wait_until(lambda: not watch_watcher.is_alive(), timeout=5)
    watch_watcher.restart()
    assert watch_watcher.is_alive()
    assert watch_watcher.changes().rescan
    make_photo(watch_root / "later.jpg", 42, SMALL)
    assert "later.jpg" in settled(collect(watch_watcher, lambda s: bool(settled(s))))


def test_inotify_limit_falls_back_to_polling(
    watch_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_watches(self: FolderWatcher):
        raise OSError(errno.ENOSPC, "inotify watch limit reached")

    monkeypatch.setattr(FolderWatcher, "_make_native_observer", no_watches)
    with FolderWatcher(watch_root, quiet_seconds=QUIET, poll_seconds=0.2) as watcher:
        assert watcher.polling and "inotify" in (watcher.fallback_reason or "")
        make_photo(watch_root / "polled.jpg", 43, SMALL)
        os.rename(watch_root / "a.jpg", watch_root / "a2.jpg")
        sets = collect(watcher, lambda s: "polled.jpg" in settled(s))
        assert Move("a.jpg", "a2.jpg") in [m for c in sets for m in c.moves]


def test_partial_inotify_coverage_falls_back_to_polling(
    watch_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    counts = iter([10, 10])  # no watch added although 3 folders need one
    monkeypatch.setattr(watcher_mod, "inotify_watch_count", lambda: next(counts))
    with FolderWatcher(watch_root, quiet_seconds=QUIET, poll_seconds=0.2) as watcher:
        assert watcher.polling and "watch limit" in (watcher.fallback_reason or "")


def test_network_filesystem_is_polled(watch_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(watcher_mod, "filesystem_type", lambda path: "nfs4")
    with FolderWatcher(watch_root, quiet_seconds=QUIET, poll_seconds=0.2) as watcher:
        assert watcher.polling and "nfs4" in (watcher.fallback_reason or "")


def test_filesystem_type_of_a_local_folder(tmp_path: Path) -> None:
    if not Path("/proc/self/mountinfo").exists():
        pytest.skip("no /proc/self/mountinfo")
    assert watcher_mod.filesystem_type(tmp_path)


def _merge(sets: list[ChangeSet]) -> ChangeSet:
    out = ChangeSet()
    for c in sets:
        out.settled += c.settled
        out.moves += c.moves
        out.deleted += c.deleted
        out.deleted_dirs += c.deleted_dirs
        out.rescan |= c.rescan
    return out


# -- the watch loop, with a stand-in for the model ------------------------------------------


class Running:
    """`watch_folder` on a thread of its own, stopped (and checked to stop) on exit."""

    def __init__(self, library: Library, settings: Settings, **kwargs: object) -> None:
        self.library = library
        self.cancel = CancelToken()
        self.messages: list[str] = []
        self.result: object = None
        self.error: BaseException | None = None

        def run() -> None:
            try:
                self.result = watching.watch_folder(
                    library, settings, self.cancel, on_message=self.messages.append, **kwargs
                )
            except BaseException as exc:
                self.error = exc

        self.thread = threading.Thread(target=run, name="watch-test")

    def __enter__(self) -> Running:
        self.thread.start()
        return self

    def stop(self) -> float:
        start = time.monotonic()
        self.cancel.cancel()
        self.thread.join(timeout=10)
        assert not self.thread.is_alive(), "watch_folder did not return after cancel"
        return time.monotonic() - start

    def __exit__(self, *exc: object) -> None:
        if self.thread.is_alive():
            self.stop()
        if self.error is not None and exc[0] is None:
            raise self.error


def _fast_settings(**watch: object) -> Settings:
    settings = Settings()
    settings.watch.quiet_seconds = QUIET
    for key, value in watch.items():
        setattr(settings.watch, key, value)
    return settings


def test_watch_loop_keeps_the_sidecar_in_line(
    watch_library: Library, watch_root: Path, tmp_path: Path, watch_fake_tagging: list[str]
) -> None:
    lib = watch_library
    with Running(lib, _fast_settings()) as run:
        wait_until(lambda: len(watch_fake_tagging) == 3)
        accept_tag(lib, "a.jpg")
        data = make_photo(tmp_path / "src.jpg", 50, (320, 240)).read_bytes()
        write_in_chunks(data, watch_root / "new.jpg", chunks=10, pause=0.1)
        wait_until(lambda: status_of(lib, "new.jpg") == "ok")
        os.rename(watch_root / "a.jpg", watch_root / "trip" / "a.jpg")
        wait_until(lambda: status_of(lib, "trip/a.jpg") == "ok")
        (watch_root / "trip" / "b.png").unlink()
        wait_until(lambda: status_of(lib, "trip/b.png") == "missing")
        seconds = run.stop()
    assert seconds < 1.5
    assert sorted(watch_fake_tagging) == ["a.jpg", "new.jpg", "trip/b.png", "trip/deep/c.jpg"]
    assert tags_of(lib, "trip/a.jpg") == [("dog", "accepted")]
    assert lib.store.photo_by_path("a.jpg") is None
    assert run.result.moved == 1 and run.result.missing == 1


def test_watch_loop_root_away_and_back(
    watch_library: Library, watch_root: Path, tmp_path: Path, watch_fake_tagging: list[str]
) -> None:
    lib = watch_library
    with Running(lib, _fast_settings()) as run:
        wait_until(lambda: len(watch_fake_tagging) == 3)
        accept_tag(lib, "a.jpg")
        away = tmp_path / "elsewhere"
        os.rename(watch_root, away)
        wait_until(lambda: any("offline" in m for m in run.messages), timeout=5)
        make_photo(away / "while-away.jpg", 51, SMALL)  # lands in the moved folder
        time.sleep(3 * QUIET)
        assert {r.status for r in lib.store.photos()} == {"ok"}
        os.rename(away, watch_root)
        wait_until(lambda: any("back" in m for m in run.messages), timeout=5)
        wait_until(lambda: status_of(lib, "while-away.jpg") == "ok")
        make_photo(watch_root / "after.jpg", 52, SMALL)
        wait_until(lambda: status_of(lib, "after.jpg") == "ok")
    assert {r.status for r in lib.store.photos()} == {"ok"}
    assert tags_of(lib, "a.jpg") == [("dog", "accepted")]
    assert run.result.missing == 0 and run.result.offline_periods == 1


def test_watch_loop_survives_errors_and_a_dead_observer(
    watch_library: Library,
    watch_root: Path,
    watch_fake_tagging: list[str],
    watch_watchers: list[FolderWatcher],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lib = watch_library
    original = watching.apply_changes
    calls = {"n": 0}

    def failing_once(library: Library, changes: ChangeSet):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("apply bug")
        return original(library, changes)

    monkeypatch.setattr(watching, "apply_changes", failing_once)
    monkeypatch.setattr(watching, "MAX_BACKOFF_S", 0.2)
    with Running(lib, _fast_settings()) as run:
        wait_until(lambda: len(watch_fake_tagging) == 3)
        make_photo(watch_root / "one.jpg", 53, SMALL)
        wait_until(lambda: any("apply bug" in m for m in run.messages))
        wait_until(lambda: status_of(lib, "one.jpg") == "ok")  # the rescan after the error
        make_photo(watch_root / "two.jpg", 54, SMALL)
        wait_until(lambda: status_of(lib, "two.jpg") == "ok")
        (watcher,) = watch_watchers
        watcher._observer.stop()  # the observer dies
        wait_until(lambda: any("restarting" in m for m in run.messages), timeout=5)
        make_photo(watch_root / "three.jpg", 55, SMALL)
        wait_until(lambda: status_of(lib, "three.jpg") == "ok")
    assert run.result.errors == 1 and run.result.restarts == 1
    assert sorted(watch_fake_tagging) == sorted(
        ["a.jpg", "trip/b.png", "trip/deep/c.jpg", "one.jpg", "two.jpg", "three.jpg"]
    )


@pytest.fixture
def watch_watchers(monkeypatch: pytest.MonkeyPatch) -> list[FolderWatcher]:
    """The FolderWatchers the watch loop creates."""
    made: list[FolderWatcher] = []

    class Recorded(FolderWatcher):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(watching, "FolderWatcher", Recorded)
    return made


def test_watch_loop_periodic_reconcile_catches_missed_changes(
    watch_library: Library,
    watch_root: Path,
    watch_fake_tagging: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lib = watch_library
    monkeypatch.setattr(FolderWatcher, "_record", lambda self, event: None)  # deaf watcher
    with Running(lib, _fast_settings(reconcile_seconds=0.5, poll_seconds=0.2)) as run:
        wait_until(lambda: len(watch_fake_tagging) == 3)
        make_photo(watch_root / "unseen.jpg", 56, SMALL)
        wait_until(lambda: status_of(lib, "unseen.jpg") == "ok")
        make_photo(watch_root / "unseen-too.jpg", 57, SMALL)
        wait_until(lambda: status_of(lib, "unseen-too.jpg") == "ok")
        wait_until(lambda: any("no change events" in m for m in run.messages))
    assert run.result.polling


# -- end to end with the golden checkpoint ------------------------------------------------

golden = pytest.mark.skipif(not HAVE_ENCODER, reason="albumtagger.model.encoder not there yet")


class CountingEncoder:
    """The real encoder, counting the photos it embeds."""

    def __init__(self, inner: object) -> None:
        self._inner = inner
        self.embedded = 0
        self._lock = threading.Lock()

    def embed_prepared(self, prepared, *args, **kwargs):
        with self._lock:
            self.embedded += len(prepared)
        return self._inner.embed_prepared(prepared, *args, **kwargs)

    def __getattr__(self, name: str):
        return getattr(self._inner, name)


@pytest.fixture(scope="module")
def watch_encoder() -> object:
    from albumtagger.model.loading import load_encoder

    return load_encoder(_golden_settings())


def _golden_settings() -> Settings:
    settings = Settings()
    m = settings.model
    m.model, m.device, m.dtype = str(GOLDEN_MODEL), "cpu", "float32"
    m.min_image_tokens, m.max_image_tokens, m.batch_size = 4, 16, 16
    settings.watch.quiet_seconds = QUIET
    return settings


def _has_auto_tags(library: Library, path: str) -> bool:
    row = library.store.photo_by_path(path)
    return row is not None and row.status == "ok" and bool(library.store.photo_tags([row.id]))


@golden
def test_golden_chunked_copy_is_tagged_once_after_it_is_complete(
    watch_library: Library, watch_root: Path, tmp_path: Path, watch_encoder: object
) -> None:
    lib = watch_library
    encoder = CountingEncoder(watch_encoder)
    settings = _golden_settings()
    settings.watch.quiet_seconds = 0.5
    data = make_photo(tmp_path / "src.jpg", 60, (320, 240)).read_bytes()
    with Running(lib, settings, encoder=encoder):
        wait_until(lambda: all(_has_auto_tags(lib, p) for p in ("a.jpg", "trip/b.png")), 60)
        before = encoder.embedded
        write_in_chunks(data, watch_root / "copied.jpg", chunks=30, pause=0.1)  # ~3 s
        wait_until(lambda: _has_auto_tags(lib, "copied.jpg"), 30)
        time.sleep(4 * settings.watch.quiet_seconds)
    row = lib.store.photo_by_path("copied.jpg")
    assert encoder.embedded - before == 1
    assert row.size == len(data) and row.status == "ok" and row.error is None


@golden
def test_golden_thousand_files_dropped_at_once_are_tagged_exactly_once(
    watch_library: Library, watch_root: Path, tmp_path: Path, watch_encoder: object
) -> None:
    lib = watch_library
    encoder = CountingEncoder(watch_encoder)
    staging = tmp_path / "staging"
    sources = [make_photo(staging / f"p{i:04d}.jpg", 1000 + i, (32, 24)) for i in range(1000)]
    with Running(lib, _golden_settings(), encoder=encoder):
        wait_until(lambda: lib.store.count_photos()["ok"] == 3, 60)
        before = encoder.embedded
        for src in sources:
            shutil.copy(src, watch_root / src.name)
        wait_until(lambda: lib.store.count_photos()["ok"] == 1003, 180, step=0.2)
        time.sleep(3 * QUIET)
    assert encoder.embedded - before == 1000
    rows = lib.store.photos()
    assert len(rows) == 1003 and {r.status for r in rows} == {"ok"}
    tagged = {t.photo_id for t in lib.store.photo_tags()}
    assert all(r.id in tagged for r in rows)


@golden
def test_golden_rename_move_delete_and_root_away(
    watch_library: Library, watch_root: Path, tmp_path: Path, watch_encoder: object
) -> None:
    lib = watch_library
    encoder = CountingEncoder(watch_encoder)
    with Running(lib, _golden_settings(), encoder=encoder) as run:
        wait_until(lambda: lib.store.count_photos()["ok"] == 3, 60)
        with lib.store.transaction():
            lib.store.add_tags([("my dog", ["my dog"])])
        tag = lib.store.tag_by_name("my dog")
        lib.store.set_user_decision(
            lib.store.photo_by_path("a.jpg").id, tag.id, "accepted", "user", None
        )
        paths = ("a.jpg", "trip/b.png", "trip/deep/c.jpg")
        before = {p: tags_of(lib, p) for p in paths}
        ids = {r.path: r.id for r in lib.store.photos()}
        embedded = encoder.embedded
        os.rename(watch_root / "a.jpg", watch_root / "renamed.jpg")  # rename
        os.rename(watch_root / "trip" / "deep", watch_root / "deeper")  # folder move
        wait_until(lambda: status_of(lib, "deeper/c.jpg") == "ok")
        wait_until(lambda: status_of(lib, "renamed.jpg") == "ok")
        (watch_root / "trip" / "b.png").unlink()  # delete
        wait_until(lambda: status_of(lib, "trip/b.png") == "missing")
        away = tmp_path / "unplugged"
        os.rename(watch_root, away)  # the root goes away...
        wait_until(lambda: any("offline" in m for m in run.messages), timeout=5)
        time.sleep(3 * QUIET)
        os.rename(away, watch_root)  # ...and comes back
        wait_until(lambda: any("back" in m for m in run.messages), timeout=5)
        time.sleep(3 * QUIET)
        now = {p: tags_of(lib, p) for p in ("renamed.jpg", "trip/b.png", "deeper/c.jpg")}
        make_photo(watch_root / "after.jpg", 70, SMALL)  # and work goes on
        wait_until(lambda: _has_auto_tags(lib, "after.jpg"), 30)
    assert lib.store.photo_by_path("renamed.jpg").id == ids["a.jpg"]
    assert lib.store.photo_by_path("deeper/c.jpg").id == ids["trip/deep/c.jpg"]
    assert lib.store.photo_by_path("trip/b.png").id == ids["trip/b.png"]
    assert now["renamed.jpg"] == before["a.jpg"] and len(before["a.jpg"]) > 1
    assert now["deeper/c.jpg"] == before["trip/deep/c.jpg"]
    assert now["trip/b.png"] == before["trip/b.png"]  # missing, tags kept
    assert ("my dog", "accepted") in tags_of(lib, "renamed.jpg")
    assert status_of(lib, "trip/b.png") == "missing"
    assert {status_of(lib, p) for p in ("renamed.jpg", "deeper/c.jpg")} == {"ok"}
    assert encoder.embedded - embedded == 1  # only the new photo: moves reuse vectors
    assert run.result.offline_periods == 1 and run.result.missing == 1


@golden
def test_golden_handler_error_does_not_stop_later_events(
    watch_library: Library,
    watch_root: Path,
    watch_encoder: object,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lib = watch_library
    original = FolderWatcher._record

    def flaky(self: FolderWatcher, event) -> None:
        if "boom" in str(event.src_path):
            raise RuntimeError("handler bug")
        original(self, event)

    monkeypatch.setattr(FolderWatcher, "_record", flaky)
    with Running(lib, _golden_settings(), encoder=CountingEncoder(watch_encoder)):
        wait_until(lambda: lib.store.count_photos()["ok"] == 3, 60)
        make_photo(watch_root / "boom.jpg", 71, SMALL)
        make_photo(watch_root / "later.jpg", 72, SMALL)
        wait_until(lambda: _has_auto_tags(lib, "later.jpg"), 30)
        wait_until(lambda: _has_auto_tags(lib, "boom.jpg"), 30)  # the rescan finds it


@golden
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_cli_watch_runs_headless_and_stops_cleanly(
    watch_root: Path, golden_env: dict[str, str], signum: int
) -> None:
    env = {**os.environ, "ALBUMTAGGER_WATCH_QUIET_SECONDS": str(QUIET)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "albumtagger", "watch", str(watch_root)],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()  # printed once the library is open
        assert "Watching" in first, first
        with open_library(watch_root, Path(golden_env["ALBUMTAGGER_DATA_DIR"])) as library:
            wait_until(lambda: library.store.count_photos()["ok"] == 3, 120)
            make_photo(watch_root / "live.jpg", 80, SMALL)
            wait_until(lambda: _has_auto_tags(library, "live.jpg"), 60)
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
