"""An in-memory vector index over photo vectors: search, similar photos, near-duplicates.

Pure NumPy, exact (no approximation): a query is one matrix-vector product over the
float32 [n x d] matrix of unit rows, and `argpartition` picks the best. At 100k x 1536
that reads 600 MB per query, which is the floor of its cost; a restricted search that
covers a small part of the library reads only those rows.

Results are deterministic: best score first, ties by lower photo id.
Thread-safe: one lock around reads and changes (a search holds it for one product).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol

import numpy as np

_GATHER_SHARE = 0.25
"""A restricted search gathers its rows when they are under this share of the index,
and otherwise scores every row and picks from the restricted ones."""


class Cancelled(Protocol):
    @property
    def cancelled(self) -> bool: ...


def _as_ids(ids: np.ndarray | list[int] | tuple[int, ...]) -> np.ndarray:
    return np.asarray(ids, dtype=np.int64).reshape(-1)


class VectorIndex:
    """Photo ids and their unit vectors (float32 [n x d]); ids are unique."""

    def __init__(self, ids: np.ndarray, matrix: np.ndarray) -> None:
        ids = _as_ids(ids)
        matrix = np.asarray(matrix, dtype=np.float32)
        if matrix.ndim != 2 or len(matrix) != len(ids):
            raise ValueError(f"{len(ids)} ids but a matrix of shape {matrix.shape}")
        ordered = np.sort(ids)  # (sorting lets other threads run; np.unique's hash does not)
        if len(ids) and (ordered[1:] == ordered[:-1]).any():
            raise ValueError("photo ids must be unique")
        self._lock = threading.RLock()
        self._dim = int(matrix.shape[1])
        self._ids = ids.copy()
        self._matrix = np.ascontiguousarray(matrix)
        self._n = len(ids)
        self._reindex()

    # -- bookkeeping ----------------------------------------------------------------

    def _reindex(self) -> None:
        """Sorted ids and their rows, for id -> row lookups by binary search."""
        live = self._ids[: self._n]
        self._order = np.argsort(live, kind="stable")
        self._sorted = live[self._order]

    def _rows(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(rows, found mask) of these ids."""
        if self._n == 0 or len(ids) == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(len(ids), dtype=bool)
        pos = np.searchsorted(self._sorted, ids).clip(max=self._n - 1)
        found = self._sorted[pos] == ids
        return self._order[pos[found]], found

    def __len__(self) -> int:
        return self._n

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def ids(self) -> np.ndarray:
        """The photo ids in row order (a copy)."""
        with self._lock:
            return self._ids[: self._n].copy()

    @property
    def matrix(self) -> np.ndarray:
        """The vectors in row order (a read-only view; do not keep it across changes)."""
        view = self._matrix[: self._n]
        view.flags.writeable = False
        return view

    def __contains__(self, photo_id: object) -> bool:
        if not isinstance(photo_id, (int, np.integer)):
            return False
        with self._lock:
            return bool(self._rows(_as_ids([int(photo_id)]))[1][0])

    def vector(self, photo_id: int) -> np.ndarray | None:
        """A copy of one photo's vector, or None when it is not in the index."""
        with self._lock:
            rows, _ = self._rows(_as_ids([photo_id]))
            return self._matrix[rows[0]].copy() if len(rows) else None

    # -- queries --------------------------------------------------------------------

    def search(
        self,
        query: np.ndarray,
        top: int = 50,
        restrict_to: np.ndarray | None = None,
        *,
        exclude: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The `top` photos most similar to `query`: (ids int64, cosines float32), best first.

        `restrict_to`: only these photo ids (ids not in the index are ignored).
        `exclude`: never these ids. The query is normalised here.
        """
        q = np.asarray(query, dtype=np.float32).reshape(-1)
        if q.shape[0] != self._dim:
            raise ValueError(f"query has {q.shape[0]} dimensions, the index {self._dim}")
        norm = float(np.linalg.norm(q))
        if norm > 0:
            q = q / norm
        with self._lock:
            n = self._n
            matrix = self._matrix[:n]
            if restrict_to is None:
                rows = None
                scores = matrix @ q
            else:
                rows, _ = self._rows(_as_ids(restrict_to))
                rows = np.unique(rows)
                gather = len(rows) < _GATHER_SHARE * n
                scores = matrix[rows] @ q if gather else (matrix @ q)[rows]
            if exclude is not None and len(exclude):
                ex_rows, _ = self._rows(_as_ids(exclude))
                if rows is None:
                    scores[ex_rows] = -np.inf
                else:
                    scores[np.isin(rows, ex_rows)] = -np.inf
            ids = self._ids[:n] if rows is None else self._ids[rows]
            return _best(ids, scores, top)

    def similar(
        self, photo_id: int, top: int = 50, restrict_to: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Photos most similar to this one (itself excluded); empty when it has no vector."""
        with self._lock:
            vector = self.vector(photo_id)
            if vector is None:
                return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
            return self.search(vector, top, restrict_to, exclude=_as_ids([photo_id]))

    def near_duplicates(
        self,
        min_cosine: float = 0.95,
        *,
        block: int = 2048,
        progress: Callable[[int, int], None] | None = None,
        cancel: Cancelled | None = None,
    ) -> list[np.ndarray]:
        """Groups of photos whose vectors are near-identical: connected components of the
        pairs with cosine >= `min_cosine`. Each group is a sorted id array of 2 or more;
        groups are ordered by their smallest id.

        Computed in `block` x `block` tiles of the upper triangle (16 MB each at the
        default), so memory stays flat at any library size. `progress(done, total)` is
        called after each row block; a set `cancel` returns the groups found so far.
        """
        with self._lock:
            n = self._n
            matrix = self._matrix[:n].copy()
            ids = self._ids[:n].copy()
        parent = np.arange(n, dtype=np.int64)
        starts = range(0, n, block)
        for done, i in enumerate(starts, 1):
            if cancel is not None and cancel.cancelled:
                break
            a = matrix[i : i + block]
            for j in range(i, n, block):
                tile = a @ matrix[j : j + block].T
                r, c = np.nonzero(tile >= min_cosine)
                r, c = r + i, c + j
                keep = c > r
                for x, y in zip(r[keep].tolist(), c[keep].tolist(), strict=True):
                    _union(parent, x, y)
            if progress is not None:
                progress(done, len(starts))
        if n == 0:
            return []
        roots = _roots(parent)
        sizes = np.bincount(roots, minlength=n)
        groups = [np.sort(ids[roots == root]) for root in np.flatnonzero(sizes >= 2)]
        groups.sort(key=lambda g: int(g[0]))
        return groups

    # -- changes --------------------------------------------------------------------

    def update(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add these photos, or replace the vectors of those already in the index."""
        ids = _as_ids(ids)
        vectors = np.asarray(vectors, dtype=np.float32).reshape(len(ids), -1)
        if len(ids) == 0:
            return
        if vectors.shape[1] != self._dim and self._n:
            raise ValueError(f"vectors have {vectors.shape[1]} dimensions, the index {self._dim}")
        ordered = np.sort(ids)  # (sorting lets other threads run; np.unique's hash does not)
        if len(ids) and (ordered[1:] == ordered[:-1]).any():
            raise ValueError("photo ids must be unique")
        with self._lock:
            if self._n == 0:
                self._dim = int(vectors.shape[1])
                self._matrix = np.empty((0, self._dim), dtype=np.float32)
            rows, found = self._rows(ids)
            self._matrix[rows] = vectors[found]
            new = ~found
            k = int(np.count_nonzero(new))
            if k:
                self._reserve(self._n + k)
                self._matrix[self._n : self._n + k] = vectors[new]
                self._ids[self._n : self._n + k] = ids[new]
                self._n += k
                self._reindex()

    add = update

    def remove(self, ids: np.ndarray) -> int:
        """Drop these photos (ids not in the index are ignored); returns how many went."""
        with self._lock:
            rows, _ = self._rows(_as_ids(ids))
            rows = np.unique(rows)
            k = len(rows)
            if k == 0:
                return 0
            keep = self._n - k
            # Move the last live rows that stay into the holes below `keep`.
            holes = rows[rows < keep]
            tail = np.setdiff1d(np.arange(keep, self._n), rows, assume_unique=True)
            self._matrix[holes] = self._matrix[tail]
            self._ids[holes] = self._ids[tail]
            self._n = keep
            self._reindex()
            return k

    def _reserve(self, size: int) -> None:
        if size <= len(self._matrix) and size <= len(self._ids):
            return
        capacity = max(size, int(len(self._matrix) * 1.25) + 256)
        matrix = np.empty((capacity, self._dim), dtype=np.float32)
        matrix[: self._n] = self._matrix[: self._n]
        ids = np.empty(capacity, dtype=np.int64)
        ids[: self._n] = self._ids[: self._n]
        self._matrix, self._ids = matrix, ids


def _best(ids: np.ndarray, scores: np.ndarray, top: int) -> tuple[np.ndarray, np.ndarray]:
    """The `top` best (id, score), best first, ties by lower id; -inf scores dropped."""
    top = min(max(int(top), 0), len(scores))
    if top == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    if top < len(scores):
        part = np.argpartition(-scores, top - 1)[:top]
        # Include every score tied with the cut-off, so ties resolve by id, not by chance.
        cut = scores[part].min()
        part = np.flatnonzero(scores >= cut) if np.count_nonzero(scores == cut) > 1 else part
    else:
        part = np.arange(len(scores))
    order = np.lexsort((ids[part], -scores[part]))[:top]
    chosen = part[order]
    chosen = chosen[np.isfinite(scores[chosen])]
    return ids[chosen].copy(), scores[chosen].astype(np.float32)


def _find(parent: np.ndarray, x: int) -> int:
    root = x
    while parent[root] != root:
        root = int(parent[root])
    while parent[x] != root:
        parent[x], x = root, int(parent[x])
    return root


def _roots(parent: np.ndarray) -> np.ndarray:
    """Every node's root (pointer jumping until nothing changes)."""
    while True:
        nxt = parent[parent]
        if np.array_equal(nxt, parent):
            return parent
        parent = nxt


def _union(parent: np.ndarray, x: int, y: int) -> None:
    rx, ry = _find(parent, x), _find(parent, y)
    if rx != ry:
        parent[max(rx, ry)] = min(rx, ry)
