"""One writer at a time per library: an OS-level lock beside the sidecar.

`FOLDER/.albumtagger/writer.lock` is locked with `fcntl.flock` (POSIX) or
`msvcrt.locking` (Windows) for each unit of work that writes the library (a batch of
tagging, a correction, a vocabulary edit, ...), not for a process's whole life, so
long-running writers (watch, the app) and short ones (a CLI correction) take turns.
The kernel drops the lock when its process ends in any way, SIGKILL and power loss
included, so a lock left by a dead process is simply free: nothing needs to be cleaned
up and no pid is trusted. The file also holds a small JSON record of the holder (pid,
command, since when, host), written each time the lock is taken, for the message a
second writer shows; the record is only believed while the lock is actually held.

The lock file is never followed through a link and never truncated: a `writer.lock`
that is a symbolic link, a hard link or not a regular file is refused, so a link
planted in a shared folder cannot make albumtagger overwrite another file.

Readers (`tags`, `find`, `search`, the app's read queries) never take this lock.
Where the filesystem cannot lock at all (some network shares), the writer goes on
without the lock and logs a warning: SQLite still keeps every write whole.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import socket
import stat
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from albumtagger.errors import SidecarError

log = logging.getLogger(__name__)

LOCK_NAME = "writer.lock"
POLL_S = 0.2
_RECORD_MAX = 4096
"""The holder record's size: written padded to it in place, so the file is never
truncated."""
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
_WIN_LOCK_OFFSET = 1 << 30
"""Windows locks a byte range that readers must not touch: lock one byte far past the
holder record, so the record stays readable."""

if os.name == "nt":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _try_lock(fd: int) -> bool:
        os.lseek(fd, _WIN_LOCK_OFFSET, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except PermissionError:
            return False
        except OSError as exc:
            if exc.errno in (13, 33, 36):  # EACCES, EDEADLOCK/lock violation
                return False
            raise
        finally:
            os.lseek(fd, 0, os.SEEK_SET)
        return True

    def _unlock(fd: int) -> None:
        os.lseek(fd, _WIN_LOCK_OFFSET, os.SEEK_SET)
        with contextlib.suppress(OSError):
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        os.lseek(fd, 0, os.SEEK_SET)

else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                return False
            raise
        return True

    def _unlock(fd: int) -> None:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)


@dataclass(frozen=True)
class Holder:
    """Who holds a library's writer lock (as its own record says)."""

    pid: int | None
    command: str
    since: float | None
    host: str = ""

    def describe(self) -> str:
        parts = []
        if self.pid is not None:
            where = "" if not self.host or self.host == socket.gethostname() else f" on {self.host}"
            parts.append(f"pid {self.pid}{where}")
        if self.command:
            parts.append(f"`{self.command}`")
        if self.since is not None:
            stamp = datetime.fromtimestamp(self.since)
            fmt = "%H:%M:%S" if stamp.date() == datetime.now().date() else "%Y-%m-%d %H:%M"
            parts.append(f"since {stamp.strftime(fmt)}")
        return ", ".join(parts) if parts else "another process"

    def as_dict(self) -> dict:
        return {"pid": self.pid, "command": self.command, "since": self.since, "host": self.host}


class LibraryBusyError(SidecarError):
    """Another process is working on (writing to) this library. `holder` says which."""

    def __init__(self, message: str, holder: Holder | None) -> None:
        super().__init__(message)
        self.holder = holder


def this_command() -> str:
    """This process as a user would have typed it (`albumtagger index /photos`)."""
    argv = list(sys.argv) or ["python"]
    head = Path(argv[0]).name if argv[0] != "-c" else "python -c"
    if head in ("__main__.py", "albumtagger", "albumtagger.exe") or argv[0].endswith(
        os.path.join("albumtagger", "__main__.py")
    ):
        head = "albumtagger"
    text = " ".join([head, *argv[1:]])
    return text if len(text) <= 300 else text[:297] + "..."


def _not_plain(path: Path, why: str) -> SidecarError:
    return SidecarError(
        f"The lock file {path} {why}; albumtagger does not write through it. Remove it "
        "(albumtagger makes a new one), and check who else can write into this folder."
    )


def _open_lock_file(path: Path, flags: int) -> int:
    """Open the lock file without following a link (O_NOFOLLOW, and without blocking on
    a FIFO): a symbolic link, a hard link or anything but a regular file is refused."""
    if path.is_symlink():
        raise _not_plain(path, "is a symbolic link")
    try:
        fd = os.open(path, flags | _NOFOLLOW | _CLOEXEC, 0o644)
    except OSError as exc:
        if exc.errno == getattr(errno, "ELOOP", None):
            raise _not_plain(path, "is a symbolic link") from None
        raise
    info = os.fstat(fd)
    problem = None
    if not stat.S_ISREG(info.st_mode):
        problem = "is not a regular file"
    elif info.st_nlink > 1:
        problem = "has other names (a hard link)"
    if problem is not None:
        os.close(fd)
        raise _not_plain(path, problem)
    return fd


def read_holder(path: Path) -> Holder | None:
    """The holder record in a lock file (None when there is none or it is unreadable)."""
    try:
        fd = _open_lock_file(path, os.O_RDONLY)
    except (OSError, SidecarError):
        return None
    try:
        data = os.read(fd, _RECORD_MAX)
        record = json.loads(data.decode("utf-8"))
        return Holder(
            pid=int(record["pid"]) if record.get("pid") is not None else None,
            command=str(record.get("command") or ""),
            since=float(record["since"]) if record.get("since") is not None else None,
            host=str(record.get("host") or ""),
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    finally:
        os.close(fd)


class WriterLock:
    """The writer lock of the library whose sidecar is in `sidecar_dir`.

    `acquire(wait=...)`: 0 refuses at once, a number of seconds waits that long, None
    waits as long as it takes. A refusal raises `LibraryBusyError` naming the holder.
    `hold(...)` holds it for a block, re-entrant: one unit of work, nested units in it.
    """

    def __init__(self, sidecar_dir: Path, command: str | None = None) -> None:
        self.path = Path(sidecar_dir) / LOCK_NAME
        self.command = command or this_command()
        self._fd: int | None = None
        self.locked = False
        """True while this object holds the lock (False if the filesystem cannot lock)."""
        self._threads = threading.RLock()
        self._depth = 0
        self._opened = False
        """Opened once: the folder is made only then (made again later, it would stand
        where an unplugged drive was)."""

    # -- acquire / release ------------------------------------------------------------

    def _open(self) -> int:
        if not self._opened:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            return _open_lock_file(self.path, os.O_RDWR | os.O_CREAT)
        except PermissionError:
            # A lock file we may not write (made by another user): we can still lock it.
            return _open_lock_file(self.path, os.O_RDONLY)

    def holder(self) -> Holder | None:
        """Who holds the lock now: None when nobody does (a record left by a dead
        process is not believed)."""
        if self.locked:
            return Holder(os.getpid(), self.command, None, socket.gethostname())
        if not self.path.exists():
            return None
        try:
            fd = self._open()
        except (OSError, SidecarError):
            return read_holder(self.path)
        try:
            if _try_lock(fd):
                _unlock(fd)
                return None
        except OSError:
            return read_holder(self.path)
        finally:
            os.close(fd)
        return read_holder(self.path) or Holder(None, "", None)

    def acquire(
        self,
        wait: float | None = 0.0,
        on_wait: Callable[[Holder], None] | None = None,
    ) -> WriterLock:
        if self._fd is not None:
            return self
        try:
            fd = self._open()
        except PermissionError:
            raise  # the caller may keep the library elsewhere
        except OSError as exc:
            if self._opened and isinstance(exc, FileNotFoundError):
                # The folder went away (a drive unplugged): nobody can open the library
                # there, and what was open notices it is offline.
                log.warning("%s is gone; going on without the writer lock", self.path.parent)
                return self
            raise SidecarError(
                f"Cannot create the lock file {self.path} ({exc.strerror or exc}); check that "
                "the folder can be written."
            ) from None
        self._opened = True
        deadline = None if wait is None else time.monotonic() + max(0.0, wait)
        told: Holder | None = None
        try:
            while True:
                try:
                    got = _try_lock(fd)
                except OSError as exc:
                    log.warning(
                        "The filesystem of %s cannot lock files (%s); going on without the "
                        "one-writer lock",
                        self.path.parent,
                        exc,
                    )
                    self._fd = fd
                    return self
                if got:
                    break
                holder = read_holder(self.path) or Holder(None, "", None)
                if deadline is not None and time.monotonic() >= deadline:
                    raise LibraryBusyError(busy_message(self.path.parent, holder), holder)
                if on_wait is not None and holder != told:
                    told = holder
                    on_wait(holder)
                time.sleep(POLL_S if deadline is None else min(POLL_S, wait or POLL_S))
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self.locked = True
        self._write_record(fd, time.time())
        return self

    def _write_record(self, fd: int, since: float | None) -> None:
        """The holder record (`since` None: blank), written in place at a fixed size."""
        record = {
            "pid": os.getpid(),
            "command": self.command,
            "since": since,
            "host": socket.gethostname(),
        }
        text = json.dumps(record, ensure_ascii=False) if since is not None else ""
        data = text.encode("utf-8")[: _RECORD_MAX - 1].ljust(_RECORD_MAX - 1) + b"\n"
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, data)
        except OSError as exc:  # a read-only lock file: the lock itself still holds
            log.debug("cannot write the holder record %s: %s", self.path, exc)

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        if self.locked:
            self._write_record(fd, None)  # no record of a holder that is gone
            _unlock(fd)
        self.locked = False
        with contextlib.suppress(OSError):
            os.close(fd)

    @contextlib.contextmanager
    def hold(
        self, wait: float | None = 0.0, on_wait: Callable[[Holder], None] | None = None
    ) -> Iterator[bool]:
        """Hold the lock for the block: taken by the outermost block of a thread (yields
        True), part of it in nested blocks (False). Another thread of this process waits
        its turn as another process would."""
        if not self._threads.acquire(timeout=-1 if wait is None else max(0.0, wait)):
            holder = Holder(os.getpid(), self.command, None, socket.gethostname())
            raise LibraryBusyError(busy_message(self.path.parent, holder), holder)
        try:
            outermost = self._depth == 0
            if outermost:
                self.acquire(wait, on_wait)
            self._depth += 1
            try:
                yield outermost
            finally:
                self._depth -= 1
                if outermost:
                    self.release()
        finally:
            self._threads.release()

    def __enter__(self) -> WriterLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def busy_message(sidecar_dir: Path, holder: Holder | None) -> str:
    who = holder.describe() if holder is not None else "another process"
    return (
        f"Another albumtagger is working on this library ({who}): let it finish or stop "
        "it, then try again (reading the library works meanwhile)."
    )
