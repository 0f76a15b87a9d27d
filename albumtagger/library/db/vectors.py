"""Photo vectors in the sidecar: each content hash's image embedding per model, stored
as a blob, and loaded (or scored against tags) a block of rows at a time (a part of
`Store`)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from albumtagger.library.db.sql import VECTOR_BLOCK_ROWS, chunks, marks


def to_blob(vector: np.ndarray, dtype: str) -> bytes:
    return np.ascontiguousarray(vector, dtype=np.dtype(dtype)).tobytes()


def from_blob(blob: bytes, dtype: str) -> np.ndarray:
    return np.frombuffer(blob, dtype=np.dtype(dtype))


class VectorsMixin:
    """`Store`'s photo vectors (`Store` provides `conn` and `_note`)."""

    conn: sqlite3.Connection
    _note: Callable[[str, Iterable[int]], None]

    def requeue_without_vector(self, model_id: str) -> int:
        """Tagged photos that have no vector from this model become pending again."""
        cur = self.conn.execute(
            "UPDATE photos SET status = 'pending', updated_at = ? WHERE status = 'ok' AND "
            "NOT EXISTS (SELECT 1 FROM embeddings e WHERE e.content_hash = photos.content_hash "
            "AND e.model_id = ?) RETURNING id",
            (time.time(), model_id),
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
            [(h, model_id, dtype, int(v.shape[-1]), to_blob(v, dtype)) for h, v in items],
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
        for chunk in chunks(list(hashes), 500):
            rows = self.conn.execute(
                f"SELECT content_hash FROM embeddings WHERE model_id = ? "
                f"AND content_hash IN ({marks(chunk)})",
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
            f"WHERE p.status IN ({marks(statuses)})"
        )
        cur = self.conn.cursor()
        cur.row_factory = None
        if photo_ids is None:
            (upper,) = cur.execute(
                f"SELECT COUNT(*) FROM photos WHERE status IN ({marks(statuses)})", statuses
            ).fetchone()
            batches: Iterable[sqlite3.Cursor] = [
                cur.execute(sql + " ORDER BY p.id", [model_id, *statuses])
            ]
        else:
            wanted = sorted(set(photo_ids))
            upper = len(wanted)
            batches = (
                cur.execute(
                    sql + f" AND p.id IN ({marks(chunk)}) ORDER BY p.id",
                    [model_id, *statuses, *chunk],
                )
                for chunk in chunks(wanted, 500)
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
                    vectors = np.stack([from_blob(r[3], r[1]) for r in block])
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
