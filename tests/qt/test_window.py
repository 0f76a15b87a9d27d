"""The main window over real sidecars with the golden model: open, tag, watch, filter,
search, correct, undo, keyboard, close while working."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QItemSelectionModel, Qt

from albumtagger.events import JobProgress
from albumtagger.library.db.queries import LibraryQueries, PhotoFilter
from tests.conftest import make_photo
from tests.qt.conftest import PHOTOS, wait_indexed


def open_indexed(qtbot, make_window, folder: Path, **kwargs):
    window = make_window(**kwargs)
    with qtbot.waitSignal(window.libraries.library_opened, timeout=30_000):
        window.open_folder(folder)
    qtbot.waitUntil(
        lambda: (
            window.model.rowCount() == PHOTOS
            and window.tags_panel.model.rowCount() > 0
            and not window.browsing.counts_pending()
        ),
        timeout=30_000,
    )
    return window


def popular_tags(window, k: int = 3) -> list[int]:
    counts = window.libraries.queries.tag_counts(PhotoFilter())
    return [t for t, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:k]]


def apply(qtbot, window, action, *args) -> None:
    """Change the filter and wait until the grid shows its photos."""
    with qtbot.waitSignal(window.browsing.filter_applied, timeout=30_000):
        action(*args)


def first_photo(window) -> int:
    window.grid.setCurrentIndex(window.model.index(0))
    pid = window.grid.current_id()
    assert pid is not None
    return pid


# -- opening and tagging ------------------------------------------------------------------


def test_no_folder_shows_what_to_do(make_window, qsettings) -> None:
    window = make_window()
    assert window.stack.currentWidget() is window.welcome
    assert window.welcome.button.isVisible()
    assert not window.welcome.recent.isVisible()  # no recent folders yet


def test_open_a_folder_tags_it_with_progress_and_remembers_it(
    qtbot, make_window, photo_folder: Path, qsettings
) -> None:
    window = make_window()
    seen: list[JobProgress] = []

    def record(ev: object) -> None:
        if isinstance(ev, JobProgress):
            seen.append(ev)

    window.open_folder(photo_folder)
    assert window.libraries.handle is not None
    window.libraries.handle.worker.event.connect(record)
    wait_indexed(qtbot, window, PHOTOS)
    tagging = [p for p in seen if p.phase == "tag" and p.total == PHOTOS]
    assert tagging, seen
    assert seen[-1].finished
    assert window.stack.currentIndex() == 1
    # every photo carries tags; the tags panel counts them
    counts = window.libraries.queries.tag_counts(PhotoFilter())
    assert window.tags_panel.model.rowCount() > 0
    assert sum(counts.values()) >= 3 * PHOTOS
    assert window.filter_bar.count.text() == f"{PHOTOS} photos"
    # the grid painted its cells, and thumbnails arrived from the loader
    qtbot.waitUntil(lambda: window.loader.loaded >= PHOTOS, timeout=30_000)
    assert window.grid.delegate.painted > 0
    assert window.libraries.recent_folders()[0] == str(photo_folder)
    assert qsettings.value("recent/folders") == [str(photo_folder)]


def test_a_photo_copied_in_while_running_appears_tagged(
    qtbot, make_window, indexed_folder: Path
) -> None:
    window = open_indexed(qtbot, make_window, indexed_folder)
    qtbot.waitUntil(lambda: window.job.label.text() == "Watching the folder", timeout=30_000)
    new = make_photo(indexed_folder / "new" / "arrived.jpg", seed=500, size=(120, 80))
    assert new.exists()

    def tagged() -> bool:
        if window.model.rowCount() != PHOTOS + 1:
            return False
        ids = window.libraries.queries.photo_ids(PhotoFilter(name="arrived"))
        if len(ids) != 1:
            return False
        s = window.libraries.queries.summaries(ids)[0]
        return s.status == "ok" and s.tag_count >= 3

    qtbot.waitUntil(tagged, timeout=60_000)
    # the grid's own summary of it is fresh, too
    pid = int(window.libraries.queries.photo_ids(PhotoFilter(name="arrived"))[0])
    row = window.model.row_of(pid)
    assert row >= 0

    def fresh() -> bool:
        window.model.ensure_rows(row, row)
        summary = window.model.summary_of(pid)
        return summary is not None and summary.status == "ok"

    qtbot.waitUntil(fresh, timeout=30_000)


# -- filters --------------------------------------------------------------------------------


def test_filter_include_exclude_any(qtbot, make_window, indexed_folder: Path) -> None:
    window = open_indexed(qtbot, make_window, indexed_folder)
    q = window.libraries.queries
    a, b, c = popular_tags(window)
    panel = window.tags_panel

    apply(qtbot, window, panel.set_tag_state, a, "include")
    expected = q.photo_ids(PhotoFilter(tags=(a,), order="path"))
    assert np.array_equal(window.model.ids, expected)
    assert 0 < len(expected) < PHOTOS
    assert window.filter_bar.count.text() == f"{len(expected)} of {PHOTOS} photos"
    assert any(panel.tag_name(a) in t for t in window.filter_bar.chip_texts())

    apply(qtbot, window, panel.cycle, a)  # include -> exclude
    expected = q.photo_ids(PhotoFilter(exclude=(a,), order="path"))
    assert np.array_equal(window.model.ids, expected)

    apply(qtbot, window, panel.set_tag_state, a, "include")
    apply(qtbot, window, panel.set_tag_state, b, "include")
    both = set(q.photo_ids(PhotoFilter(tags=(a, b))).tolist())
    assert set(window.model.ids.tolist()) == both
    apply(qtbot, window, panel.set_match_any, True)
    either = set(q.photo_ids(PhotoFilter(tags=(a,))).tolist()) | set(
        q.photo_ids(PhotoFilter(tags=(b,))).tolist()
    )
    assert set(window.model.ids.tolist()) == either
    assert len(either) >= len(both)

    # counts follow the filter
    qtbot.waitUntil(
        lambda: (
            panel.model.count(a) == len(either & set(q.photo_ids(PhotoFilter(tags=(a,))).tolist()))
        )
    )

    # a filter that matches nothing says so, and clearing brings everything back
    apply(qtbot, window, panel.set_match_any, False)
    apply(qtbot, window, panel.set_tag_state, c, "exclude")
    apply(qtbot, window, panel.set_quick, "damaged", True)
    assert window.model.rowCount() == 0
    assert window.grid_stack.currentWidget() is window.empty
    assert "No photo matches" in window.empty.text.text()
    apply(qtbot, window, qtbot.mouseClick, window.empty.button, Qt.MouseButton.LeftButton)
    assert window.model.rowCount() == PHOTOS
    assert window.grid_stack.currentWidget() is window.grid


def test_tag_list_click_cycles_and_filter_box(qtbot, make_window, indexed_folder: Path) -> None:
    window = open_indexed(qtbot, make_window, indexed_folder)
    panel = window.tags_panel
    a = popular_tags(window, 1)[0]
    name = panel.tag_name(a)
    panel.filter_box.setText(name)
    assert panel.proxy.rowCount() >= 1
    index = next(
        panel.proxy.index(r, 0)
        for r in range(panel.proxy.rowCount())
        if panel.proxy.index(r, 0).data(Qt.ItemDataRole.UserRole + 10) == name
    )
    rect = panel.view.visualRect(index)
    apply(
        qtbot,
        window,
        qtbot.mouseClick,
        panel.view.viewport(),
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
        rect.center(),
    )
    assert panel.model.state(a) == "include"
    assert window.model.rowCount() == window.libraries.queries.count(PhotoFilter(tags=(a,)))


# -- search ---------------------------------------------------------------------------------


def test_search_ranks_within_the_filter_and_escape_returns(
    qtbot, make_window, indexed_folder: Path
) -> None:
    window = open_indexed(qtbot, make_window, indexed_folder)
    window.browsing.set_show_all(True)  # every photo, ranked (cutoff: test_search_cutoff)
    window.search.setText("a dog on the beach")
    with qtbot.waitSignal(window.browsing.search_done, timeout=60_000) as blocker:
        window.search.returnPressed.emit()
    reply = blocker.args[0]
    assert not reply.error, reply.error
    assert window.model.rowCount() == PHOTOS
    scores = window.model.scores
    assert scores is not None and list(scores) == sorted(scores, reverse=True)
    assert any("dog on the beach" in t for t in window.filter_bar.chip_texts())

    # with a tag filter, the search is restricted to its photos
    a = popular_tags(window, 1)[0]
    with qtbot.waitSignal(window.browsing.search_done, timeout=30_000):
        window.tags_panel.set_tag_state(a, "include")
    allowed = set(window.libraries.queries.photo_ids(PhotoFilter(tags=(a,))).tolist())
    assert set(window.model.ids.tolist()) == allowed

    # Esc clears the search: back to the filter's order
    apply(qtbot, window, qtbot.keyClick, window.search, Qt.Key.Key_Escape)
    assert window.search.text() == ""
    assert window.model.scores is None
    assert np.array_equal(
        window.model.ids, window.libraries.queries.photo_ids(window.current_filter())
    )


def test_more_like_this(qtbot, make_window, indexed_folder: Path) -> None:
    window = open_indexed(qtbot, make_window, indexed_folder)
    pid = first_photo(window)
    with qtbot.waitSignal(window.browsing.search_done, timeout=30_000) as blocker:
        window.act_similar.trigger()
    assert not blocker.args[0].error
    assert pid not in window.model.ids.tolist()
    assert window.model.rowCount() == PHOTOS - 1


# -- corrections --------------------------------------------------------------------------


def chip(window, name: str):
    return next(c for c in window.detail.chip_widgets() if c.info.name == name)


def test_accept_reject_add_and_undo(qtbot, make_window, indexed_folder: Path) -> None:
    window = open_indexed(qtbot, make_window, indexed_folder)
    pid = first_photo(window)
    assert window.detail.photo_ids == (pid,)
    suggested = [c for c in window.detail.chip_widgets() if c.info.state == "suggested"]
    assert len(suggested) >= 2
    first, second = suggested[0].info.name, suggested[1].info.name

    with qtbot.waitSignal(window.libraries.correction_done, timeout=30_000) as blocker:
        qtbot.mouseClick(chip(window, first).buttons["accept"], Qt.MouseButton.LeftButton)
    assert not blocker.args[0].error
    assert chip(window, first).info.state == "accepted"
    assert "Accepted" in window.libraries.last_notice and first in window.libraries.last_notice

    window.detail._chip_focused(chip(window, second))  # as a click or Tab would
    with qtbot.waitSignal(window.libraries.correction_done, timeout=30_000):
        qtbot.keyClick(chip(window, second), Qt.Key.Key_R)
    assert chip(window, second).info.state == "rejected"
    assert chip(window, second).label.font().strikeOut()

    # rejected: the photo no longer carries it, and the counts follow
    tag_id = chip(window, second).info.tag_id
    carried = set(window.libraries.queries.photo_ids(PhotoFilter(tags=(tag_id,))).tolist())
    assert pid not in carried
    qtbot.waitUntil(lambda: window.tags_panel.model.count(tag_id) == len(carried))

    window.detail.add_field.setText("lighthouse keeper")
    with qtbot.waitSignal(window.libraries.correction_done, timeout=30_000):
        qtbot.keyClick(window.detail.add_field, Qt.Key.Key_Return)
    added = chip(window, "lighthouse keeper")
    assert added.info.state == "accepted" and added.info.source == "user"

    with qtbot.waitSignal(window.libraries.correction_done, timeout=30_000) as blocker:
        window.act_undo.trigger()
    assert "Undid" in window.libraries.last_notice
    assert "lighthouse keeper" not in {c.info.name for c in window.detail.chip_widgets()}


def test_multi_select_add_and_remove(qtbot, make_window, indexed_folder: Path) -> None:
    window = open_indexed(qtbot, make_window, indexed_folder)
    sel = window.grid.selectionModel()
    for row in (0, 2, 5):
        sel.select(window.model.index(row), QItemSelectionModel.SelectionFlag.Select)
    ids = tuple(sorted(window.grid.selected_ids()))
    assert len(ids) == 3
    assert sorted(window.detail.photo_ids) == list(ids)
    assert window.detail.remove_field.isVisible()

    window.detail.add_field.setText("family")
    with qtbot.waitSignal(window.libraries.correction_done, timeout=30_000) as blocker:
        qtbot.keyClick(window.detail.add_field, Qt.Key.Key_Return)
    assert not blocker.args[0].error
    assert "3 photos" in window.libraries.last_notice
    for pid in ids:
        tags = {t.name: t for t in window.libraries.queries.photo_tags(pid)}
        assert tags["family"].state == "accepted"

    window.detail.remove_field.setText("family")
    with qtbot.waitSignal(window.libraries.correction_done, timeout=30_000):
        qtbot.keyClick(window.detail.remove_field, Qt.Key.Key_Return)
    for pid in ids:
        tags = {t.name: t for t in window.libraries.queries.photo_tags(pid)}
        assert "family" not in tags or not tags["family"].carried


# -- keyboard -------------------------------------------------------------------------------


def test_keyboard_navigation_and_shortcuts(qtbot, make_window, indexed_folder: Path) -> None:
    window = open_indexed(qtbot, make_window, indexed_folder)
    grid = window.grid
    grid.setCurrentIndex(window.model.index(0))
    qtbot.keyClick(grid, Qt.Key.Key_Right)
    assert grid.currentIndex().row() == 1
    qtbot.keyClick(grid, Qt.Key.Key_End)
    assert grid.currentIndex().row() == PHOTOS - 1
    qtbot.keyClick(grid, Qt.Key.Key_Home)
    assert grid.currentIndex().row() == 0
    qtbot.keyClick(grid, Qt.Key.Key_PageDown)
    assert grid.currentIndex().row() > 0
    qtbot.keyClick(grid, Qt.Key.Key_Home)
    with qtbot.waitSignal(grid.opened) as blocker:
        qtbot.keyClick(grid, Qt.Key.Key_Return)  # the viewer; Esc comes back
    pid = blocker.args[0]
    assert window.viewer.photo_id == pid
    qtbot.keyClick(window.viewer, Qt.Key.Key_Escape)
    assert window.detail.photo_ids == (pid,)

    # A accepts the focused (first suggested) tag
    current = window.detail.current_chip()
    assert current is not None and current.info.state == "suggested"
    name = current.info.name
    with qtbot.waitSignal(window.libraries.correction_done, timeout=30_000):
        window.act_accept.trigger()
    assert chip(window, name).info.state == "accepted"
    # Delete removes the focused tag
    window.detail._chip_focused(chip(window, name))
    with qtbot.waitSignal(window.libraries.correction_done, timeout=30_000):
        window.act_remove.trigger()
    assert chip(window, name).info.state == "rejected"
    # Ctrl+Z undoes it
    with qtbot.waitSignal(window.libraries.correction_done, timeout=30_000):
        window.act_undo.trigger()
    assert chip(window, name).info.state == "accepted"

    # menus name the shortcuts
    assert window.act_find.shortcut().toString() == "Ctrl+F"
    assert window.act_undo.shortcut().toString() == "Ctrl+Z"
    assert window.act_full.shortcut().toString() == "F11"
    assert window.act_accept.shortcut().toString() == "A"
    window.act_find.trigger()
    window.activateWindow()
    qtbot.waitUntil(lambda: window.search.hasFocus() or not window.isActiveWindow())


def test_zoom_and_sort(qtbot, make_window, indexed_folder: Path, qsettings) -> None:
    window = open_indexed(qtbot, make_window, indexed_folder)
    window.zoom.setValue(200)
    cell = window.grid.gridSize()
    assert cell.height() == 200 + 12  # square cells, widened to share the grid's width
    assert 200 + 12 <= cell.width() < 2 * (200 + 12)
    apply(qtbot, window, window.sort.setCurrentIndex, 1)  # name
    assert np.array_equal(
        window.model.ids, window.libraries.queries.photo_ids(PhotoFilter(order="name"))
    )
    window.close()
    assert int(qsettings.value("view/thumb_size")) == 200
    assert qsettings.value("window/geometry") is not None


# -- closing ----------------------------------------------------------------------------------


def test_close_while_tagging_stops_cleanly(qtbot, make_window, tmp_path: Path) -> None:
    folder = tmp_path / "many"
    for i in range(60):
        make_photo(folder / f"p{i:03d}.jpg", seed=1000 + i, size=(160, 120))
    window = make_window()
    window.open_folder(folder)
    qtbot.waitUntil(
        lambda: (
            window.libraries.last_progress is not None
            and window.libraries.last_progress.phase == "tag"
        ),
        timeout=60_000,
    )
    handle = window.libraries.handle
    assert handle is not None and handle.is_running()
    t0 = time.monotonic()
    window.close()
    assert time.monotonic() - t0 < 20
    assert not handle.is_running()
    assert handle.thread.isFinished()
    # nothing half written: the sidecar opens, every photo is either tagged or waiting
    with LibraryQueries(folder / ".albumtagger" / "library.sqlite") as q:
        counts = q.quick_counts()
        assert counts.total == 60
        assert counts.pending + counts.by_status["ok"] == 60


def test_model_unavailable_says_what_to_do(
    qtbot, make_window, indexed_folder: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ALBUMTAGGER_MODEL", str(tmp_path / "no-model-here"))
    shutil.copy(indexed_folder / "img_01.jpg", indexed_folder / "copy.jpg")  # needs the model
    window = make_window()
    window.open_folder(indexed_folder)
    # the banner says "Loading the model..." first, then why it could not be
    qtbot.waitUntil(
        lambda: window.banner.isVisible() and "could not be loaded" in window.banner.text.text(),
        timeout=30_000,
    )
    text = window.banner.text.text()
    assert "hf download" in text and "huggingface-cli" not in text
    # browsing and manual tagging still work; the new photo is listed, waiting
    qtbot.waitUntil(lambda: window.model.rowCount() >= PHOTOS + 1, timeout=30_000)
    pid = first_photo(window)
    window.detail.add_field.setText("manual")
    with qtbot.waitSignal(window.libraries.correction_done, timeout=30_000) as blocker:
        qtbot.keyClick(window.detail.add_field, Qt.Key.Key_Return)
    assert not blocker.args[0].error
    assert "manual" in {t.name for t in window.libraries.queries.photo_tags(pid)}


def test_offline_folder(qtbot, make_window, tmp_path: Path) -> None:
    window = make_window()
    window.open_folder(tmp_path / "unplugged-drive")
    qtbot.waitUntil(lambda: "offline" in window.message_page.title.text(), timeout=30_000)
    assert window.message_page.button.text() == "Try again"


def test_pause_resume_and_cancel(qtbot, make_window, tmp_path: Path) -> None:
    folder = tmp_path / "slow"
    for i in range(48):
        make_photo(folder / f"p{i:03d}.jpg", seed=3000 + i, size=(160, 120))
    window = make_window()
    window.open_folder(folder)
    qtbot.waitUntil(
        lambda: (
            window.libraries.last_progress is not None
            and window.libraries.last_progress.phase == "tag"
        ),
        timeout=60_000,
    )
    window.libraries.pause()
    assert window.job.pause_button.text() == "Resume"
    # the batch in flight finishes; then nothing is tagged while paused
    qtbot.wait(1500)
    done = window.libraries.queries.quick_counts().by_status["ok"]
    qtbot.wait(1000)
    assert window.libraries.queries.quick_counts().by_status["ok"] == done
    # browsing and corrections are answered while paused
    pid = first_photo(window)
    window.detail.add_field.setText("paused tag")
    with qtbot.waitSignal(window.libraries.correction_done, timeout=30_000) as blocker:
        qtbot.keyClick(window.detail.add_field, Qt.Key.Key_Return)
    assert not blocker.args[0].error
    assert "paused tag" in {t.name for t in window.libraries.queries.photo_tags(pid)}
    window.libraries.resume()
    assert window.job.pause_button.text() == "Pause"
    wait_indexed(qtbot, window, 48)


def test_drop_a_folder_and_switch_libraries(
    qtbot, make_window, indexed_folder: Path, photo_folder: Path
) -> None:
    from PySide6.QtCore import QMimeData, QPointF, QUrl
    from PySide6.QtGui import QDropEvent

    window = make_window()
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(indexed_folder))])
    event = QDropEvent(
        QPointF(50, 50),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
    )
    with qtbot.waitSignal(window.libraries.library_opened, timeout=30_000):
        window.dropEvent(event)
    assert window.libraries.root == indexed_folder
    first_handle = window.libraries.handle
    # a second library: the first one stays open behind it, watched
    with qtbot.waitSignal(window.libraries.library_opened, timeout=60_000):
        window.open_folder(photo_folder)
    assert first_handle.is_running()
    assert window.libraries.background_roots() == [indexed_folder]
    assert window.library_box.itemData(window.library_box.currentIndex()) == str(photo_folder)
    assert window.libraries.recent_folders() == [str(photo_folder), str(indexed_folder)]
    # and back through the library selector: the same worker comes to the front
    second_handle = window.libraries.handle
    index = window.library_box.findData(str(indexed_folder))
    with qtbot.waitSignal(window.libraries.library_opened, timeout=30_000):
        window.library_box.activated.emit(index)
    assert window.libraries.handle is first_handle
    qtbot.waitUntil(lambda: window.model.rowCount() == PHOTOS, timeout=30_000)
    assert window.libraries.root == indexed_folder
    assert window.libraries.background_roots() == [photo_folder]
    window.close()
    assert not first_handle.is_running() and not second_handle.is_running()


def test_every_library_is_watched_and_tagged_behind_the_one_shown(
    qtbot, make_window, indexed_folder: Path, photo_folder: Path, qsettings
) -> None:
    # Both libraries are in the selector from an earlier run; the app shows the first.
    qsettings.setValue("recent/folders", [str(photo_folder), str(indexed_folder)])
    window = make_window()
    with qtbot.waitSignal(window.libraries.library_opened, timeout=30_000):
        window.open_folder(indexed_folder)
    qtbot.waitUntil(lambda: window.libraries.background_roots() == [photo_folder], timeout=30_000)
    handle = window.libraries._background[photo_folder]
    qtbot.waitUntil(lambda: handle.db_path is not None, timeout=30_000)
    # The library behind is tagged (after the one on screen is idle) ...
    behind = LibraryQueries(handle.db_path)
    try:
        qtbot.waitUntil(
            lambda: (
                behind.quick_counts().pending == 0
                and behind.photo_ids(PhotoFilter()).size == PHOTOS
            ),
            timeout=120_000,
        )
        # ... and watched: a photo copied into it is tagged while the other is shown.
        make_photo(photo_folder / "later.jpg", seed=99, size=(120, 90))
        qtbot.waitUntil(
            lambda: (
                behind.photo_ids(PhotoFilter()).size == PHOTOS + 1
                and behind.quick_counts().pending == 0
            ),
            timeout=60_000,
        )
    finally:
        behind.close()
    assert window.libraries.root == indexed_folder
    # A search on screen needs the model too: the two libraries share its process.
    window.search.setText("a new kind of search")
    with qtbot.waitSignal(window.browsing.search_done, timeout=60_000):
        window.run_search()
    front = window.libraries.handle.worker._session._encoder
    back = handle.worker._session._encoder
    assert front._process is back._process and front._process.is_alive()  # one model process


def test_cancel_stops_tagging_until_tag_again(qtbot, make_window, tmp_path: Path) -> None:
    folder = tmp_path / "cancelled"
    for i in range(80):
        make_photo(folder / f"p{i:03d}.jpg", seed=4000 + i, size=(200, 150))
    window = make_window()
    window.open_folder(folder)
    qtbot.waitUntil(
        lambda: (
            window.libraries.last_progress is not None
            and window.libraries.last_progress.phase == "tag"
        ),
        timeout=60_000,
    )
    window.libraries.cancel_job()
    qtbot.waitUntil(lambda: window.job.label.text().startswith("Stopped"), timeout=30_000)
    left = window.libraries.queries.quick_counts().pending
    qtbot.wait(1500)
    assert (
        window.libraries.queries.quick_counts().pending == left
    )  # watching does not tag them either
    assert "Tag again" in window.libraries.last_notice
    window.act_reindex.trigger()
    wait_indexed(qtbot, window, 80)


def test_a_library_in_use_elsewhere_says_so(
    qtbot, make_window, indexed_folder: Path, app_env
) -> None:
    from albumtagger.service.session import LibrarySession

    other = LibrarySession(indexed_folder, load_settings_for_test(), backup=False)
    try:
        with other.unit():  # another writer in the middle of a long unit of work
            window = make_window()
            window.open_folder(indexed_folder)
            qtbot.waitUntil(lambda: "in use" in window.message_page.title.text(), timeout=30_000)
            assert window.message_page.button.text() == "Try again"
    finally:
        other.close()
    with qtbot.waitSignal(window.libraries.library_opened, timeout=30_000):
        qtbot.mouseClick(window.message_page.button, Qt.MouseButton.LeftButton)


def load_settings_for_test():
    from albumtagger.config import load_settings

    return load_settings()


def test_the_client_runs_session_methods_in_the_worker(
    qtbot, make_window, indexed_folder: Path
) -> None:
    window = open_indexed(qtbot, make_window, indexed_folder)
    client = window.libraries.client
    replies = []
    assert client.review_queue(5, on_reply=replies.append)
    assert client.tag_report("no such tag", on_reply=replies.append)
    qtbot.waitUntil(lambda: len(replies) == 2, timeout=30_000)
    queue, unknown = replies
    assert queue.request.name == "review_queue"
    assert not queue.error and len(queue.result) <= 5
    assert unknown.error_kind == "user" and "no such tag" in unknown.error


def test_a_photo_looked_at_counts_as_viewed(qtbot, make_window, indexed_folder: Path) -> None:
    import sqlite3

    window = open_indexed(qtbot, make_window, indexed_folder)
    pid = first_photo(window)
    glance = int(window.model.ids[1])
    window.grid.setCurrentIndex(window.model.index(1))  # moved on at once: not a view
    window.grid.setCurrentIndex(window.model.index(0))
    db = window.libraries.handle.db_path

    def views(photo_id: int) -> int:
        conn = sqlite3.connect(db)
        try:
            return conn.execute("SELECT views FROM photos WHERE id = ?", (photo_id,)).fetchone()[0]
        finally:
            conn.close()

    qtbot.waitUntil(lambda: views(pid) == 1, timeout=10_000)
    assert views(glance) == 0


def test_tag_changes_read_the_photos_again_only_when_the_filter_looks_at_tags(
    qtbot, make_window, indexed_folder: Path
) -> None:
    """At 100k photos reading the grid's photos again is a query the window does without
    when only tags changed and nothing in the filter depends on them."""
    window = open_indexed(qtbot, make_window, indexed_folder)
    # Whatever the worker does on opening (checking the folder) changes photos: let it
    # finish, keep it from starting more, and let the window catch up first.
    qtbot.waitUntil(lambda: window.libraries.handle.idle, timeout=30_000)
    window.libraries.pause()
    qtbot.waitUntil(
        lambda: not window.browsing.requery_pending() and not window.libraries.reads.pending(),
        timeout=30_000,
    )
    keys: list[str] = []
    real = window.libraries.reads.read

    def spy(key, fn, callback, **kwargs):
        keys.append(key)
        return real(key, fn, callback, **kwargs)

    window.libraries.reads.read = spy  # type: ignore[method-assign]
    ids = window.model.ids.tolist()
    a, b = popular_tags(window, 2)

    def correct(pid: int, tag_id: int, action: str) -> None:
        keys.clear()
        name = window.tags_panel.tag_name(tag_id)
        with qtbot.waitSignal(window.libraries.correction_done, timeout=30_000) as blocker:
            window.libraries.correct((pid,), name, action)
        assert not blocker.args[0].error
        qtbot.waitUntil(
            lambda: not window.browsing.requery_pending() and not window.libraries.reads.pending(),
            timeout=30_000,
        )

    correct(ids[0], a, "reject")
    assert "counts" in keys and "ids" not in keys
    assert window.model.ids.tolist() == ids

    apply(qtbot, window, window.tags_panel.set_tag_state, b, "include")
    carriers = window.model.ids.tolist()
    correct(carriers[0], b, "reject")
    assert "ids" in keys
    qtbot.waitUntil(lambda: carriers[0] not in window.model.ids.tolist(), timeout=30_000)
