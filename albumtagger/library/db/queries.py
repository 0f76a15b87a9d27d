"""The read side of the sidecar: what the window asks for, on its own read-only connection.

`Store` (store.py) owns the writes; this module holds the SQL of the reads the app
needs, beside it in the library layer. `LibraryQueries` opens the sidecar read-only
(`mode=ro`, `PRAGMA query_only`), so it can run on the GUI thread while the worker's
`Store` writes: in WAL mode a reader sees the last committed state and never waits for
the writer. Each query here is meant to answer in well under 50 ms on a library of
100k photos and 300 tags (see benchmarks/library_scale.py).

What "a photo carries a tag" means, everywhere (find, the grid, counts, export):
the photo's `photo_tags` row for that tag has state `accepted` or `suggested`.
Suggestions from the fallback (few tags passed their threshold) are carried too, shown
as low-confidence tags. A `rejected` row never counts: the user said no.
`CARRIED_STATES` and `CARRIES_SQL` (in `sql`, shared with `store`) are that
definition; import them, do not restate it.

What "a photo needs review" means: it carries an automatic suggestion the tagger is
unsure of, that is a `suggested` row that is a fallback tag or has low (or unknown)
confidence. Accepted tags and rejected rows never need review. `NEEDS_REVIEW_SQL`.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from albumtagger.errors import SchemaTooNewError, SidecarError
from albumtagger.library.db.schema import COUNT_TRIGGERS, SCHEMA_MAJOR, version_text
from albumtagger.library.db.sql import (
    CARRIED_STATES,
    CARRIES_SQL,
    NEEDS_REVIEW_CONDITION,
    PHOTO_STATUSES,
    TAKEN_SQL,
    VECTOR_BLOCK_ROWS,
)
from albumtagger.library.db.store import check_own_files, full_at_open, out_of_space

log = logging.getLogger(__name__)

NEEDS_REVIEW_SQL = NEEDS_REVIEW_CONDITION
"""SQL condition on a `photo_tags` row: an automatic suggestion worth a second look."""

REVIEW_INDEX = "photo_tags_review"
REVIEW_INDEX_SQL = f"CREATE INDEX {REVIEW_INDEX} ON photo_tags(photo_id) WHERE {NEEDS_REVIEW_SQL}"
"""The partial index that makes the needs-review filter cheap (proposed for the schema).
When the sidecar has it, the queries here use it; without it they scan photo_tags."""

# Without the partial index: `+state` keeps SQLite off photo_tags_by_tag, whose use for
# this condition means one table lookup per row (0.5 s at 100k photos, not 30 ms).
_REVIEW_SCAN_SQL = NEEDS_REVIEW_SQL.replace("state =", "+state =", 1)

QUICK_BY_ID_INDEX = "photos_quick_by_id"
"""Schema 1.6's index of each photo's status and tag counts by id."""

_UNTAGGED_COLUMN = "p.tags_carried = 0"
_REVIEW_COLUMN = "p.tags_to_review > 0"
"""Untagged and needs review, from the counts schema 1.6 keeps on each photo row."""

ORDERS: tuple[str, ...] = ("path", "name", "taken", "added")
"""Orders of `PhotoFilter.order`: path (folder, then file name), file name, date taken,
date added."""

QUICK_FILTERS: tuple[str, ...] = ("untagged", "needs_review", "damaged", "missing", "pending")

MIN_SCHEMA = 101
"""The oldest sidecar schema these queries read (1.1: tag thresholds and feedback)."""

BUSY_TIMEOUT_MS = 200
"""A WAL reader only waits in rare cases (the writer resetting the log, recovery)."""

COUNTS_CACHE_SIZE = 32
"""Filters whose counts are kept until another connection commits."""

_CHUNK = 500
_LIKE_ESCAPE = "\\"


def carries(state: str) -> bool:
    """The Python twin of `CARRIES_SQL`, for rows already read."""
    return state in CARRIED_STATES


@dataclass(frozen=True)
class PhotoFilter:
    """Which photos the grid shows, in what order. The default shows every photo.

    - `tags`: photos carrying all of them (or any of them with `match_any`).
    - `exclude`: photos carrying any of these are left out.
    - `statuses`: only these photo statuses (ok, damaged, missing, pending); empty: all.
    - `untagged`: only photos that carry no tag. `needs_review`: only photos with a
      suggestion worth a second look (see the module doc).
    - `folder`: only photos in this folder and its sub-folders (relative POSIX path,
      case-sensitive; "" the whole library).
    - `hide_missing`: leave out photos whose file is gone unless `statuses` asks for
      them (the window's filter: its counts and grid show them only under the Missing
      quick filter). Off by default, so the commands list every photo.
    - `name`: only photos whose file name contains this text (case-insensitive).
    - `order`: "path" (folder, then file name), "name" (file name, then path), "taken"
      (date taken: the photo's EXIF date, else the file's modification time), or
      "added" (when the photo entered the library). Ties are broken by photo id.
    """

    tags: tuple[int, ...] = ()
    exclude: tuple[int, ...] = ()
    match_any: bool = False
    statuses: tuple[str, ...] = ()
    untagged: bool = False
    needs_review: bool = False
    folder: str = ""
    name: str = ""
    order: str = "path"
    descending: bool = False
    hide_missing: bool = False

    def __post_init__(self) -> None:
        # Accept any sequence; store tuples so the filter stays hashable.
        object.__setattr__(self, "tags", tuple(int(t) for t in self.tags))
        object.__setattr__(self, "exclude", tuple(int(t) for t in self.exclude))
        object.__setattr__(self, "statuses", tuple(self.statuses))
        object.__setattr__(self, "folder", self.folder.strip("/"))
        if self.order not in ORDERS:
            raise ValueError(f"unknown order {self.order!r}; one of {', '.join(ORDERS)}")
        unknown = set(self.statuses) - set(PHOTO_STATUSES)
        if unknown:
            raise ValueError(f"unknown photo status {sorted(unknown)}")


@dataclass(frozen=True)
class PhotoSummary:
    """What a grid cell needs of one photo."""

    id: int
    path: str
    status: str
    error: str | None
    width: int | None
    height: int | None
    size: int
    content_hash: str | None
    tag_count: int
    """Tags the photo carries."""
    needs_review: bool


@dataclass(frozen=True)
class PhotoDetail:
    """One photo's facts, for the preview panel."""

    id: int
    path: str
    status: str
    error: str | None
    width: int | None
    height: int | None
    size: int
    content_hash: str | None
    mtime_ns: int
    added_at: float
    updated_at: float
    taken_at: float | None = None
    """From the photo's EXIF; None when it does not say (the file's time stands in)."""


@dataclass(frozen=True)
class PhotoTagInfo:
    """One tag row of one photo (any state), with its tag's current threshold."""

    tag_id: int
    name: str
    score: float | None
    state: str
    source: str
    fallback: bool
    confidence: str | None
    threshold: float | None

    @property
    def carried(self) -> bool:
        return carries(self.state)


@dataclass(frozen=True)
class TagInfo:
    """A row of the tags panel."""

    id: int
    name: str
    threshold: float | None
    events: int
    """Feedback events the tag's threshold has learnt from."""
    pinned: bool = False
    """The threshold was set by hand (it does not learn)."""


@dataclass(frozen=True)
class QuickCounts:
    """Counts of the photos a filter matches: in all, and per quick filter."""

    total: int
    untagged: int
    needs_review: int
    damaged: int
    missing: int
    pending: int
    by_status: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "untagged": self.untagged,
            "needs_review": self.needs_review,
            "damaged": self.damaged,
            "missing": self.missing,
            "pending": self.pending,
        }


def _carried_ids(tag_condition: str = "") -> str:
    """Subquery: ids of photos carrying a tag (over the photo_tags_by_tag index)."""
    where = f"{tag_condition} AND {CARRIES_SQL}" if tag_condition else CARRIES_SQL
    return f"SELECT photo_id FROM photo_tags WHERE {where}"


_MISSING_IDS = "SELECT id FROM photos WHERE status = 'missing'"
"""Over the status index: a few ids, checked against each row's id with no table lookup."""


def _marks(n: int) -> str:
    return ", ".join("?" * n)


def _like_escape(text: str) -> str:
    e = _LIKE_ESCAPE
    return text.replace(e, e + e).replace("%", e + "%").replace("_", e + "_")


def _file_name_has(path: str | None, needle: str | None) -> bool:
    """SQL function: the file name (last path part) contains `needle` (casefolded)."""
    if path is None or needle is None:
        return False
    return needle in path.rpartition("/")[2].casefold()


def _folder_of(path: str | None) -> str:
    """SQL function: the folder part of a relative path ("" at the root). Quicker than
    SQLite's string functions can say it (no reverse search there)."""
    return path.rpartition("/")[0] if path else ""


def _review_ids(review_sql: str) -> str:
    return f"SELECT photo_id FROM photo_tags WHERE {review_sql}"


def _untagged(alias: str = "p") -> str:
    # Per photo over the primary key: cheaper than listing every carried row.
    return (
        f"NOT EXISTS (SELECT 1 FROM photo_tags pt WHERE pt.photo_id = {alias}.id AND {CARRIES_SQL})"
    )


def _untagged_sql(columns: bool) -> str:
    return _UNTAGGED_COLUMN if columns else _untagged()


def _needs_review_sql(review_sql: str, columns: bool) -> str:
    return _REVIEW_COLUMN if columns else f"p.id IN ({_review_ids(review_sql)})"


def _where(
    f: PhotoFilter, review_sql: str = _REVIEW_SCAN_SQL, columns: bool = False
) -> tuple[list[str], list[Any]]:
    """WHERE clauses over `photos p` and their arguments; `columns`: the sidecar keeps
    each photo's tag counts (schema 1.6), which say untagged and needs review."""
    where: list[str] = []
    args: list[Any] = []
    if f.statuses:
        where.append(f"p.status IN ({_marks(len(f.statuses))})")
        args.extend(f.statuses)
    elif f.hide_missing:
        where.append(f"p.id NOT IN ({_MISSING_IDS})")
    if f.folder:
        # Range over the path index: every path starting with "folder/" ('0' follows '/').
        where.append("p.path >= ? AND p.path < ?")
        args.extend([f.folder + "/", f.folder + "0"])
    if f.name:
        needle = f.name.casefold()
        if needle.isascii():
            # LIKE folds ASCII case and narrows cheaply; the function checks the file name.
            where.append(f"p.path LIKE ? ESCAPE '{_LIKE_ESCAPE}'")
            args.append(f"%{_like_escape(needle)}%")
        where.append("file_name_has(p.path, ?)")
        args.append(needle)
    if f.tags:
        if f.match_any or len(f.tags) == 1:
            where.append(f"p.id IN ({_carried_ids(f'tag_id IN ({_marks(len(f.tags))})')})")
            args.extend(f.tags)
        else:
            for tag_id in f.tags:
                where.append(f"p.id IN ({_carried_ids('tag_id = ?')})")
                args.append(tag_id)
    if f.exclude:
        where.append(f"p.id NOT IN ({_carried_ids(f'tag_id IN ({_marks(len(f.exclude))})')})")
        args.extend(f.exclude)
    if f.untagged:
        where.append(_untagged_sql(columns))
    if f.needs_review:
        where.append(_needs_review_sql(review_sql, columns))
    return where, args


_ORDER_SQL = {
    "path": ("p.path",),
    "name": (
        "substr(p.path, length(rtrim(p.path, replace(p.path, '/', ''))) + 1) COLLATE NOCASE",
        "p.path",
    ),
    "taken": (TAKEN_SQL, "p.id"),  # (no other table of the query has these columns)
    "added": ("p.added_at", "p.id"),
}


def _order_by(f: PhotoFilter) -> str:
    direction = " DESC" if f.descending else ""
    return ", ".join(k + direction for k in _ORDER_SQL[f.order])


class LibraryQueries:
    """Read-only access to one sidecar, safe beside a writer in another thread or process.

    One connection, guarded by a lock, so an instance may be shared between threads;
    the GUI keeps one for its thread. Nothing here ever writes.
    """

    def __init__(self, db_path: Path | str, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> None:
        self.db_path = Path(db_path)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._counts: OrderedDict[tuple[str, PhotoFilter], Any] = OrderedDict()
        self._counts_version: int | None = None
        if not self.db_path.is_file():
            raise SidecarError(
                f"There is no library database at {self.db_path}. Open the folder in "
                "albumtagger (or index it) to create it."
            )
        check_own_files(self.db_path)
        uri = self.db_path.resolve().as_uri() + "?mode=ro"
        try:
            conn = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None)
        except sqlite3.Error as exc:
            if out_of_space(exc, self.db_path.parent):
                raise full_at_open(self.db_path) from None
            raise SidecarError(
                f"The library database {self.db_path} cannot be opened for reading ({exc})."
            ) from None
        self._conn = conn
        try:
            conn.execute("PRAGMA query_only = ON")
            conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            conn.execute("PRAGMA cache_size = -32768")  # 32 MiB of pages: tags and photos
            conn.create_function("file_name_has", 2, _file_name_has, deterministic=True)
            conn.create_function("folder_of", 1, _folder_of, deterministic=True)
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            has_review_index = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ? "
                "AND instr(sql, ?) > 0",
                (REVIEW_INDEX, f"WHERE {NEEDS_REVIEW_SQL}"),
            ).fetchone()
            counts_kept = conn.execute(
                "SELECT COUNT(*) FROM sqlite_master WHERE (type = 'trigger' "
                f"AND tbl_name = 'photo_tags' AND name IN ({_marks(len(COUNT_TRIGGERS))})) "
                "OR (type = 'index' AND name = ?)",
                (*COUNT_TRIGGERS, QUICK_BY_ID_INDEX),
            ).fetchone()[0]
        except sqlite3.Error as exc:
            self.close()
            if out_of_space(exc, self.db_path.parent):
                raise full_at_open(self.db_path) from None
            raise SidecarError(
                f"{self.db_path} is not a usable albumtagger library ({exc})."
            ) from None
        except BaseException:
            self.close()
            raise
        if version // 100 > SCHEMA_MAJOR:
            self.close()
            raise SchemaTooNewError(
                f"This library was written by a newer albumtagger (schema "
                f"{version_text(version)}; this version reads {SCHEMA_MAJOR}.x). "
                f"Update albumtagger to open it."
            )
        if version < MIN_SCHEMA:
            self.close()
            raise SidecarError(
                f"The library {self.db_path} has schema {version_text(version)}; open it "
                f"for writing first (the app does) so it is brought up to date."
            )
        self._review_sql = NEEDS_REVIEW_SQL if has_review_index else _REVIEW_SCAN_SQL
        # A sidecar from before 1.6 (not yet opened for writing) lacks them.
        self._columns = counts_kept == len(COUNT_TRIGGERS) + 1

    @property
    def uses_review_index(self) -> bool:
        """Whether the sidecar has the partial index of `REVIEW_INDEX_SQL`."""
        return self._review_sql == NEEDS_REVIEW_SQL

    @property
    def uses_tag_counts(self) -> bool:
        """Whether the sidecar keeps each photo's tag counts (schema 1.6), so untagged
        and needs review are read from the photo rows."""
        return self._columns

    def _filter(self, f: PhotoFilter) -> tuple[list[str], list[Any]]:
        return _where(f, self._review_sql, self._columns)

    # -- connection -------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.close()
                self._conn = None

    def __enter__(self) -> LibraryQueries:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """The connection, held by this thread; several statements see one snapshot."""
        with self._lock:
            if self._conn is None:
                raise SidecarError("The library is closed.")
            conn = self._conn
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                conn.execute("COMMIT")

    def data_version(self) -> int:
        """Changes whenever another connection commits (cheap: for polling or caches)."""
        with self._read() as conn:
            return int(conn.execute("PRAGMA data_version").fetchone()[0])

    # -- filters and counts -------------------------------------------------------------

    def photo_ids(self, f: PhotoFilter | None = None) -> np.ndarray:
        """Ids (int64) of the photos the filter matches, in the filter's order."""
        f = f or PhotoFilter()
        where, args = self._filter(f)
        sql = "SELECT p.id FROM photos p"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY " + _order_by(f)
        with self._read() as conn:
            cur = conn.execute(sql, args)
            return np.fromiter(itertools.chain.from_iterable(cur), dtype=np.int64)

    def count(self, f: PhotoFilter | None = None) -> int:
        """How many photos the filter matches."""
        where, args = self._filter(f or PhotoFilter())
        sql = "SELECT COUNT(*) FROM photos p"
        if where:
            sql += " WHERE " + " AND ".join(where)
        with self._read() as conn:
            return int(conn.execute(sql, args).fetchone()[0])

    def _counted(
        self, kind: str, f: PhotoFilter, compute: Callable[[sqlite3.Connection, PhotoFilter], Any]
    ) -> Any:
        """Counts of a filter (any order), computed once per state of the library: kept
        until another connection commits (`PRAGMA data_version` changes; nothing here
        writes), so the window asking again after each read costs a PRAGMA."""
        key = (kind, replace(f, order="path", descending=False))
        with self._read() as conn:
            version = int(conn.execute("PRAGMA data_version").fetchone()[0])
            if version != self._counts_version:
                self._counts.clear()
                self._counts_version = version
            if key in self._counts:
                self._counts.move_to_end(key)
                return self._counts[key]
            value = compute(conn, f)
            self._counts[key] = value
            if len(self._counts) > COUNTS_CACHE_SIZE:
                self._counts.popitem(last=False)
            return value

    def tag_counts(self, f: PhotoFilter | None = None) -> dict[int, int]:
        """Photos carrying each tag among those the filter matches (tags with none left out).

        One GROUP BY; with no filter it reads only the photo_tags_by_tag index.
        """
        return dict(self._counted("tags", f or PhotoFilter(), self._tag_counts))

    def _tag_counts(self, conn: sqlite3.Connection, f: PhotoFilter) -> dict[int, int]:
        if not f.hide_missing or f.statuses:
            return self._carried_counts(conn, f)
        # The counts with the missing photos, less theirs: the first reads only the index
        # (a condition on the photos would cost a lookup per row), the second a few rows.
        shown = replace(f, hide_missing=False)
        counts = self._carried_counts(conn, shown)
        for tag_id, n in self._carried_counts(conn, replace(shown, statuses=("missing",))).items():
            counts[tag_id] -= n
            if not counts[tag_id]:
                del counts[tag_id]
        return counts

    def _carried_counts(self, conn: sqlite3.Connection, f: PhotoFilter) -> dict[int, int]:
        where, args = self._filter(f)
        sql = f"SELECT tag_id, COUNT(*) FROM photo_tags WHERE {CARRIES_SQL}"
        if where:
            sql += f" AND photo_id IN (SELECT p.id FROM photos p WHERE {' AND '.join(where)})"
        sql += " GROUP BY tag_id"
        return {int(t): int(n) for t, n in conn.execute(sql, args)}

    def quick_counts(self, f: PhotoFilter | None = None) -> QuickCounts:
        """Of the photos the filter matches: how many in all, untagged, needing review,
        and per status (so a filter on status ok counts no damaged photo)."""
        counts = self._counted("quick", f or PhotoFilter(), self._quick_counts)
        return replace(counts, by_status=dict(counts.by_status))

    def _quick_counts(self, conn: sqlite3.Connection, f: PhotoFilter) -> QuickCounts:
        # One pass, per status with the missing photos in, so the Missing quick filter
        # says how many it would show; the total, untagged and needs review count what
        # `f` shows (less the missing bucket when it hides them). With the tag counts
        # of schema 1.6 the pass reads only the photos_quick_counts index (no filter)
        # or the index entries of the photos `f` picks.
        where, args = self._filter(replace(f, hide_missing=False))
        sql = (
            f"SELECT p.status, COUNT(*), SUM({_untagged_sql(self._columns)}), "
            f"SUM({_needs_review_sql(self._review_sql, self._columns)}) FROM photos p"
        )
        if f.tags and self._columns:
            # The tagged photos' ids, looked up in the narrow index rather than their
            # rows (3x quicker at 100k photos); SQLite picks it only with ANALYZE stats.
            sql += f" INDEXED BY {QUICK_BY_ID_INDEX}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = {
            str(r[0]): (int(r[1]), int(r[2] or 0), int(r[3] or 0))
            for r in conn.execute(sql + " GROUP BY p.status", args)
        }
        by_status = {s: rows.get(s, (0, 0, 0))[0] for s in PHOTO_STATUSES}
        hidden = "missing" if f.hide_missing and not f.statuses else None
        shown = [counts for status, counts in rows.items() if status != hidden]
        return QuickCounts(
            total=sum(c[0] for c in shown),
            untagged=sum(c[1] for c in shown),
            needs_review=sum(c[2] for c in shown),
            damaged=by_status["damaged"],
            missing=by_status["missing"],
            pending=by_status["pending"],
            by_status=by_status,
        )

    def folder_counts(self, f: PhotoFilter | None = None) -> dict[str, int]:
        """Photos the filter matches (its folder aside) directly in each folder that has
        any: relative POSIX paths, "" the library's root. One GROUP BY over the folder
        part of the paths; see `folder_totals` for the counts of whole branches."""
        f = replace(f or PhotoFilter(), folder="")
        return dict(self._counted("folders", f, self._folder_counts))

    def _folder_counts(self, conn: sqlite3.Connection, f: PhotoFilter) -> dict[str, int]:
        where, args = self._filter(f)
        sql = "SELECT folder_of(p.path), COUNT(*) FROM photos p"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " GROUP BY 1"
        return {str(folder): int(n) for folder, n in conn.execute(sql, args)}

    # -- photos -----------------------------------------------------------------------

    def summaries(self, ids: Sequence[int] | np.ndarray) -> list[PhotoSummary]:
        """Grid cells for these photos (a page), in the order given; unknown ids skipped."""
        wanted = [int(i) for i in ids]
        found: dict[int, PhotoSummary] = {}
        sql = (
            "SELECT p.id, p.path, p.status, p.error, p.width, p.height, p.size, "
            "p.content_hash, "
            f"(SELECT COUNT(*) FROM photo_tags WHERE photo_id = p.id AND {CARRIES_SQL}), "
            f"EXISTS (SELECT 1 FROM photo_tags WHERE photo_id = p.id AND {NEEDS_REVIEW_SQL}) "
            "FROM photos p WHERE p.id IN "
        )
        with self._read() as conn:
            for start in range(0, len(wanted), _CHUNK):
                chunk = wanted[start : start + _CHUNK]
                for r in conn.execute(sql + f"({_marks(len(chunk))})", chunk):
                    found[r[0]] = PhotoSummary(*r[:8], tag_count=int(r[8]), needs_review=bool(r[9]))
        return [found[i] for i in wanted if i in found]

    def photo_detail(self, photo_id: int) -> PhotoDetail | None:
        """One photo's facts; None when there is no such photo (any more)."""
        with self._read() as conn:
            row = conn.execute(
                "SELECT id, path, status, error, width, height, size, content_hash, mtime_ns, "
                "added_at, updated_at, taken_at FROM photos WHERE id = ?",
                (int(photo_id),),
            ).fetchone()
        return None if row is None else PhotoDetail(*row)

    def photo_tags(self, photo_id: int) -> list[PhotoTagInfo]:
        """Every tag row of one photo (rejected too), best score first, then by name."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT pt.tag_id, t.name, pt.score, pt.state, pt.source, pt.fallback, "
                "pt.confidence, t.threshold FROM photo_tags pt JOIN tags t ON t.id = pt.tag_id "
                "WHERE pt.photo_id = ? ORDER BY pt.score IS NULL, pt.score DESC, t.name",
                (int(photo_id),),
            ).fetchall()
        return [PhotoTagInfo(r[0], r[1], r[2], r[3], r[4], bool(r[5]), r[6], r[7]) for r in rows]

    def shared_tags(self, photo_ids: Sequence[int]) -> dict[str, int]:
        """How many of these photos carry each tag (tags none of them carries left out)."""
        wanted = sorted({int(i) for i in photo_ids})
        counts: dict[str, int] = {}
        with self._read() as conn:
            for start in range(0, len(wanted), _CHUNK):
                chunk = wanted[start : start + _CHUNK]
                sql = (
                    "SELECT t.name, c.n FROM (SELECT tag_id, COUNT(*) AS n FROM photo_tags "
                    f"WHERE {CARRIES_SQL} AND photo_id IN ({_marks(len(chunk))}) "
                    "GROUP BY tag_id) c JOIN tags t ON t.id = c.tag_id"
                )
                for name, n in conn.execute(sql, chunk):
                    counts[name] = counts.get(name, 0) + int(n)
        return counts

    def tags(self) -> list[TagInfo]:
        """The vocabulary for the tags panel, by name."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT id, name, threshold, events, pinned_threshold FROM tags ORDER BY name, id"
            )
            return [TagInfo(int(r[0]), str(r[1]), r[2], int(r[3]), r[4] is not None) for r in rows]

    def photo_vectors(
        self, model_id: str, statuses: Sequence[str] = ("ok", "missing")
    ) -> tuple[np.ndarray, np.ndarray]:
        """(photo ids, float32 [n x dim] matrix) of photos with a vector of this model, by id.

        Fills one preallocated matrix a slice at a time, so loading 100k x 1536 vectors
        costs little more than the matrix itself (`VectorIndex` takes it as it is).
        """
        sql = (
            "FROM photos p JOIN embeddings e ON e.content_hash = p.content_hash "
            f"AND e.model_id = ? WHERE p.status IN ({_marks(len(statuses))})"
        )
        args = [model_id, *statuses]
        with self._read() as conn:
            n, dim = conn.execute(f"SELECT COUNT(*), MAX(e.dim) {sql}", args).fetchone()
            if not n:
                return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
            ids = np.empty(n, dtype=np.int64)
            matrix = np.empty((n, int(dim)), dtype=np.float32)
            cur = conn.execute(f"SELECT p.id, e.dtype, e.dim, e.vector {sql} ORDER BY p.id", args)
            i = 0
            while rows := cur.fetchmany(VECTOR_BLOCK_ROWS):
                _fill(ids, matrix, i, rows)
                i += len(rows)
        return ids[:i], matrix[:i]


def folder_totals(direct: dict[str, int]) -> dict[str, int]:
    """From `folder_counts`: the photos in each folder and below it, for every folder
    on the way to one that has photos ("" the whole library)."""
    totals: dict[str, int] = {"": 0}
    for folder, n in direct.items():
        totals[""] += n
        parts = folder.split("/") if folder else []
        for depth in range(1, len(parts) + 1):
            key = "/".join(parts[:depth])
            totals[key] = totals.get(key, 0) + n
    return totals


def _fill(ids: np.ndarray, matrix: np.ndarray, at: int, rows: list[tuple[Any, ...]]) -> None:
    dim = matrix.shape[1]
    ids[at : at + len(rows)] = [r[0] for r in rows]
    dtypes = {r[1] for r in rows}
    if len(dtypes) == 1 and all(r[2] == dim for r in rows):
        (dtype,) = dtypes
        block = np.frombuffer(b"".join(r[3] for r in rows), dtype=dtype).reshape(-1, dim)
        matrix[at : at + len(rows)] = block
        return
    for k, (_, dtype, d, blob) in enumerate(rows):
        if d != dim:
            raise SidecarError(f"Photo {rows[k][0]} has a {d}-dimensional vector, not {dim}.")
        matrix[at + k] = np.frombuffer(blob, dtype=dtype)
