"""The grid's model: a NumPy array of photo ids, with their summaries fetched a page at a
time (never from `data()`), cached until the photo changes."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from PySide6.QtCore import QAbstractListModel, QModelIndex, QPersistentModelIndex, Qt, Signal

from albumtagger.app.numbers import fixed
from albumtagger.app.qtcompat import plain_tooltip
from albumtagger.app.reads import ReadPool
from albumtagger.library.db.queries import PhotoSummary

PHOTO_ID_ROLE = Qt.ItemDataRole.UserRole + 1
SUMMARY_ROLE = Qt.ItemDataRole.UserRole + 2
SCORE_ROLE = Qt.ItemDataRole.UserRole + 3

PAGE = 256
"""Summaries are fetched in pages of this many rows."""
MAX_CACHED = 20_000

STATUS_TEXT = {
    "ok": "tagged",
    "pending": "waiting to be tagged",
    "damaged": "damaged",
    "missing": "missing (the file is gone; its tags are kept)",
}

_Index = QModelIndex | QPersistentModelIndex


def file_name(path: str) -> str:
    return path.rpartition("/")[2]


class PhotoListModel(QAbstractListModel):
    """Rows are photos; `ids` is the array the current filter (or search) gave.

    Summaries are read a page at a time on the read pool; `summaries_arrived` tells the
    view to repaint. A changed photo keeps its old summary on screen until the new one
    arrives."""

    summaries_arrived = Signal()

    def __init__(self, reads: ReadPool | None = None, parent=None) -> None:
        super().__init__(parent)
        self._reads = reads
        self._ids = np.zeros(0, dtype=np.int64)
        self._scores: np.ndarray | None = None
        self._sorter: np.ndarray | None = None
        self._summaries: dict[int, PhotoSummary] = {}
        self._fetched_pages: set[int] = set()
        self._stale: dict[int, int] = {}
        self._generation = 0

    # -- content ----------------------------------------------------------------------

    def set_reads(self, reads: ReadPool | None) -> None:
        self.beginResetModel()
        self._reads = reads
        self._ids = np.zeros(0, dtype=np.int64)
        self._scores = None
        self._sorter = None
        self._summaries.clear()
        self._fetched_pages.clear()
        self.endResetModel()

    @property
    def ids(self) -> np.ndarray:
        return self._ids

    @property
    def scores(self) -> np.ndarray | None:
        return self._scores

    def set_ids(self, ids: np.ndarray, scores: np.ndarray | None = None) -> None:
        """Show these photos, in this order. Appends when the new list only adds at the end
        (photos found while indexing), so the view keeps its selection and scroll."""
        ids = np.asarray(ids, dtype=np.int64)
        old = self._ids
        if scores is None and self._scores is None and np.array_equal(ids, old):
            return
        if (
            scores is None
            and self._scores is None
            and len(ids) > len(old)
            and np.array_equal(ids[: len(old)], old)
        ):
            self.beginInsertRows(QModelIndex(), len(old), len(ids) - 1)
            self._ids = ids
            self._sorter = None
            self._fetched_pages = {p for p in self._fetched_pages if (p + 1) * PAGE <= len(old)}
            self.endInsertRows()
            return
        self.beginResetModel()
        self._ids = ids
        self._scores = None if scores is None else np.asarray(scores, dtype=np.float32)
        self._sorter = None
        self._fetched_pages.clear()
        self.endResetModel()

    def row_of(self, photo_id: int) -> int:
        """The row of a photo, or -1 when it is not shown."""
        if len(self._ids) == 0:
            return -1
        if self._sorter is None:
            self._sorter = np.argsort(self._ids, kind="stable")
        sorted_ids = self._ids[self._sorter]
        at = int(np.searchsorted(sorted_ids, photo_id))
        if at < len(sorted_ids) and sorted_ids[at] == photo_id:
            return int(self._sorter[at])
        return -1

    def rows_of(self, photo_ids: Iterable[int]) -> list[int]:
        wanted = np.fromiter((int(i) for i in photo_ids), dtype=np.int64)
        if len(wanted) == 0 or len(self._ids) == 0:
            return []
        return [int(r) for r in np.flatnonzero(np.isin(self._ids, wanted))]

    def photo_id(self, row: int) -> int:
        return int(self._ids[row])

    def summary_of(self, photo_id: int) -> PhotoSummary | None:
        return self._summaries.get(int(photo_id))

    # -- summaries, a page at a time ----------------------------------------------------

    def ensure_rows(self, first: int, last: int) -> None:
        """Ask for the summaries of rows first..last (whole pages) not cached or changed."""
        if self._reads is None or len(self._ids) == 0:
            return
        first = max(0, first)
        last = min(len(self._ids) - 1, last)
        if last < first:
            return
        wanted: list[int] = []
        for page in range(first // PAGE, last // PAGE + 1):
            if page in self._fetched_pages:
                continue
            self._fetched_pages.add(page)
            chunk = self._ids[page * PAGE : (page + 1) * PAGE]
            wanted.extend(
                int(i) for i in chunk if int(i) not in self._summaries or int(i) in self._stale
            )
        if not wanted:
            return
        if len(self._summaries) + len(wanted) > MAX_CACHED:
            keep = set(self._ids[max(0, first - PAGE) : last + PAGE].tolist())
            self._summaries = {k: v for k, v in self._summaries.items() if k in keep}
            self._fetched_pages = set(range(first // PAGE, last // PAGE + 1))
        generation = self._generation
        self._reads.read(
            "",
            lambda q, ids=wanted: q.summaries(ids),
            lambda result, g=generation: self._arrived(result, g),
        )

    def _arrived(self, summaries: list[PhotoSummary], generation: int) -> None:
        for s in summaries:
            self._summaries[s.id] = s
            if self._stale.get(s.id, generation + 1) <= generation:
                del self._stale[s.id]
        self.summaries_arrived.emit()

    def forget(self, photo_ids: Iterable[int]) -> list[int]:
        """Changed photos: read their summaries again; returns the rows they are shown in."""
        self._generation += 1
        changed = np.asarray(tuple(photo_ids), dtype=np.int64)
        if len(changed) == 0:
            return []
        for i in changed.tolist():
            if i in self._summaries:
                self._stale[i] = self._generation
        if len(self._ids) == 0:
            return []
        # A lookup table over the ids (ids are small positive integers): linear, where
        # np.isin sorts; this runs in the GUI thread after every batch of changes.
        top = int(max(changed.max(), self._ids.max())) + 1
        is_changed = np.zeros(top, dtype=bool)
        is_changed[changed[changed >= 0]] = True
        rows = np.flatnonzero(is_changed[self._ids])
        self._fetched_pages.difference_update(np.unique(rows // PAGE).tolist())
        return rows.tolist()

    def forget_all(self) -> None:
        self._summaries.clear()
        self._stale.clear()
        self._fetched_pages.clear()

    def pending(self) -> bool:
        return self._reads is not None and self._reads.pending("")

    # -- QAbstractListModel -------------------------------------------------------------

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._ids)

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        row = index.row()
        if row >= len(self._ids):
            return None
        pid = int(self._ids[row])
        if role == PHOTO_ID_ROLE:
            return pid
        if role == SCORE_ROLE:
            return None if self._scores is None else float(self._scores[row])
        summary = self._summaries.get(pid)
        if role == SUMMARY_ROLE:
            return summary
        if summary is None:
            return None
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.AccessibleTextRole):
            return file_name(summary.path)
        if role == Qt.ItemDataRole.ToolTipRole:
            lines = [summary.path, STATUS_TEXT.get(summary.status, summary.status)]
            if summary.error:
                lines.append(summary.error)
            if summary.status == "ok":
                lines.append(f"{summary.tag_count} tags")
            if summary.needs_review:
                lines.append("a suggestion needs review")
            if self._scores is not None:
                lines.append(f"match {fixed(float(self._scores[row]))}")
            return plain_tooltip("\n".join(lines))
        return None

    def flags(self, index: _Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
