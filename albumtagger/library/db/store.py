"""The sidecar's writer: `Store`, one library's SQLite file and every statement that
changes it (with `queries`, the read side, the only SQL of albumtagger).

One SQLite file per photo folder (`FOLDER/.albumtagger/library.sqlite`, WAL mode, or a
rollback journal on a network share; foreign keys on). This module opens it and keeps it
safe: the checks of its files, one connection per thread (kept by thread id, so one
`Store` object can be shared by a GUI and its worker thread), transactions (durable ones
for the user's own actions), errors told in the user's words, the migrations of
`schema`, verified backups and settings. What a library holds is read and written by
`Store`'s parts: `photos`, `tags`, `decisions` (tag cells and feedback) and `vectors`.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path

from albumtagger.errors import SchemaTooNewError, SidecarError
from albumtagger.library.db.decisions import (
    AutoTag,
    DecisionsMixin,
    FeedbackEvent,
    PhotoTag,
    SuggestionChanges,
)
from albumtagger.library.db.photos import PhotoRow, PhotosMixin
from albumtagger.library.db.schema import (
    MIGRATIONS,
    SCHEMA_MAJOR,
    SCHEMA_VERSION,
    statements,
    version_text,
)
from albumtagger.library.db.sql import (
    FEEDBACK_ACTIONS,
    NEEDS_REVIEW_CONDITION,
    PHOTO_STATUSES,
    TAG_SOURCES,
    TAG_STATES,
    TAKEN_SQL,
    VECTOR_BLOCK_ROWS,
)
from albumtagger.library.db.tags import TagRow, TagsMixin
from albumtagger.library.db.vectors import VectorsMixin
from albumtagger.library.netfs import network_filesystem

# The public names of `store`: callers import them from here, wherever each is defined.
__all__ = [
    "BACKUPS_KEPT",
    "BACKUP_DIR",
    "BACKUP_INTERVAL_S",
    "FEEDBACK_ACTIONS",
    "MIGRATIONS",
    "MIN_FREE_BYTES",
    "NEEDS_REVIEW_CONDITION",
    "PHOTO_STATUSES",
    "QUICK_CHECK_MAX_BYTES",
    "SCHEMA_MAJOR",
    "SCHEMA_VERSION",
    "SIDECAR_DIR",
    "SIDECAR_NAME",
    "STALE_PARTIAL_S",
    "TAG_SOURCES",
    "TAG_STATES",
    "TAKEN_SQL",
    "VECTOR_BLOCK_ROWS",
    "AutoTag",
    "FeedbackEvent",
    "PhotoRow",
    "PhotoTag",
    "SidecarDamagedError",
    "SidecarError",
    "SidecarFullError",
    "SidecarMissingError",
    "SidecarWriteError",
    "Store",
    "SuggestionChanges",
    "TagRow",
    "access_error",
    "check_not_lost",
    "check_own_files",
    "fallback_sidecar_path",
    "full_at_open",
    "latest_good_backup",
    "out_of_space",
    "sidecar_path",
    "version_text",
]

log = logging.getLogger(__name__)

SIDECAR_DIR = ".albumtagger"
SIDECAR_NAME = "library.sqlite"
BACKUP_DIR = "backups"
BACKUPS_KEPT = 5
BACKUP_INTERVAL_S = 24 * 3600
QUICK_CHECK_MAX_BYTES = 16 * 2**20
"""Sidecars up to this size (about 10k photos) get `PRAGMA quick_check` when opened
(about 0.05 s at the limit, measured); larger ones get the header check only, and damage
met later is reported as it is met, before anything is written over it."""
STALE_PARTIAL_S = 3600
MIN_FREE_BYTES = 2**20
"""Below this much free space, an I/O error or a file SQLite cannot open is taken for
a full disk (opening a WAL database creates its `-shm` file, 32 KiB)."""
_SQLITE_MAGIC = b"SQLite format 3\x00"
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


class SidecarWriteError(SidecarError, sqlite3.OperationalError):
    """A write could not be saved: the disk is full, an I/O error, a read-only file. The
    transaction was rolled back: what was saved before is intact, and a retry works once
    the cause is gone. (Also an `sqlite3.OperationalError`, for code that catches those.)"""


class SidecarDamagedError(SidecarError, sqlite3.DatabaseError):
    """The sidecar file is damaged; nothing is written to it. `backup` is the newest
    backup that passes SQLite's check (None when there is none)."""

    def __init__(self, message: str, backup: Path | None = None) -> None:
        super().__init__(message)
        self.backup = backup


class SidecarFullError(SidecarError):
    """The disk holding the sidecar is full: it cannot be opened or written until some
    space is freed. The file itself is intact (nothing is to be restored)."""


class SidecarMissingError(SidecarError):
    """The sidecar is missing or empty while verified backups lie beside it; `backup` is
    the newest. Nothing is created over them."""

    def __init__(self, message: str, backup: Path) -> None:
        super().__init__(message)
        self.backup = backup


_FULL = ("SQLITE_FULL",)
_IOERR = ("SQLITE_IOERR",)
_READONLY = ("SQLITE_READONLY",)
_CORRUPT = ("SQLITE_CORRUPT", "SQLITE_NOTADB")
_CANTOPEN = ("SQLITE_CANTOPEN",)


def _error_kind(exc: sqlite3.Error) -> str | None:
    """'full', 'io', 'readonly', 'damaged', 'cantopen' or None (another kind)."""
    name = str(getattr(exc, "sqlite_errorname", "") or "")
    text = str(exc).lower()
    if name.startswith(_FULL) or "database or disk is full" in text:
        return "full"
    if name.startswith(_CORRUPT) or "malformed" in text or "file is not a database" in text:
        return "damaged"
    if name.startswith(_IOERR) or "disk i/o error" in text:
        return "io"
    if name.startswith(_READONLY) or "readonly database" in text:
        return "readonly"
    if name.startswith(_CANTOPEN) or "unable to open database file" in text:
        return "cantopen"
    return None


def _no_room(folder: Path) -> bool:
    """The disk holding `folder` has (next to) no free space."""
    try:
        return shutil.disk_usage(folder).free < MIN_FREE_BYTES
    except OSError:
        return False


def out_of_space(exc: sqlite3.Error, folder: Path) -> bool:
    """`exc` comes of a full disk: SQLITE_FULL, or an I/O error or a file that cannot
    be opened while the disk holding `folder` has no room."""
    kind = _error_kind(exc)
    return kind == "full" or (kind in ("io", "cantopen") and _no_room(folder))


def _not_the_file(exc: sqlite3.Error, folder: Path) -> bool:
    """`exc` says nothing of the file's content (a full disk, a permission)."""
    return out_of_space(exc, folder) or _error_kind(exc) in ("readonly", "cantopen")


def _regular_file(path: Path) -> bool:
    """`path` is a regular file itself (not a link to one, a FIFO or a device)."""
    try:
        return stat.S_ISREG(path.lstat().st_mode)
    except OSError:
        return False


def latest_good_backup(backup_dir: Path) -> Path | None:
    """The newest backup in `backup_dir` that passes `PRAGMA quick_check`."""
    if backup_dir.is_symlink() or not backup_dir.is_dir():
        return None
    for candidate in sorted(backup_dir.glob("library-*.sqlite"), reverse=True):
        if not _regular_file(candidate):
            continue
        with contextlib.suppress(sqlite3.Error):
            if _file_check(candidate, quick=True, immutable=True) is None:
                return candidate
    return None


def _file_check(path: Path, *, quick: bool, immutable: bool = False) -> str | None:
    """What is wrong with the SQLite file at `path` (None: nothing found). Reads only.

    Always: the 100-byte header (magic, page size). With `quick`: `PRAGMA quick_check`
    (every page of every table and index; not the cross-checks of integrity_check).
    `immutable`: a file nobody writes (a backup): read without WAL or lock files.
    Errors that say nothing of the file's content are raised: a full disk, a file or
    folder this user may not open or write.
    """
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(100)
    except OSError as exc:
        return f"cannot read it: {exc.strerror or exc}"
    if size == 0:
        return None  # made but never written: SQLite starts it afresh
    if len(head) < 100 or not head.startswith(_SQLITE_MAGIC):
        return "it is not an SQLite database (the header is wrong)"
    page = int.from_bytes(head[16:18], "big")
    page = 65536 if page == 1 else page
    if page < 512 or page & (page - 1):
        return f"the header gives an impossible page size ({page})"
    try:
        mode = "ro&immutable=1" if immutable else "ro"
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode={mode}", uri=True, timeout=30.0)
    except sqlite3.Error as exc:
        if _not_the_file(exc, path.parent):
            raise
        return str(exc)
    try:
        conn.execute("PRAGMA query_only = 1")
        conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        if quick:
            rows = [str(r[0]) for r in conn.execute("PRAGMA quick_check(5)")]
            if rows != ["ok"]:
                return "; ".join(rows)[:300]
    except sqlite3.Error as exc:
        if _not_the_file(exc, path.parent):
            raise
        return str(exc)
    finally:
        conn.close()
    return None


class _Connection(sqlite3.Connection):
    """A connection whose write failures (disk full, I/O error, damage) come out as
    `SidecarWriteError` / `SidecarDamagedError` with a message for the user."""

    store: Store | None = None

    def execute(self, sql: str, parameters=(), /):  # type: ignore[override]
        try:
            return super().execute(sql, parameters)
        except sqlite3.Error as exc:
            raise self._mapped(exc) from exc

    def executemany(self, sql: str, parameters, /):  # type: ignore[override]
        try:
            return super().executemany(sql, parameters)
        except sqlite3.Error as exc:
            raise self._mapped(exc) from exc

    def _mapped(self, exc: sqlite3.Error) -> BaseException:
        if self.store is None or isinstance(exc, SidecarError):
            return exc
        return self.store._user_error(exc) or exc


def sidecar_path(root: Path) -> Path:
    return root / SIDECAR_DIR / SIDECAR_NAME


def full_at_open(db_path: Path) -> SidecarFullError:
    """The one-line refusal to open a sidecar on a full disk (no damage)."""
    return SidecarFullError(
        f"The disk holding the library {db_path} is full, so the library cannot be "
        "opened (it is intact: nothing needs restoring). Free some space and try again."
    )


def access_error(folder: Path) -> SidecarError:
    """The one-line refusal of a sidecar folder this user may not read or write."""
    return SidecarError(
        f"Permission denied on the library folder {folder}: albumtagger cannot read and "
        "write it as this user. Give this user read, write and enter permission on it, "
        "or run albumtagger as its owner."
    )


def check_own_files(db_path: Path) -> None:
    """Refuse planted links among the sidecar's own files: the database and its
    `-wal`, `-shm` and `-journal` must each be absent or a regular file, the backups
    folder absent or a folder (SQLite would follow a link, and write or truncate what
    it points to)."""
    own = [db_path, *(db_path.with_name(db_path.name + s) for s in ("-wal", "-shm", "-journal"))]
    for path in [*own, db_path.parent / BACKUP_DIR]:
        try:
            mode = path.lstat().st_mode
        except FileNotFoundError:
            continue
        if stat.S_ISREG(mode) or (stat.S_ISDIR(mode) and path.name == BACKUP_DIR):
            continue
        what = "a symbolic link" if stat.S_ISLNK(mode) else "not what albumtagger made there"
        raise SidecarError(
            f"{path} is {what}; albumtagger does not open it (it may have been put there to "
            "make albumtagger write elsewhere). Remove it and try again."
        )


def check_not_lost(db_path: Path) -> None:
    """Never start a new library over a lost one: raise `SidecarMissingError` when
    `db_path` is missing or empty (0 bytes) and verified backups lie beside it."""
    try:
        if db_path.stat().st_size > 0:
            return
        state = "is empty (0 bytes)"
    except FileNotFoundError:
        state = "is missing"
    backup_dir = db_path.parent / BACKUP_DIR
    backup = latest_good_backup(backup_dir)
    if backup is None:
        return
    raise SidecarMissingError(
        f"The library database {db_path} {state}, but {backup_dir} holds verified backups "
        f"of it; albumtagger does not start a new library over them. To restore the newest, "
        f"copy {backup} to {db_path} (and remove {db_path.name}-wal and -shm beside it); "
        f"to start afresh instead, move {backup_dir} away.",
        backup,
    )


def fallback_sidecar_path(root: Path, data_dir: Path) -> Path:
    """Sidecar location for a folder we cannot write to: in the user data dir."""
    key = hashlib.sha256(str(root.resolve()).encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return data_dir / "libraries" / f"{root.name or 'root'}-{key}" / SIDECAR_NAME


class _PerThread:
    """Each thread's connection, by thread id: unlike `threading.local` it holds for a
    thread Python did not start (a QThread gets a new thread state, and so would get a
    new connection, each time Qt calls into Python)."""

    def __init__(self) -> None:
        self._conns: dict[int, sqlite3.Connection] = {}

    @property
    def conn(self) -> sqlite3.Connection | None:
        return self._conns.get(threading.get_ident())

    @conn.setter
    def conn(self, conn: sqlite3.Connection | None) -> None:
        if conn is None:
            self._conns.pop(threading.get_ident(), None)
        else:
            self._conns[threading.get_ident()] = conn


class Store(PhotosMixin, TagsMixin, DecisionsMixin, VectorsMixin):
    """Access to one library's sidecar database (writes, migrations, backups); the
    methods for each kind of row come from its parts (`PhotosMixin` and the rest)."""

    def __init__(self, db_path: Path, *, backups: bool = True) -> None:
        """Open (and migrate) the sidecar. Opening is quick: the daily verified backup is
        the caller's to run (`backup_if_due`), off the path that opens a library."""
        self.db_path = Path(db_path)
        self.backup_dir = self.db_path.parent / BACKUP_DIR
        self._backups = backups
        self._local = _PerThread()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        self._closed = False
        self._listener: Callable[[dict[str, set[int]]], None] | None = None
        self._changes: dict[str, set[int]] = {}
        self._tag_writes = 0
        self.unit: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext
        """The unit of work a transaction outside one takes (the library's writer lock)."""
        self.network_fs: str | None = None
        """The network filesystem holding the sidecar (None: a local disk)."""
        self._synchronous = "NORMAL"
        try:
            self.db_path.parent.mkdir(parents=True, exist_ok=True)
            check_own_files(self.db_path)
            check_not_lost(self.db_path)
            self._check_file()
            self.network_fs = network_filesystem(self.db_path.parent)
            if self.network_fs:
                self._synchronous = "FULL"  # NORMAL with a rollback journal risks the file
                log.warning(
                    "The library %s is on a network share (%s): it uses a rollback journal "
                    "with the share's file locks instead of WAL (not safe there), and "
                    "synchronous=FULL",
                    self.db_path,
                    self.network_fs,
                )
            self._migrate()
        except BaseException as exc:
            self.close()
            if isinstance(exc, PermissionError):
                raise access_error(self.db_path.parent) from None
            raise

    # -- change log ---------------------------------------------------------------

    def listen(self, listener: Callable[[dict[str, set[int]]], None] | None) -> None:
        """Call `listener` after each commit with what it changed: {kind: ids}.

        Kinds: photos "added", "updated" (to be read again), "moved", "missing",
        "damaged", "status" (read and tagged), "removed"; "tags" (photos whose tag
        cells changed); "vocabulary" and "thresholds" (tag ids). A rolled-back
        transaction reports nothing. Writes of the listening thread only.
        """
        self._listener = listener
        self._changes = {}

    def _note(self, kind: str, ids: Iterable[int]) -> None:
        if self._listener is None:
            return
        self._changes.setdefault(kind, set()).update(int(i) for i in ids)
        if not self.conn.in_transaction:
            self._flush()

    def _flush(self) -> None:
        changes, self._changes = self._changes, {}
        if changes and self._listener is not None:
            self._listener(changes)

    def tags_key(self) -> tuple[int, int]:
        """Changes whenever the tags, their thresholds or their text vectors may have
        changed: a count of this store's writes to them (and of rollbacks), and SQLite's
        `data_version` (commits by other connections). Lets a reader keep what it built
        from them until then."""
        version = self.conn.execute("PRAGMA data_version").fetchone()[0]
        return self._tag_writes, int(version)

    # -- connections ----------------------------------------------------------

    def _check_file(self) -> None:
        """Refuse a damaged sidecar before anything is written to it: the header always,
        `PRAGMA quick_check` when the file is small enough to check quickly."""
        if not self.db_path.exists():
            return
        try:
            quick = self.db_path.stat().st_size <= QUICK_CHECK_MAX_BYTES
        except OSError:
            quick = False
        try:
            problem = _file_check(self.db_path, quick=quick)
        except sqlite3.Error as exc:  # a full disk, a permission: no damage
            raise self._open_error(exc) from None
        if problem is not None:
            raise self._damaged(problem)

    def _damaged(self, problem: str, what: str = "is damaged") -> SidecarDamagedError:
        backup = latest_good_backup(self.backup_dir)
        if backup is not None:
            advice = (
                f"Restore the last verified backup, {backup}: quit albumtagger and copy it "
                f"over {self.db_path} (remove {self.db_path.name}-wal and -shm beside it)"
            )
        else:
            advice = (
                f"There is no backup in {self.backup_dir}: Restore a copy from elsewhere if "
                f"you have one, or move {self.db_path} away to start afresh"
            )
        return SidecarDamagedError(
            f"The library database {self.db_path} {what} ({problem}); albumtagger does "
            f"not write to it. {advice}.",
            backup,
        )

    def _user_error(self, exc: sqlite3.Error) -> SidecarError | None:
        """The user's version of a failed statement, or None to let it through."""
        kind = _error_kind(exc)
        if kind in ("io", "cantopen") and _no_room(self.db_path.parent):
            kind = "full"
        if kind in (None, "cantopen"):
            return None
        unsaved = "the last change was not saved (everything saved before is intact)"
        if kind == "full":
            return SidecarWriteError(
                f"The disk holding the library {self.db_path} is full: {unsaved}. "
                "Free some space and try again."
            )
        if kind == "io":
            return SidecarWriteError(
                f"Could not write the library {self.db_path} ({exc}; the drive may have "
                f"been unplugged or be failing): {unsaved}. Check the drive and try again."
            )
        if kind == "readonly":
            return SidecarWriteError(
                f"The library {self.db_path} cannot be written (read-only): {unsaved}. "
                "Make the folder writable and try again."
            )
        return self._damaged(str(exc))

    def _connect(self) -> sqlite3.Connection:
        journal = "DELETE" if self.network_fs else "WAL"
        try:
            conn = sqlite3.connect(
                self.db_path,
                isolation_level=None,
                timeout=30.0,
                check_same_thread=False,
                factory=_Connection,
            )
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute(f"PRAGMA journal_mode = {journal}")
            conn.execute(f"PRAGMA synchronous = {self._synchronous}")
            conn.execute("PRAGMA busy_timeout = 30000")
        except sqlite3.Error as exc:
            raise self._open_error(exc) from None
        conn.store = self  # from now on, errors come out as the user's
        with self._all_lock:
            self._all.append(conn)
        return conn

    def _open_error(self, exc: sqlite3.Error) -> SidecarError:
        """The user's version of a failure to open a connection."""
        folder = self.db_path.parent
        if out_of_space(exc, folder):
            return full_at_open(self.db_path)
        access = os.access(folder, os.R_OK | os.W_OK | os.X_OK)
        if _error_kind(exc) in ("cantopen", "readonly") and not access:
            return access_error(folder)
        return self._user_error(exc) or SidecarError(
            f"The library database {self.db_path} cannot be opened ({exc}). "
            f"Restore a copy from {self.backup_dir} or move the file away to start afresh."
        )

    @property
    def conn(self) -> sqlite3.Connection:
        """This thread's connection."""
        if self._closed:
            raise SidecarError("The library is closed.")
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
        return conn

    def release_thread_connection(self) -> None:
        """Close this thread's connection (a thread that is about to end calls this)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            return
        self._local.conn = None
        with self._all_lock:
            if conn in self._all:
                self._all.remove(conn)
        with contextlib.suppress(sqlite3.Error):
            conn.close()

    def close(self) -> None:
        with self._all_lock:
            for conn in self._all:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            self._all.clear()
        self._local = _PerThread()
        self._closed = True

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def transaction(self, *, durable: bool = False) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, rolled back on any error (a failed COMMIT too: a
        full disk or an I/O error raises `SidecarWriteError`). Nests as a no-op.

        `durable`: the user's own action (a correction, an answer, a vocabulary edit, a
        pin, an undo): committed with `synchronous = FULL`, so it survives a power cut
        once this returns. Bulk writes keep `NORMAL` (a power cut may lose their last
        commits, never the file). Only the outermost transaction's choice counts.
        """
        conn = self.conn
        if conn.in_transaction:
            yield conn
            return
        with self.unit():  # the writer lock, unless the caller's unit holds it already
            if durable:  # SQLite takes the level only outside a transaction
                conn.execute("PRAGMA synchronous = FULL")
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                    conn.execute("COMMIT")
                except BaseException:
                    self._changes = {}
                    self._tag_writes += 1  # what was read inside the transaction is gone
                    self._abandon(conn)
                    raise
            finally:
                if durable:  # (a connection closed by `_abandon` is gone with its level)
                    with contextlib.suppress(sqlite3.Error):
                        level = self._synchronous
                        sqlite3.Connection.execute(conn, f"PRAGMA synchronous = {level}")
        self._flush()

    def _abandon(self, conn: sqlite3.Connection) -> None:
        """Roll back after a failure; a connection that cannot even roll back (the drive
        went away) is closed, which rolls back too, and the next use opens a new one."""
        if not conn.in_transaction:
            return  # SQLite rolled back by itself (it does on a full disk or I/O error)
        try:
            sqlite3.Connection.execute(conn, "ROLLBACK")
        except sqlite3.Error:
            log.warning("Rollback of %s failed; reopening the connection", self.db_path)
            if getattr(self._local, "conn", None) is conn:
                self.release_thread_connection()
            else:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()

    # -- schema -----------------------------------------------------------------

    def schema_version(self) -> int:
        return int(self.conn.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        try:
            version = self.schema_version()
        except SidecarError:
            raise
        except sqlite3.DatabaseError as exc:
            raise SidecarError(
                f"{self.db_path} is not a usable albumtagger library ({exc}). "
                f"Restore a copy from {self.backup_dir} or move the file away to start afresh."
            ) from None
        if version // 100 > SCHEMA_MAJOR:
            raise SchemaTooNewError(
                f"This library was written by a newer albumtagger (schema "
                f"{version_text(version)}; this version reads {SCHEMA_MAJOR}.x). "
                f"Update albumtagger to open it."
            )
        if version > SCHEMA_VERSION:
            log.info("Sidecar schema %s is newer than ours; opening it", version_text(version))
            return
        if version not in (0, *(v for v, _ in MIGRATIONS)):
            raise self._damaged(f"{version}", "has a schema version albumtagger never wrote")
        pending = [(v, script) for v, script in MIGRATIONS if v > version]
        if not pending:
            return
        problem = self._migration_problem(version, pending)
        if problem is not None:
            raise self._damaged(
                problem, f"does not hold what its schema version ({version_text(version)}) says"
            )
        if version > 0 and self._backups:
            self.backup(reason=f"before-migration-{version_text(version)}")
        for target, script in pending:
            log.info("Migrating sidecar %s to schema %s", self.db_path, version_text(target))
            self._run_migration(target, script)

    def _migration_problem(self, version: int, pending: list[tuple[int, str]]) -> str | None:
        """What stops the pending migrations (None: nothing), found by running them in a
        transaction that is rolled back: a schema version that does not match the tables
        (set by hand, say) is refused before a backup is written or anything changed."""
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            if self.schema_version() != version:
                return None  # another process migrated it meanwhile
            for _, script in pending:
                for statement in statements(script):
                    conn.execute(statement)
        except SidecarError:
            raise
        except sqlite3.DatabaseError as exc:
            return str(exc)
        finally:
            self._abandon(conn)
        return None

    def _run_migration(self, target: int, script: str) -> None:
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        if self.schema_version() >= target:  # another process got there first
            conn.execute("COMMIT")
            return
        try:
            for statement in statements(script):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {int(target)}")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    # -- backups ----------------------------------------------------------------

    def backups(self) -> list[Path]:
        """Backups, oldest first (regular files only: a link planted there is no backup)."""
        if self.backup_dir.is_symlink() or not self.backup_dir.is_dir():
            return []
        return sorted(p for p in self.backup_dir.glob("library-*.sqlite") if _regular_file(p))

    def backup_if_due(self) -> Path | None:
        existing = self.backups()
        if existing and time.time() - existing[-1].stat().st_mtime < BACKUP_INTERVAL_S:
            return None
        if self.schema_version() == 0:
            return None
        return self.backup(reason="daily")

    def backup(self, reason: str = "manual") -> Path:
        """Copy the database with SQLite's backup API and verify the copy.

        The copy is written as `.partial` and gets its final name only once it passed
        `PRAGMA integrity_check`, so every `library-*.sqlite` was verified. A copy that
        fails is deleted and the error raised, and nothing is rotated out: old backups
        go only after a new verified one exists, which is then the newest kept (the
        newest `BACKUPS_KEPT` are kept). Leftover `.partial` files of a backup that was
        interrupted (a crash) are removed once they are old. The `.partial` is created
        new (a link planted at its name is not followed) and has no journal file.
        """
        check_own_files(self.db_path)  # the backups folder is no planted link
        self.backup_dir.mkdir(parents=True, exist_ok=True)
        self._remove_stale_partials()
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        target = self.backup_dir / f"library-{stamp}-{reason}.sqlite"
        partial = target.with_suffix(".partial")
        try:
            os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o644))
        except OSError as exc:
            raise self._backup_failed(exc.strerror or str(exc)) from exc
        try:
            dest = sqlite3.connect(partial)
            try:
                dest.execute("PRAGMA journal_mode = MEMORY")
                self.conn.backup(dest)
                result = dest.execute("PRAGMA integrity_check").fetchone()[0]
            finally:
                dest.close()
        except sqlite3.Error as exc:
            partial.unlink(missing_ok=True)
            mapped = self._user_error(exc)
            if isinstance(mapped, SidecarWriteError):
                raise self._backup_failed(str(exc)) from exc
            raise mapped or exc from exc
        if result != "ok":
            partial.unlink(missing_ok=True)
            raise SidecarError(
                f"The backup of {self.db_path} failed its integrity check ({result}); "
                f"the library may be damaged. Restore a copy from {self.backup_dir}."
            )
        os.replace(partial, target)
        for old in self.backups()[:-BACKUPS_KEPT]:
            if old != target:  # never the new verified one, whatever the clock says
                old.unlink(missing_ok=True)
        log.info("Backed up sidecar to %s", target)
        return target

    def _backup_failed(self, detail: str) -> SidecarWriteError:
        return SidecarWriteError(
            f"The backup of {self.db_path} could not be written to {self.backup_dir} "
            f"({detail}); the library itself is unchanged. Free some space or check the "
            "drive; the next backup is tried later."
        )

    def _remove_stale_partials(self) -> None:
        for partial in self.backup_dir.glob("library-*.partial"):
            with contextlib.suppress(OSError):
                if time.time() - partial.lstat().st_mtime > STALE_PARTIAL_S:
                    partial.unlink()

    def integrity_ok(self) -> bool:
        return self.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    # -- settings -----------------------------------------------------------------

    def get_setting(self, key: str, default: str | None = None) -> str | None:
        row = self.conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return default if row is None else str(row[0])

    def set_setting(self, key: str, value: str) -> None:
        self.conn.execute(
            "INSERT INTO settings(key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )
