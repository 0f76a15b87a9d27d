"""Whether a folder is on a network filesystem (SMB/CIFS, NFS, sshfs and other FUSE
mounts, 9p, Ceph...), where SQLite's WAL mode is not safe: it shares memory between the
processes of one host, and a share is opened from several.

Linux: the type of the mount holding the path, from `/proc/self/mountinfo`. macOS: the
filesystem's `MNT_LOCAL` flag and type name (`statfs`). Windows: a UNC path or a drive
of type `DRIVE_REMOTE`. Anything this cannot tell counts as local.
"""

from __future__ import annotations

import ctypes
import os
import re
import sys
from pathlib import Path

NETWORK_TYPES = frozenset(
    {
        "nfs", "nfs4", "cifs", "smb", "smb2", "smb3", "smbfs", "9p", "ceph", "afs",
        "coda", "ncpfs", "lustre", "glusterfs", "gfs2", "ocfs2", "davfs", "fuse",
        "afpfs", "webdav", "ftp",
    }
)  # fmt: skip
"""Filesystem type names of network (or cluster) filesystems; any `fuse.*` mount
(sshfs, rclone, gvfs...) counts too: FUSE cannot say where its files are."""


def is_network_type(fstype: str) -> bool:
    t = fstype.lower()
    return t in NETWORK_TYPES or t.startswith(("nfs", "fuse."))


def network_filesystem(path: Path) -> str | None:
    """The network filesystem type holding `path` (an existing folder), or None."""
    try:
        if sys.platform.startswith("linux"):
            fstype = _linux_type(path)
            return fstype if fstype and is_network_type(fstype) else None
        if sys.platform == "darwin":
            return _macos_network_type(path)
        if sys.platform == "win32":
            return _windows_network_type(path)
    except (OSError, ValueError, AttributeError):
        pass
    return None


def _unescape(field: str) -> str:
    """A mountinfo field: spaces, tabs, newlines and backslashes come as octal escapes."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def _linux_type(path: Path, mountinfo: str = "/proc/self/mountinfo") -> str | None:
    """The type of the innermost mount holding `path` (the last one mounted there)."""
    real = os.path.realpath(path)
    best, best_len = None, -1
    with open(mountinfo, encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            head, sep, tail = line.partition(" - ")
            fields = head.split()
            if not sep or len(fields) < 5 or not tail.split():
                continue
            point = _unescape(fields[4])
            inside = real == point or real.startswith(point.rstrip("/") + "/")
            if inside and len(point) >= best_len:
                best, best_len = tail.split()[0], len(point)
    return best


class _StatFs(ctypes.Structure):
    """macOS `struct statfs` (64-bit inodes)."""

    _fields_ = [
        ("f_bsize", ctypes.c_uint32),
        ("f_iosize", ctypes.c_int32),
        ("f_blocks", ctypes.c_uint64),
        ("f_bfree", ctypes.c_uint64),
        ("f_bavail", ctypes.c_uint64),
        ("f_files", ctypes.c_uint64),
        ("f_ffree", ctypes.c_uint64),
        ("f_fsid", ctypes.c_int32 * 2),
        ("f_owner", ctypes.c_uint32),
        ("f_type", ctypes.c_uint32),
        ("f_flags", ctypes.c_uint32),
        ("f_fssubtype", ctypes.c_uint32),
        ("f_fstypename", ctypes.c_char * 16),
        ("f_mntonname", ctypes.c_char * 1024),
        ("f_mntfromname", ctypes.c_char * 1024),
        ("f_reserved", ctypes.c_uint32 * 8),
    ]


_MNT_LOCAL = 0x00001000


def _macos_network_type(path: Path) -> str | None:
    libc = ctypes.CDLL(None, use_errno=True)
    try:
        statfs = libc["statfs$INODE64"]  # Intel Macs: the 64-bit-inode variant
    except AttributeError:
        statfs = libc.statfs  # Apple silicon has only that one
    buf = _StatFs()
    if statfs(os.fsencode(path), ctypes.byref(buf)) != 0:
        return None
    fstype = buf.f_fstypename.decode("utf-8", "replace")
    if buf.f_flags & _MNT_LOCAL and not is_network_type(fstype):
        return None
    return fstype or "network"


_DRIVE_REMOTE = 4


def _windows_network_type(path: Path) -> str | None:
    drive = os.path.splitdrive(os.path.abspath(path))[0]
    if drive.startswith(("\\\\", "//")):
        return "network share"
    kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
    if drive and kernel32.GetDriveTypeW(drive + "\\") == _DRIVE_REMOTE:
        return "network drive"
    return None
