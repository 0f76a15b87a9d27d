"""Review mode over a real sidecar with the golden model: keys answer, skip, undo and
leave; answers reach the thresholds and decisions in the sidecar."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt

from albumtagger.app.review import ReviewDialog, ReviewItem, article
from albumtagger.library.db.queries import LibraryQueries, PhotoTagInfo, TagInfo
from tests.qt.test_window import open_indexed


def sidecar(folder: Path) -> LibraryQueries:
    """A fresh reader of the library's sidecar (not the window's)."""
    return LibraryQueries(folder / ".albumtagger" / "library.sqlite")


def tag_info(folder: Path, name: str) -> TagInfo:
    with sidecar(folder) as q:
        return next(t for t in q.tags() if t.name == name)


def cell(folder: Path, item: ReviewItem) -> PhotoTagInfo | None:
    with sidecar(folder) as q:
        return next((t for t in q.photo_tags(item.photo_id) if t.name == item.tag), None)


def open_review(qtbot, window) -> ReviewDialog:
    window.act_review.trigger()
    dialog = window.review
    assert isinstance(dialog, ReviewDialog)
    qtbot.waitUntil(lambda: dialog.current is not None, timeout=30_000)
    return dialog


def answer(qtbot, dialog: ReviewDialog, key: Qt.Key):
    """Press an answer key; the next question shows at once. Returns (item, Correction)."""
    item = dialog.current
    assert item is not None
    with qtbot.waitSignal(dialog.answered, timeout=30_000) as blocker:
        qtbot.keyClick(dialog, key)
        assert dialog.current != item  # not waiting for the worker
    correction = blocker.args[0]
    assert (correction.path, correction.tag) == (item.path, item.tag)
    return item, correction


def test_keys_answer_and_the_sidecar_learns(qtbot, make_window, indexed_folder: Path) -> None:
    window = open_indexed(qtbot, make_window, indexed_folder)
    dialog = open_review(qtbot, window)
    assert dialog.isVisible()
    assert dialog.tag_label.textFormat() == Qt.TextFormat.PlainText
    first = dialog.current
    assert first is not None
    assert dialog.tag_label.text() == first.tag
    assert dialog.question_start.text() == f"Is this {article(first.tag)} "
    assert dialog.file.text() == first.path
    qtbot.waitUntil(dialog.preview.has_image, timeout=30_000)  # the big preview
    before = tag_info(indexed_folder, first.tag)

    # An answer against the tagger's guess moves the tag's threshold: N on a suggestion
    # makes it stricter, Y on a photo just below it makes it looser.
    key = Qt.Key.Key_N if first.suggested else Qt.Key.Key_Y
    item, c = answer(qtbot, dialog, key)
    assert item == first
    assert c.action == ("reject" if first.suggested else "add")
    assert cell(indexed_folder, item).state == ("rejected" if first.suggested else "accepted")
    after = tag_info(indexed_folder, item.tag)
    assert after.events == before.events + 1
    assert c.threshold_before is not None and c.threshold_after is not None
    assert abs(c.threshold_before - before.threshold) < 1e-4
    assert abs(after.threshold - c.threshold_after) < 1e-4
    moved = c.threshold_after - c.threshold_before
    assert (moved > 1e-4) if first.suggested else (moved < -1e-4)
    assert dialog.moved.text().startswith(f"Threshold of \u201c{item.tag}\u201d")
    assert dialog.counter.text().startswith("1 answer \u00b7")

    # N: no. The tag is rejected on the photo.
    item, c = answer(qtbot, dialog, Qt.Key.Key_N)
    assert c.action == "reject" and cell(indexed_folder, item).state == "rejected"

    # Y: yes. The photo carries the tag, decided by the person.
    item, c = answer(qtbot, dialog, Qt.Key.Key_Y)
    assert c.action in ("accept", "add")
    state = cell(indexed_folder, item)
    assert state is not None and state.state == "accepted" and state.source == "user"

    # The arrows answer too: Left is no, Right is yes.
    item, c = answer(qtbot, dialog, Qt.Key.Key_Left)
    assert c.action == "reject" and cell(indexed_folder, item).state == "rejected"
    item, c = answer(qtbot, dialog, Qt.Key.Key_Right)
    assert cell(indexed_folder, item).state == "accepted"
    assert dialog.answers == 5
    assert dialog.counter.text().startswith(
        f"5 answers \u00b7 {dialog.photos_changed:,} other photo"
    )

    # The window's tags panel counts follow the answers.
    with sidecar(indexed_folder) as q:
        counts = q.tag_counts()
    qtbot.waitUntil(
        lambda: all(window.tags_panel.model.count(t) == n for t, n in counts.items()),
        timeout=30_000,
    )
    dialog.reject()


def test_space_skips_undo_and_escape(qtbot, make_window, indexed_folder: Path) -> None:
    window = open_indexed(qtbot, make_window, indexed_folder)
    dialog = open_review(qtbot, window)

    # Space: skip. Nothing is written, and the question is not asked again.
    skipped = dialog.current
    assert skipped is not None
    before = cell(indexed_folder, skipped)
    qtbot.keyClick(dialog, Qt.Key.Key_Space)
    assert dialog.current is not None and dialog.current != skipped
    assert dialog.answers == 0
    assert cell(indexed_folder, skipped) == before

    # An answer, then Ctrl+Z: the sidecar is as before and the question is back.
    asked = dialog.current
    state_before = cell(indexed_folder, asked)
    threshold_before = tag_info(indexed_folder, asked.tag).threshold
    item, _ = answer(qtbot, dialog, Qt.Key.Key_N)
    assert item == asked
    qtbot.waitUntil(lambda: not dialog.fetching, timeout=30_000)  # read again after it
    keys = [i.key for i in dialog.upcoming]
    assert skipped.key not in keys and asked.key not in keys
    with qtbot.waitSignal(window.libraries.correction_done, timeout=30_000):
        qtbot.keyClick(dialog, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert dialog.current == asked
    assert dialog.answers == 0
    assert dialog.counter.text().startswith("0 answers")
    assert cell(indexed_folder, asked) == state_before
    assert abs(tag_info(indexed_folder, asked.tag).threshold - threshold_before) < 1e-4
    # ... and can be answered again
    item, _ = answer(qtbot, dialog, Qt.Key.Key_Y)
    assert item == asked and dialog.answers == 1

    # Esc: back to the photos.
    qtbot.keyClick(dialog, Qt.Key.Key_Escape)
    assert not dialog.isVisible()
    assert window.stack.currentIndex() == 1
    assert window.grid.isVisible()


def test_nothing_to_review_says_so(qtbot, make_window, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    window = make_window()
    with qtbot.waitSignal(window.libraries.library_opened, timeout=30_000):
        window.open_folder(empty)
    window.act_review.trigger()
    dialog = window.review
    qtbot.waitUntil(
        lambda: dialog.empty.isVisible() and "Nothing needs review" in dialog.empty.text(),
        timeout=30_000,
    )
    assert dialog.current is None
    assert not dialog.yes.isEnabled() and not dialog.preview.isVisible()
    qtbot.keyClick(dialog, Qt.Key.Key_Y)  # nothing to answer: nothing happens
    assert dialog.answers == 0
    qtbot.keyClick(dialog, Qt.Key.Key_Escape)
    assert not dialog.isVisible()


def test_review_needs_a_library(make_window) -> None:
    window = make_window()
    window.act_review.trigger()
    assert getattr(window, "review", None) is None
    assert window.libraries.last_notice == "Open a photo folder first."
