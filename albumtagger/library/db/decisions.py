"""What photos carry: the cells of `photo_tags` (automatic suggestions and the user's
decisions), their undo snapshots, and the feedback each correction leaves (a part of
`Store`).

User decisions are sacred: automatic tagging only ever writes rows whose state is
`suggested`. Rows the user accepted, added or rejected are changed only by the user.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from albumtagger.library.db.sql import chunks, marks

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


class DecisionsMixin:
    """`Store`'s tag cells and feedback (`Store` provides `conn`, `_note` and
    `transaction`)."""

    conn: sqlite3.Connection
    _note: Callable[[str, Iterable[int]], None]
    transaction: Callable[..., contextlib.AbstractContextManager[sqlite3.Connection]]

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
        for chunk in chunks(list(photo_ids), 500):
            rows = self.conn.execute(sql + f" WHERE pt.photo_id IN ({marks(chunk)})" + order, chunk)
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
        now = time.time()
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
        for chunk in chunks(sorted(set(photo_ids)), 500):
            rows = self.conn.execute(
                "SELECT photo_id, tag_id, score, source, state, fallback, confidence, "
                f"updated_at FROM photo_tags WHERE photo_id IN ({marks(chunk)})",
                chunk,
            )
            out.extend(list(r) for r in rows)
        return out

    def restore_photo_tag_rows(self, photo_ids: Sequence[int], rows: Sequence[Sequence]) -> None:
        """Put these photos' tag rows back exactly as in a `photo_tag_rows` snapshot."""
        for chunk in chunks(sorted(set(photo_ids)), 500):
            self.conn.execute(f"DELETE FROM photo_tags WHERE photo_id IN ({marks(chunk)})", chunk)
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
            (photo_id, tag_id, score, source, state, time.time()),
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
                (photo_id, tag_id, score, source, state, int(fallback), time.time()),
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
                time.time(),
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

    def mark_feedback_undone(self, feedback_id: int, undone: bool = True) -> None:
        """Mark an event undone (or, with `undone=False`, in effect again: a redo)."""
        self.conn.execute("UPDATE feedback SET undone = ? WHERE id = ?", (int(undone), feedback_id))

    def next_redo(self) -> tuple[FeedbackEvent, dict | None] | None:
        """The event a redo puts back, with its undo data: the last one undone, newer than
        every event in effect (undone = 1; 2 is undone for good, see `forget_redo`)."""
        row = self.conn.execute(
            "SELECT id, photo_id, tag_id, action, score, positive, was_suggested, review, at, "
            "undo_data FROM feedback WHERE undone = 1 AND id > "
            "COALESCE((SELECT MAX(id) FROM feedback WHERE undone = 0), 0) ORDER BY id LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        event = FeedbackEvent(*row[:5], bool(row[5]), bool(row[6]), bool(row[7]), row[8])
        return event, None if row[9] is None else json.loads(row[9])

    def undo_redo_ids(self) -> tuple[int | None, int | None]:
        """(the event undo takes back, the event redo puts back), None where there is none
        (see `last_feedback` and `next_redo`)."""
        row = self.conn.execute(
            "SELECT (SELECT MAX(id) FROM feedback WHERE undone = 0), (SELECT MIN(id) FROM "
            "feedback WHERE undone = 1 AND id > COALESCE((SELECT MAX(id) FROM feedback "
            "WHERE undone = 0), 0))"
        ).fetchone()
        return row[0], row[1]

    def forget_redo(self) -> None:
        """A new correction: what was undone can no longer be redone."""
        self.conn.execute("UPDATE feedback SET undone = 2 WHERE undone = 1")
