"""The photo rows of the sidecar: what was found on disk, read, moved, lost or damaged,
and how often the user looked at each photo (a part of `Store`)."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from albumtagger.library.db.sql import PHOTO_STATUSES, marks

log = logging.getLogger(__name__)


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


class PhotosMixin:
    """`Store`'s photo rows (`Store` provides `conn`, `_note` and `transaction`)."""

    conn: sqlite3.Connection
    _note: Callable[[str, Iterable[int]], None]
    transaction: Callable[..., contextlib.AbstractContextManager[sqlite3.Connection]]

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
            where.append(f"status IN ({marks(statuses)})")
            args.extend(statuses)
        if paths is not None:
            where.append(f"path IN ({marks(paths)})")
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
        now = time.time()
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
            (time.time(), int(photo_id)),
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
            (size, mtime_ns, time.time(), photo_id),
        )
        self._note("updated", [photo_id])

    def mark_missing(self, photo_ids: Iterable[int]) -> None:
        """Gone from a readable root: kept with tags and vector until cleaned up."""
        now = time.time()
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
            (reason, size, mtime_ns, time.time(), photo_id),
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
        now = time.time()
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
            "UPDATE photos SET path = ?, updated_at = ? WHERE id = ?",
            (new_path, time.time(), photo_id),
        )
        self._note("moved", [photo_id])

    def set_status(self, photo_ids: Iterable[int], status: str) -> None:
        now = time.time()
        ids = list(photo_ids)
        self.conn.executemany(
            "UPDATE photos SET status = ?, error = NULL, updated_at = ? WHERE id = ?",
            [(status, now, pid) for pid in ids],
        )
        self._note("status", ids)

    def remove_photos(self, photo_ids: Iterable[int]) -> int:
        """Forget these photos (and the vectors no photo uses any more). Returns how
        many."""
        ids = [int(i) for i in photo_ids]
        with self.transaction() as conn:
            conn.executemany("DELETE FROM photos WHERE id = ?", [(i,) for i in ids])
            self._note("removed", ids)
            conn.execute(
                "DELETE FROM embeddings WHERE content_hash NOT IN "
                "(SELECT content_hash FROM photos WHERE content_hash IS NOT NULL)"
            )
        return len(ids)

    def remove_missing(self, photo_ids: Sequence[int] | None = None) -> int:
        """The user's clean-up: forget photos marked missing (only those of `photo_ids`,
        if given). Returns how many."""
        with self.transaction() as conn:
            gone = [r[0] for r in conn.execute("SELECT id FROM photos WHERE status = 'missing'")]
            if photo_ids is not None:
                wanted = {int(i) for i in photo_ids}
                gone = [i for i in gone if i in wanted]
            return self.remove_photos(gone)
