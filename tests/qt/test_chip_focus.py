"""Keyboard correction in the real window: one chip is framed as the current one (the
best suggestion), A / R / Delete act on it wherever the keyboard is, and the frame moves
on at once to the next suggestion, then to the next photo."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from albumtagger.app.detail import MARK_COLOR
from tests.qt.conftest import PHOTOS

REPLY_MS = 30_000


def open_indexed(qtbot, make_window, folder: Path):
    window = make_window()
    with qtbot.waitSignal(window.libraries.library_opened, timeout=30_000):
        window.open_folder(folder)
    qtbot.waitUntil(
        lambda: window.model.rowCount() == PHOTOS and window.libraries.queries is not None,
        timeout=30_000,
    )
    return window


def suggested(window) -> list[str]:
    return [c.info.name for c in window.detail.chip_widgets() if c.info.state == "suggested"]


def marked(window) -> str | None:
    chip = window.detail.current_chip()
    return None if chip is None else chip.info.name


def stored(window, pid: int) -> dict[str, str]:
    """The tags of a photo as the sidecar has them: name -> state."""
    return {t.name: t.state for t in window.libraries.queries.photo_tags(pid)}


def press(qtbot, window, key) -> None:
    """A key pressed while the grid has the keyboard (the window's shortcuts route it)."""
    qtbot.keyClick(window.grid, key)


def show_row(qtbot, window, row: int) -> int:
    pid = window.model.photo_id(row)
    window.grid.select_photos([pid])
    qtbot.waitUntil(lambda: window.detail.photo_ids == (pid,))
    return pid


def wait_replies(qtbot, window, n: int) -> None:
    replies = []
    window.libraries.correction_done.connect(replies.append)
    try:
        qtbot.waitUntil(lambda: len(replies) >= n, timeout=REPLY_MS)
    finally:
        window.libraries.correction_done.disconnect(replies.append)
    assert not any(r.error for r in replies), [r.error for r in replies]


def test_the_best_suggestion_is_framed_and_a_then_r_answer_two_tags(
    qtbot, make_window, indexed_folder: Path
) -> None:
    window = open_indexed(qtbot, make_window, indexed_folder)
    pid = show_row(qtbot, window, 2)
    names = suggested(window)
    assert len(names) >= 3
    # the best suggestion (highest score) is framed, and only it
    chips = window.detail.chip_widgets()
    best = max((c for c in chips if c.info.state == "suggested"), key=lambda c: c.info.score)
    assert marked(window) == best.info.name == names[0]
    assert [c.marked for c in chips].count(True) == 1
    # the frame is painted while the keyboard is in the grid
    assert window.focusWidget() is window.grid
    image = best.grab().toImage()
    assert image.pixelColor(1, image.height() // 2) == MARK_COLOR

    # A then R, typed before any reply: the frame moved on at once
    press(qtbot, window, Qt.Key.Key_A)
    assert marked(window) == names[1]
    press(qtbot, window, Qt.Key.Key_R)
    assert marked(window) == names[2]
    wait_replies(qtbot, window, 2)
    tags = stored(window, pid)
    assert tags[names[0]] == "accepted"
    assert tags[names[1]] == "rejected"
    # the chips were rebuilt from the replies: the frame is still on the third
    qtbot.waitUntil(lambda: window.detail.chip_widgets()[0].info.state != "suggested")
    assert marked(window) == names[2]


def test_home_then_a_then_r_on_the_first_photo(qtbot, make_window, indexed_folder: Path) -> None:
    window = open_indexed(qtbot, make_window, indexed_folder)
    qtbot.waitUntil(lambda: window.focusWidget() is window.grid)  # the grid has the keys
    window.grid.selectionModel().clearCurrentIndex()  # no photo current yet
    press(qtbot, window, Qt.Key.Key_End)
    last = window.model.photo_id(PHOTOS - 1)
    assert window.grid.selected_ids() == [last]
    assert window.detail.photo_ids == (last,)

    press(qtbot, window, Qt.Key.Key_Home)
    first = window.model.photo_id(0)
    assert window.grid.selected_ids() == [first]
    assert window.detail.photo_ids == (first,)
    names = suggested(window)
    assert len(names) >= 2
    press(qtbot, window, Qt.Key.Key_A)
    press(qtbot, window, Qt.Key.Key_R)
    wait_replies(qtbot, window, 2)
    tags = stored(window, first)
    assert tags[names[0]] == "accepted" and tags[names[1]] == "rejected"
    assert all(tags[n] == "suggested" for n in names[2:])


@pytest.mark.parametrize("advance", [True, False])
def test_after_the_last_suggestion_the_next_photo(
    qtbot, make_window, indexed_folder: Path, monkeypatch, advance: bool
) -> None:
    if not advance:
        monkeypatch.setenv("ALBUMTAGGER_CORRECTIONS_ADVANCE_AFTER_LAST", "0")
    window = open_indexed(qtbot, make_window, indexed_folder)
    pid = show_row(qtbot, window, 0)
    names = suggested(window)
    assert names
    for _ in names:  # every suggestion accepted, as fast as the keys go
        press(qtbot, window, Qt.Key.Key_A)
    wait_replies(qtbot, window, len(names))
    assert all(stored(window, pid)[n] == "accepted" for n in names)
    if advance:
        following = window.model.photo_id(1)
        assert window.grid.selected_ids() == [following]
        qtbot.waitUntil(lambda: window.detail.photo_ids == (following,))
        assert marked(window) == suggested(window)[0]
        assert stored(window, following)[marked(window)] == "suggested"
    else:
        assert window.grid.selected_ids() == [pid]
        qtbot.waitUntil(lambda: not suggested(window))
        # nothing is framed: one more key answers nothing again
        assert window.detail.current_chip() is None
        assert not window.detail.act_on_current("reject")
        assert all(stored(window, pid)[n] == "accepted" for n in names)


def test_tab_and_arrows_move_the_frame(qtbot, make_window, indexed_folder: Path) -> None:
    window = open_indexed(qtbot, make_window, indexed_folder)
    show_row(qtbot, window, 1)
    chips = window.detail.chip_widgets()
    assert len(chips) >= 3
    names = [c.info.name for c in chips]
    assert marked(window) == names[0]
    qtbot.keyClick(chips[0], Qt.Key.Key_Right)
    assert marked(window) == names[1]
    qtbot.keyClick(chips[1], Qt.Key.Key_Tab)
    assert marked(window) == names[2]
    qtbot.keyClick(chips[2], Qt.Key.Key_Left)
    assert marked(window) == names[1]
    qtbot.keyClick(chips[1], Qt.Key.Key_Tab, Qt.KeyboardModifier.ShiftModifier)
    assert marked(window) == names[0]
    qtbot.keyClick(chips[0], Qt.Key.Key_Left)  # the first stays first
    assert marked(window) == names[0]
    assert [c.marked for c in chips] == [True] + [False] * (len(chips) - 1)
    # A acts on the chip the arrows framed
    qtbot.keyClick(chips[0], Qt.Key.Key_Right)
    window.act_accept.trigger()
    wait_replies(qtbot, window, 1)
    assert stored(window, window.detail.photo_ids[0])[names[1]] == "accepted"
    assert stored(window, window.detail.photo_ids[0])[names[0]] == "suggested"


def test_the_frame_never_goes_back_to_a_tag_answered_while_its_reply_is_on_the_way(
    qtbot,
) -> None:
    """The panel alone, the worker's replies played by hand: a refresh that still shows an
    answered tag suggested (its reply not in yet) does not bring the frame back to it."""
    from albumtagger.app.detail import DetailPanel
    from albumtagger.library.db.queries import PhotoDetail, PhotoTagInfo

    detail = PhotoDetail(1, "a.jpg", "ok", None, 64, 48, 1000, "h", 0, 0.0, 0.0)

    def tags(**states: str) -> list[PhotoTagInfo]:
        names = ("dog", "beach", "sea", "sky")
        return [
            PhotoTagInfo(i, n, 0.5 - i / 20, states.get(n, "suggested"), "auto", False, "high", 0.3)
            for i, n in enumerate(names)
        ]

    panel = DetailPanel()
    qtbot.addWidget(panel)
    sent: list[tuple[str, str]] = []
    panel.correct.connect(lambda ids, name, action: sent.append((name, action)))
    done: list[int] = []
    panel.answered_all.connect(done.append)
    panel.show_photo(detail, tags(), None)
    assert panel.current_chip().info.name == "dog"

    qtbot.keyClick(panel.chip_widgets()[1], Qt.Key.Key_Tab, Qt.KeyboardModifier.ShiftModifier)
    assert panel.current_chip().info.name == "dog"
    qtbot.keyClick(panel.chip_widgets()[0], Qt.Key.Key_Right)  # frame beach
    assert panel.act_on_current("accept")  # beach
    assert panel.current_chip().info.name == "sea"
    panel.show_photo(detail, tags(), None, reload=False)  # a refresh before the reply
    assert panel.current_chip().info.name == "sea"
    assert panel.act_on_current("reject")  # sea
    assert panel.act_on_current("accept")  # sky, the last one after it: back to dog
    assert panel.current_chip().info.name == "dog"
    panel.show_photo(detail, tags(beach="accepted"), None, reload=False)  # a reply
    assert panel.act_on_current("reject")  # dog: every suggestion answered
    assert sent == [("beach", "accept"), ("sea", "reject"), ("sky", "accept"), ("dog", "reject")]
    assert done == [1]
    assert panel.current_chip() is None
    # the replies come in: still nothing framed, and a key answers nothing
    panel.show_photo(detail, tags(beach="accepted", sea="rejected"), None, reload=False)
    panel.show_photo(detail, tags(dog="rejected", beach="accepted", sea="rejected"), None)
    assert panel.current_chip() is None and not panel.act_on_current("accept")
    assert [c.marked for c in panel.chip_widgets()] == [False] * 4
    # another photo: its best suggestion is framed
    panel.show_photo(
        PhotoDetail(2, "b.jpg", "ok", None, 64, 48, 1000, "i", 0, 0.0, 0.0), tags(), None
    )
    assert panel.current_chip().info.name == "dog" and panel.current_chip().marked
