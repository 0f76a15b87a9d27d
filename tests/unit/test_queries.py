"""LibraryQueries on small hand-made sidecars, built through the real Store."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from albumtagger.errors import SidecarError
from albumtagger.library.db.queries import (
    CARRIED_STATES,
    NEEDS_REVIEW_SQL,
    REVIEW_INDEX,
    REVIEW_INDEX_SQL,
    LibraryQueries,
    PhotoFilter,
    carries,
)
from albumtagger.library.db.store import AutoTag, Store

# path, status, mtime (s), tags as {name: (state, score, fallback, confidence)}
PHOTOS: dict[str, tuple[str, str, int, dict[str, tuple[str, float | None, bool, str | None]]]] = {
    "a": (
        "2020/beach/a.jpg",
        "ok",
        50,
        {"beach": ("suggested", 0.5, False, "high"), "sea": ("suggested", 0.4, False, "medium")},
    ),
    "b": (
        "2020/beach/B.JPG",
        "ok",
        10,
        {"beach": ("accepted", 0.45, False, None), "dog": ("rejected", 0.3, False, None)},
    ),
    "c": (
        "2021/park/c.jpg",
        "ok",
        30,
        {"dog": ("suggested", 0.2, True, "low"), "sea": ("suggested", 0.26, False, "low")},
    ),
    "d": (
        "2021/park/dog.png",
        "ok",
        70,
        {"dog": ("suggested", 0.6, False, "high"), "beach": ("rejected", 0.3, False, None)},
    ),
    "e": ("2021/e.jpg", "damaged", 20, {}),
    "f": ("2019/f.jpg", "missing", 60, {"sea": ("accepted", None, False, None)}),
    "g": ("x/g.jpg", "pending", 40, {}),
    "h": ("2020/beachball/h.jpg", "ok", 80, {}),
}
THRESHOLDS = {"beach": 0.3, "dog": 0.28, "sea": 0.25}


class Lib:
    def __init__(self, db: Path, ids: dict[str, int], tags: dict[str, int]) -> None:
        self.db, self.ids, self.tags = db, ids, tags
        self.names = {v: k for k, v in ids.items()}

    def names_of(self, ids: np.ndarray) -> list[str]:
        return [self.names[int(i)] for i in ids]


def build(tmp_path: Path) -> Lib:
    db = tmp_path / "lib" / ".albumtagger" / "library.sqlite"
    ids: dict[str, int] = {}
    with Store(db, backups=False) as store:
        with store.transaction():
            store.add_tags((n, [n]) for n in sorted(THRESHOLDS))
        tags = {t.name: t.id for t in store.tags()}
        with store.transaction():
            store.set_tag_thresholds(
                (tags[n], th, 2 if n == "dog" else 0, 0.1, 0.05) for n, th in THRESHOLDS.items()
            )
            for key, (path, status, mtime, _) in PHOTOS.items():
                pid = store.add_photo(path, 1000 + len(ids), mtime * 10**9)
                ids[key] = pid
                if status != "pending":
                    store.record_read(
                        pid,
                        content_hash=f"{pid:064x}",
                        size=1000,
                        mtime_ns=mtime * 10**9,
                        width=40,
                        height=30,
                    )
                if status == "damaged":
                    store.record_damaged(pid, 1000, mtime * 10**9, "damaged: file is truncated")
                elif status != "pending":
                    store.set_status([pid], status)
        suggestions = {
            ids[key]: [
                AutoTag(tags[name], score or 0.0, fallback, conf or "low")
                for name, (state, score, fallback, conf) in cells.items()
                if state == "suggested"
            ]
            for key, (_, _, _, cells) in PHOTOS.items()
        }
        store.replace_suggestions(suggestions)
        for key, (_, _, _, cells) in PHOTOS.items():
            for name, (state, score, _, _) in cells.items():
                if state != "suggested":
                    store.set_user_decision(ids[key], tags[name], state, "user", score)
    return Lib(db, ids, tags)


@pytest.fixture
def lib(tmp_path: Path) -> Lib:
    return build(tmp_path)


@pytest.fixture
def q(lib: Lib):
    with LibraryQueries(lib.db) as queries:
        yield queries


def test_carried_states_never_include_rejected() -> None:
    assert set(CARRIED_STATES) == {"accepted", "suggested"}
    assert carries("suggested") and carries("accepted") and not carries("rejected")


def test_no_filter_lists_every_photo_by_path(q: LibraryQueries, lib: Lib) -> None:
    ids = q.photo_ids(PhotoFilter())
    assert ids.dtype == np.int64
    assert lib.names_of(ids) == ["f", "b", "a", "h", "e", "c", "d", "g"]
    assert q.count() == 8


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"tags": ("beach",)}, {"a", "b"}),  # accepted and suggested; d rejected it
        ({"tags": ("dog",)}, {"c", "d"}),  # a fallback suggestion is carried
        ({"tags": ("beach", "sea")}, {"a"}),
        ({"tags": ("beach", "sea"), "match_any": True}, {"a", "b", "c", "f"}),
        ({"tags": ("beach", "sea"), "match_any": True, "exclude": ("dog",)}, {"a", "b", "f"}),
        ({"exclude": ("beach",)}, {"c", "d", "e", "f", "g", "h"}),
        ({"untagged": True}, {"e", "g", "h"}),
        ({"needs_review": True}, {"c"}),
        ({"statuses": ("damaged", "missing")}, {"e", "f"}),
        ({"statuses": ("ok",), "tags": ("sea",)}, {"a", "c"}),
        ({"folder": "2020/beach"}, {"a", "b"}),  # not 2020/beachball
        ({"folder": "2020/beach/"}, {"a", "b"}),
        ({"folder": "2021"}, {"c", "d", "e"}),
        ({"name": "b.jp"}, {"b"}),  # case-insensitive
        ({"name": "DOG"}, {"d"}),
        ({"name": "beach"}, set()),  # the file name only, not its folder
        ({"name": "%"}, set()),  # LIKE wildcards are literal
        ({"name": "_"}, set()),
        ({"folder": "2021", "untagged": True}, {"e"}),
    ],
)
def test_filters(q: LibraryQueries, lib: Lib, kwargs: dict, expected: set[str]) -> None:
    for key in ("tags", "exclude"):
        if key in kwargs:
            kwargs[key] = tuple(lib.tags[n] for n in kwargs[key])
    f = PhotoFilter(**kwargs)
    assert set(lib.names_of(q.photo_ids(f))) == expected
    assert q.count(f) == len(expected)


def test_orders(q: LibraryQueries, lib: Lib) -> None:
    def order(**kw: object) -> list[str]:
        return lib.names_of(q.photo_ids(PhotoFilter(**kw)))  # type: ignore[arg-type]

    assert order(order="name") == ["a", "b", "c", "d", "e", "f", "g", "h"]  # case-insensitive
    assert order(order="taken") == ["b", "e", "c", "g", "a", "f", "d", "h"]
    assert order(order="taken", descending=True) == ["h", "d", "f", "a", "g", "c", "e", "b"]
    assert order(order="added") == list(PHOTOS)
    assert order(order="added", descending=True) == list(PHOTOS)[::-1]
    assert order(order="path", tags=(lib.tags["sea"],)) == ["f", "a", "c"]


def test_filter_is_hashable_and_validated() -> None:
    assert hash(PhotoFilter(tags=[1, 2])) == hash(PhotoFilter(tags=(1, 2)))  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        PhotoFilter(order="size")
    with pytest.raises(ValueError):
        PhotoFilter(statuses=("offline",))


def test_tag_counts(q: LibraryQueries, lib: Lib) -> None:
    t = lib.tags
    assert q.tag_counts() == {t["beach"]: 2, t["sea"]: 3, t["dog"]: 2}
    assert q.tag_counts(PhotoFilter(folder="2020")) == {t["beach"]: 2, t["sea"]: 1}
    assert q.tag_counts(PhotoFilter(tags=(t["dog"],))) == {t["dog"]: 2, t["sea"]: 1}
    assert q.tag_counts(PhotoFilter(untagged=True)) == {}


def test_shared_tags_count_the_photos_that_carry_each(q: LibraryQueries, lib: Lib) -> None:
    i = lib.ids
    # a and b carry beach (suggested, accepted); d rejected it; only a carries sea
    assert q.shared_tags([i["a"], i["b"], i["d"]]) == {"beach": 2, "sea": 1, "dog": 1}
    assert q.shared_tags([i["b"], i["e"], i["b"]]) == {"beach": 1}
    assert q.shared_tags([]) == {}


def test_quick_counts(q: LibraryQueries, lib: Lib) -> None:
    counts = q.quick_counts()
    assert counts.as_dict() == {
        "total": 8,
        "untagged": 3,
        "needs_review": 1,
        "damaged": 1,
        "missing": 1,
        "pending": 1,
    }
    assert counts.by_status == {"ok": 5, "damaged": 1, "missing": 1, "pending": 1}
    in_2021 = q.quick_counts(PhotoFilter(folder="2021"))
    assert (in_2021.total, in_2021.untagged, in_2021.needs_review, in_2021.damaged) == (3, 1, 1, 1)


def test_summaries_keep_the_page_order(q: LibraryQueries, lib: Lib) -> None:
    i = lib.ids
    page = q.summaries(np.array([i["d"], i["c"], 9999, i["e"], i["a"]]))
    assert [s.id for s in page] == [i["d"], i["c"], i["e"], i["a"]]
    d, c, e, a = page
    assert (d.path, d.status, d.tag_count, d.needs_review) == ("2021/park/dog.png", "ok", 1, False)
    assert (c.tag_count, c.needs_review) == (2, True)
    assert (e.status, e.error, e.tag_count) == ("damaged", "damaged: file is truncated", 0)
    assert (a.width, a.height, a.content_hash) == (40, 30, f"{i['a']:064x}")
    assert q.summaries([]) == []
    many = q.summaries([i["a"], *range(10_000, 11_000), i["b"]])
    assert [s.id for s in many] == [i["a"], i["b"]]


def test_photo_detail_and_tags(q: LibraryQueries, lib: Lib) -> None:
    b = lib.ids["b"]
    detail = q.photo_detail(b)
    assert detail is not None
    assert (detail.path, detail.status, detail.mtime_ns) == ("2020/beach/B.JPG", "ok", 10 * 10**9)
    assert q.photo_detail(9999) is None
    tags = q.photo_tags(b)
    assert [(t.name, t.state, t.source, t.carried, t.threshold) for t in tags] == [
        ("beach", "accepted", "user", True, THRESHOLDS["beach"]),
        ("dog", "rejected", "user", False, THRESHOLDS["dog"]),
    ]
    c_tags = q.photo_tags(lib.ids["c"])
    assert [(t.name, t.fallback, t.confidence) for t in c_tags] == [
        ("sea", False, "low"),
        ("dog", True, "low"),
    ]
    assert q.photo_tags(9999) == []


def test_tags_panel(q: LibraryQueries) -> None:
    tags = q.tags()
    assert [(t.name, t.threshold, t.events) for t in tags] == [
        ("beach", 0.3, 0),
        ("dog", 0.28, 2),
        ("sea", 0.25, 0),
    ]


def test_photo_vectors(lib: Lib) -> None:
    rng = np.random.default_rng(0)
    with Store(lib.db, backups=False) as store:
        rows = [r for r in store.photos() if r.content_hash]
        vecs = rng.normal(size=(len(rows), 8)).astype(np.float32)
        store.put_embeddings("m", [(r.content_hash, v) for r, v in zip(rows, vecs, strict=True)])
        want_ids, want = store.photo_vectors("m", statuses=("ok", "missing"))
    with LibraryQueries(lib.db) as q:
        ids, matrix = q.photo_vectors("m")
        assert np.array_equal(ids, want_ids)
        np.testing.assert_array_equal(matrix, want)
        assert matrix.dtype == np.float32
        none_ids, none = q.photo_vectors("other")
        assert len(none_ids) == 0 and none.size == 0


def test_uses_the_review_index_when_the_sidecar_has_it(lib: Lib) -> None:
    with Store(lib.db, backups=False) as store:
        store.conn.execute(f"DROP INDEX {REVIEW_INDEX}")  # as in a 1.2 sidecar
    with LibraryQueries(lib.db) as q:
        assert not q.uses_review_index
        before = (q.photo_ids(PhotoFilter(needs_review=True)).tolist(), q.quick_counts())
    with Store(lib.db, backups=False) as store:
        store.conn.execute(REVIEW_INDEX_SQL)
    with LibraryQueries(lib.db) as q:
        assert q.uses_review_index
        after = (q.photo_ids(PhotoFilter(needs_review=True)).tolist(), q.quick_counts())
        with q._read() as conn:
            plan = conn.execute(
                "EXPLAIN QUERY PLAN SELECT photo_id FROM photo_tags WHERE " + NEEDS_REVIEW_SQL
            ).fetchall()
    assert before == after == ([lib.ids["c"]], before[1])
    assert any(REVIEW_INDEX in row[3] for row in plan)


def test_counts_are_kept_until_another_connection_commits(q: LibraryQueries, lib: Lib) -> None:
    beach = PhotoFilter(tags=(lib.tags["beach"],))
    first, tags = q.quick_counts(beach), q.tag_counts(beach)
    first.by_status["ok"] = 99  # a caller's copy: the kept counts stay as they were
    with q._read() as conn:
        reads = []
        conn.set_trace_callback(reads.append)
    again = q.quick_counts(PhotoFilter(tags=beach.tags, order="taken", descending=True))
    counts = q.tag_counts(PhotoFilter(tags=beach.tags, order="name"))
    with q._read() as conn:
        conn.set_trace_callback(None)
    assert again.by_status["ok"] == 2 and again.total == 2
    assert counts == tags
    assert not [sql for sql in reads if "COUNT" in sql]  # the same filter in another order
    with Store(lib.db, backups=False) as store, store.transaction():
        store.set_status([lib.ids["a"]], "missing")
    assert q.quick_counts(beach).by_status == {"ok": 1, "damaged": 0, "missing": 1, "pending": 0}
    assert q.quick_counts().missing == 2


def test_read_only(q: LibraryQueries) -> None:
    with pytest.raises(sqlite3.OperationalError), q._read() as conn:
        conn.execute("DELETE FROM photos")
    assert q.count() == 8


def test_sees_commits_of_the_writer(q: LibraryQueries, lib: Lib) -> None:
    before = q.data_version()
    with Store(lib.db, backups=False) as store:
        store.add_photo("new.jpg", 1, 1)
    assert q.count() == 9
    assert q.data_version() != before


def test_closed_and_missing_and_unmigrated(tmp_path: Path, lib: Lib) -> None:
    q = LibraryQueries(lib.db)
    q.close()
    q.close()
    with pytest.raises(SidecarError):
        q.photo_ids()
    with pytest.raises(SidecarError, match="no library database"):
        LibraryQueries(tmp_path / "nope.sqlite")
    bare = tmp_path / "bare.sqlite"
    sqlite3.connect(bare).close()
    with pytest.raises(SidecarError, match=r"schema 0\.0"):
        LibraryQueries(bare)
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not a database" * 100)
    with pytest.raises(SidecarError):
        LibraryQueries(junk)


def test_reads_never_wait_for_the_writer(lib: Lib) -> None:
    """A writer holding long write transactions open and committing repeatedly."""
    stop = threading.Event()
    writer_ready = threading.Event()
    waits: list[float] = []
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            with Store(lib.db, backups=False) as store:
                n = 0
                while not stop.is_set():
                    with store.transaction():
                        for _ in range(20):
                            store.add_photo(f"w/{n}.jpg", 1, n)
                            n += 1
                        writer_ready.set()
                        time.sleep(0.3)  # the write lock is held far longer than 50 ms
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def reader() -> None:
        try:
            with LibraryQueries(lib.db) as q:
                writer_ready.wait(5)
                deadline = time.monotonic() + 1.2
                while time.monotonic() < deadline:
                    t0 = time.perf_counter()
                    q.photo_ids(PhotoFilter(tags=(lib.tags["beach"],)))
                    q.tag_counts()
                    q.summaries(q.photo_ids()[:50])
                    waits.append(time.perf_counter() - t0)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer), threading.Thread(target=reader)]
    for t in threads:
        t.start()
    threads[1].join(10)
    stop.set()
    threads[0].join(10)
    assert not errors, errors
    assert len(waits) > 20
    # A read that waited for the writer would take up to 300 ms (or fail when its busy
    # timeout ran out); the margins below leave room for a busy shared test machine.
    waits.sort()
    p98 = waits[int(len(waits) * 0.98)]
    assert p98 < 0.05, f"98th percentile {p98 * 1000:.1f} ms"
    assert waits[-1] < 0.15, f"slowest read {waits[-1] * 1000:.1f} ms"


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")
def test_open_close_leaks_no_file_descriptors(lib: Lib) -> None:
    def fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    with LibraryQueries(lib.db) as q:  # first open creates -shm/-wal if absent
        q.count()
    before = fds()
    for _ in range(1000):
        with LibraryQueries(lib.db) as q:
            q.count()
    assert fds() <= before


def test_new_libraries_have_the_review_index(tmp_path) -> None:
    from albumtagger.library.db.store import Store

    db = tmp_path / "lib.sqlite"
    Store(db, backups=False).close()
    with LibraryQueries(db) as queries:
        assert queries.uses_review_index
