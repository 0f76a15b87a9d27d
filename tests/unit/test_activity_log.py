"""The activity's words: a correction with its knock-on effect, a re-decision by tag."""

from __future__ import annotations

from albumtagger.library.db.store import SuggestionChanges
from albumtagger.service.activity import ActivityLog
from albumtagger.tagging.results import Correction, Redecision, tag_changes


def _correction(feedback_id: int, added: int, removed: int, after: float) -> Correction:
    return Correction(
        "a.jpg", "beach", "accept", 0.25, after, added + removed, added, removed,
        feedback_id=feedback_id,
    )  # fmt: skip


def test_a_correction_of_several_photos_is_one_entry_with_its_knock_on_effect() -> None:
    log = ActivityLog()
    entry = log.corrections([_correction(1, 5, 0, 0.24), _correction(2, 7, 0, 0.231)])
    assert entry is not None
    assert entry.text == "You accepted 'beach' on 2 photos"
    assert entry.detail == "'beach' threshold moved 0.250 \u2192 0.231: +12 photos -0"
    assert entry.feedback_ids == (1, 2)
    view = log.view(2, None)
    assert view.undoable(entry) and not view.redoable(entry)
    assert not log.view(5, 2).undoable(entry) and log.view(5, 2).redoable(entry)


def test_nothing_changed_is_no_entry_and_the_log_is_bounded() -> None:
    log = ActivityLog(limit=3)
    assert log.corrections([_correction(0, 0, 0, 0.25)]) is None
    for i in range(5):
        log.corrections([_correction(i + 1, 0, 0, 0.25)])
    entries = log.view(None, None).entries
    assert [e.feedback_ids for e in entries] == [(5,), (4,), (3,)]  # newest first


def test_a_redecision_names_the_most_changed_tags_with_counts() -> None:
    changes = SuggestionChanges(
        added=[(p, 1) for p in range(41)] + [(1, 3)],
        removed=[(p, 2) for p in range(12)] + [(2, 4)],
    )
    tags = tag_changes(changes, {1: "turtle", 2: "beach", 3: "dog", 4: "cat"})
    assert [(c.tag, c.gained, c.lost) for c in tags[:2]] == [("turtle", 41, 0), ("beach", 0, 12)]
    text = Redecision("photos", tags, 53, new_photos=60).describe(top=2)
    assert text == (
        "Re-decided after 60 new photos: 'turtle' +41, 'beach' -12 and 2 more tags "
        "(53 photos changed)."
    )
    text = Redecision("photos", tags[:1], 53, new_photos=60, photos_replaced=7).describe()
    assert text == (
        "Re-decided after 60 new photos: 'turtle' +41 (53 photos changed; 7 got all new "
        "suggestions)."
    )
    log = ActivityLog()
    entry = log.redecision(Redecision("settings", tags, 53))
    assert entry.text.startswith("Re-decided after a settings change: 'turtle' +41")


def test_an_undo_and_a_redo_say_what_they_took_back_and_put_back() -> None:
    undo = Correction("a.jpg", "beach", "undo", 0.3, 0.25, 4, undone_action="reject")
    redo = Correction("a.jpg", "beach", "redo", 0.25, 0.3, 4, undone_action="reject")
    assert (
        undo.describe() == "Undid: rejected 'beach' on a.jpg; 4 other photos are back as they were."
    )
    assert (
        redo.describe() == "Redid: rejected 'beach' on a.jpg; 4 other photos changed with it again."
    )
    log = ActivityLog()
    assert log.corrections([redo]) is None  # no event: nothing was redone
    entry = log.corrections([Correction(**{**redo.__dict__, "feedback_id": 7})])
    assert entry is not None and entry.kind == "redo" and entry.text == redo.describe()
