"""The tag inspector over a real sidecar with the golden model: the histogram holds the
library's scores, the preview of a threshold (typed or dragged) is what pinning it does,
pin and give back, refresh on the worker's threshold events, the photo strips."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtTest import QTest

from albumtagger.app.inspector import (
    BINS,
    ScoreHistogram,
    TagInspector,
    carried_text,
    nice_step,
    nothing_above_text,
)
from albumtagger.app.tags_panel import TAG_ID_ROLE
from albumtagger.library.db.queries import LibraryQueries
from albumtagger.tagging.results import TagInspection
from tests.qt.conftest import PHOTOS
from tests.qt.test_window import open_indexed


def sidecar(folder: Path) -> LibraryQueries:
    """A fresh reader of the library's sidecar (not the window's)."""
    return LibraryQueries(folder / ".albumtagger" / "library.sqlite")


def tag_row(folder: Path, name: str) -> dict:
    conn = sqlite3.connect(folder / ".albumtagger" / "library.sqlite")
    try:
        row = conn.execute(
            "SELECT id, prompts, pinned_threshold FROM tags WHERE name = ?", (name,)
        ).fetchone()
    finally:
        conn.close()
    return {"id": row[0], "prompts": json.loads(row[1]), "pinned": row[2]}


def busy_tag(folder: Path) -> tuple[int, str]:
    """A tag some photos carry and some do not."""
    with sidecar(folder) as q:
        counts = q.tag_counts()
        names = {t.id: t.name for t in q.tags()}
    tag_id = next(
        t for t, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if n < PHOTOS
    )
    return tag_id, names[tag_id]


def open_inspector(qtbot, window, name: str) -> TagInspector:
    dialog = window.inspect_tag(name)
    assert isinstance(dialog, TagInspector)
    qtbot.waitUntil(lambda: dialog.report is not None, timeout=30_000)
    return dialog


def try_value(qtbot, dialog: TagInspector, value: float) -> dict:
    """Type a threshold; returns the preview shown for it."""
    with qtbot.waitSignal(
        dialog.preview_shown,
        timeout=30_000,
        check_params_cb=lambda p: p["threshold_after"] == round(value, 3),
    ) as blocker:
        dialog.spin.setValue(value)
    return blocker.args[0]


def _report(**carried_by: int) -> TagInspection:
    empty = np.zeros(0, dtype=np.float32)
    return TagInspection(
        name="turtle",
        prompts=("a photo of a turtle",),
        threshold=0.3,
        source="prior",
        source_text="",
        preference="balanced",
        pinned=None,
        answers={"yes": 0, "no": 0},
        scores=empty,
        yes_scores=empty,
        no_scores=empty,
        above=[],
        below=[],
        carries=sum(carried_by.values()),
        carried_by=carried_by,
    )


def test_a_tag_carried_only_through_the_fallback_says_so() -> None:
    """A user read "Carried by 6 photos" beside "No photo scores above it": the six
    carried it through the fallback, which nothing said."""
    report = _report(accepted=0, passing=0, fallback=6)
    assert carried_text(report) == "Carried by 6 photos (6 through the fallback)"
    assert nothing_above_text(report) == (
        "No photo scores above it: the 6 photos that carry it have it through the fallback."
    )
    both = _report(accepted=2, passing=0, fallback=1)
    assert carried_text(both) == "Carried by 3 photos (2 accepted, 1 through the fallback)"
    assert nothing_above_text(both).endswith(
        "the 3 photos that carry it were accepted or have it through the fallback."
    )
    assert nothing_above_text(_report()) == "No photo scores above it."
    assert carried_text(_report(passing=4)) == "Carried by 4 photos (4 over the threshold)"


def test_nice_step() -> None:
    assert nice_step(0.4, 8) == 0.05
    assert nice_step(0.12, 6) == 0.02
    assert nice_step(37, 4) == 10


# Bringing an open inspector forward calls raise(), which offscreen does not support.
@pytest.mark.qt_log_ignore(
    r"This plugin does not support raise\(\)",
    r"This plugin does not support propagateSizeHints",
)
def test_the_histogram_holds_the_library_scores(qtbot, make_window, indexed_folder: Path) -> None:
    window = open_indexed(qtbot, make_window, indexed_folder)
    tag_id, name = busy_tag(indexed_folder)
    dialog = open_inspector(qtbot, window, name)
    report = dialog.report
    hist = dialog.histogram
    assert report is not None and report.name == name
    assert len(report.scores) == PHOTOS  # every photo of the library is scored
    assert hist.counts.size == BINS and int(hist.counts.sum()) == PHOTOS
    assert np.array_equal(np.sort(hist.scores), np.sort(report.scores))
    assert hist.lo <= float(report.scores.min()) and float(report.scores.max()) <= hist.hi
    assert hist.threshold == round(report.threshold, 3)
    assert hist.median == report.median
    # What the header says: threshold, where it comes from, answers, photos carrying it.
    with sidecar(indexed_folder) as q:
        carries = q.tag_counts()[tag_id]
    assert report.carries == carries
    conn = sqlite3.connect(indexed_folder / ".albumtagger" / "library.sqlite")
    try:
        passing, fallback = conn.execute(
            "SELECT COALESCE(SUM(fallback = 0), 0), COALESCE(SUM(fallback != 0), 0) "
            "FROM photo_tags WHERE tag_id = ? AND state = 'suggested'",
            (tag_id,),
        ).fetchone()
    finally:
        conn.close()
    assert report.carried_by == {"accepted": 0, "passing": passing, "fallback": fallback}
    assert dialog.title.text() == name
    assert dialog.title.textFormat() == Qt.TextFormat.PlainText
    assert dialog.facts.text() == f"{carried_text(report)} \u00b7 answers: 0 yes, 0 no"
    assert dialog.facts.text().startswith(f"Carried by {carries:,} photos (")
    assert dialog.source.text().startswith(f"Threshold {report.threshold:.3f}. From the tag's")
    assert dialog.state.text() == "Learning from answers"
    assert dialog.pin_button.isEnabled() and not dialog.learn_button.isEnabled()
    assert all(p in dialog.prompts.text() for p in report.prompts)
    # It paints (axes, bars, line, markers) without a warning, linear and log.
    hist.grab()
    dialog.log_box.setChecked(True)
    assert hist.log_scale
    hist.grab()
    # The photos either side of the threshold, as thumbnails; a click selects one.
    qtbot.waitUntil(
        lambda: (
            len(dialog.above.tiles) + len(dialog.below.tiles)
            == len(report.above) + len(report.below)
        ),
        timeout=30_000,
    )
    assert [t.photo_id for t in dialog.above.tiles] == [p for p, _ in report.above]
    assert all(s >= report.threshold for _, s in report.above)
    assert all(s < report.threshold for _, s in report.below)
    qtbot.waitUntil(
        lambda: all(not t.icon().isNull() for t in dialog.above.tiles + dialog.below.tiles),
        timeout=30_000,
    )
    tile = (dialog.below.tiles or dialog.above.tiles)[0]
    qtbot.mouseClick(tile, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.grid.current_id() == tile.photo_id, timeout=30_000)
    assert window.grid.selected_ids() == [tile.photo_id]
    # Asking again for the same tag brings the same dialog forward.
    assert window.inspect_tag(name.upper()) is dialog
    dialog.reject()


def test_the_preview_is_what_pinning_does(qtbot, make_window, indexed_folder: Path) -> None:
    window = open_indexed(qtbot, make_window, indexed_folder)
    tag_id, name = busy_tag(indexed_folder)
    dialog = open_inspector(qtbot, window, name)
    report = dialog.report
    assert report is not None
    learned = report.threshold
    scores = np.sort(report.scores)
    # Halfway between two scores well below the threshold: several photos would gain it.
    k = max(0, int(np.searchsorted(scores, learned)) - 4)
    value = round(float(scores[k] + scores[k + 1]) / 2, 3)
    preview = try_value(qtbot, dialog, value)
    assert preview["gain"] > 0
    assert preview["carries_now"] == report.carries
    assert dialog.preview_label.text() == dialog.preview_text(preview)
    assert f"{preview['gain']:,} photo" in dialog.preview_label.text()
    assert dialog.histogram.threshold == value  # the line follows the spin box

    with qtbot.waitSignal(dialog.pinned, timeout=30_000) as blocker:
        qtbot.mouseClick(dialog.pin_button, Qt.MouseButton.LeftButton)
    change = blocker.args[0]
    assert change.pinned == value
    assert (change.gained, change.lost) == (preview["gain"], preview["lose"])
    assert change.carries == preview["carries_after"]
    with sidecar(indexed_folder) as q:
        assert q.tag_counts().get(tag_id, 0) == preview["carries_after"]
    assert tag_row(indexed_folder, name)["pinned"] == value
    qtbot.waitUntil(lambda: dialog.report is not None, timeout=30_000)
    assert dialog.report.pinned == value and dialog.report.source == "pinned"
    assert dialog.state.text() == f"Pinned by hand at {value:.3f}"
    assert dialog.spin.value() == value
    assert dialog.learn_button.isEnabled()
    assert dialog.facts.text().startswith(f"Carried by {preview['carries_after']:,} photo")

    # A value above every score: everything it carries would go.
    high = round(float(scores[-1]) + 0.01, 3)
    preview = try_value(qtbot, dialog, high)
    assert preview["carries_after"] == 0 and preview["gain"] == 0

    # Give back to learning: the threshold learned before, and the state says so.
    with qtbot.waitSignal(dialog.pinned, timeout=30_000) as blocker:
        qtbot.mouseClick(dialog.learn_button, Qt.MouseButton.LeftButton)
    change = blocker.args[0]
    assert change.pinned is None and change.previous_pin == value
    assert abs(change.threshold_after - learned) < 1e-6
    assert tag_row(indexed_folder, name)["pinned"] is None
    qtbot.waitUntil(lambda: dialog.report is not None, timeout=30_000)
    assert dialog.report.pinned is None and dialog.report.source == "prior"
    assert dialog.state.text() == "Learning from answers"
    assert not dialog.learn_button.isEnabled()
    with sidecar(indexed_folder) as q:
        assert q.tag_counts().get(tag_id, 0) == report.carries
    dialog.reject()


def test_dragging_the_line_sets_the_threshold(qtbot, make_window, indexed_folder: Path) -> None:
    window = open_indexed(qtbot, make_window, indexed_folder)
    _, name = busy_tag(indexed_folder)
    dialog = open_inspector(qtbot, window, name)
    hist: ScoreHistogram = dialog.histogram
    qtbot.waitUntil(lambda: hist.isVisible() and hist.width() > 100, timeout=10_000)
    rect = hist.plot_rect()
    y = int(rect.center().y())
    start = QPoint(int(hist.x_of(hist.threshold)), y)
    assert hist._near_line(start.x())
    QTest.mousePress(hist, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
    assert hist.dragging
    xs = [int(rect.left() + rect.width() * f) for f in (0.5, 0.4, 0.3, 0.25)]
    for x in xs:
        QTest.mouseMove(hist, QPoint(x, y))
        assert dialog.spin.value() == hist.value_at(x)  # the spin box follows at once
    end = QPoint(xs[-1], y)
    wanted = hist.value_at(end.x())
    with qtbot.waitSignal(
        dialog.preview_shown,
        timeout=30_000,
        check_params_cb=lambda p: p["threshold_after"] == wanted,
    ):
        QTest.mouseRelease(hist, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, end)
    assert not hist.dragging
    assert dialog.spin.value() == wanted == hist.threshold
    assert dialog.preview is not None and dialog.preview["threshold_after"] == wanted
    # The preview is the one for the last value, not for one passed on the way.
    assert dialog.preview_label.text().startswith(f"At {wanted:.3f}:")
    # A press away from the line moves it there; the arrow keys nudge it.
    x = int(rect.left() + rect.width() * 0.8)
    QTest.mouseClick(hist, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, QPoint(x, y))
    assert dialog.spin.value() == hist.value_at(x)
    before = dialog.spin.value()
    QTest.keyClick(hist, Qt.Key.Key_Right)
    assert abs(dialog.spin.value() - (before + 0.001)) < 1e-9
    # Back to the current one: the threshold in effect, nothing to preview.
    dialog.reset_button.click()
    assert dialog.spin.value() == round(dialog.report.threshold, 3)
    assert dialog.preview_label.text().startswith("The threshold in effect:")
    dialog.reject()


def test_the_inspector_follows_threshold_changes(qtbot, make_window, indexed_folder: Path) -> None:
    window = open_indexed(qtbot, make_window, indexed_folder)
    _, name = busy_tag(indexed_folder)
    dialog = open_inspector(qtbot, window, name)
    # A pin from elsewhere (the CLI's way, through the session) reaches the dialog.
    window.libraries.client.pin_threshold(name, 0.25, on_reply=lambda reply: None)
    qtbot.waitUntil(
        lambda: dialog.report is not None and dialog.report.pinned == 0.25, timeout=30_000
    )
    assert dialog.state.text() == "Pinned by hand at 0.250"
    dialog.reject()


def test_opened_from_the_tags_list(qtbot, make_window, indexed_folder: Path) -> None:
    window = open_indexed(qtbot, make_window, indexed_folder)
    panel = window.tags_panel
    # The menu action inspects the tag chosen in the list (none yet: it says so).
    window.act_inspect.trigger()
    assert window.libraries.last_notice.startswith("Choose a tag in the tags list")
    index = panel.proxy.index(2, 0)
    tag_id = int(index.data(TAG_ID_ROLE))
    name = panel.tag_name(tag_id)
    panel.view.setCurrentIndex(index)
    window.act_inspect.trigger()
    dialogs = window.findChildren(TagInspector)
    assert [d.name for d in dialogs] == [name]
    dialogs[0].reject()
    # A double click opens it too, and leaves the tag filter as it was.
    rect = panel.view.visualRect(index)
    with qtbot.waitSignal(panel.inspect_requested, timeout=5_000) as blocker:
        QTest.mouseClick(
            panel.view.viewport(),
            Qt.MouseButton.LeftButton,
            Qt.KeyboardModifier.NoModifier,
            rect.center(),
        )
        # The first click filtered on the tag; the list holds its order under the
        # pointer, so the double click inspects the tag the first click hit.
        assert panel.model.state(tag_id) == "include"
        assert panel.view.indexAt(rect.center()).data(TAG_ID_ROLE) == tag_id
        QTest.mouseDClick(
            panel.view.viewport(),
            Qt.MouseButton.LeftButton,
            Qt.KeyboardModifier.NoModifier,
            rect.center(),
        )
    assert blocker.args == [name]
    assert panel.model.state(tag_id) is None
    open_now = [d for d in window.findChildren(TagInspector) if not d.closed]
    assert [d.name for d in open_now] == [name]
    open_now[0].reject()


def test_inspecting_needs_a_library(make_window) -> None:
    window = make_window()
    window.act_inspect.trigger()
    assert window.libraries.last_notice == "Open a photo folder first."


def test_a_tag_learned_from_photos_says_so(qtbot, make_window, indexed_folder: Path) -> None:
    window = open_indexed(qtbot, make_window, indexed_folder)
    ids = [int(i) for i in window.model.ids[:2]]
    with qtbot.waitSignal(window.libraries.correction_done, timeout=60_000):
        window.libraries.learn_tag(ids, "Rex")
    dialog = open_inspector(qtbot, window, "rex")
    assert dialog.prompts.text().startswith("No description: learned from the photos")
    assert dialog.state.text() == "Suggested on other photos once 3 photos have it (now 2)"
    dialog.reject()
    with qtbot.waitSignal(window.libraries.correction_done, timeout=60_000):
        window.libraries.learn_tag([int(window.model.ids[2])], "rex")
    dialog = open_inspector(qtbot, window, "rex")
    assert dialog.state.text() == "Learning from answers"
    dialog.reject()
