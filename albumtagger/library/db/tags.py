"""The tags of a library: their names and prompts, thresholds (learned or pinned), the
photos that carry each, and the text vectors of their prompts (a part of `Store`)."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from albumtagger.library.db.sql import CARRIES_SQL, chunks, marks
from albumtagger.library.db.vectors import from_blob, to_blob


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


class TagsMixin:
    """`Store`'s tags (`Store` provides `conn` and `_note`, and counts `_tag_writes`)."""

    conn: sqlite3.Connection
    _note: Callable[[str, Iterable[int]], None]
    _tag_writes: int

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
            (name, json.dumps(list(prompts), ensure_ascii=False), time.time()),
        )
        tag_id = int(cur.lastrowid or 0)
        self._note("vocabulary", [tag_id])
        return tag_id

    def add_tags(self, items: Iterable[tuple[str, Sequence[str]]]) -> None:
        self._tag_writes += 1
        now = time.time()
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
        definition, `CARRIES_SQL`), whatever their status."""
        row = self.conn.execute(
            f"SELECT group_concat(photo_id) FROM (SELECT photo_id FROM photo_tags "
            f"WHERE tag_id = ? AND {CARRIES_SQL} ORDER BY photo_id)",
            (tag_id,),
        ).fetchone()
        if row[0] is None:
            return np.zeros(0, dtype=np.int64)
        return np.array([int(x) for x in str(row[0]).split(",")], dtype=np.int64)

    def count_carriers(self, tag_id: int) -> int:
        """How many photos carry this tag (`CARRIES_SQL`), whatever their status."""
        row = self.conn.execute(
            f"SELECT COUNT(*) FROM photo_tags WHERE tag_id = ? AND {CARRIES_SQL}", (tag_id,)
        ).fetchone()
        return int(row[0])

    def count_carriers_by_way(self, tag_id: int) -> dict[str, int]:
        """The photos that carry this tag by the way they carry it: "accepted" (an answer
        or an accepted suggestion), "passing" (a suggestion over the threshold) and
        "fallback" (a suggestion that only the fallback gave)."""
        row = self.conn.execute(
            "SELECT COALESCE(SUM(state = 'accepted'), 0), "
            "COALESCE(SUM(state = 'suggested' AND fallback = 0), 0), "
            "COALESCE(SUM(state = 'suggested' AND fallback != 0), 0) "
            f"FROM photo_tags WHERE tag_id = ? AND {CARRIES_SQL}",
            (tag_id,),
        ).fetchone()
        return {"accepted": int(row[0]), "passing": int(row[1]), "fallback": int(row[2])}

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
        for chunk in chunks(list(dict.fromkeys(prompts)), 500):
            rows = self.conn.execute(
                f"SELECT prompt, vector FROM tag_embeddings WHERE model_id = ? AND "
                f"instruction = ? AND prompt IN ({marks(chunk)})",
                [model_id, instruction, *chunk],
            )
            for prompt, blob in rows:
                out[prompt] = from_blob(blob, "float32").copy()
        return out

    def put_text_vectors(
        self, model_id: str, instruction: str, items: Iterable[tuple[str, np.ndarray]]
    ) -> None:
        self._tag_writes += 1
        self.conn.executemany(
            "INSERT OR REPLACE INTO tag_embeddings(model_id, instruction, prompt, dim, vector) "
            "VALUES (?, ?, ?, ?, ?)",
            [(model_id, instruction, p, int(v.shape[-1]), to_blob(v, "float32")) for p, v in items],
        )
