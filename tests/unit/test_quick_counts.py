"""The quick-filter counts on real sidecars: every count against a recount from the raw
rows, under many filters with missing photos hidden and shown, on a current sidecar and
on a 1.5 one read as it is; the per-photo tag counts of schema 1.6 against a recount
after random writes (corrections, undo, removals, status changes, moves, a rolled-back
transaction); and a 1.5 sidecar migrated."""

from __future__ import annotations

import random
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from albumtagger.library.db import store as store_mod
from albumtagger.library.db.queries import LibraryQueries, PhotoFilter, QuickCounts
from albumtagger.library.db.schema import COUNT_TRIGGERS
from albumtagger.library.db.store import AutoTag, Store

TAGS = ("beach", "dog", "sea", "snow", "tree", "car")
FOLDERS = ("2020", "2020/beach", "2021/park", "x", "")
STATUSES = ("ok", "ok", "ok", "damaged", "missing", "pending")


def _sidecar(tmp_path: Path, name: str = "lib") -> Path:
    return tmp_path / name / ".albumtagger" / "library.sqlite"


def _tag_ids(store: Store) -> list[int]:
    with store.transaction():
        store.add_tags((n, [n]) for n in TAGS if store.tag_by_name(n) is None)
    return sorted(t.id for t in store.tags())


def _random_suggestions(rng: random.Random, tags: list[int]) -> list[AutoTag]:
    return [
        AutoTag(
            t,
            round(rng.random(), 3),
            rng.random() < 0.2,
            rng.choice(("high", "medium", "low")),
        )
        for t in rng.sample(tags, rng.randint(0, 3))
    ]


def _add_photo(store: Store, rng: random.Random, n: int) -> int:
    folder = rng.choice(FOLDERS)
    name = f"{rng.choice(('IMG', 'dog', 'Beach'))}_{n:03d}.jpg"
    pid = store.add_photo(f"{folder}/{name}" if folder else name, 1000 + n, n * 10**9)
    status = rng.choice(STATUSES)
    if status == "pending":
        return pid
    store.record_read(
        pid, content_hash=f"{n:064x}", size=1000 + n, mtime_ns=n * 10**9, width=4, height=3
    )
    if status == "damaged":
        store.record_damaged(pid, 1000 + n, n * 10**9, "damaged: truncated")
    else:
        store.set_status([pid], status)
    return pid


def _decide(store: Store, rng: random.Random, pid: int, tags: list[int]) -> None:
    """A user's verdict on one cell; some with no score, as a tag the user added."""
    state = rng.choice(("accepted", "rejected"))
    score = None if rng.random() < 0.3 else round(rng.random(), 3)
    store.set_user_decision(pid, rng.choice(tags), state, "user", score)


def build_random(db: Path, seed: int, photos: int = 80) -> None:
    """Photos of every status in a few folders, with suggestions (some fallback, low or
    unsure), accepted, rejected and no tags."""
    rng = random.Random(seed)
    with Store(db, backups=False) as store:
        tags = _tag_ids(store)
        with store.transaction():
            ids = [_add_photo(store, rng, n) for n in range(photos)]
        store.replace_suggestions({pid: _random_suggestions(rng, tags) for pid in ids})
        with store.transaction():
            for pid in rng.sample(ids, photos // 3):
                _decide(store, rng, pid, tags)
            # An accepted fallback suggestion keeps its flags: it carries, needs no review.
            cells = store.conn.execute(
                "SELECT photo_id, tag_id FROM photo_tags WHERE fallback != 0 LIMIT 2"
            ).fetchall()
            for pid, tid in cells:
                store.set_user_decision(pid, tid, "accepted", "user", None)
            # A suggestion whose confidence is unknown needs review.
            store.conn.execute(
                "UPDATE photo_tags SET confidence = NULL WHERE (photo_id, tag_id) IN "
                "(SELECT photo_id, tag_id FROM photo_tags WHERE state = 'suggested' "
                "AND fallback = 0 AND confidence = 'high' LIMIT 3)"
            )


# -- the recount ----------------------------------------------------------------------


def _rows(db: Path) -> tuple[dict[int, tuple[str, str]], dict[int, list[tuple]]]:
    """(photo id: (path, status)), (photo id: its tag rows (tag, state, fallback, conf))."""
    conn = sqlite3.connect(db)
    try:
        photos = {int(i): (p, s) for i, p, s in conn.execute("SELECT id, path, status FROM photos")}
        cells: dict[int, list[tuple]] = {pid: [] for pid in photos}
        for pid, *row in conn.execute(
            "SELECT photo_id, tag_id, state, fallback, confidence FROM photo_tags"
        ):
            cells.setdefault(int(pid), []).append(tuple(row))
    finally:
        conn.close()
    return photos, cells


def _carried(cell: tuple) -> bool:
    return cell[1] in ("accepted", "suggested")


def _to_review(cell: tuple) -> bool:
    _, state, fallback, confidence = cell
    return state == "suggested" and (bool(fallback) or confidence in (None, "low"))


def _shows(f: PhotoFilter, path: str, status: str, cells: list[tuple]) -> bool:
    """Whether the filter shows the photo, said plainly."""
    carried = {c[0] for c in cells if _carried(c)}
    if f.statuses:
        if status not in f.statuses:
            return False
    elif f.hide_missing and status == "missing":
        return False
    if f.folder and not path.startswith(f.folder + "/"):
        return False
    if f.name and f.name.casefold() not in path.rpartition("/")[2].casefold():
        return False
    if f.tags:
        wanted = set(f.tags)
        if not (wanted & carried if f.match_any else wanted <= carried):
            return False
    if set(f.exclude) & carried:
        return False
    if f.untagged and carried:
        return False
    return not (f.needs_review and not any(_to_review(c) for c in cells))


def recount(db: Path, f: PhotoFilter) -> QuickCounts:
    photos, cells = _rows(db)
    shown = [pid for pid, (path, status) in photos.items() if _shows(f, path, status, cells[pid])]
    everywhere = replace(f, hide_missing=False)
    by_status = {s: 0 for s in ("pending", "ok", "damaged", "missing")}
    for pid, (path, status) in photos.items():
        if _shows(everywhere, path, status, cells[pid]):
            by_status[status] += 1
    return QuickCounts(
        total=len(shown),
        untagged=sum(not any(_carried(c) for c in cells[pid]) for pid in shown),
        needs_review=sum(any(_to_review(c) for c in cells[pid]) for pid in shown),
        damaged=by_status["damaged"],
        missing=by_status["missing"],
        pending=by_status["pending"],
        by_status=by_status,
    )


def _filters(tags: list[int]) -> list[PhotoFilter]:
    a, b, c = tags[0], tags[1], tags[2]
    kinds = [
        PhotoFilter(),
        PhotoFilter(untagged=True),
        PhotoFilter(needs_review=True),
        PhotoFilter(statuses=("missing",)),
        PhotoFilter(statuses=("ok", "damaged")),
        PhotoFilter(tags=(a,)),
        PhotoFilter(tags=(a, b)),
        PhotoFilter(tags=(a, b, c), match_any=True),
        PhotoFilter(exclude=(a,)),
        PhotoFilter(tags=(b,), exclude=(c,), needs_review=True),
        PhotoFilter(folder="2020"),
        PhotoFilter(folder="2021/park", untagged=True),
        PhotoFilter(name="dog"),
        PhotoFilter(name="beach", statuses=("missing", "ok"), order="taken", descending=True),
    ]
    return [replace(k, hide_missing=hide) for k in kinds for hide in (False, True)]


def assert_counts_match(db: Path) -> None:
    with LibraryQueries(db) as q:
        tags = sorted(t.id for t in q.tags())
        for f in _filters(tags):
            assert q.quick_counts(f) == recount(db, f), f


def assert_tag_counts_kept(db: Path) -> None:
    """photos.tags_carried and tags_to_review equal a recount of every photo's rows."""
    photos, cells = _rows(db)
    conn = sqlite3.connect(db)
    try:
        kept = {
            int(i): (c, r)
            for i, c, r in conn.execute("SELECT id, tags_carried, tags_to_review FROM photos")
        }
    finally:
        conn.close()
    recounted = {
        pid: (sum(map(_carried, cells[pid])), sum(map(_to_review, cells[pid]))) for pid in photos
    }
    assert kept == recounted


# -- the tests -----------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2])
def test_every_count_matches_a_recount(tmp_path: Path, seed: int) -> None:
    db = _sidecar(tmp_path)
    build_random(db, seed)
    photos, cells = _rows(db)
    statuses = {s for _, s in photos.values()}
    assert statuses == {"ok", "damaged", "missing", "pending"}
    assert any(not any(map(_carried, c)) for c in cells.values())  # untagged ones
    assert any(any(map(_to_review, c)) for c in cells.values())  # ones to review
    with LibraryQueries(db) as q:
        assert q.uses_tag_counts
    assert_tag_counts_kept(db)
    assert_counts_match(db)


def _sidecar_1_5(db: Path, monkeypatch: pytest.MonkeyPatch, seed: int) -> None:
    with monkeypatch.context() as m:
        m.setattr(store_mod, "MIGRATIONS", store_mod.MIGRATIONS[:6])
        m.setattr(store_mod, "SCHEMA_VERSION", 105)
        build_random(db, seed)
        with Store(db, backups=False) as store:
            assert store.schema_version() == 105


def test_a_1_5_sidecar_read_as_it_is_counts_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = _sidecar(tmp_path)
    _sidecar_1_5(db, monkeypatch, seed=3)
    with LibraryQueries(db) as q:
        assert not q.uses_tag_counts
    assert_counts_match(db)


def test_a_1_5_sidecar_is_migrated_with_its_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = _sidecar(tmp_path)
    _sidecar_1_5(db, monkeypatch, seed=4)
    with Store(db) as store:
        assert store.schema_version() >= 106
        [backup] = store.backups()
        assert "before-migration-1.5" in backup.name
        triggers = {
            r[0]
            for r in store.conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        }
        assert set(COUNT_TRIGGERS) <= triggers
    assert_tag_counts_kept(db)
    with LibraryQueries(db) as q:
        assert q.uses_tag_counts
    assert_counts_match(db)
    # The triggers keep them from now on.
    with Store(db, backups=False) as store, store.transaction():
        pid = store.conn.execute("SELECT MIN(id) FROM photos").fetchone()[0]
        for tag in store.tags():
            store.set_user_decision(pid, tag.id, "accepted", "user", None)
    assert_tag_counts_kept(db)


def _random_write(store: Store, rng: random.Random, tags: list[int], n: int, undo: list) -> None:
    ids = [int(i) for i in store.photo_ids()]
    op = rng.randrange(11)
    if op == 0 or not ids:
        with store.transaction():
            _add_photo(store, rng, n)
    elif op == 1:
        picked = rng.sample(ids, min(len(ids), 5))
        store.replace_suggestions({pid: _random_suggestions(rng, tags) for pid in picked})
    elif op == 2:
        with store.transaction():
            _decide(store, rng, rng.choice(ids), tags)
    elif op == 3:  # a correction undone: the cell put back as it was, or gone
        pid, tid = rng.choice(ids), rng.choice(tags)
        with store.transaction():
            before = store.photo_tag(pid, tid)
            store.set_user_decision(pid, tid, "rejected", "user", None)
        with store.transaction():
            if before is None:
                store.restore_cell(pid, tid, None, None, None, False)
            else:
                store.restore_cell(
                    pid, tid, before.state, before.source, before.score, before.fallback
                )
    elif op == 4:  # a bulk edit, then its undo from the snapshot
        picked = rng.sample(ids, min(len(ids), 4))
        undo.append((picked, store.photo_tag_rows(picked)))
        with store.transaction():
            for pid in picked:
                store.set_user_decision(pid, rng.choice(tags), "accepted", "user", 0.5)
    elif op == 5 and undo:
        picked, rows = undo.pop()
        alive = set(ids)
        picked = [p for p in picked if p in alive]
        with store.transaction():
            store.restore_photo_tag_rows(
                picked, [r for r in rows if r[0] in alive and r[1] in tags]
            )
    elif op == 6:
        store.remove_photos(rng.sample(ids, 1))
    elif op == 7:
        with store.transaction():
            store.set_status(rng.sample(ids, min(len(ids), 3)), rng.choice(STATUSES))
            store.mark_missing(rng.sample(ids, 1))
    elif op == 8:  # a missing photo found again under a new name: its row moves
        with store.transaction():
            gone = rng.choice(ids)
            store.conn.execute(
                "UPDATE photos SET status = 'missing', content_hash = ? WHERE id = ?",
                (f"moved{n}", gone),
            )
            new = store.add_photo(f"moved/{n}.jpg", 5, 5)
            store.record_read(new, content_hash=f"moved{n}", size=5, mtime_ns=5, width=1, height=1)
    elif op == 9 and rng.random() < 0.3:
        victim = rng.choice(tags)
        with store.transaction():
            store.remove_tag(victim)
        tags[:] = _tag_ids(store)  # the tag comes back, as a new one
    else:  # a transaction that fails half-way leaves the counts as they were
        with pytest.raises(RuntimeError), store.transaction():
            _decide(store, rng, rng.choice(ids), tags)
            store.conn.execute("DELETE FROM photo_tags WHERE photo_id = ?", (rng.choice(ids),))
            raise RuntimeError("cut short")


def test_tag_counts_never_drift_under_random_writes(tmp_path: Path) -> None:
    db = _sidecar(tmp_path)
    build_random(db, seed=5, photos=40)
    rng = random.Random(6)
    undo: list = []
    with Store(db, backups=False) as store:
        tags = _tag_ids(store)
        for n in range(400):
            _random_write(store, rng, tags, 1000 + n, undo)
            if n % 50 == 49:
                assert_tag_counts_kept(db)
    assert_tag_counts_kept(db)
    assert_counts_match(db)


def _plan(q: LibraryQueries, f: PhotoFilter) -> str:
    """The query plan of the one statement `quick_counts(f)` runs."""
    conn = q._conn
    assert conn is not None
    seen: list[str] = []
    conn.set_trace_callback(seen.append)
    q.quick_counts(f)
    conn.set_trace_callback(None)
    [select] = [s for s in seen if s.lstrip().upper().startswith("SELECT")]
    return " | ".join(r[3] for r in conn.execute(f"EXPLAIN QUERY PLAN {select}"))


def test_counts_are_one_pass_over_an_index_of_the_counts(tmp_path: Path) -> None:
    db = _sidecar(tmp_path)
    build_random(db, seed=7, photos=20)
    with LibraryQueries(db) as q:
        every = _plan(q, PhotoFilter(hide_missing=True))
        tag = min(t.id for t in q.tags())
        tagged = _plan(q, PhotoFilter(tags=(tag,), hide_missing=True))
    assert "COVERING INDEX photos_quick_counts" in every
    assert "SUBQUERY" not in every
    # The tagged photos' counts come from the narrow index, not their rows (no ANALYZE
    # stats here, as in a user's library).
    assert "COVERING INDEX photos_quick_by_id (id=?)" in tagged
    assert "CORRELATED" not in tagged
