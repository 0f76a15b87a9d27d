"""The folder filter, the counts per folder and the window's filter without missing photos,
on a small hand-made sidecar built through the real Store."""

from __future__ import annotations

from pathlib import Path

import pytest

from albumtagger.library.db.queries import LibraryQueries, PhotoFilter, folder_totals
from albumtagger.library.db.store import Store

# name: (path, status)
PHOTOS = {
    "root": ("top.jpg", "ok"),
    "b1": ("a/b/1.jpg", "ok"),
    "b2": ("a/b/c/2.jpg", "ok"),
    "b3": ("a/b/c/d/3.jpg", "ok"),
    "gone": ("a/b/gone.jpg", "missing"),
    "bc": ("a/bc/4.jpg", "ok"),
    "b0": ("a/b0/5.jpg", "ok"),  # '0' follows '/': the range's upper end
    "pct": ("a/b%/6.jpg", "ok"),
    "und": ("a/b_/7.jpg", "ok"),
    "axb": ("axb/8.jpg", "ok"),
    "a_b": ("a_b/9.jpg", "ok"),
    "a%b": ("a%b/10.jpg", "ok"),
    "bad": ("a/bc/bad.jpg", "damaged"),
}


@pytest.fixture
def q(tmp_path: Path):
    db = tmp_path / "lib" / ".albumtagger" / "library.sqlite"
    with Store(db, backups=False) as store, store.transaction():
        for i, (path, status) in enumerate(PHOTOS.values()):
            pid = store.add_photo(path, 1000 + i, 10**9)
            if status == "damaged":
                store.record_damaged(pid, 1000, 10**9, "damaged: file is truncated")
            else:
                store.set_status([pid], status)
    with LibraryQueries(db) as queries:
        yield queries


def names(q: LibraryQueries, f: PhotoFilter) -> set[str]:
    by_path = {path: name for name, (path, _) in PHOTOS.items()}
    with q._read() as conn:
        paths = dict(conn.execute("SELECT id, path FROM photos"))
    return {by_path[paths[int(i)]] for i in q.photo_ids(f)}


@pytest.mark.parametrize(
    ("folder", "expected"),
    [
        ("a/b", {"b1", "b2", "b3", "gone"}),  # nested, not a/bc, a/b0, a/b%, a/b_
        ("a/b/c", {"b2", "b3"}),
        ("a/b/c/d", {"b3"}),
        ("a/bc", {"bc", "bad"}),
        ("a/b%", {"pct"}),  # LIKE wildcards are plain characters
        ("a/b_", {"und"}),
        ("a_b", {"a_b"}),
        ("a%b", {"a%b"}),
        ("a", {"b1", "b2", "b3", "gone", "bc", "b0", "pct", "und", "bad"}),
        ("a/", {"b1", "b2", "b3", "gone", "bc", "b0", "pct", "und", "bad"}),
        ("a/b/1.jpg", set()),  # a photo is not a folder
        ("nowhere", set()),
    ],
)
def test_folder_filter_takes_the_folder_and_below(
    q: LibraryQueries, folder: str, expected: set[str]
) -> None:
    f = PhotoFilter(folder=folder)
    assert names(q, f) == expected
    assert q.count(f) == len(expected)
    assert q.quick_counts(f).total == len(expected)


def test_folder_filter_uses_the_path_index(q: LibraryQueries) -> None:
    from albumtagger.library.db.queries import _where

    where, args = _where(PhotoFilter(folder="a/b"))
    with q._read() as conn:
        plan = " ".join(
            str(r[-1])
            for r in conn.execute(
                "EXPLAIN QUERY PLAN SELECT p.id FROM photos p WHERE " + " AND ".join(where), args
            )
        )
    assert "USING" in plan and "INDEX" in plan and "path" in plan, plan


def test_hide_missing_leaves_missing_photos_out_unless_asked(q: LibraryQueries) -> None:
    everything = set(PHOTOS)
    shown = everything - {"gone"}
    assert names(q, PhotoFilter()) == everything  # the commands list every photo
    assert names(q, PhotoFilter(hide_missing=True)) == shown
    assert names(q, PhotoFilter(hide_missing=True, statuses=("missing",))) == {"gone"}
    assert q.count(PhotoFilter(hide_missing=True)) == len(shown)
    counts = q.quick_counts(PhotoFilter(hide_missing=True))
    assert counts.total == len(shown)
    assert counts.missing == 1  # what the Missing quick filter would show
    assert counts.damaged == 1
    assert counts.untagged == len(shown)  # no photo here carries a tag
    assert q.quick_counts(PhotoFilter()).total == len(everything)
    in_b = q.quick_counts(PhotoFilter(hide_missing=True, folder="a/b"))
    assert (in_b.total, in_b.missing, in_b.untagged) == (3, 1, 3)


def test_folder_counts_and_totals(q: LibraryQueries) -> None:
    direct = q.folder_counts(PhotoFilter(hide_missing=True))
    assert direct == {
        "": 1,
        "a/b": 1,
        "a/b/c": 1,
        "a/b/c/d": 1,
        "a/bc": 2,
        "a/b0": 1,
        "a/b%": 1,
        "a/b_": 1,
        "axb": 1,
        "a_b": 1,
        "a%b": 1,
    }
    # the folder of the filter does not narrow the counts: the tree shows every folder
    assert q.folder_counts(PhotoFilter(hide_missing=True, folder="a/bc")) == direct
    assert q.folder_counts(PhotoFilter())["a/b"] == 2  # the missing photo counted
    assert q.folder_counts(PhotoFilter(statuses=("damaged",))) == {"a/bc": 1}
    totals = folder_totals(direct)
    assert totals[""] == len(PHOTOS) - 1
    assert totals["a"] == 8
    assert (totals["a/b"], totals["a/b/c"], totals["a/b/c/d"], totals["a/bc"]) == (3, 2, 1, 2)
    assert folder_totals({"x/y/z": 2}) == {"": 2, "x": 2, "x/y": 2, "x/y/z": 2}


def test_tag_counts_leave_missing_photos_out_when_hidden(tmp_path: Path) -> None:
    from tests.unit.test_queries import build

    lib = build(tmp_path)  # photo f (2019/f.jpg) is missing and carries "sea"
    t = lib.tags
    with LibraryQueries(lib.db) as queries:
        assert queries.tag_counts() == {t["beach"]: 2, t["sea"]: 3, t["dog"]: 2}
        hidden = PhotoFilter(hide_missing=True)
        assert queries.tag_counts(hidden) == {t["beach"]: 2, t["sea"]: 2, t["dog"]: 2}
        only_f = PhotoFilter(hide_missing=True, folder="2019")
        assert queries.tag_counts(only_f) == {}
        assert queries.tag_counts(PhotoFilter(hide_missing=True, statuses=("missing",))) == {
            t["sea"]: 1
        }
        with_sea = PhotoFilter(hide_missing=True, tags=(t["sea"],))
        assert queries.tag_counts(with_sea) == {t["beach"]: 1, t["sea"]: 2, t["dog"]: 1}
        assert len(queries.photo_ids(with_sea)) == 2
