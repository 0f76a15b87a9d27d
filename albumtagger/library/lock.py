"""One writer per library: an OS-level lock beside the sidecar.

`FOLDER/.albumtagger/writer.lock` is locked with `fcntl.flock` (POSIX) or
`msvcrt.locking` (Windows) by the process that works on the library (indexing,
watching, correcting, the app). The kernel drops the lock when that process ends in
any way, SIGKILL and power loss included, so a lock left by a dead process is simply
free: nothing needs to be cleaned up and no pid is trusted. The file also holds a
small JSON record of the holder (pid, command, since when, host) for the message a
second writer shows; the record is only believed while the lock is actually held.

Readers (`tags`, `find`, `search`, the app's read queries) never take this lock.
Where the filesystem cannot lock at all (some network shares), the writer goes on
without the lock and logs a warning: SQLite still keeps every write whole.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from albumtagger.errors import SidecarError

log = logging.getLogger(__name__)

LOCK_NAME = "writer.lock"
POLL_S = 0.2
_RECORD_MAX = 4096
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
    import errno
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


def read_holder(path: Path) -> Holder | None:
    """The holder record in a lock file (None when there is none or it is unreadable)."""
    try:
        with open(path, "rb") as f:
            data = f.read(_RECORD_MAX)
        record = json.loads(data.decode("utf-8"))
        return Holder(
            pid=int(record["pid"]) if record.get("pid") is not None else None,
            command=str(record.get("command") or ""),
            since=float(record["since"]) if record.get("since") is not None else None,
            host=str(record.get("host") or ""),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


class WriterLock:
    """The writer lock of the library whose sidecar is in `sidecar_dir`.

    `acquire(wait=...)`: 0 refuses at once, a number of seconds waits that long, None
    waits as long as it takes. A refusal raises `LibraryBusyError` naming the holder.
    """

    def __init__(self, sidecar_dir: Path, command: str | None = None) -> None:
        self.path = Path(sidecar_dir) / LOCK_NAME
        self.command = command or this_command()
        self._fd: int | None = None
        self.locked = False
        """True while this object holds the lock (False if the filesystem cannot lock)."""

    # -- acquire / release ------------------------------------------------------------

    def _open(self) -> int:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
        try:
            return os.open(self.path, flags, 0o644)
        except PermissionError:
            # A lock file we may not write (made by another user): we can still lock it.
            return os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))

    def holder(self) -> Holder | None:
        """Who holds the lock now: None when nobody does (a record left by a dead
        process is not believed)."""
        if self.locked:
            return Holder(os.getpid(), self.command, None, socket.gethostname())
        if not self.path.exists():
            return None
        try:
            fd = self._open()
        except OSError:
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
            raise SidecarError(
                f"Cannot create the lock file {self.path} ({exc.strerror or exc}); check that "
                "the folder can be written."
            ) from None
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
        self._write_record(fd)
        return self

    def _write_record(self, fd: int) -> None:
        record = {
            "pid": os.getpid(),
            "command": self.command,
            "since": time.time(),
            "host": socket.gethostname(),
        }
        data = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")[:_RECORD_MAX]
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, data)
            os.ftruncate(fd, len(data))
        except OSError as exc:  # a read-only lock file: the lock itself still holds
            log.debug("cannot write the holder record %s: %s", self.path, exc)

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        if self.locked:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)  # no record of a holder that is gone
            _unlock(fd)
        self.locked = False
        with contextlib.suppress(OSError):
            os.close(fd)

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
