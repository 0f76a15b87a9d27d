"""Review says how many questions remain for the tag asked about and in all, updated
after each answer."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt

from albumtagger.app.review import ReviewDialog
from tests.qt.test_window import open_indexed


def expected(dialog: ReviewDialog) -> str:
    assert dialog.left is not None and dialog.current is not None
    n, total = dialog.left.get(dialog.current.tag, 0), sum(dialog.left.values())
    return f"{n:,} left for \u201c{dialog.current.tag}\u201d, {total:,} in all"


def test_review_says_how_many_questions_remain(qtbot, make_window, indexed_folder: Path) -> None:
    window = open_indexed(qtbot, make_window, indexed_folder)
    window.act_review.trigger()
    dialog = window.review
    assert isinstance(dialog, ReviewDialog)
    qtbot.waitUntil(
        lambda: dialog.current is not None and dialog.left is not None and not dialog.fetching,
        timeout=30_000,
    )
    assert dialog.remaining.textFormat() == Qt.TextFormat.PlainText
    assert dialog.remaining.isVisible()
    first = dict(dialog.left)
    assert sum(first.values()) > 0
    assert dialog.remaining.text() == expected(dialog)

    # each answer reads the counts again; the next question shows its own tag's count
    for _ in range(3):
        item = dialog.current
        assert item is not None
        with qtbot.waitSignal(dialog.remaining_read, timeout=30_000):
            qtbot.keyClick(dialog, Qt.Key.Key_N if item.suggested else Qt.Key.Key_Y)
        qtbot.waitUntil(lambda: dialog.current is not None and not dialog.fetching, timeout=30_000)
        assert dialog.remaining.text() == expected(dialog)
    assert dialog.answers == 3
    # the answered cells are no longer questions (and answers move thresholds)
    assert dialog.left != first
