"""Watching a photo folder: filesystem events as hints, the folder as the truth.

`FolderWatcher` wraps a watchdog observer (inotify, FSEvents, ... or polling). Its event
handler only records hints, cheaply and under a lock: which paths were touched and
when, which were deleted, what moved where, which folders appeared. `changes()` turns
the hints into a coalesced `ChangeSet`: a touched file is *settled* once it has been
quiet for `quiet_seconds` and its size and mtime did not change between two looks, so
a photo being copied is handed over once, after the copy ends. Moves are handed over at
once (a rename is complete when it is seen), deletions after the quiet period.

`apply_changes` brings the sidecar in line with a `ChangeSet`, checking every hint
against the filesystem: a moved photo keeps its row (and so its tags), a created path
that is gone again is ignored, a deleted path that exists is not marked missing, and
nothing is written at all while the root is offline.

The watcher does not follow symbolic links to folders (inotify does not, and polling
looks at the links themselves): the reconcile scans cover what lies behind them. A
settled photo or a new folder is taken only where the scan would follow it
(`scanner.link_refusal`).

The watcher never dies silently: a handler error is logged and the observer goes on;
`is_alive()` tells when the observer died (`restart()` brings it back and asks for a
full rescan); when inotify limits are hit or the folder is on a filesystem that gives
no events (network shares), it polls instead and says why (`fallback_reason`).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import stat
import threading
import time
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileAttribEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserverVFS

from albumtagger.library.db.store import PhotoRow
from albumtagger.library.folder import Library
from albumtagger.library.images import PHOTO_SUFFIXES
from albumtagger.library.scanner import UNREADABLE, link_refusal, storable, walk

log = logging.getLogger(__name__)

INOTIFY_LIMIT_ERRNOS = frozenset({errno.ENOSPC, errno.EMFILE})
"""What inotify says when the watch (ENOSPC) or instance (EMFILE) limit is reached."""

NO_EVENT_FILESYSTEMS = frozenset(
    {
        "nfs",
        "nfs4",
        "cifs",
        "smb3",
        "smbfs",
        "ncpfs",
        "9p",
        "afs",
        "ceph",
        "glusterfs",
        "lustre",
        "gpfs",
        "davfs",
        "vboxsf",
        "virtiofs",
        "prl_fs",
        "drvfs",
        "fuse.sshfs",
        "fuse.rclone",
        "fuse.s3fs",
        "fuse.gcsfuse",
        "fuse.davfs2",
        "fuse.vmhgfs-fuse",
        "fuse.glusterfs",
        "fuse.cephfs",
    }
)
"""Filesystems where changes made elsewhere (another machine, the host) raise no
inotify events: the watcher polls them."""


@dataclass(frozen=True)
class Move:
    """A rename or move inside the root (relative POSIX paths)."""

    src: str
    dest: str
    is_dir: bool = False


@dataclass
class ChangeSet:
    """Coalesced hints, ready to apply. Paths are relative to the root, POSIX style."""

    settled: list[str] = field(default_factory=list)
    """Created or modified files, quiet for the quiet period and stable in size and mtime."""
    moves: list[Move] = field(default_factory=list)
    """In the order they happened."""
    deleted: list[str] = field(default_factory=list)
    """Files reported deleted (or moved out of the root), quiet for the quiet period."""
    deleted_dirs: list[str] = field(default_factory=list)
    """Folders reported deleted or moved out of the root."""
    rescan: bool = False
    """Events may have been lost (observer restarted, queue overflow): scan the folder."""
    root_gone: bool = False
    """The root is not there, or is another folder than the one watched."""
    events: int = 0
    """Raw events coalesced into this change set."""

    def __bool__(self) -> bool:
        return bool(
            self.settled
            or self.moves
            or self.deleted
            or self.deleted_dirs
            or self.rescan
            or self.root_gone
        )


@dataclass
class ApplySummary:
    """What `apply_changes` did to the sidecar."""

    added: int = 0
    changed: int = 0
    returned: int = 0
    moved: int = 0
    missing: int = 0
    ignored: int = 0
    offline: bool = False

    @property
    def pending(self) -> int:
        """Photos that now wait to be read and tagged because of these changes."""
        return self.added + self.changed + self.returned

    def describe(self) -> str:
        parts = [
            f"{n} {what}"
            for n, what in (
                (self.added, "new"),
                (self.changed, "changed"),
                (self.returned, "back"),
                (self.moved, "moved"),
                (self.missing, "missing"),
            )
            if n
        ]
        return ", ".join(parts) if parts else "no changes"


@dataclass
class _Touched:
    """A created or modified file waiting to settle."""

    last_event: float
    signature: tuple[int, int] | None = None
    """(size, mtime_ns) at the last look."""
    signature_at: float = 0.0
    """When the last look saw that signature first."""


def is_photo_path(rel: str) -> bool:
    """A relative path the scanner would consider (no hidden part, a photo suffix)."""
    if not rel or rel == ".":
        return False
    parts = rel.split("/")
    if any(p.startswith(".") or p == "" for p in parts) or not storable(rel):
        return False
    return os.path.splitext(parts[-1])[1].lower() in PHOTO_SUFFIXES


def _visible_dir(rel: str) -> bool:
    return (
        bool(rel)
        and rel != "."
        and storable(rel)
        and not any(p.startswith(".") for p in rel.split("/"))
    )


def _under(path: str, folder: str) -> bool:
    return path.startswith(folder + "/")


class _Handler(FileSystemEventHandler):
    """Records events as hints on its watcher; never raises into the observer."""

    def __init__(self, watcher: FolderWatcher) -> None:
        super().__init__()
        self._watcher = weakref.ref(watcher)

    def dispatch(self, event: FileSystemEvent) -> None:
        watcher = self._watcher()
        if watcher is None:
            return
        try:
            watcher._record(event)
        except Exception:
            watcher._note_handler_error(event)


class _OverflowSpy(logging.Filter):
    """Notices watchdog's "inotify queue overflowed" warning (events were lost)."""

    def __init__(self) -> None:
        super().__init__()
        self.watchers: weakref.WeakSet[FolderWatcher] = weakref.WeakSet()

    def filter(self, record: logging.LogRecord) -> bool:
        if "overflow" in str(record.msg).lower():
            for watcher in list(self.watchers):
                watcher._note_overflow()
        return True


_overflow_spy = _OverflowSpy()
logging.getLogger("watchdog.observers.inotify_c").addFilter(_overflow_spy)


class FolderWatcher:
    """Watches one folder tree and hands out coalesced, settled changes.

    Thread-safe: the observer's thread records events, any one thread consumes them
    with `changes()` / `poll_changes()`. Call `start()` first and `stop()` at the end
    (or use it as a context manager).
    """

    def __init__(
        self,
        root: Path,
        *,
        quiet_seconds: float = 1.0,
        force_polling: bool = False,
        poll_seconds: float = 5.0,
        follow_links_outside: bool = False,
    ) -> None:
        self.root = Path(root).absolute()
        self.quiet_seconds = max(0.0, float(quiet_seconds))
        self.force_polling = force_polling
        self.poll_seconds = max(0.1, float(poll_seconds))
        self.follow_links_outside = follow_links_outside
        self.polling = False
        """True when the observer polls instead of getting events from the OS."""
        self.fallback_reason: str | None = None
        """Why the watcher polls although events were wanted (None: it does not)."""
        self.handler_errors = 0
        self._polling_reason: str | None = None
        self._watched = str(self.root)
        self._prefix = self._watched + os.sep
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._observer: BaseObserver | None = None
        self._root_id: tuple[int, int] | None = None
        self._touched: dict[str, _Touched] = {}
        self._deleted: dict[str, float] = {}
        self._deleted_dirs: dict[str, float] = {}
        self._moves: list[Move] = []
        self._new_dirs: list[str] = []
        self._rescan = False
        self._events = 0
        self.events_seen = 0
        """Raw events recorded since the start (for the 'no events' heuristic)."""

    # -- life cycle ---------------------------------------------------------------

    def start(self) -> None:
        """Start observing. Falls back to polling when events cannot be had.

        Raises OSError when the root cannot be watched at all (it is not there).
        """
        if self._observer is not None:
            return
        self._stopped.clear()
        st = os.stat(self.root)
        self._root_id = (st.st_dev, st.st_ino)
        # Watch the real folder: a root that is a symbolic link would otherwise get no
        # events for the files right in it. Event paths are relative to the real path.
        self._watched = os.path.realpath(self.root)
        self._prefix = self._watched.rstrip(os.sep) + os.sep
        reason = self._polling_reason
        if reason is None and self.force_polling:
            reason = "polling was asked for"
        elif reason is None:
            fstype = filesystem_type(self.root)
            if fstype in NO_EVENT_FILESYSTEMS:
                reason = f"the folder is on a {fstype} filesystem, which gives no change events"
        if reason is None:
            try:
                self._observer = self._start_native()
                self.polling = False
                self.fallback_reason = None
                _overflow_spy.watchers.add(self)
                return
            except _NativeUnavailable as exc:
                reason = str(exc)
        self._observer = self._start_polling()
        self.polling = True
        self.fallback_reason = None if self.force_polling else reason
        log.info("Watching %s by polling every %.1f s (%s)", self.root, self.poll_seconds, reason)

    def _start_native(self) -> BaseObserver:
        """The platform's event observer, started; `_NativeUnavailable` if it cannot be."""
        before = inotify_watch_count()
        dirs_before = _count_dirs(Path(self._watched)) if before is not None else 0
        observer: BaseObserver | None = None
        try:
            observer = self._make_native_observer()
            observer.schedule(_Handler(self), self._watched, recursive=True)
            observer.start()
        except OSError as exc:
            if observer is not None:
                _stop_quietly(observer)
            if exc.errno in INOTIFY_LIMIT_ERRNOS:
                raise _NativeUnavailable(
                    f"the system's inotify limit is reached ({exc.strerror or exc}); "
                    "raise fs.inotify.max_user_watches / max_user_instances to get live events"
                ) from None
            if not os.path.isdir(self.root):
                raise
            raise _NativeUnavailable(f"live events failed to start ({exc})") from None
        after = inotify_watch_count()
        if before is not None and after is not None:
            held = after - before
            if held < dirs_before and held < _count_dirs(Path(self._watched)):
                _stop_quietly(observer)
                raise _NativeUnavailable(
                    f"the system's inotify watch limit is reached (only {held} of "
                    f"{dirs_before} folders could be watched); raise "
                    "fs.inotify.max_user_watches to get live events"
                )
        return observer

    def _make_native_observer(self) -> BaseObserver:
        return Observer()

    def _start_polling(self) -> BaseObserver:
        # lstat: the snapshots do not go through links to folders (a link to / would
        # have every poll walk the whole disk), as inotify does not.
        observer = PollingObserverVFS(os.lstat, os.scandir, polling_interval=self.poll_seconds)
        observer.schedule(_Handler(self), self._watched, recursive=True)
        observer.start()
        return observer

    def stop(self) -> None:
        """Stop observing (idempotent); pending hints are kept."""
        observer, self._observer = self._observer, None
        _overflow_spy.watchers.discard(self)
        if observer is not None:
            _stop_quietly(observer)
        self._stopped.set()
        self._wake.set()

    def restart(self, *, rescan: bool = True) -> None:
        """Stop, forget all hints and start again; with `rescan`, ask for a full rescan
        (events were lost meanwhile) in the next change set."""
        self.stop()
        self._clear()
        self.start()
        with self._lock:
            self._rescan = rescan
        self._wake.set()

    def fall_back_to_polling(self, reason: str) -> None:
        """Poll from now on (events turned out not to come); asks for a full rescan."""
        self._polling_reason = reason
        self.restart()

    def is_alive(self) -> bool:
        """Whether the observer (and every part of it) is still running."""
        observer = self._observer
        if observer is None or not observer.is_alive():
            return False
        try:
            emitters = list(observer.emitters)
        except Exception:  # a watchdog without the attribute: trust the thread
            return True
        if not emitters or not all(e.is_alive() for e in emitters):
            return False
        fd_thread = getattr(observer, "_inotify_fd", None)
        return not (isinstance(fd_thread, threading.Thread) and not fd_thread.is_alive())

    def __enter__(self) -> FolderWatcher:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _clear(self) -> None:
        with self._lock:
            self._touched.clear()
            self._deleted.clear()
            self._deleted_dirs.clear()
            self._moves.clear()
            self._new_dirs.clear()
            self._events = 0

    # -- recording (observer thread) ------------------------------------------------

    def _rel(self, path: bytes | str) -> str | None:
        """The path relative to the root, POSIX style; None if outside it."""
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        if not path:
            return None
        if path == self._watched:
            return "."
        if not path.startswith(self._prefix):
            return None
        rel = path[len(self._prefix) :]
        return rel.replace(os.sep, "/") if os.sep != "/" else rel

    def _record(self, event: FileSystemEvent) -> None:
        """Turn one event into hints. Called on the observer thread."""
        if isinstance(event, (DirMovedEvent, FileMovedEvent)) and getattr(
            event, "is_synthetic", False
        ):
            return  # the contents of a moved folder: the folder's own move covers them
        if isinstance(event, DirMovedEvent):
            self._record_dir_move(self._rel(event.src_path), self._rel(event.dest_path))
            return
        if isinstance(event, FileMovedEvent):
            self._record_file_move(self._rel(event.src_path), self._rel(event.dest_path))
            return
        rel = self._rel(event.src_path)
        if rel is None:
            return
        now = time.monotonic()
        if isinstance(event, DirDeletedEvent):
            with self._lock:
                self._events += 1
                self.events_seen += 1
                if rel == ".":
                    self._touched.clear()
                elif _visible_dir(rel):
                    self._deleted_dirs[rel] = now
        elif isinstance(event, DirCreatedEvent):
            if _visible_dir(rel):
                with self._lock:
                    self._events += 1
                    self.events_seen += 1
                    self._new_dirs.append(rel)
                    self._deleted_dirs.pop(rel, None)
        elif isinstance(event, FileDeletedEvent):
            if is_photo_path(rel):
                with self._lock:
                    self._events += 1
                    self.events_seen += 1
                    self._touched.pop(rel, None)
                    self._deleted[rel] = now
        elif isinstance(
            event, (FileCreatedEvent, FileModifiedEvent, FileClosedEvent, FileAttribEvent)
        ):
            if is_photo_path(rel):
                with self._lock:
                    self._events += 1
                    self.events_seen += 1
                    self._touch(rel, now)
        else:
            return  # opened, closed without writing, folder modified: not a change
        self._wake.set()

    def _touch(self, rel: str, now: float) -> None:
        entry = self._touched.get(rel)
        if entry is None:
            self._touched[rel] = _Touched(now)
        else:
            entry.last_event = now
        self._deleted.pop(rel, None)

    def _record_file_move(self, src: str | None, dest: str | None) -> None:
        src_ok = src is not None and is_photo_path(src)
        dest_ok = dest is not None and is_photo_path(dest)
        if not src_ok and not dest_ok:
            return
        now = time.monotonic()
        with self._lock:
            self._events += 1
            self.events_seen += 1
            if src_ok and dest_ok:
                assert src is not None and dest is not None
                self._moves.append(Move(src, dest))
                self._touched.pop(src, None)
                self._touch(dest, now)
            elif src_ok:  # renamed to a name we do not consider, or out of the root
                assert src is not None
                self._touched.pop(src, None)
                self._deleted[src] = now
            else:  # a temporary or hidden name became a photo: a new file
                assert dest is not None
                self._touch(dest, now)
        self._wake.set()

    def _record_dir_move(self, src: str | None, dest: str | None) -> None:
        src_ok = src is not None and _visible_dir(src)
        dest_ok = dest is not None and _visible_dir(dest)
        if not src_ok and not dest_ok:
            return
        now = time.monotonic()
        with self._lock:
            self._events += 1
            self.events_seen += 1
            if src_ok and dest_ok:
                assert src is not None and dest is not None
                self._moves.append(Move(src, dest, is_dir=True))
                for rel in [p for p in self._touched if _under(p, src)]:
                    entry = self._touched.pop(rel)
                    self._touched[dest + rel[len(src) :]] = entry
                # A photo still being written when its folder moved may have had events
                # under the old name only: look at everything in the new place once.
                self._new_dirs.append(dest)
            elif src_ok:
                assert src is not None
                self._deleted_dirs[src] = now
            else:
                assert dest is not None
                self._new_dirs.append(dest)
        self._wake.set()

    def _note_handler_error(self, event: FileSystemEvent) -> None:
        self.handler_errors += 1
        log.exception("Error while handling %r; watching goes on", event)
        with contextlib.suppress(Exception), self._lock:
            self._rescan = True
        self._wake.set()

    def _note_overflow(self) -> None:
        log.warning("Filesystem events were lost below %s; a rescan follows", self.root)
        with self._lock:
            self._rescan = True
        self._wake.set()

    def request_rescan(self) -> None:
        """Ask for a full rescan with the next change set."""
        with self._lock:
            self._rescan = True
        self._wake.set()

    # -- consuming ------------------------------------------------------------------

    def root_present(self) -> bool:
        """The root is there and is the folder that was watched (same device and inode)."""
        try:
            st = os.stat(self.root)
        except OSError:
            return False
        if not stat.S_ISDIR(st.st_mode):
            return False
        return self._root_id is None or self._root_id == (st.st_dev, st.st_ino)

    def has_hints(self) -> bool:
        """Whether anything is recorded that has not been handed out yet."""
        with self._lock:
            return bool(
                self._touched
                or self._deleted
                or self._deleted_dirs
                or self._moves
                or self._new_dirs
                or self._rescan
            )

    def poll_changes(self, timeout: float) -> ChangeSet:
        """Wait up to `timeout` seconds for something to hand out, and hand it out."""
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            self._wake.clear()
            changes = self.changes()
            remaining = deadline - time.monotonic()
            if changes or remaining <= 0:
                return changes
            if self.has_hints():
                # Files are settling: look again soon, not at every event of a burst.
                self._stopped.wait(min(remaining, self._look_interval()))
            else:
                self._wake.wait(remaining)

    def _look_interval(self) -> float:
        return max(0.02, min(0.25, self.quiet_seconds / 4))

    def changes(self) -> ChangeSet:
        """Hand out what is ready now, without waiting."""
        out = ChangeSet()
        if not self.root_present():
            out.root_gone = True
            return out
        now = time.monotonic()
        quiet, half = self.quiet_seconds, self.quiet_seconds / 2
        with self._lock:
            out.moves, self._moves = self._moves, []
            new_dirs, self._new_dirs = self._new_dirs, []
            out.rescan, self._rescan = self._rescan, False
            out.events, self._events = self._events, 0
            for rel, at in list(self._deleted.items()):
                if now - at >= quiet:
                    out.deleted.append(rel)
                    del self._deleted[rel]
            for rel, at in list(self._deleted_dirs.items()):
                if now - at >= quiet:
                    out.deleted_dirs.append(rel)
                    del self._deleted_dirs[rel]
            due = [
                (rel, e.last_event)
                for rel, e in self._touched.items()
                if now - e.last_event >= half
            ]
        if new_dirs:
            self._add_folders(new_dirs, now)
        looks = [(rel, at, self._look(rel)) for rel, at in due]
        with self._lock:
            for rel, at, signature in looks:
                entry = self._touched.get(rel)
                if entry is None or entry.last_event != at:
                    continue  # a newer event came in meanwhile: keep waiting
                if signature is None:  # gone, not a file, or not to be followed
                    del self._touched[rel]
                    continue
                if entry.signature != signature:
                    entry.signature, entry.signature_at = signature, now
                    continue
                if now - entry.last_event >= quiet and now - entry.signature_at >= half:
                    out.settled.append(rel)
                    del self._touched[rel]
        out.settled.sort()
        return out

    def _look(self, rel: str) -> tuple[int, int] | None:
        """The file's signature, or None where the scan would not take it (gone, not a
        file, or behind a link it does not follow)."""
        path = self.root / rel
        if link_refusal(os.path.realpath(path), self._watched, self.follow_links_outside):
            return None
        return _signature(path)

    def _add_folders(self, folders: Iterable[str], now: float) -> None:
        """A new folder (created, or moved in): every photo in it is a touched file."""
        found: list[str] = []
        for rel in dict.fromkeys(folders):
            problems: list[tuple[str, str]] = []
            found.extend(
                entry.path
                for entry in walk(
                    self.root, problems, start=rel, follow_links_outside=self.follow_links_outside
                )
            )
        if not found:
            return
        with self._lock:
            for rel in found:
                if rel not in self._touched:
                    self._touch(rel, now)


class _NativeUnavailable(Exception):
    """Live events cannot be had; the message says why."""


def _stop_quietly(observer: BaseObserver) -> None:
    try:
        observer.stop()
        if observer.is_alive():
            observer.join(timeout=5.0)
    except Exception:
        log.debug("Error stopping the observer", exc_info=True)


def _signature(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return st.st_size, st.st_mtime_ns


def _count_dirs(root: Path) -> int:
    """Folders an inotify observer puts a watch on: the root and every folder below."""
    count = 1
    for folder, dirnames, _ in os.walk(root):
        for name in dirnames:
            path = os.path.join(folder, name)
            if not os.path.islink(path) and os.access(path, os.R_OK | os.X_OK):
                count += 1
    return count


def inotify_watch_count() -> int | None:
    """Inotify watches this process holds (from /proc); None where that is unknown."""
    fd_dir = Path("/proc/self/fd")
    if not fd_dir.is_dir():
        return None
    total = 0
    try:
        fds = os.listdir(fd_dir)
    except OSError:
        return None
    for fd in fds:
        try:
            if os.readlink(fd_dir / fd) != "anon_inode:inotify":
                continue
            with open(f"/proc/self/fdinfo/{fd}", encoding="ascii", errors="replace") as f:
                total += sum(1 for line in f if line.startswith("inotify wd:"))
        except OSError:
            continue
    return total


def filesystem_type(path: Path) -> str | None:
    """The type of the filesystem holding `path` (Linux /proc/self/mountinfo), or None."""
    try:
        real = os.fsencode(os.path.realpath(path))
        with open("/proc/self/mountinfo", "rb") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    best, best_type = b"", None
    for line in lines:
        left, sep, right = line.partition(b" - ")
        fields, rest = left.split(), right.split()
        if not sep or len(fields) < 5 or not rest:
            continue
        mount = _MOUNTINFO_ESCAPE.sub(lambda m: bytes([int(m.group(1), 8)]), fields[4])
        inside = real == mount or real.startswith(mount.rstrip(b"/") + b"/")
        if inside and len(mount) >= len(best):
            best, best_type = mount, os.fsdecode(rest[0])
    return best_type


_MOUNTINFO_ESCAPE = re.compile(rb"\\([0-7]{3})")


# -- bringing the sidecar in line ----------------------------------------------------


def apply_changes(library: Library, changes: ChangeSet) -> ApplySummary:
    """Bring the sidecar in line with `changes`, checking each hint on the filesystem.

    Moves keep identity (the row takes the new path, tags and all; a moved folder
    moves every photo under it). Deleted photos are marked missing, and only while the
    root is online. Settled files become new or changed `pending` photos. Nothing is
    written while the library is offline. `rescan` and `root_gone` are the caller's
    business (a scan, or waiting for the root).
    """
    summary = ApplySummary()
    if not library.is_online():
        summary.offline = True
        return summary
    store = library.store
    root = library.root

    def under(folder: str) -> list[PhotoRow]:
        return [row for path, row in store.photo_index().items() if _under(path, folder)]

    with store.transaction():
        for move in changes.moves:
            if move.is_dir:
                for row in sorted(under(move.src), key=lambda r: r.path):
                    _move_one(store, root, row.path, move.dest + row.path[len(move.src) :], summary)
            else:
                _move_one(store, root, move.src, move.dest, summary)

        gone: list[int] = []
        for rel in changes.deleted:
            row = store.photo_by_path(rel)
            if row is None or row.status == "missing" or _signature(root / rel) is not None:
                continue
            gone.append(row.id)
        index = store.photo_index() if changes.deleted_dirs else {}
        for folder in changes.deleted_dirs:
            for row in (r for p, r in index.items() if _under(p, folder)):
                if row.status != "missing" and _signature(root / row.path) is None:
                    gone.append(row.id)

        for rel in changes.settled:
            signature = _signature(root / rel)
            if signature is None or not is_photo_path(rel):
                summary.ignored += 1
                continue
            size, mtime_ns = signature
            row = store.photo_by_path(rel)
            if row is None:
                store.add_photo(rel, size, mtime_ns)
                summary.added += 1
            elif row.status == "missing":
                store.mark_changed(row.id, size, mtime_ns)
                summary.returned += 1
            elif (row.size, row.mtime_ns) != (size, mtime_ns) or (
                row.status == "damaged" and (row.error or "").startswith(UNREADABLE)
            ):
                store.mark_changed(row.id, size, mtime_ns)
                summary.changed += 1

        if gone:
            # Checked again right before writing: a drive unplugged meanwhile is offline.
            if not library.is_online():
                summary.offline = True
            else:
                unique = list(dict.fromkeys(gone))
                store.mark_missing(unique)
                summary.missing += len(unique)
    if summary.pending or summary.moved or summary.missing:
        log.info("Folder changes applied: %s", summary.describe())
    return summary


def _move_one(store, root: Path, src: str, dest: str, summary: ApplySummary) -> None:
    """One photo moved from `src` to `dest`: its row takes the new path."""
    if src == dest:
        return
    row = store.photo_by_path(src)
    if row is None:
        return  # never indexed: the destination arrives as a new file
    existing = store.photo_by_path(dest)
    if existing is None:
        store.rename_photo(row.id, dest)
        summary.moved += 1
        return
    # Renamed over another photo: that content is gone. Reading the destination again
    # merges it into the moved photo's row (same content hash), tags and all.
    store.mark_missing([row.id])
    signature = _signature(root / dest)
    if signature is not None:
        store.mark_changed(existing.id, *signature)
        summary.changed += 1
