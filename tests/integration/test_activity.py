"""What changed, visible: a re-decision reports which tags photos gained and lost,
corrections are kept in the session's activity, and redo puts an undone correction back
exactly."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from albumtagger.config import load_settings
from albumtagger.events import ActivityChanged, Notice
from albumtagger.service.session import LibrarySession
from tests.conftest import make_photo


def _photos(root: Path, indices: range) -> None:
    for i in indices:
        make_photo(root / f"p{i:02d}.jpg", 700 + i, size=(96 + 4 * (i % 5), 80))


@pytest.fixture
def session(tmp_path: Path, golden_env: dict):
    root = tmp_path / "album"
    _photos(root, range(12))
    events: list = []
    with LibrarySession(root, load_settings(), on_event=events.append, backup=False) as s:
        list(s.index())
        s.events = events  # type: ignore[attr-defined]
        yield s


def _suggested(db: Path) -> set[tuple[int, str]]:
    """(photo id, tag name) of every automatic suggestion."""
    conn = sqlite3.connect(db)
    rows = conn.execute(
        "SELECT pt.photo_id, t.name FROM photo_tags pt JOIN tags t ON t.id = pt.tag_id "
        "WHERE pt.state = 'suggested'"
    ).fetchall()
    conn.close()
    return {(int(p), str(n)) for p, n in rows}


def _state(db: Path) -> tuple[list, list, list]:
    """Every tag cell, every tag's threshold state and every feedback event's state."""
    conn = sqlite3.connect(db)
    cells = conn.execute("SELECT * FROM photo_tags ORDER BY photo_id, tag_id").fetchall()
    tags = conn.execute(
        "SELECT id, name, threshold, events, score_median, score_scale FROM tags ORDER BY id"
    ).fetchall()
    feedback = conn.execute("SELECT id, undone FROM feedback ORDER BY id").fetchall()
    conn.close()
    return cells, tags, [(i, u == 0) for i, u in feedback]


def _suggestions_of(session: LibrarySession, photo: int) -> list[str]:
    return [t.name for t in session.store.photo_tags([photo]) if t.state == "suggested" and t.score]


def test_a_redecision_after_new_photos_reports_the_tags_gained_and_lost(
    session: LibrarySession,
) -> None:
    tagger = session.tagger()
    redecide = tagger.redecide
    seen: dict[str, set] = {}

    def watched(trigger: str = ""):
        seen["before"] = _suggested(session.db_path)
        changes = redecide(trigger)
        seen["after"] = _suggested(session.db_path)
        return changes

    tagger.redecide = watched  # type: ignore[method-assign]
    _photos(session.root, range(12, 40))
    session.events.clear()  # type: ignore[attr-defined]
    earlier = {e.id for e in session.activity().entries}
    list(session.index())
    assert "before" in seen, "indexing new photos re-decides the library"

    gained: dict[str, int] = {}
    lost: dict[str, int] = {}
    for _, name in seen["after"] - seen["before"]:
        gained[name] = gained.get(name, 0) + 1
    for _, name in seen["before"] - seen["after"]:
        lost[name] = lost.get(name, 0) + 1
    assert gained or lost, "28 new photos beside 12 move some thresholds"

    entries = [
        e for e in session.activity().entries if e.kind == "redecision" and e.id not in earlier
    ]
    assert len(entries) == 1
    reported = {c.tag: (c.gained, c.lost) for c in entries[0].tags}
    expected = {
        name: (gained.get(name, 0), lost.get(name, 0)) for name in gained.keys() | lost.keys()
    }
    assert reported == expected
    before: dict[int, set[str]] = {}
    after: dict[int, set[str]] = {}
    for photo, name in seen["before"]:
        before.setdefault(photo, set()).add(name)
    for photo, name in seen["after"]:
        after.setdefault(photo, set()).add(name)
    replaced = [
        p for p, names in before.items() if after.get(p) and not names & after.get(p, set())
    ]
    assert replaced, "some photos get all new suggestions"
    assert f"; {len(replaced)} got all new suggestions)" in entries[0].text
    changes = [c.gained + c.lost for c in entries[0].tags]
    assert changes == sorted(changes, reverse=True)  # the most changed first
    top = entries[0].tags[0]
    text = entries[0].text
    assert text.startswith("Re-decided after 28 new photos: ")
    assert f"after 28 new photos: {top.text()}" in text
    events = session.events  # type: ignore[attr-defined]
    assert any(isinstance(e, Notice) and e.text == text for e in events)
    assert any(isinstance(e, ActivityChanged) and e.kind == "redecision" for e in events)


def test_corrections_and_their_knock_on_effect_are_in_the_activity(
    session: LibrarySession,
) -> None:
    photos = sorted(session.store.photo_ids())[:3]
    name = _suggestions_of(session, photos[0])[0]
    results = session.correct(photos, name, "reject")
    entry = session.activity().entries[0]
    assert entry.kind == "correction"
    assert entry.text == f"You rejected {name!r} on 3 photos"
    assert entry.feedback_ids == tuple(r.feedback_id for r in results if r.feedback_id)
    added = sum(r.added for r in results)
    removed = sum(r.removed for r in results)
    if added or removed:  # the knock-on effect on the other photos
        assert f"+{added} photos -{removed}" in entry.detail
    else:
        assert entry.detail == "no other photo changed"
    assert session.activity().undoable(entry)

    undone = session.undo_activity(entry.id)
    assert len(undone) == len(entry.feedback_ids)
    assert all(t.state != "rejected" for t in session.store.photo_tags(photos) if t.name == name)
    view = session.activity()
    assert view.entries[0].kind == "undo"
    assert not view.undoable(entry)
    assert view.redoable(entry)


def test_redo_after_undo_is_exact(session: LibrarySession) -> None:
    db = session.db_path
    photos = sorted(session.store.photo_ids())
    first = _suggestions_of(session, photos[0])
    second = _suggestions_of(session, photos[1])
    session.correct([photos[0]], first[0], "reject")
    session.correct([photos[1]], second[-1], "accept")
    after = _state(db)
    assert session.undo() is not None
    middle = _state(db)
    assert session.undo() is not None
    assert _state(db) != middle

    redone = session.redo()
    assert redone is not None and redone.action == "redo" and redone.tag == first[0]
    assert _state(db) == middle
    redone = session.redo()
    assert redone is not None and redone.tag == second[-1]
    assert _state(db) == after
    assert session.redo() is None
    # and undo after redo is exact again
    assert session.undo() is not None
    assert _state(db) == middle
    assert [e.kind for e in session.activity().entries[:3]] == ["undo", "redo", "redo"]


def test_a_new_correction_clears_what_can_be_redone(session: LibrarySession) -> None:
    photos = sorted(session.store.photo_ids())
    one = _suggestions_of(session, photos[0])[0]
    two = _suggestions_of(session, photos[1])[0]
    session.correct([photos[0]], one, "reject")
    session.undo()
    assert session.activity().redo_id is not None
    session.correct([photos[1]], two, "reject")
    assert session.activity().redo_id is None
    assert session.redo() is None
    # undoing the new one makes it (and only it) the one to redo
    session.undo()
    redone = session.redo()
    assert redone is not None and redone.tag == two
    assert session.redo() is None
    cell = next(t for t in session.store.photo_tags([photos[0]]) if t.name == one)
    assert cell.state == "suggested"


def test_redo_after_new_photos_puts_the_decision_back(session: LibrarySession) -> None:
    photos = sorted(session.store.photo_ids())
    name = _suggestions_of(session, photos[0])[0]
    session.correct([photos[0]], name, "reject")
    session.undo()
    _photos(session.root, range(12, 16))
    list(session.index())  # automatic decisions were written since the undo
    redone = session.redo()
    assert redone is not None and redone.tag == name
    cell = next(t for t in session.store.photo_tags([photos[0]]) if t.name == name)
    assert cell.state == "rejected"
    assert session.undo() is not None
    cell = next(t for t in session.store.photo_tags([photos[0]]) if t.name == name)
    assert cell.state == "suggested"


def test_a_vocabulary_edit_says_which_tags_photos_gained(session: LibrarySession) -> None:
    before = _suggested(session.db_path)
    counts: dict[str, int] = {}
    for _, name in before:
        counts[name] = counts.get(name, 0) + 1
    common = max(counts, key=lambda n: (counts[n], n))
    session.remove_tags([common])  # other tags take its place on its photos
    after = _suggested(session.db_path)
    gained: dict[str, int] = {}
    lost: dict[str, int] = {}
    for _, name in after - before:
        gained[name] = gained.get(name, 0) + 1
    for _, name in before - after:
        if name != common:
            lost[name] = lost.get(name, 0) + 1
    assert gained, "photos that lost a tag take others"
    entry = session.activity().entries[0]
    assert entry.kind == "redecision"
    assert entry.text.startswith("Re-decided after a vocabulary change: ")
    assert {c.tag: (c.gained, c.lost) for c in entry.tags} == {
        name: (gained.get(name, 0), lost.get(name, 0)) for name in gained.keys() | lost.keys()
    }
