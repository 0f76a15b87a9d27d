"""Reading and writing files in folders other people can write to.

A photo folder may be shared or downloaded: a name that looks like a photo or a
sidecar can be a FIFO (reading it blocks forever), a device (`/dev/zero` never ends,
and `stat()` says it holds 0 bytes) or a symbolic link planted to make albumtagger read
or overwrite another file. So files are opened without blocking, checked to be regular
files on the open descriptor, and read up to a limit counted while reading; files
albumtagger writes go to a new temporary file (never an existing one) renamed into
place, which replaces a planted link instead of writing through it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from albumtagger.errors import SidecarError

CHUNK = 1 << 20
LINKED_SIDECAR_ENV = "ALBUMTAGGER_ALLOW_LINKED_SIDECAR"
"""Set to 1 to use a `.albumtagger` folder that is a link out of the photo folder."""


class NotRegularFileError(OSError):
    """A FIFO, socket, device or folder where a file was expected."""

    def __init__(self, path: Path | str) -> None:
        super().__init__(errno.EINVAL, "not a regular file (a pipe, socket or device)", str(path))


class FileTooLargeError(OSError):
    """A file holding more than the caller's limit; `size` is what was seen of it."""

    def __init__(self, path: Path | str, size: int, limit: int) -> None:
        super().__init__(
            errno.EFBIG,
            f"larger than {_mib(limit)} ({_mib(size)} or more)",
            str(path),
        )
        self.size = size


def _mib(n: int) -> str:
    return f"{n / 2**20:.0f} MiB" if n >= 2**20 else f"{n} bytes"


@contextlib.contextmanager
def open_regular(path: Path | str, *, follow_links: bool = True) -> Iterator[BinaryIO]:
    """Open a regular file to read, without blocking on a FIFO; with `follow_links`
    false, a symbolic link as the last part of `path` is refused (ELOOP).

    Raises `NotRegularFileError` for anything but a regular file, OSError else.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    flags |= getattr(os, "O_CLOEXEC", 0)
    if not follow_links:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags)
    with open(fd, "rb", buffering=0) as file:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotRegularFileError(path)
        yield file  # type: ignore[misc]


def read_regular(path: Path | str, limit: int, *, follow_links: bool = True) -> bytes:
    """The bytes of a regular file, refusing one that holds more than `limit` bytes.

    The limit is counted while reading (a file can grow after `stat()`). Raises
    `NotRegularFileError`, `FileTooLargeError`, OSError.
    """
    with open_regular(path, follow_links=follow_links) as file:
        size = os.fstat(file.fileno()).st_size
        if size > limit:
            raise FileTooLargeError(path, size, limit)
        chunks: list[bytes] = []
        total = 0
        want = size + 1  # the whole file in one read, plus one byte to see its end
        while chunk := file.read(min(want, limit + 1 - total)):
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                raise FileTooLargeError(path, total, limit)
            want = CHUNK
    return b"".join(chunks)


def write_atomic(
    target: Path,
    data: bytes,
    *,
    like: os.stat_result | None = None,
    sync: bool = False,
    suffix: str = ".tmp",
) -> None:
    """Write `target` through a new temporary file beside it, renamed into place.

    The temporary file is created exclusively (a link planted at its name is not
    followed), and the rename replaces a link at `target` rather than its target.
    `like`: the old file's status, whose permissions (and owner, where allowed) the
    new file keeps. `sync`: flush to the disk before the rename.
    """
    fd, tmp = _create_new(target, suffix)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            if sync:
                file.flush()
                os.fsync(file.fileno())
        if like is not None:
            os.chmod(tmp, stat.S_IMODE(like.st_mode))
            with contextlib.suppress(OSError):
                os.chown(tmp, like.st_uid, like.st_gid)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _create_new(target: Path, suffix: str) -> tuple[int, Path]:
    """A file of a new random name beside `target`, created by us (never one that was
    there, a link included), with the usual permissions (0o666 less the umask)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    flags |= getattr(os, "O_CLOEXEC", 0)
    while True:
        tmp = target.with_name(f".{target.name[:40]}.{secrets.token_hex(6)}{suffix}")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue


def check_sidecar_folder(folder: Path, root: Path) -> None:
    """Refuse a library folder (`root/.albumtagger`) that is a link out of `root`,
    unless `ALBUMTAGGER_ALLOW_LINKED_SIDECAR=1` says the user made it so.

    Anyone who can write to a shared folder could plant such a link to make albumtagger
    write its library (and lock and backups) somewhere else.
    """
    if not folder.is_symlink() or os.environ.get(LINKED_SIDECAR_ENV) == "1":
        return
    real_root = os.path.realpath(root)
    target = os.path.realpath(folder)
    if os.path.commonpath([real_root, target]) == real_root:
        return
    raise SidecarError(
        f"{folder} is a link to {target}, outside the photo folder; albumtagger does not "
        "keep a library through such a link, as anyone who can write to the folder could "
        f"have planted it. If you made it on purpose, set {LINKED_SIDECAR_ENV}=1; else "
        "remove the link."
    )
