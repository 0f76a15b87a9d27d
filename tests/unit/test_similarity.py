"""VectorIndex: exact search, similar photos, near-duplicates, incremental changes."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from albumtagger.tagging.similarity import VectorIndex


def unit(*rows: list[float]) -> np.ndarray:
    m = np.array(rows, dtype=np.float32)
    return m / np.linalg.norm(m, axis=1, keepdims=True)


@pytest.fixture
def index() -> VectorIndex:
    # e1, e2, between them, opposite e1, near e2
    return VectorIndex(
        np.array([10, 20, 30, 40, 50]),
        unit([1, 0, 0], [0, 1, 0], [1, 1, 0], [-1, 0, 0], [0.1, 1, 0.1]),
    )


def test_search_best_first(index: VectorIndex) -> None:
    ids, scores = index.search(np.array([1.0, 0, 0]), 3)
    assert ids.tolist() == [10, 30, 50]
    np.testing.assert_allclose(scores, [1.0, np.sqrt(0.5), 0.1 / np.sqrt(1.02)], rtol=1e-5)
    assert ids.dtype == np.int64 and scores.dtype == np.float32
    ids, _ = index.search(np.array([5.0, 0, 0]), 100)  # normalised; top beyond n
    assert ids.tolist() == [10, 30, 50, 20, 40]
    assert index.search(np.array([1.0, 0, 0]), 0)[0].size == 0


def test_search_restricted(index: VectorIndex) -> None:
    ids, _ = index.search(np.array([1.0, 0, 0]), 5, restrict_to=np.array([40, 20, 99]))
    assert ids.tolist() == [20, 40]
    ids, _ = index.search(np.array([1.0, 0, 0]), 1, restrict_to=np.array([50, 40, 20, 30]))
    assert ids.tolist() == [30]
    assert (
        index.search(np.array([1.0, 0, 0]), 5, restrict_to=np.array([], dtype=np.int64))[0].tolist()
        == []
    )


def test_similar_excludes_the_photo(index: VectorIndex) -> None:
    ids, scores = index.similar(20, 2)
    assert ids.tolist() == [50, 30]
    assert scores[0] < 1.0
    assert index.similar(20, 5, restrict_to=np.array([20, 10, 40]))[0].tolist() == [10, 40]
    assert index.similar(999, 5)[0].size == 0


def test_ties_go_to_the_lower_id() -> None:
    idx = VectorIndex(np.array([7, 3, 5, 1]), unit([1, 0], [1, 0], [1, 0], [0, 1]))
    assert idx.search(np.array([1.0, 0]), 2)[0].tolist() == [3, 5]
    assert idx.search(np.array([1.0, 0]), 3)[0].tolist() == [3, 5, 7]


def test_matches_brute_force() -> None:
    rng = np.random.default_rng(1)
    n, d = 600, 24
    ids = rng.permutation(np.arange(1000, 1000 + 3 * n, 3))[:n]
    m = rng.normal(size=(n, d)).astype(np.float32)
    m /= np.linalg.norm(m, axis=1, keepdims=True)
    idx = VectorIndex(ids, m)
    for trial in range(5):
        q = rng.normal(size=d).astype(np.float32)
        q /= np.linalg.norm(q)
        restrict = None if trial % 2 else rng.choice(ids, size=40 + 100 * trial, replace=False)
        rows = np.arange(n) if restrict is None else np.flatnonzero(np.isin(ids, restrict))
        s = m[rows] @ q
        want = ids[rows][np.argsort(-s, kind="stable")][:25]
        got, scores = idx.search(q, 25, restrict)
        assert got.tolist() == want.tolist()
        assert np.all(np.diff(scores) <= 0)


def test_near_duplicates_are_connected_components() -> None:
    base = unit([1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0])
    a, b, c = base
    vectors = unit(
        a,
        a + 0.05 * b,  # duplicate of 1
        b,
        b + 0.25 * c,  # chain: 3 ~ 4 ~ 5, but 3 and 5 are not close
        b + 0.5 * c,
        c + a,  # alone
        [0, 0, 0, 1],  # alone
    )
    idx = VectorIndex(np.array([1, 2, 3, 4, 5, 6, 7]), vectors)
    assert float(vectors[2] @ vectors[4]) < 0.95
    seen: list[tuple[int, int]] = []
    groups = idx.near_duplicates(0.95, block=2, progress=lambda d, t: seen.append((d, t)))
    assert [g.tolist() for g in groups] == [[1, 2], [3, 4, 5]]
    assert seen[-1] == (4, 4)
    assert idx.near_duplicates(0.9999) == []


def test_near_duplicates_blocks_agree_with_brute_force() -> None:
    rng = np.random.default_rng(3)
    m = rng.normal(size=(300, 16)).astype(np.float32)
    m[100:110] = m[5] + 0.01 * rng.normal(size=(10, 16))
    m[200] = m[299] + 0.01 * rng.normal(size=16)
    m /= np.linalg.norm(m, axis=1, keepdims=True)
    ids = np.arange(300) * 2 + 1
    one = VectorIndex(ids, m).near_duplicates(0.99, block=1000)
    tiles = VectorIndex(ids, m).near_duplicates(0.99, block=7)
    assert [g.tolist() for g in one] == [g.tolist() for g in tiles]
    assert [len(g) for g in one] == [11, 2]


def test_near_duplicates_cancel() -> None:
    class Stop:
        cancelled = True

    idx = VectorIndex(np.array([1, 2]), unit([1, 0], [1, 0]))
    assert idx.near_duplicates(0.9, cancel=Stop()) == []


def test_update_add_and_remove() -> None:
    rng = np.random.default_rng(2)
    m = rng.normal(size=(50, 8)).astype(np.float32)
    m /= np.linalg.norm(m, axis=1, keepdims=True)
    ids = np.arange(1, 51)
    idx = VectorIndex(ids[:30], m[:30])
    idx.add(ids[30:], m[30:])  # grows
    assert len(idx) == 50
    new = unit([1, 0, 0, 0, 0, 0, 0, 0])[0]
    idx.update(np.array([7]), new[None, :])
    assert np.allclose(idx.vector(7), new)
    assert idx.search(new, 1)[0].tolist() == [7]
    gone = np.array([1, 50, 25, 7, 12, 999])
    assert idx.remove(gone) == 5
    assert len(idx) == 45
    assert 7 not in idx and 8 in idx
    for pid in idx.ids:  # every remaining photo still has its own vector
        assert np.allclose(idx.vector(int(pid)), m[pid - 1])
    assert 7 not in idx.search(new, 45)[0].tolist()
    assert idx.similar(2, 44)[0].size == 44
    assert idx.remove(np.array([999])) == 0


def test_empty_index_then_add() -> None:
    idx = VectorIndex(np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32))
    assert len(idx) == 0
    assert idx.near_duplicates() == []
    idx.add(np.array([4, 2]), unit([1, 0], [0, 1]))
    assert idx.dim == 2
    assert idx.search(np.array([0.0, 1.0]), 1)[0].tolist() == [2]


def test_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        VectorIndex(np.array([1, 1]), unit([1, 0], [0, 1]))
    with pytest.raises(ValueError):
        VectorIndex(np.array([1]), unit([1, 0], [0, 1]))
    idx = VectorIndex(np.array([1]), unit([1, 0]))
    with pytest.raises(ValueError):
        idx.search(np.array([1.0, 0, 0]))


def test_searches_while_another_thread_changes_it() -> None:
    rng = np.random.default_rng(4)
    m = rng.normal(size=(2000, 32)).astype(np.float32)
    m /= np.linalg.norm(m, axis=1, keepdims=True)
    idx = VectorIndex(np.arange(1000), m[:1000])
    errors: list[BaseException] = []

    def churn() -> None:
        try:
            for k in range(1000, 2000, 50):
                idx.add(np.arange(k, k + 50), m[k : k + 50])
                idx.remove(np.arange(k - 1000, k - 950))
        except BaseException as exc:  # pragma: no cover
            errors.append(exc)

    t = threading.Thread(target=churn)
    t.start()
    while t.is_alive():
        ids, scores = idx.search(m[1999], 10)
        assert len(ids) == 10 and np.all(np.diff(scores) <= 0)
    t.join()
    assert not errors
    assert idx.search(m[1999], 1)[0].tolist() == [1999]
