"""A text search stops at its relevance cutoff: a score on each photo, "Show all" for
the rest, a cutoff the user can move."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt

from tests.qt.conftest import PHOTOS
from tests.qt.test_window import open_indexed


def search(qtbot, window, text: str) -> None:
    window.search.setText(text)
    with qtbot.waitSignal(window.browsing.search_done, timeout=60_000) as blocker:
        window.search.returnPressed.emit()
    assert not blocker.args[0].error, blocker.args[0].error


def test_search_shows_the_photos_over_its_cutoff_with_their_scores(
    qtbot, make_window, indexed_folder: Path
) -> None:
    window = open_indexed(qtbot, make_window, indexed_folder)
    browsing, bar = window.browsing, window.cutoff_bar
    assert not bar.isVisible()
    search(qtbot, window, "a red square")
    ids, scores = browsing.results
    assert len(ids) == PHOTOS
    learned = browsing.cutoff
    assert learned is not None and browsing.learned_cutoff == learned
    assert window.model.rowCount() == int(np.count_nonzero(scores >= np.float32(learned)))
    assert bar.isVisible()

    # a cutoff between the third and fourth best: three photos, each with its score
    browsing.set_cutoff(float(scores[2] + scores[3]) / 2)
    assert window.model.rowCount() == 3 < PHOTOS
    assert list(window.model.ids) == list(ids[:3])
    assert "3 photos score" in bar.label.text()
    assert bar.more.text() == f"Show all ({PHOTOS - 3} more)"
    assert window.filter_bar.count.text() == f"3 of {PHOTOS} photos"
    window.grid.delegate.scores_painted = 0
    window.grid.viewport().repaint()
    assert window.grid.delegate.scores_painted == 3
    tip = window.model.index(0).data(Qt.ItemDataRole.ToolTipRole)
    assert tip is None or f"match {scores[0]:.3f}" in tip

    # Show all: the rest, in order
    qtbot.mouseClick(bar.more, Qt.MouseButton.LeftButton)
    assert list(window.model.ids) == list(ids)
    assert bar.more.text() == "Show matches only"
    qtbot.mouseClick(bar.more, Qt.MouseButton.LeftButton)
    assert window.model.rowCount() == 3

    # looser and stricter move the count
    while window.model.rowCount() == 3:
        qtbot.mouseClick(bar.looser, Qt.MouseButton.LeftButton)
    assert window.model.rowCount() > 3
    assert f"{window.model.rowCount()} photos score" in bar.label.text()
    stricter = browsing.cutoff + 1.0
    browsing.set_cutoff(stricter)
    assert window.model.rowCount() == 0
    assert window.grid_stack.currentIndex() == 1
    assert browsing.empty_text()[0].startswith("No photo scores")
    qtbot.mouseClick(bar.learned, Qt.MouseButton.LeftButton)
    assert browsing.cutoff == learned

    # a new search starts from its own learned cutoff; clearing it hides the bar
    window.search.setText("")
    qtbot.waitUntil(lambda: browsing.query is None, timeout=10_000)
    assert browsing.results is None
    assert not bar.isVisible()


def test_show_all_is_kept_for_the_next_search(qtbot, make_window, indexed_folder: Path) -> None:
    window = open_indexed(qtbot, make_window, indexed_folder)
    search(qtbot, window, "a dog")
    window.browsing.set_show_all(True)
    assert window.model.rowCount() == PHOTOS
    search(qtbot, window, "a cat on a sofa")
    assert window.model.rowCount() == PHOTOS
    assert window.cutoff_bar.more.text() == "Show matches only"
