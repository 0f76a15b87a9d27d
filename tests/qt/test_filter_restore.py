"""The filters of a library are kept (in the window's QSettings, keyed by the library's
folder) and restored when it is opened again: tags included and excluded, all/any, quick
filters, the folder and the search text; another library keeps its own."""

from __future__ import annotations

import shutil
from pathlib import Path

from albumtagger.app.browsing import FilterState, filters_key
from albumtagger.library.db.queries import PhotoFilter
from tests.qt.conftest import PHOTOS


def open_library(qtbot, make_window, folder: Path):
    window = make_window()
    with qtbot.waitSignal(window.libraries.library_opened, timeout=30_000):
        window.open_folder(folder)
    qtbot.waitUntil(
        lambda: window.tags_panel.model.rowCount() > 0 and not window.browsing.counts_pending(),
        timeout=30_000,
    )
    return window


def test_filters_come_back_when_the_library_is_opened_again(
    qtbot, make_window, indexed_folder: Path, qsettings
) -> None:
    first = open_library(qtbot, make_window, indexed_folder)
    qtbot.waitUntil(lambda: first.model.rowCount() == PHOTOS, timeout=30_000)
    queries = first.libraries.queries
    in_trip = PhotoFilter(hide_missing=True, folder="trip")
    counts = sorted(queries.tag_counts(in_trip).items(), key=lambda kv: (-kv[1], kv[0]))
    include_a, include_b = counts[0][0], counts[1][0]
    exclude = next(t for t in queries.tag_counts(PhotoFilter()) if t not in (include_a, include_b))
    panel = first.tags_panel
    for action in (
        lambda: first.show_folder("trip"),
        lambda: panel.set_tag_state(include_a, "include"),
        lambda: panel.set_tag_state(include_b, "include"),
        lambda: panel.set_match_any(True),
        lambda: panel.set_tag_state(exclude, "exclude"),
        lambda: panel.set_quick("damaged", True),
        lambda: panel.set_quick("damaged", False),
        lambda: panel.set_quick("needs_review", True),
        lambda: panel.set_quick("needs_review", False),
    ):
        with qtbot.waitSignal(first.browsing.filter_applied, timeout=30_000):
            action()
    first.browsing.set_show_all(True)  # every photo, ranked: kept for the next window
    first.search.setText("a red photo")
    with qtbot.waitSignal(first.browsing.search_done, timeout=60_000):
        first.run_search()
    state = first.filter_state()
    assert state == FilterState(
        include=sorted([include_a, include_b]),
        exclude=[exclude],
        match_any=True,
        quick=[],
        folder="trip",
        search="a red photo",
    )
    chips = first.filter_bar.chip_texts()
    grid = [int(i) for i in first.model.ids]
    assert grid and len(chips) == 5
    first.close()
    assert FilterState.from_json(qsettings.value(filters_key(indexed_folder))) == state

    second = open_library(qtbot, make_window, indexed_folder)
    qtbot.waitUntil(lambda: second.filter_state() == state, timeout=30_000)
    qtbot.waitUntil(
        lambda: [int(i) for i in second.model.ids] == grid and not second.browsing.search_pending,
        timeout=60_000,
    )
    assert second.filter_bar.chip_texts() == chips
    assert second.search.text() == "a red photo"
    assert second.tags_panel.match_any()
    assert second.folder_tree.current == "trip"
    assert second.current_filter().folder == "trip"


def test_quick_filters_and_libraries_keep_their_own(
    qtbot, make_window, indexed_folder: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    shutil.copytree(indexed_folder, other)
    window = open_library(qtbot, make_window, indexed_folder)
    with qtbot.waitSignal(window.browsing.filter_applied, timeout=30_000):
        window.tags_panel.set_quick("untagged", True)
    assert window.model.rowCount() == 0

    # another library: no filter of the first one
    with qtbot.waitSignal(window.libraries.library_opened, timeout=30_000):
        window.open_folder(other)
    qtbot.waitUntil(lambda: window.model.rowCount() == PHOTOS, timeout=30_000)
    assert not window.tags_panel.quick["untagged"].isChecked()
    assert window.filter_bar.chip_texts() == []
    with qtbot.waitSignal(window.browsing.filter_applied, timeout=30_000):
        window.show_folder("trip")

    # back to the first: its quick filter again
    with qtbot.waitSignal(window.libraries.library_opened, timeout=30_000):
        window.open_folder(indexed_folder)
    qtbot.waitUntil(lambda: window.tags_panel.quick["untagged"].isChecked(), timeout=30_000)
    qtbot.waitUntil(lambda: window.model.rowCount() == 0, timeout=30_000)
    assert window.folder_tree.current == ""
    assert window.filter_state() == FilterState(quick=["untagged"])

    # and the other one its folder
    with qtbot.waitSignal(window.libraries.library_opened, timeout=30_000):
        window.open_folder(other)
    qtbot.waitUntil(lambda: window.model.rowCount() == PHOTOS // 3, timeout=30_000)
    assert window.filter_state() == FilterState(folder="trip")
    assert not window.tags_panel.quick["untagged"].isChecked()
