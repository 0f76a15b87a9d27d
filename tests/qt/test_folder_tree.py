"""View > Folders: the library's folder tree with counts, a click shows one folder (and
below) combined with the other filters, its chip and a second click clear it; and the
grid keeps the photo selected in view across filter changes."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QItemSelectionModel, Qt

from albumtagger.app.grid import MAX_SIZE
from albumtagger.library.db.queries import PhotoFilter, folder_totals
from tests.conftest import make_photo

# folder of each photo, by index
FOLDERS = ["", "", "2020", "2020/beach", "2020/beach", "2020/beach/dunes", "2020/bea", "2021"]


@pytest.fixture(scope="module")
def nested_template(tmp_path_factory) -> Path:
    """Photos in nested folders, indexed once with the golden model (by the CLI)."""
    from tests.conftest import GOLDEN_SETTINGS_ENV, run_cli

    base = tmp_path_factory.mktemp("nested")
    folder = base / "photos"
    for i, sub in enumerate(FOLDERS):
        make_photo(folder / sub / f"p_{i:02d}.jpg", seed=100 + i, size=(96 + 8 * i, 64))
    env = {
        "ALBUMTAGGER_CONFIG": str(base / "config.toml"),
        "ALBUMTAGGER_DATA_DIR": str(base / "data"),
        "ALBUMTAGGER_CACHE_DIR": str(base / "cache"),
        "HF_HUB_OFFLINE": "1",
        **GOLDEN_SETTINGS_ENV,
    }
    run_cli("index", str(folder), env=env)
    return folder


@pytest.fixture
def nested(nested_template: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "nested"
    shutil.copytree(nested_template, copy)
    return copy


def open_with_folders(qtbot, make_window, folder: Path, photos: int = len(FOLDERS)):
    window = make_window()
    window.act_folders.trigger()
    assert window.folders_dock.isVisible()
    with qtbot.waitSignal(window.libraries.library_opened, timeout=30_000):
        window.open_folder(folder)
    qtbot.waitUntil(
        lambda: (
            window.model.rowCount() == photos
            and window.tags_panel.model.rowCount() > 0
            and not window.browsing.counts_pending()
            and window.folder_tree.model.count("") == photos
        ),
        timeout=30_000,
    )
    return window


def tree_counts(window) -> dict[str, int]:
    model = window.folder_tree.model
    return {f: model.count(f) for f in ["", *model.folders()]}


def row_text(window, folder: str) -> tuple[str, str]:
    index = window.folder_tree.model.index_of(folder)
    return index.data(), index.siblingAtColumn(1).data()


def click_folder(qtbot, window, folder: str) -> None:
    tree = window.folder_tree
    index = tree.model.index_of(folder)
    assert index.isValid(), folder
    tree.view.scrollTo(index)
    rect = tree.view.visualRect(index)
    with qtbot.waitSignal(window.browsing.filter_applied, timeout=30_000):
        qtbot.mouseClick(tree.view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())


def grid_ids(window) -> list[int]:
    return [int(i) for i in window.model.ids]


def expected(window, **kwargs) -> list[int]:
    f = PhotoFilter(hide_missing=True, **kwargs)
    return [int(i) for i in window.libraries.queries.photo_ids(f)]


def test_tree_lists_the_folders_with_counts(qtbot, make_window, nested: Path) -> None:
    window = open_with_folders(qtbot, make_window, nested)
    assert tree_counts(window) == {
        "": 8,
        "2020": 5,
        "2020/bea": 1,
        "2020/beach": 3,
        "2020/beach/dunes": 1,
        "2021": 1,
    }
    assert row_text(window, "") == ("All photos", "8")
    assert row_text(window, "2020/beach") == ("beach", "3")  # in it and below
    beach = window.folder_tree.model.index_of("2020/beach")
    assert beach.parent() == window.folder_tree.model.index_of("2020")
    assert window.folder_tree.view.isExpanded(window.folder_tree.model.index_of(""))


def test_a_click_shows_the_folder_and_below_and_a_second_click_all(
    qtbot, make_window, nested: Path
) -> None:
    window = open_with_folders(qtbot, make_window, nested)
    click_folder(qtbot, window, "2020/beach")
    assert grid_ids(window) == expected(window, folder="2020/beach")
    assert len(grid_ids(window)) == 3  # not 2020/bea, with 2020/beach/dunes
    assert window.filter_bar.chip_texts() == ["in 2020/beach  \u00d7"]
    assert window.filter_bar.count.text() == "3 of 8 photos"
    assert window.folder_tree.current == "2020/beach"
    # the tree still lists every folder, with its counts
    assert tree_counts(window)["2021"] == 1

    click_folder(qtbot, window, "2020/beach")  # again: every folder
    assert len(grid_ids(window)) == 8
    assert window.filter_bar.chip_texts() == []
    assert window.folder_tree.current == ""

    click_folder(qtbot, window, "2021")
    assert len(grid_ids(window)) == 1
    click_folder(qtbot, window, "")  # All photos
    assert len(grid_ids(window)) == 8
    assert window.filter_bar.chip_texts() == []


def test_the_chip_removes_the_folder_filter(qtbot, make_window, nested: Path) -> None:
    window = open_with_folders(qtbot, make_window, nested)
    click_folder(qtbot, window, "2020")
    assert len(grid_ids(window)) == 5
    chip = window.filter_bar._chips[0]
    with qtbot.waitSignal(window.browsing.filter_applied, timeout=30_000):
        qtbot.mouseClick(chip, Qt.MouseButton.LeftButton)
    assert len(grid_ids(window)) == 8
    assert window.folder_tree.current == ""
    assert window.filter_bar.chip_texts() == []
    # Clear filters clears it too
    click_folder(qtbot, window, "2020")
    with qtbot.waitSignal(window.browsing.filter_applied, timeout=30_000):
        window.clear_filters()
    assert len(grid_ids(window)) == 8 and window.folder_tree.current == ""


def test_folder_combined_with_a_tag_filter(qtbot, make_window, nested: Path) -> None:
    window = open_with_folders(qtbot, make_window, nested)
    queries = window.libraries.queries
    in_2020 = PhotoFilter(hide_missing=True, folder="2020")
    # a tag some but not all photos of 2020 carry
    counts = queries.tag_counts(in_2020)
    tag = next(t for t, n in sorted(counts.items(), key=lambda kv: kv[1]) if 0 < n < 5)
    click_folder(qtbot, window, "2020")
    with qtbot.waitSignal(window.browsing.filter_applied, timeout=30_000):
        window.tags_panel.set_tag_state(tag, "include")
    want = expected(window, folder="2020", tags=(tag,))
    assert grid_ids(window) == want and 0 < len(want) < 5
    assert len(window.filter_bar.chip_texts()) == 2
    # the tree counts what the tag filter leaves, in every folder
    with_tag = queries.folder_counts(PhotoFilter(hide_missing=True, tags=(tag,)))
    qtbot.waitUntil(lambda: tree_counts(window)[""] == sum(with_tag.values()), timeout=30_000)
    assert tree_counts(window) == {
        f: folder_totals(with_tag).get(f, 0) for f in tree_counts(window)
    }
    assert tree_counts(window)["2020"] == len(want)
    # removing the folder keeps the tag
    with qtbot.waitSignal(window.browsing.filter_applied, timeout=30_000):
        window.filter_bar._chips[0].click()
    assert grid_ids(window) == expected(window, tags=(tag,))


def test_counts_follow_photos_that_come(qtbot, make_window, nested: Path) -> None:
    window = open_with_folders(qtbot, make_window, nested)
    qtbot.waitUntil(lambda: window.job.label.text() == "Watching the folder", timeout=60_000)
    make_photo(nested / "2022" / "new.jpg", seed=900, size=(120, 80))
    qtbot.waitUntil(lambda: tree_counts(window).get("2022") == 1, timeout=60_000)
    assert tree_counts(window)[""] == 9


def test_selection_is_kept_in_view_across_filter_changes(qtbot, make_window, nested: Path) -> None:
    window = open_with_folders(qtbot, make_window, nested)
    window.grid.set_thumb_size(MAX_SIZE)
    window.resize(700, 420)
    qtbot.waitUntil(lambda: window.grid.verticalScrollBar().maximum() > 0, timeout=10_000)
    ids = grid_ids(window)
    last = ids[-1]  # in 2021: at the bottom of the grid
    index = window.model.index(len(ids) - 1)
    window.grid.selectionModel().setCurrentIndex(
        index, QItemSelectionModel.SelectionFlag.ClearAndSelect
    )
    window.grid.scrollTo(index)
    window.grid.verticalScrollBar().setValue(0)  # scrolled away from it
    assert window.grid.selected_ids() == [last]

    def in_view(pid: int) -> bool:
        rect = window.grid.visualRect(window.model.index(window.model.row_of(pid)))
        return window.grid.viewport().rect().intersects(rect)

    # a filter that keeps it: still selected, and scrolled into view
    keep = PhotoFilter(hide_missing=True, folder="2020/beach")
    gone = [int(i) for i in window.libraries.queries.photo_ids(keep)]
    counts = window.libraries.queries.tag_counts(PhotoFilter(hide_missing=True))
    exclude = next(
        (t for t in counts if last not in expected(window, tags=(t,)) and counts[t] < 8), None
    )
    if exclude is None:
        pytest.skip("every tag is on the last photo")
    with qtbot.waitSignal(window.browsing.filter_applied, timeout=30_000):
        window.tags_panel.set_tag_state(exclude, "exclude")
    assert last in grid_ids(window) and len(grid_ids(window)) < len(ids)
    assert window.grid.selected_ids() == [last]
    assert window.grid.current_id() == last
    qtbot.waitUntil(lambda: in_view(last), timeout=10_000)

    # a filter without it: the grid goes to the top
    assert last not in gone
    window.grid.verticalScrollBar().setValue(window.grid.verticalScrollBar().maximum())
    with qtbot.waitSignal(window.browsing.filter_applied, timeout=30_000):
        window.show_folder("2020/beach")
    assert grid_ids(window) == expected(window, folder="2020/beach", exclude=(exclude,))
    assert window.grid.selected_ids() == []
    assert window.grid.verticalScrollBar().value() == 0
    assert np.all(np.isin(grid_ids(window), gone))
