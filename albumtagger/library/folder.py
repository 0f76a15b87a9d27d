"""A photo folder and its sidecar: where the sidecar lives, and whether the folder is
there at all (a drive can be unplugged at any time)."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from albumtagger.errors import LibraryOfflineError, SidecarError, UsageError, UserError
from albumtagger.library.db.store import (
    SIDECAR_DIR,
    Store,
    access_error,
    check_not_lost,
    fallback_sidecar_path,
    sidecar_path,
)
from albumtagger.library.lock import Holder, WriterLock
from albumtagger.safe_io import check_sidecar_folder

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WriteAccess:
    """How to take a library's writer lock: `wait` seconds (0: refuse at once; None: as
    long as it takes), `on_wait(holder)` told when waiting starts, `command` recorded."""

    wait: float | None = 0.0
    on_wait: Callable[[Holder], None] | None = None
    command: str | None = None


_AS_OPENED = -1.0
"""`Library.writing(wait=...)`: wait as the library was opened to."""


@dataclass
class Library:
    """An open library: the photo folder (`root`) and its `store`."""

    root: Path
    store: Store
    sidecar_in_folder: bool
    writer: WriterLock | None = None
    """The one-writer lock, taken for each unit of work (None: opened for reading only)."""
    access: WriteAccess = field(default_factory=WriteAccess)
    on_taken: Callable[[], None] | None = None
    """Called each time a unit of work takes the lock (to notice others' commits)."""
    _told: tuple[int | None, str] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.writer is not None:
            self.store.unit = self.writing  # a write outside a unit is a unit of its own

    @contextlib.contextmanager
    def writing(self, wait: float | None = _AS_OPENED) -> Iterator[None]:
        """One unit of work: the writer lock is held until the block ends (re-entrant:
        a nested unit is part of the outer one). `wait` as in `WriteAccess` (default:
        as the library was opened); `LibraryBusyError` names the holder when it runs
        out. A library opened only to read has no lock to take."""
        if self.writer is None:
            yield
            return
        if wait == _AS_OPENED:
            wait = self.access.wait
        with self.writer.hold(wait, self._waiting) as taken:
            if taken and self.on_taken is not None:
                self.on_taken()
            yield

    def _waiting(self, holder: Holder) -> None:
        """Tell `access.on_wait` once per holder (a long wait is not told each time)."""
        who = (holder.pid, holder.command)
        if self.access.on_wait is not None and who != self._told:
            self._told = who
            self.access.on_wait(holder)

    def is_online(self) -> bool:
        """The root is there and readable, and (for an in-folder sidecar) still holds it.

        A mount point left empty by an unplugged drive has no `.albumtagger` folder, so
        it reads as offline rather than as a folder whose photos all vanished.
        """
        try:
            if not self.root.is_dir() or not os.access(self.root, os.R_OK | os.X_OK):
                return False
            if self.sidecar_in_folder and not (self.root / SIDECAR_DIR).is_dir():
                return False
            os.listdir(self.root)
        except OSError:
            return False
        return True

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _writable(folder: Path) -> bool:
    return os.access(folder, os.W_OK | os.X_OK)


def _open_store(
    db_path: Path, write: WriteAccess | None, fallback: bool = False
) -> tuple[Store, WriterLock | None]:
    """The store at `db_path`; when writing, opened (and migrated) holding its writer
    lock, which is then free until the next unit of work."""
    if write is None:
        return Store(db_path), None
    lock = WriterLock(db_path.parent, write.command)
    try:
        lock.acquire(write.wait, write.on_wait)
    except PermissionError as exc:
        if not fallback:
            raise SidecarError(
                f"Cannot create the lock file {lock.path} ({exc.strerror or exc}); "
                "check that the folder can be written."
            ) from None
        raise
    try:
        return Store(db_path), lock
    finally:
        lock.release()


def open_library(
    root: Path, data_dir: Path, *, create: bool = True, write: WriteAccess | None = None
) -> Library:
    """Open the library of `root`, creating its sidecar if `create`.

    The sidecar goes in `root/.albumtagger/`; if the folder is read-only it goes in
    the user data dir instead (see `Library.sidecar_in_folder`, which the UI reports).
    Raises `LibraryOfflineError` when the folder is missing and has no sidecar we can
    reach, and `UserError` when there is no library and `create` is false.

    With `write`, the library's writer lock is taken while the sidecar is opened (and
    migrated), then for each unit of work (`Library.writing`, which every transaction
    takes): a second writer waits or gets `LibraryBusyError` naming the first. Without
    it, open only to read.
    """
    root = Path(root).expanduser().absolute()
    if root.exists() and not root.is_dir():
        raise UsageError(f"{root} is a file, not a folder; give the folder that holds the photos.")
    check_sidecar_folder(root / SIDECAR_DIR, root)
    inside = sidecar_path(root)
    outside = fallback_sidecar_path(root, data_dir)
    try:
        in_folder = inside.is_file()
    except PermissionError:
        raise access_error(inside.parent) from None
    if in_folder:
        return Library(root, *_with_lock(inside, write, True))
    if outside.is_file():
        return Library(root, *_with_lock(outside, write, False))
    check_not_lost(inside)  # missing beside its backups: never started over silently
    if not root.is_dir():
        raise LibraryOfflineError(
            f"The folder {root} is not there (a drive unplugged or a folder renamed?). "
            "Connect it, or check the path."
        )
    if not create:
        raise UserError(f"{root} has no albumtagger library yet: index the folder first.")
    if (root / SIDECAR_DIR).is_dir() or _writable(root):
        try:
            return Library(root, *_with_lock(inside, write, True, fallback=True))
        except PermissionError:
            pass
    log.warning("%s is read-only; keeping its library in %s", root, outside.parent)
    return Library(root, *_with_lock(outside, write, False))


def _with_lock(
    db_path: Path, write: WriteAccess | None, in_folder: bool, *, fallback: bool = False
) -> tuple[Store, bool, WriterLock | None, WriteAccess]:
    store, lock = _open_store(db_path, write, fallback)
    return store, in_folder, lock, write or WriteAccess()
