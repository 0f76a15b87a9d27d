"""The near-duplicates view over a real sidecar with the golden model, on generated
near-copies: a photo saved again at another JPEG quality, brightened, cropped."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image, ImageEnhance
from PySide6.QtCore import Qt

from albumtagger.app.duplicates import DuplicatesDialog, largest_first
from albumtagger.library.db.queries import PhotoFilter
from tests.conftest import make_photo
from tests.qt.conftest import wait_indexed

# Cosines the golden model gives these photos: the copies of one photo 0.990 or more
# (cropped 0.990, brightened 0.997, lower quality 0.9999); distinct photos 0.98 at most.
COPIES = ["z_burst.jpg", "z_burst_q40.jpg", "z_burst_bright.jpg", "z_burst_crop.jpg"]
PAIR = ["b_copy.jpg", "b_copy_q40.jpg"]
DISTINCT = [f"d_{i}.jpg" for i in range(6)]


@pytest.fixture
def near_copies(tmp_path: Path) -> Path:
    """Six distinct photos, one with three edited copies, one with a lower-quality copy.
    The larger group's names sort last, so it does not come first by photo id."""
    folder = tmp_path / "copies"
    for i, name in enumerate(DISTINCT):
        make_photo(folder / name, seed=100 + i, size=(128, 96))
    pair = Image.open(make_photo(folder / PAIR[0], seed=8, size=(128, 96))).convert("RGB")
    pair.save(folder / PAIR[1], quality=40)
    burst = Image.open(make_photo(folder / COPIES[0], seed=7, size=(128, 96))).convert("RGB")
    burst.save(folder / COPIES[1], quality=40)
    ImageEnhance.Brightness(burst).enhance(1.08).save(folder / COPIES[2], quality=90)
    w, h = burst.size
    burst.crop((3, 2, w - 3, h - 2)).save(folder / COPIES[3], quality=90)
    return folder


def open_copies(qtbot, make_window, folder: Path):
    window = make_window()
    window.open_folder(folder)
    wait_indexed(qtbot, window, len(DISTINCT) + len(PAIR) + len(COPIES))
    return window


def set_similarity(qtbot, dialog: DuplicatesDialog, value: float) -> None:
    dialog.similarity.setValue(value)
    qtbot.waitUntil(lambda: dialog.shown_at == value, timeout=30_000)


def names(dialog: DuplicatesDialog) -> list[set[str]]:
    return [set(row) for row in dialog.tile_names()]


def test_largest_first() -> None:
    import numpy as np

    groups = [np.array([1, 2]), np.array([3, 9, 12]), np.array([0, 20])]
    assert largest_first(groups) == [[3, 9, 12], [0, 20], [1, 2]]


def test_near_copies_are_grouped_largest_first(qtbot, make_window, near_copies: Path) -> None:
    window = open_copies(qtbot, make_window, near_copies)
    window.act_duplicates.trigger()
    dialog = window.duplicates
    assert isinstance(dialog, DuplicatesDialog)
    assert dialog.isVisible()

    set_similarity(qtbot, dialog, 0.99)
    assert names(dialog) == [set(COPIES), set(PAIR)]  # largest first; distinct: alone
    assert dialog.summary.text() == "2 groups, 6 photos"
    assert [len(g) for g in dialog.groups] == [4, 2]
    assert [r.title.text() for r in dialog.rows] == [
        "Group 1: 4 photos",
        "Group 2: 2 photos",
    ]
    # thumbnails arrive in the rows
    qtbot.waitUntil(
        lambda: all(not t.icon().isNull() for r in dialog.rows for t in r.tiles),
        timeout=30_000,
    )

    # Stricter: the cropped copy, then the brightened one, leave the group.
    set_similarity(qtbot, dialog, 0.995)
    assert names(dialog) == [set(COPIES) - {"z_burst_crop.jpg"}, set(PAIR)]
    set_similarity(qtbot, dialog, 0.999)
    # two pairs: the tie goes to the group with the smaller photo id (names sort first)
    assert names(dialog) == [set(PAIR), {"z_burst.jpg", "z_burst_q40.jpg"}]
    assert dialog.summary.text() == "2 groups, 4 photos"

    # Looser: distinct photos come together too (this tiny model's vectors are close).
    set_similarity(qtbot, dialog, 0.8)
    assert len(dialog.groups[0]) > len(COPIES)
    dialog.reject()


def test_clicking_a_photo_selects_it_in_the_grid(qtbot, make_window, near_copies: Path) -> None:
    window = open_copies(qtbot, make_window, near_copies)
    window.act_duplicates.trigger()
    dialog = window.duplicates
    set_similarity(qtbot, dialog, 0.99)
    tile = dialog.rows[0].tiles[2]
    qtbot.mouseClick(tile, Qt.MouseButton.LeftButton)
    assert window.grid.selected_ids() == [tile.photo_id]
    assert window.grid.current_id() == tile.photo_id
    assert window.detail.photo_ids == (tile.photo_id,)

    # Not in the grid (a filter hides it): the filters are cleared, then it is selected.
    with qtbot.waitSignal(window.browsing.filter_applied, timeout=30_000):
        window.tags_panel.set_quick("damaged", True)
    assert window.model.rowCount() == 0
    other = dialog.rows[1].tiles[0]
    with qtbot.waitSignal(window.browsing.filter_applied, timeout=30_000):
        qtbot.mouseClick(other, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.grid.selected_ids() == [other.photo_id], timeout=30_000)
    assert not window.tags_panel.is_filtering()

    # A whole group at once.
    dialog.rows[0].select.click()
    assert sorted(window.grid.selected_ids()) == dialog.rows[0].ids
    ids = window.libraries.queries.photo_ids(PhotoFilter(name="z_burst"))
    assert sorted(window.grid.selected_ids()) == sorted(int(i) for i in ids)
    dialog.reject()


def test_no_groups_says_what_to_do(qtbot, make_window, indexed_folder: Path) -> None:
    window = make_window()
    with qtbot.waitSignal(window.libraries.library_opened, timeout=30_000):
        window.open_folder(indexed_folder)
    window.act_duplicates.trigger()
    dialog = window.duplicates
    set_similarity(qtbot, dialog, 0.999)
    assert dialog.groups == []
    assert dialog.empty.isVisible()
    assert "Lower the similarity" in dialog.empty.text()
    assert dialog.summary.text() == "No near duplicates at 0.999."
    dialog.reject()
