"""The sidecar's writer: every statement that changes a library (with `queries`, the
read side, the only SQL of albumtagger).

One SQLite file per photo folder (`FOLDER/.albumtagger/library.sqlite`, WAL mode,
foreign keys on). The schema version is kept in `PRAGMA user_version` as
`major * 100 + minor`; migrations run in order, each in its own transaction, after a
verified backup. A sidecar of a newer major version is refused; a newer minor
version (additive changes only) is opened as it is.

Threads: a `Store` hands each thread its own connection (`threading.local`), so one
`Store` object can be shared by a GUI and its worker thread.

User decisions are sacred: automatic tagging only ever writes rows whose state is
`suggested`. Rows the user accepted, added or rejected are changed only by the user.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from albumtagger.errors import SchemaTooNewError, SidecarError
from albumtagger.library.netfs import network_filesystem

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

SCHEMA_MAJOR = 1
SCHEMA_VERSION = 105  # 1.5

PHOTO_STATUSES = ("pending", "ok", "damaged", "missing")
TAG_STATES = ("suggested", "accepted", "rejected")
TAG_SOURCES = ("auto", "user")
FEEDBACK_ACTIONS = ("accept", "reject", "add", "remove")

_JSON_CHUNK = 500


def _dumps(data: dict) -> str:
    """`json.dumps` of a dict whose values may be long lists, a slice at a time: the
    encoder holds the GIL for a whole call, and an undo snapshot of a tag re-decided
    over a large library would stall every other thread (the app's window) meanwhile."""
    parts = []
    for key, value in data.items():
        if isinstance(value, list) and len(value) > _JSON_CHUNK:
            body = ",".join(
                json.dumps(value[i : i + _JSON_CHUNK])[1:-1]
                for i in range(0, len(value), _JSON_CHUNK)
            )
            parts.append(f"{json.dumps(str(key))}:[{body}]")
        else:
            parts.append(f"{json.dumps(str(key))}:{json.dumps(value)}")
    return "{" + ",".join(parts) + "}"


_SCHEMA_1_0 = """
CREATE TABLE photos (
    id           INTEGER PRIMARY KEY,
    path         TEXT NOT NULL UNIQUE,
    size         INTEGER NOT NULL,
    mtime_ns     INTEGER NOT NULL,
    content_hash TEXT,
    width        INTEGER,
    height       INTEGER,
    status       TEXT NOT NULL DEFAULT 'pending'
                 CHECK (status IN ('pending', 'ok', 'damaged', 'missing')),
    error        TEXT,
    added_at     REAL NOT NULL,
    updated_at   REAL NOT NULL
);
CREATE INDEX photos_hash ON photos(content_hash);
CREATE INDEX photos_status ON photos(status);

CREATE TABLE embeddings (
    content_hash TEXT NOT NULL,
    model_id     TEXT NOT NULL,
    dtype        TEXT NOT NULL CHECK (dtype IN ('float16', 'float32')),
    dim          INTEGER NOT NULL,
    vector       BLOB NOT NULL,
    PRIMARY KEY (content_hash, model_id)
) WITHOUT ROWID;

CREATE TABLE tags (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE COLLATE NOCASE,
    prompts    TEXT NOT NULL,
    created_at REAL NOT NULL
);

CREATE TABLE tag_embeddings (
    model_id    TEXT NOT NULL,
    instruction TEXT NOT NULL,
    prompt      TEXT NOT NULL,
    dim         INTEGER NOT NULL,
    vector      BLOB NOT NULL,
    PRIMARY KEY (model_id, instruction, prompt)
) WITHOUT ROWID;

CREATE TABLE photo_tags (
    photo_id   INTEGER NOT NULL REFERENCES photos(id) ON DELETE CASCADE,
    tag_id     INTEGER NOT NULL REFERENCES tags(id) ON DELETE CASCADE,
    score      REAL,
    source     TEXT NOT NULL CHECK (source IN ('auto', 'user')),
    state      TEXT NOT NULL CHECK (state IN ('suggested', 'accepted', 'rejected')),
    fallback   INTEGER NOT NULL DEFAULT 0,
    confidence TEXT,
    updated_at REAL NOT NULL,
    PRIMARY KEY (photo_id, tag_id)
) WITHOUT ROWID;
CREATE INDEX photo_tags_by_tag ON photo_tags(tag_id, state, photo_id);

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""

_SCHEMA_1_1 = """
CREATE TABLE feedback (
    id             INTEGER PRIMARY KEY,
    photo_id       INTEGER NOT NULL REFERENCES photos(id) ON DELETE CASCADE,
    tag_id         INTEGER NOT NULL REFERENCES tags(id) ON DELETE CASCADE,
    action         TEXT NOT NULL CHECK (action IN ('accept', 'reject', 'add', 'remove')),
    score          REAL,
    positive       INTEGER NOT NULL,
    was_suggested  INTEGER NOT NULL,
    prev_state     TEXT,
    prev_source    TEXT,
    prev_score     REAL,
    prev_fallback  INTEGER,
    review         INTEGER NOT NULL DEFAULT 0,
    at             REAL NOT NULL,
    undone         INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX feedback_by_tag ON feedback(tag_id, undone);
ALTER TABLE tags ADD COLUMN threshold REAL;
ALTER TABLE tags ADD COLUMN events INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tags ADD COLUMN score_median REAL;
ALTER TABLE tags ADD COLUMN score_scale REAL;
"""

_SCHEMA_1_2 = """
ALTER TABLE feedback ADD COLUMN undo_data TEXT;
"""

NEEDS_REVIEW_CONDITION = (
    "state = 'suggested' AND (fallback != 0 OR confidence IS NULL OR confidence = 'low')"
)
"""An automatic suggestion worth a second look (the read queries' "needs review")."""

_SCHEMA_1_3 = f"""
CREATE INDEX IF NOT EXISTS photo_tags_review ON photo_tags(photo_id) WHERE {NEEDS_REVIEW_CONDITION};
"""

TAKEN_SQL = "COALESCE(taken_at, mtime_ns / 1000000000.0)"
"""A photo's date taken (seconds): its EXIF date, else the file's modification time."""

_SCHEMA_1_4 = """
ALTER TABLE tags ADD COLUMN pinned_threshold REAL;
ALTER TABLE photos ADD COLUMN views INTEGER NOT NULL DEFAULT 0;
ALTER TABLE photos ADD COLUMN viewed_at REAL;
"""
# tags.pinned_threshold: a threshold the user set by hand (NULL: learned from answers).
# photos.views / viewed_at: how often and when the user last looked at a photo (the
# most-viewed photos are refined first).

_SCHEMA_1_5 = f"""
ALTER TABLE photos ADD COLUMN taken_at REAL;
CREATE INDEX photos_by_taken ON photos({TAKEN_SQL}, id);
"""
# photos.taken_at: when the photo was taken, from its EXIF (NULL: it does not say; the
# file's modification time stands in, as TAKEN_SQL says).

# (version reached, script): ordered; each runs in its own transaction.
MIGRATIONS: tuple[tuple[int, str], ...] = (
    (100, _SCHEMA_1_0),
    (101, _SCHEMA_1_1),
    (102, _SCHEMA_1_2),
    (103, _SCHEMA_1_3),
    (104, _SCHEMA_1_4),
    (105, _SCHEMA_1_5),
)


def version_text(version: int) -> str:
    return f"{version // 100}.{version % 100}"


VECTOR_BLOCK_ROWS = 1024
"""Vectors are read this many rows at a time: turning a block into a matrix holds the
interpreter lock (about a millisecond for this many; four times that froze the window
noticeably when a search loaded 100k vectors)."""


@dataclass(frozen=True)
class PhotoRow:
    id: int
    path: str
    size: int
    mtime_ns: int
    content_hash: str | None
    width: int | None
    height: int | None
    status: str
    error: str | None


@dataclass(frozen=True)
class TagRow:
    id: int
    name: str
    prompts: tuple[str, ...]
    threshold: float | None
    events: int
    score_median: float | None = None
    """The tag's library-wide score distribution when `threshold` was fitted."""
    score_scale: float | None = None
    pinned: float | None = None
    """A threshold the user set by hand (None: learned from answers)."""


@dataclass(frozen=True)
class PhotoTag:
    photo_id: int
    tag_id: int
    name: str
    score: float | None
    source: str
    state: str
    fallback: bool
    confidence: str | None


@dataclass(frozen=True)
class AutoTag:
    """One automatic suggestion for a photo, as the tag decisions produce it."""

    tag_id: int
    score: float
    fallback: bool
    confidence: str


@dataclass
class SuggestionChanges:
    """(photo id, tag id) cells whose automatic suggestion a write added, removed or
    updated (a new score, confidence or fallback flag)."""

    added: list[tuple[int, int]] = field(default_factory=list)
    removed: list[tuple[int, int]] = field(default_factory=list)
    updated: list[tuple[int, int]] = field(default_factory=list)

    def photo_ids(self) -> set[int]:
        return {p for p, _ in (*self.added, *self.removed, *self.updated)}

    def __len__(self) -> int:
        return len(self.added) + len(self.removed) + len(self.updated)


@dataclass(frozen=True)
class FeedbackEvent:
    id: int
    photo_id: int
    tag_id: int
    action: str
    score: float | None
    positive: bool
    was_suggested: bool
    review: bool
    at: float


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


def _now() -> float:
    return time.time()


def _blob(vector: np.ndarray, dtype: str) -> bytes:
    return np.ascontiguousarray(vector, dtype=np.dtype(dtype)).tobytes()


def _unblob(blob: bytes, dtype: str) -> np.ndarray:
    return np.frombuffer(blob, dtype=np.dtype(dtype))


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


class Store:
    """Access to one library's sidecar database (writes, migrations, backups)."""

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
                for statement in _statements(script):
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
            for statement in _statements(script):
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
        if existing and _now() - existing[-1].stat().st_mtime < BACKUP_INTERVAL_S:
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
                if _now() - partial.lstat().st_mtime > STALE_PARTIAL_S:
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

    # -- photos -----------------------------------------------------------------

    _PHOTO_COLUMNS = "id, path, size, mtime_ns, content_hash, width, height, status, error"

    @staticmethod
    def _photo(row: sqlite3.Row) -> PhotoRow:
        return PhotoRow(*row)

    def photo_index(self) -> dict[str, PhotoRow]:
        """Every photo row by relative path."""
        rows = self.conn.execute(f"SELECT {self._PHOTO_COLUMNS} FROM photos")
        return {row[1]: self._photo(row) for row in rows}

    def photo(self, photo_id: int) -> PhotoRow | None:
        row = self.conn.execute(
            f"SELECT {self._PHOTO_COLUMNS} FROM photos WHERE id = ?", (photo_id,)
        ).fetchone()
        return None if row is None else self._photo(row)

    def photo_by_path(self, path: str) -> PhotoRow | None:
        row = self.conn.execute(
            f"SELECT {self._PHOTO_COLUMNS} FROM photos WHERE path = ?", (path,)
        ).fetchone()
        return None if row is None else self._photo(row)

    def photos(
        self, *, statuses: Sequence[str] | None = None, paths: Sequence[str] | None = None
    ) -> list[PhotoRow]:
        """Photos ordered by path, optionally only some statuses or paths."""
        sql = f"SELECT {self._PHOTO_COLUMNS} FROM photos"
        where, args = [], []
        if statuses is not None:
            where.append(f"status IN ({_marks(statuses)})")
            args.extend(statuses)
        if paths is not None:
            where.append(f"path IN ({_marks(paths)})")
            args.extend(paths)
        if where:
            sql += " WHERE " + " AND ".join(where)
        return [self._photo(r) for r in self.conn.execute(sql + " ORDER BY path", args)]

    def photos_with_hash(self, content_hash: str) -> list[PhotoRow]:
        rows = self.conn.execute(
            f"SELECT {self._PHOTO_COLUMNS} FROM photos WHERE content_hash = ?", (content_hash,)
        )
        return [self._photo(r) for r in rows]

    def photo_ids(self) -> list[int]:
        """Every photo's id, in id order."""
        return [int(r[0]) for r in self.conn.execute("SELECT id FROM photos ORDER BY id")]

    def pending_photos(self, limit: int | None = None, after_id: int = 0) -> list[PhotoRow]:
        """Photos waiting to be read (and tagged), in id order."""
        sql = (
            f"SELECT {self._PHOTO_COLUMNS} FROM photos WHERE status = 'pending' AND id > ? "
            "ORDER BY id"
        )
        args: list[object] = [after_id]
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        return [self._photo(r) for r in self.conn.execute(sql, args)]

    def count_photos(self) -> dict[str, int]:
        rows = self.conn.execute("SELECT status, COUNT(*) FROM photos GROUP BY status")
        counts = {status: 0 for status in PHOTO_STATUSES}
        counts.update({row[0]: row[1] for row in rows})
        return counts

    def add_photo(self, path: str, size: int, mtime_ns: int) -> int:
        now = _now()
        cur = self.conn.execute(
            "INSERT INTO photos(path, size, mtime_ns, status, added_at, updated_at) "
            "VALUES (?, ?, ?, 'pending', ?, ?)",
            (path, size, mtime_ns, now, now),
        )
        photo_id = int(cur.lastrowid or 0)
        self._note("added", [photo_id])
        return photo_id

    def note_view(self, photo_id: int) -> None:
        """The user looked at this photo: count it (no change is reported; a view changes
        neither the photo nor its tags)."""
        self.conn.execute(
            "UPDATE photos SET views = views + 1, viewed_at = ? WHERE id = ?",
            (_now(), int(photo_id)),
        )

    def photo_views(self, photo_id: int) -> tuple[int, float | None]:
        """(views, last viewed at) of one photo; (0, None) for an unknown photo."""
        row = self.conn.execute(
            "SELECT views, viewed_at FROM photos WHERE id = ?", (int(photo_id),)
        ).fetchone()
        return (0, None) if row is None else (int(row[0]), row[1])

    def view_counts(self) -> dict[int, int]:
        """Views of every photo the user has looked at (photo id -> views)."""
        rows = self.conn.execute("SELECT id, views FROM photos WHERE views > 0").fetchall()
        return {int(r[0]): int(r[1]) for r in rows}

    def mark_changed(self, photo_id: int, size: int, mtime_ns: int) -> None:
        """The file at this path changed: read it again (its tags stay until then)."""
        self.conn.execute(
            "UPDATE photos SET size = ?, mtime_ns = ?, status = 'pending', error = NULL, "
            "updated_at = ? WHERE id = ?",
            (size, mtime_ns, _now(), photo_id),
        )
        self._note("updated", [photo_id])

    def mark_missing(self, photo_ids: Iterable[int]) -> None:
        """Gone from a readable root: kept with tags and vector until cleaned up."""
        now = _now()
        ids = list(photo_ids)
        self.conn.executemany(
            "UPDATE photos SET status = 'missing', updated_at = ? WHERE id = ?",
            [(now, pid) for pid in ids],
        )
        self._note("missing", ids)

    def record_damaged(self, photo_id: int, size: int, mtime_ns: int, reason: str) -> None:
        self.conn.execute(
            "UPDATE photos SET status = 'damaged', error = ?, size = ?, mtime_ns = ?, "
            "updated_at = ? WHERE id = ?",
            (reason, size, mtime_ns, _now(), photo_id),
        )
        self._note("damaged", [photo_id])

    def record_read(
        self,
        photo_id: int,
        *,
        content_hash: str,
        size: int,
        mtime_ns: int,
        width: int,
        height: int,
        taken_at: float | None = None,
    ) -> int:
        """Record what reading a pending photo found; returns the photo's id.

        If a missing photo has the same content, this file is that photo moved or
        renamed: the old row (with its tags and feedback) takes this path, and the new
        row is dropped. The photo stays `pending` until it is tagged.
        """
        conn = self.conn
        row = conn.execute(
            "SELECT id, path FROM photos WHERE content_hash = ? AND status = 'missing' "
            "AND id != ? ORDER BY updated_at DESC LIMIT 1",
            (content_hash, photo_id),
        ).fetchone()
        now = _now()
        if row is not None:
            old_id, old_path = int(row[0]), str(row[1])
            path = conn.execute("SELECT path FROM photos WHERE id = ?", (photo_id,)).fetchone()[0]
            conn.execute("DELETE FROM photos WHERE id = ?", (photo_id,))
            conn.execute(
                "UPDATE photos SET path = ?, size = ?, mtime_ns = ?, width = ?, height = ?, "
                "taken_at = ?, status = 'pending', error = NULL, updated_at = ? WHERE id = ?",
                (path, size, mtime_ns, width, height, taken_at, now, old_id),
            )
            log.info("Photo moved: %s -> %s", old_path, path)
            self._note("removed", [photo_id])
            self._note("moved", [old_id])
            return old_id
        conn.execute(
            "UPDATE photos SET content_hash = ?, size = ?, mtime_ns = ?, width = ?, height = ?, "
            "taken_at = ?, error = NULL, updated_at = ? WHERE id = ?",
            (content_hash, size, mtime_ns, width, height, taken_at, now, photo_id),
        )
        return photo_id

    def rename_photo(self, photo_id: int, new_path: str) -> None:
        """A move seen directly (a watcher event): the row simply takes the new path."""
        self.conn.execute(
            "UPDATE photos SET path = ?, updated_at = ? WHERE id = ?", (new_path, _now(), photo_id)
        )
        self._note("moved", [photo_id])

    def set_status(self, photo_ids: Iterable[int], status: str) -> None:
        now = _now()
        ids = list(photo_ids)
        self.conn.executemany(
            "UPDATE photos SET status = ?, error = NULL, updated_at = ? WHERE id = ?",
            [(status, now, pid) for pid in ids],
        )
        self._note("status", ids)

    def remove_missing(self) -> int:
        """The user's clean-up: forget photos marked missing. Returns how many."""
        with self.transaction() as conn:
            gone = [r[0] for r in conn.execute("SELECT id FROM photos WHERE status = 'missing'")]
            cur = conn.execute("DELETE FROM photos WHERE status = 'missing'")
            self._note("removed", gone)
            conn.execute(
                "DELETE FROM embeddings WHERE content_hash NOT IN "
                "(SELECT content_hash FROM photos WHERE content_hash IS NOT NULL)"
            )
        return cur.rowcount

    # -- embeddings -------------------------------------------------------------

    def requeue_without_vector(self, model_id: str) -> int:
        """Tagged photos that have no vector from this model become pending again."""
        cur = self.conn.execute(
            "UPDATE photos SET status = 'pending', updated_at = ? WHERE status = 'ok' AND "
            "NOT EXISTS (SELECT 1 FROM embeddings e WHERE e.content_hash = photos.content_hash "
            "AND e.model_id = ?) RETURNING id",
            (_now(), model_id),
        )
        ids = [r[0] for r in cur.fetchall()]
        self._note("updated", ids)
        return len(ids)

    def put_embeddings(
        self, model_id: str, items: Iterable[tuple[str, np.ndarray]], dtype: str = "float16"
    ) -> None:
        self.conn.executemany(
            "INSERT OR REPLACE INTO embeddings(content_hash, model_id, dtype, dim, vector) "
            "VALUES (?, ?, ?, ?, ?)",
            [(h, model_id, dtype, int(v.shape[-1]), _blob(v, dtype)) for h, v in items],
        )

    def content_hashes(self) -> list[str]:
        """Every photo's content hash (photos read at least once)."""
        rows = self.conn.execute(
            "SELECT DISTINCT content_hash FROM photos WHERE content_hash IS NOT NULL"
        )
        return [r[0] for r in rows]

    def embedding_hashes(self, model_id: str, hashes: Sequence[str]) -> set[str]:
        """Which of these content hashes already have a vector for this model."""
        found: set[str] = set()
        for chunk in _chunks(list(hashes), 500):
            rows = self.conn.execute(
                f"SELECT content_hash FROM embeddings WHERE model_id = ? "
                f"AND content_hash IN ({_marks(chunk)})",
                [model_id, *chunk],
            )
            found.update(r[0] for r in rows)
        return found

    def photo_vectors(
        self,
        model_id: str,
        statuses: Sequence[str] = ("ok",),
        photo_ids: Sequence[int] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(photo ids, float32 matrix) of photos with a vector for this model, by id.

        Rows are converted straight into one preallocated matrix, so loading 100k
        vectors needs little more memory than the matrix itself.
        """
        return self._vector_rows(model_id, statuses, photo_ids, None)

    def photo_scores(
        self, model_id: str, tag_matrix: np.ndarray, statuses: Sequence[str] = ("ok",)
    ) -> tuple[np.ndarray, np.ndarray]:
        """(photo ids, float32 [photos x tags] scores: each vector times `tag_matrix`.T)
        of photos with a vector for this model, by id. Multiplied a block of vectors at
        a time as they are read: no [photos x dim] matrix is held (6 GB at a million)."""
        return self._vector_rows(model_id, statuses, None, np.asarray(tag_matrix, np.float32).T)

    def _vector_rows(
        self,
        model_id: str,
        statuses: Sequence[str],
        photo_ids: Sequence[int] | None,
        project: np.ndarray | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Ids and vectors (or, with `project`, each block of vectors times it)."""
        sql = (
            f"SELECT p.id, e.dtype, e.dim, e.vector FROM photos p "
            f"JOIN embeddings e ON e.content_hash = p.content_hash AND e.model_id = ? "
            f"WHERE p.status IN ({_marks(statuses)})"
        )
        cur = self.conn.cursor()
        cur.row_factory = None
        if photo_ids is None:
            (upper,) = cur.execute(
                f"SELECT COUNT(*) FROM photos WHERE status IN ({_marks(statuses)})", statuses
            ).fetchone()
            batches: Iterable[sqlite3.Cursor] = [
                cur.execute(sql + " ORDER BY p.id", [model_id, *statuses])
            ]
        else:
            wanted = sorted(set(photo_ids))
            upper = len(wanted)
            batches = (
                cur.execute(
                    sql + f" AND p.id IN ({_marks(chunk)}) ORDER BY p.id",
                    [model_id, *statuses, *chunk],
                )
                for chunk in _chunks(wanted, 500)
            )
        ids = np.empty(upper, dtype=np.int64)
        matrix: np.ndarray | None = None
        n = 0
        for rows in batches:
            while block := rows.fetchmany(VECTOR_BLOCK_ROWS):
                k = len(block)
                ids[n : n + k] = [r[0] for r in block]
                dtypes = {r[1] for r in block}
                if len(dtypes) == 1:  # the usual case: one conversion per block
                    joined = b"".join(r[3] for r in block)
                    vectors = np.frombuffer(joined, dtype=dtypes.pop()).reshape(k, -1)
                else:
                    vectors = np.stack([_unblob(r[3], r[1]) for r in block])
                if project is not None:
                    vectors = vectors.astype(np.float32) @ project
                if matrix is None:
                    matrix = np.empty((upper, vectors.shape[1]), dtype=np.float32)
                matrix[n : n + k] = vectors
                n += k
        if matrix is None:
            width = 0 if project is None else project.shape[1]
            return np.zeros(0, dtype=np.int64), np.zeros((0, width), dtype=np.float32)
        return ids[:n].copy(), matrix[:n].copy() if n < upper else matrix

    # -- tags and their text vectors ---------------------------------------------

    @staticmethod
    def _tag(row: sqlite3.Row) -> TagRow:
        return TagRow(
            id=int(row[0]),
            name=str(row[1]),
            prompts=tuple(json.loads(row[2])),
            threshold=None if row[3] is None else float(row[3]),
            events=int(row[4]),
            score_median=None if row[5] is None else float(row[5]),
            score_scale=None if row[6] is None else float(row[6]),
            pinned=None if row[7] is None else float(row[7]),
        )

    def tags(self) -> list[TagRow]:
        rows = self.conn.execute(
            "SELECT id, name, prompts, threshold, events, score_median, score_scale, "
            "pinned_threshold FROM tags "
            "ORDER BY id"
        )
        return [self._tag(r) for r in rows]

    def tag_by_name(self, name: str) -> TagRow | None:
        row = self.conn.execute(
            "SELECT id, name, prompts, threshold, events, score_median, score_scale, "
            "pinned_threshold FROM tags "
            "WHERE name = ?",
            (name,),
        ).fetchone()
        return None if row is None else self._tag(row)

    def add_tag(self, name: str, prompts: Sequence[str]) -> int:
        self._tag_writes += 1
        cur = self.conn.execute(
            "INSERT INTO tags(name, prompts, created_at) VALUES (?, ?, ?)",
            (name, json.dumps(list(prompts), ensure_ascii=False), _now()),
        )
        tag_id = int(cur.lastrowid or 0)
        self._note("vocabulary", [tag_id])
        return tag_id

    def add_tags(self, items: Iterable[tuple[str, Sequence[str]]]) -> None:
        self._tag_writes += 1
        now = _now()
        self.conn.executemany(
            "INSERT OR IGNORE INTO tags(name, prompts, created_at) VALUES (?, ?, ?)",
            [(n, json.dumps(list(p), ensure_ascii=False), now) for n, p in items],
        )
        self._note("vocabulary", [])

    def remove_tag(self, tag_id: int) -> None:
        self._tag_writes += 1
        photos = [
            r[0]
            for r in self.conn.execute(
                "SELECT photo_id FROM photo_tags WHERE tag_id = ?", (tag_id,)
            )
        ]
        self.conn.execute("DELETE FROM tags WHERE id = ?", (tag_id,))
        self._note("tags", photos)
        self._note("vocabulary", [tag_id])

    def rename_tag(self, tag_id: int, name: str) -> None:
        """Give a tag another name; its cells, answers and threshold stay (same id)."""
        self._tag_writes += 1
        self.conn.execute("UPDATE tags SET name = ? WHERE id = ?", (name, tag_id))
        photos = [
            r[0]
            for r in self.conn.execute(
                "SELECT photo_id FROM photo_tags WHERE tag_id = ?", (tag_id,)
            )
        ]
        self._note("tags", photos)
        self._note("vocabulary", [tag_id])

    def set_tag_prompts(self, tag_id: int, prompts: Sequence[str]) -> None:
        """Replace a tag's prompts (its vector is the mean of theirs)."""
        self._tag_writes += 1
        self.conn.execute(
            "UPDATE tags SET prompts = ? WHERE id = ?",
            (json.dumps(list(prompts), ensure_ascii=False), tag_id),
        )
        self._note("vocabulary", [tag_id])

    def set_pinned_threshold(self, tag_id: int, value: float | None) -> None:
        """Pin a tag's threshold to `value` (None: give it back to learning)."""
        self._tag_writes += 1
        self.conn.execute(
            "UPDATE tags SET pinned_threshold = ? WHERE id = ?",
            (None if value is None else float(value), tag_id),
        )
        self._note("thresholds", [tag_id])

    def carrier_ids(self, tag_id: int) -> np.ndarray:
        """Ids (int64, ascending) of the photos that carry this tag (the shared
        definition, `queries.CARRIES_SQL`), whatever their status."""
        from albumtagger.library.db.queries import CARRIES_SQL

        row = self.conn.execute(
            f"SELECT group_concat(photo_id) FROM (SELECT photo_id FROM photo_tags "
            f"WHERE tag_id = ? AND {CARRIES_SQL} ORDER BY photo_id)",
            (tag_id,),
        ).fetchone()
        if row[0] is None:
            return np.zeros(0, dtype=np.int64)
        return np.array([int(x) for x in str(row[0]).split(",")], dtype=np.int64)

    def count_carriers(self, tag_id: int) -> int:
        """How many photos carry this tag (`queries.CARRIES_SQL`), whatever their status."""
        from albumtagger.library.db.queries import CARRIES_SQL

        row = self.conn.execute(
            f"SELECT COUNT(*) FROM photo_tags WHERE tag_id = ? AND {CARRIES_SQL}", (tag_id,)
        ).fetchone()
        return int(row[0])

    def remove_tag_if_unused(self, tag_id: int) -> None:
        """Drop a tag that no photo row and no feedback event refers to."""
        self._tag_writes += 1
        self.conn.execute(
            "DELETE FROM tags WHERE id = ? AND NOT EXISTS (SELECT 1 FROM photo_tags "
            "WHERE tag_id = ?) AND NOT EXISTS (SELECT 1 FROM feedback WHERE tag_id = ? "
            "AND undone = 0)",
            (tag_id, tag_id, tag_id),
        )
        self._note("vocabulary", [tag_id])

    def set_tag_thresholds(self, items: Iterable[tuple[int, float, int, float, float]]) -> None:
        """(tag id, fitted threshold, feedback events, score median, score scale) per tag."""
        self._tag_writes += 1
        rows = [(float(t), int(n), float(m), float(sc), int(tid)) for tid, t, n, m, sc in items]
        self.conn.executemany(
            "UPDATE tags SET threshold = ?, events = ?, score_median = ?, score_scale = ? "
            "WHERE id = ?",
            rows,
        )
        self._note("thresholds", [r[-1] for r in rows])

    def tag_policy_rows(self) -> list[list]:
        """(id, threshold, events, score median, score scale) of every tag (a snapshot)."""
        rows = self.conn.execute(
            "SELECT id, threshold, events, score_median, score_scale FROM tags ORDER BY id"
        )
        return [list(r) for r in rows]

    def restore_tag_policy_rows(self, rows: Sequence[Sequence]) -> None:
        """Put tags' thresholds back as in a `tag_policy_rows` snapshot."""
        self._tag_writes += 1
        self.conn.executemany(
            "UPDATE tags SET threshold = ?, events = ?, score_median = ?, score_scale = ? "
            "WHERE id = ?",
            [(t, n, m, sc, tid) for tid, t, n, m, sc in rows],
        )
        self._note("thresholds", [r[0] for r in rows])

    def text_vectors(
        self, model_id: str, instruction: str, prompts: Sequence[str]
    ) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for chunk in _chunks(list(dict.fromkeys(prompts)), 500):
            rows = self.conn.execute(
                f"SELECT prompt, vector FROM tag_embeddings WHERE model_id = ? AND "
                f"instruction = ? AND prompt IN ({_marks(chunk)})",
                [model_id, instruction, *chunk],
            )
            for prompt, blob in rows:
                out[prompt] = _unblob(blob, "float32").copy()
        return out

    def put_text_vectors(
        self, model_id: str, instruction: str, items: Iterable[tuple[str, np.ndarray]]
    ) -> None:
        self._tag_writes += 1
        self.conn.executemany(
            "INSERT OR REPLACE INTO tag_embeddings(model_id, instruction, prompt, dim, vector) "
            "VALUES (?, ?, ?, ?, ?)",
            [(model_id, instruction, p, int(v.shape[-1]), _blob(v, "float32")) for p, v in items],
        )

    # -- photo tags ---------------------------------------------------------------

    def photo_tags(self, photo_ids: Sequence[int] | None = None) -> list[PhotoTag]:
        """Tag rows (all states) for some or all photos, best score first per photo."""
        sql = (
            "SELECT pt.photo_id, pt.tag_id, t.name, pt.score, pt.source, pt.state, "
            "pt.fallback, pt.confidence FROM photo_tags pt JOIN tags t ON t.id = pt.tag_id"
        )
        out: list[PhotoTag] = []
        order = " ORDER BY pt.photo_id, pt.score IS NULL, pt.score DESC, t.name"
        if photo_ids is None:
            rows: Iterable[sqlite3.Row] = self.conn.execute(sql + order)
            out = [PhotoTag(*r[:6], bool(r[6]), r[7]) for r in rows]
            return out
        for chunk in _chunks(list(photo_ids), 500):
            rows = self.conn.execute(
                sql + f" WHERE pt.photo_id IN ({_marks(chunk)})" + order, chunk
            )
            out.extend(PhotoTag(*r[:6], bool(r[6]), r[7]) for r in rows)
        return out

    def suggestion_cells(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Every automatic suggestion as arrays: (photo ids, tag ids, fallback flags,
        confidence codes 1 low / 2 medium / 3 high), in no particular order.

        Aggregated inside SQLite and parsed by NumPy: no Python object per row, so a
        library of 100k photos is read without holding up other threads.
        """
        row = self.conn.execute(
            "SELECT group_concat(photo_id), group_concat(tag_id), group_concat(fallback), "
            "group_concat(CASE confidence WHEN 'high' THEN 3 WHEN 'medium' THEN 2 ELSE 1 END) "
            "FROM photo_tags WHERE state = 'suggested'"
        ).fetchone()
        if row[0] is None:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, np.zeros(0, dtype=bool), np.zeros(0, dtype=np.int8)
        photo, tag, fallback, confidence = (
            np.fromstring(text, dtype=np.int64, sep=",") for text in row
        )
        return photo, tag, fallback.astype(bool), confidence.astype(np.int8)

    def photo_tag(self, photo_id: int, tag_id: int) -> PhotoTag | None:
        row = self.conn.execute(
            "SELECT pt.photo_id, pt.tag_id, t.name, pt.score, pt.source, pt.state, "
            "pt.fallback, pt.confidence FROM photo_tags pt JOIN tags t ON t.id = pt.tag_id "
            "WHERE pt.photo_id = ? AND pt.tag_id = ?",
            (photo_id, tag_id),
        ).fetchone()
        return None if row is None else PhotoTag(*row[:6], bool(row[6]), row[7])

    def user_cells(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every user decision as arrays: (photo ids, tag ids, codes 1 accepted /
        -1 rejected), aggregated inside SQLite like `suggestion_cells`."""
        row = self.conn.execute(
            "SELECT group_concat(photo_id), group_concat(tag_id), "
            "group_concat(CASE state WHEN 'accepted' THEN 1 ELSE -1 END) "
            # per tag over photo_tags_by_tag(tag_id, state): no scan of every suggestion
            "FROM photo_tags WHERE tag_id IN (SELECT id FROM tags) "
            "AND state IN ('accepted', 'rejected')"
        ).fetchone()
        if row[0] is None:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, np.zeros(0, dtype=np.int8)
        photo, tag, code = (np.array(text.split(","), dtype=np.int64) for text in row)
        return photo, tag, code.astype(np.int8)

    def user_decisions(self) -> list[tuple[int, int, str]]:
        """(photo id, tag id, state) of every row the user decided."""
        rows = self.conn.execute(
            "SELECT photo_id, tag_id, state FROM photo_tags WHERE state != 'suggested'"
        )
        return [(int(a), int(b), str(c)) for a, b, c in rows]

    def replace_suggestions(self, decisions: dict[int, Sequence[AutoTag]]) -> SuggestionChanges:
        """Set the automatic suggestions of these photos; returns what changed.

        Only `suggested` rows are replaced. A cell the user decided (accepted, added,
        rejected) is never touched.
        """
        conn = self.conn
        now = _now()
        changes = SuggestionChanges()
        with self.transaction():
            for photo_id, tags in decisions.items():
                current = {
                    int(r[0]): (r[1], r[2], r[3], r[4])
                    for r in conn.execute(
                        "SELECT tag_id, state, score, fallback, confidence FROM photo_tags "
                        "WHERE photo_id = ?",
                        (photo_id,),
                    )
                }
                wanted = {t.tag_id: t for t in tags}
                stale = [
                    (photo_id, tid)
                    for tid, (state, *_) in current.items()
                    if state == "suggested" and tid not in wanted
                ]
                if stale:
                    conn.executemany(
                        "DELETE FROM photo_tags WHERE photo_id = ? AND tag_id = ? "
                        "AND state = 'suggested'",
                        stale,
                    )
                    changes.removed.extend(stale)
                for tid, t in wanted.items():
                    old = current.get(tid)
                    if old is not None and old[0] != "suggested":
                        continue
                    row = (round(t.score, 6), int(t.fallback), t.confidence)
                    if old is not None and (round(old[1] or 0.0, 6), int(old[2]), old[3]) == row:
                        continue
                    conn.execute(
                        "INSERT INTO photo_tags(photo_id, tag_id, score, source, state, "
                        "fallback, confidence, updated_at) "
                        "VALUES (?, ?, ?, 'auto', 'suggested', ?, ?, ?) "
                        "ON CONFLICT(photo_id, tag_id) DO UPDATE SET score = excluded.score, "
                        "fallback = excluded.fallback, confidence = excluded.confidence, "
                        "updated_at = excluded.updated_at WHERE photo_tags.state = 'suggested'",
                        (photo_id, tid, *row, now),
                    )
                    (changes.added if old is None else changes.updated).append((photo_id, tid))
            self._note("tags", changes.photo_ids())
        return changes

    def photo_tag_rows(self, photo_ids: Sequence[int]) -> list[list]:
        """Every tag row of these photos as plain values (an undo snapshot)."""
        out: list[list] = []
        for chunk in _chunks(sorted(set(photo_ids)), 500):
            rows = self.conn.execute(
                "SELECT photo_id, tag_id, score, source, state, fallback, confidence, "
                f"updated_at FROM photo_tags WHERE photo_id IN ({_marks(chunk)})",
                chunk,
            )
            out.extend(list(r) for r in rows)
        return out

    def restore_photo_tag_rows(self, photo_ids: Sequence[int], rows: Sequence[Sequence]) -> None:
        """Put these photos' tag rows back exactly as in a `photo_tag_rows` snapshot."""
        for chunk in _chunks(sorted(set(photo_ids)), 500):
            self.conn.execute(f"DELETE FROM photo_tags WHERE photo_id IN ({_marks(chunk)})", chunk)
        self.conn.executemany(
            "INSERT INTO photo_tags(photo_id, tag_id, score, source, state, fallback, "
            "confidence, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [tuple(r) for r in rows],
        )
        self._note("tags", photo_ids)

    def set_user_decision(
        self, photo_id: int, tag_id: int, state: str, source: str, score: float | None
    ) -> None:
        """Record the user's verdict on one cell (accepted or rejected)."""
        self.conn.execute(
            "INSERT INTO photo_tags(photo_id, tag_id, score, source, state, fallback, "
            "confidence, updated_at) VALUES (?, ?, ?, ?, ?, 0, NULL, ?) "
            "ON CONFLICT(photo_id, tag_id) DO UPDATE SET state = excluded.state, "
            "source = excluded.source, score = COALESCE(excluded.score, photo_tags.score), "
            "updated_at = excluded.updated_at",
            (photo_id, tag_id, score, source, state, _now()),
        )
        self._note("tags", [photo_id])

    def restore_cell(
        self,
        photo_id: int,
        tag_id: int,
        state: str | None,
        source: str | None,
        score: float | None,
        fallback: bool,
    ) -> None:
        """Put a cell back as it was before a decision (undo)."""
        self.conn.execute(
            "DELETE FROM photo_tags WHERE photo_id = ? AND tag_id = ?", (photo_id, tag_id)
        )
        if state is not None:
            self.conn.execute(
                "INSERT INTO photo_tags(photo_id, tag_id, score, source, state, fallback, "
                "confidence, updated_at) VALUES (?, ?, ?, ?, ?, ?, NULL, ?)",
                (photo_id, tag_id, score, source, state, int(fallback), _now()),
            )
        self._note("tags", [photo_id])

    # -- feedback -----------------------------------------------------------------

    def add_feedback(
        self,
        photo_id: int,
        tag_id: int,
        action: str,
        score: float | None,
        *,
        positive: bool,
        was_suggested: bool,
        previous: PhotoTag | None,
        review: bool = False,
    ) -> int:
        """Record a correction; `previous` is the cell before it (for undo).

        `was_suggested`: the tag was an automatic (non-fallback) suggestion when the user
        acted. `review`: an answer from the review queue (not a sample of the library).
        """
        cur = self.conn.execute(
            "INSERT INTO feedback(photo_id, tag_id, action, score, positive, was_suggested, "
            "prev_state, prev_source, prev_score, prev_fallback, review, at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                photo_id,
                tag_id,
                action,
                score,
                int(positive),
                int(was_suggested),
                None if previous is None else previous.state,
                None if previous is None else previous.source,
                None if previous is None else previous.score,
                None if previous is None else int(previous.fallback),
                int(review),
                _now(),
            ),
        )
        return int(cur.lastrowid or 0)

    def feedback(self) -> list[FeedbackEvent]:
        """Feedback events in effect (not undone), oldest first."""
        rows = self.conn.execute(
            "SELECT id, photo_id, tag_id, action, score, positive, was_suggested, review, at "
            "FROM feedback WHERE undone = 0 ORDER BY id"
        )
        return [
            FeedbackEvent(r[0], r[1], r[2], r[3], r[4], bool(r[5]), bool(r[6]), bool(r[7]), r[8])
            for r in rows
        ]

    def set_feedback_undo(self, feedback_id: int, data: dict) -> None:
        """Keep what undoing this event must restore (a JSON-able snapshot)."""
        self.conn.execute(
            "UPDATE feedback SET undo_data = ? WHERE id = ?", (_dumps(data), feedback_id)
        )

    def last_feedback(self) -> tuple[FeedbackEvent, PhotoTag | None, dict | None] | None:
        """The newest event in effect, the cell as it was before it, and its undo data."""
        row = self.conn.execute(
            "SELECT f.id, f.photo_id, f.tag_id, f.action, f.score, f.positive, "
            "f.was_suggested, f.review, f.at, f.prev_state, f.prev_source, f.prev_score, "
            "f.prev_fallback, f.undo_data, t.name FROM feedback f JOIN tags t ON t.id = f.tag_id "
            "WHERE f.undone = 0 ORDER BY f.id DESC LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        event = FeedbackEvent(
            row[0],
            row[1],
            row[2],
            row[3],
            row[4],
            bool(row[5]),
            bool(row[6]),
            bool(row[7]),
            row[8],
        )
        previous = None
        if row[9] is not None:
            previous = PhotoTag(
                row[1], row[2], row[14], row[11], row[10], row[9], bool(row[12]), None
            )
        return event, previous, None if row[13] is None else json.loads(row[13])

    def mark_feedback_undone(self, feedback_id: int) -> None:
        self.conn.execute("UPDATE feedback SET undone = 1 WHERE id = ?", (feedback_id,))


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


def _marks(items: Sequence[object]) -> str:
    return ", ".join("?" * len(items))


def _chunks(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
