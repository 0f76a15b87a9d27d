"""The full-size viewer: Enter opens the selected photo over the window; the arrows walk
the grid's order; 1 and F switch between 100% and fit; A corrects the photo's tags; Esc
goes back to the grid with the photo last viewed selected."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication

from albumtagger.app.window import PAGE_LIBRARY, PAGE_VIEWER
from tests.qt.conftest import PHOTOS
from tests.qt.test_window import open_indexed


def open_viewer(qtbot, window, row: int = 0):
    """Select the photo of `row`, press Enter and wait until its image is shown."""
    window.grid.setCurrentIndex(window.model.index(row))
    qtbot.keyClick(window.grid, Qt.Key.Key_Return)
    viewer = window.viewer
    pid = window.model.photo_id(row)
    assert window.stack.currentIndex() == PAGE_VIEWER
    assert viewer.photo_id == pid
    wait_image(qtbot, viewer)
    return viewer


def wait_image(qtbot, viewer) -> None:
    qtbot.waitUntil(
        lambda: viewer.view.has_image() and viewer.pages.currentWidget() is viewer.view,
        timeout=30_000,
    )


def on_screen(viewer):
    """The image's rectangle in the view's viewport, in pixels."""
    view = viewer.view
    return view.mapFromScene(view.item.sceneBoundingRect()).boundingRect()


def size_on_screen(viewer) -> tuple[float, float]:
    view = viewer.view
    size = view.transform().mapRect(view.item.sceneBoundingRect()).size()
    return round(size.width(), 3), round(size.height(), 3)


def test_enter_opens_the_selected_photo_full_size(qtbot, make_window, indexed_folder: Path) -> None:
    window = open_indexed(qtbot, make_window, indexed_folder)
    viewer = open_viewer(qtbot, window, 2)
    detail = window.libraries.queries.photo_detail(viewer.photo_id)
    assert viewer.name.text() == detail.path.rpartition("/")[2]
    assert viewer.view.image_size().width() == detail.width
    assert viewer.view.image_size().height() == detail.height
    assert viewer.position.text() == f"3 of {PHOTOS}"
    tags = window.libraries.queries.photo_tags(viewer.photo_id)
    assert [c.info.name for c in viewer.chip_widgets()] == [t.name for t in tags]


def test_arrows_walk_the_grid_order_and_stop_at_the_ends(
    qtbot, make_window, indexed_folder: Path
) -> None:
    window = open_indexed(qtbot, make_window, indexed_folder)
    viewer = open_viewer(qtbot, window, PHOTOS - 2)
    order = [int(i) for i in window.model.ids]

    qtbot.keyClick(viewer, Qt.Key.Key_Right)
    assert viewer.photo_id == order[PHOTOS - 1]
    wait_image(qtbot, viewer)
    qtbot.keyClick(viewer, Qt.Key.Key_Right)  # the last photo: it stays
    assert viewer.photo_id == order[PHOTOS - 1]
    qtbot.keyClick(viewer, Qt.Key.Key_Left)
    assert viewer.photo_id == order[PHOTOS - 2]
    qtbot.keyClick(viewer, Qt.Key.Key_PageUp)
    assert viewer.photo_id == order[PHOTOS - 3]
    qtbot.keyClick(viewer, Qt.Key.Key_PageDown)
    assert viewer.photo_id == order[PHOTOS - 2]
    wait_image(qtbot, viewer)
    # the grid follows: Edit's tag actions and the detail panel see the same photo
    assert window.grid.current_id() == order[PHOTOS - 2]


def test_one_shows_100_percent_and_f_fits(qtbot, make_window, indexed_folder: Path) -> None:
    window = open_indexed(qtbot, make_window, indexed_folder)
    viewer = open_viewer(qtbot, window, 0)
    size = viewer.view.image_size()
    viewport = viewer.view.viewport().rect()
    fitted = on_screen(viewer)
    assert viewer.view.fitted
    assert viewport.contains(fitted)
    # the photos are small: fitted, the larger side fills the view (less a margin)
    assert max(fitted.width() / viewport.width(), fitted.height() / viewport.height()) > 0.95

    qtbot.keyClick(viewer, Qt.Key.Key_1)
    assert not viewer.view.fitted
    assert size_on_screen(viewer) == (size.width(), size.height())
    assert viewer.scale_label.text() == "100%"

    qtbot.keyClick(viewer, Qt.Key.Key_F)
    assert viewer.view.fitted
    assert on_screen(viewer) == fitted
    qtbot.keyClick(viewer, Qt.Key.Key_Z)  # Z toggles
    assert size_on_screen(viewer) == (size.width(), size.height())
    qtbot.keyClick(viewer, Qt.Key.Key_Z)
    assert on_screen(viewer) == fitted


def test_escape_returns_to_the_grid_with_the_photo_selected(
    qtbot, make_window, indexed_folder: Path
) -> None:
    window = open_indexed(qtbot, make_window, indexed_folder)
    viewer = open_viewer(qtbot, window, 0)
    qtbot.keyClick(viewer, Qt.Key.Key_Right)
    qtbot.keyClick(viewer, Qt.Key.Key_Right)
    viewed = viewer.photo_id
    window.grid.setCurrentIndex(window.model.index(5))  # the grid moved elsewhere meanwhile
    qtbot.keyClick(viewer, Qt.Key.Key_Escape)
    assert window.stack.currentIndex() == PAGE_LIBRARY
    assert window.grid.selected_ids() == [viewed]
    assert window.grid.current_id() == viewed


def test_a_in_the_viewer_accepts_the_best_suggestion(
    qtbot, make_window, indexed_folder: Path
) -> None:
    window = open_indexed(qtbot, make_window, indexed_folder)
    viewer = open_viewer(qtbot, window, 1)
    pid = viewer.photo_id
    queries = window.libraries.queries
    suggested = sorted(
        (t for t in queries.photo_tags(pid) if t.state == "suggested"), key=lambda t: -t.score
    )
    best, second = suggested[0].name, suggested[1].name
    assert viewer.current_chip().info.name == best and viewer.current_chip().marked
    with qtbot.waitSignal(window.libraries.correction_done, timeout=30_000) as blocker:
        qtbot.keyClick(viewer, Qt.Key.Key_A)
        assert viewer.current_chip().info.name == second  # the frame moves on at once
    assert not blocker.args[0].error
    assert {t.name: t.state for t in queries.photo_tags(pid)}[best] == "accepted"
    chip = next(c for c in viewer.chip_widgets() if c.info.name == best)
    assert chip.info.state == "accepted"  # the chips show it at once
    assert viewer.current_chip().info.name == second and viewer.current_chip().marked

    with qtbot.waitSignal(window.libraries.correction_done, timeout=30_000):
        qtbot.keyClick(viewer, Qt.Key.Key_R)
    assert {t.name: t.state for t in queries.photo_tags(pid)}[second] == "rejected"


def test_arrows_on_a_focused_chip_still_walk_the_photos(
    qtbot, make_window, indexed_folder: Path
) -> None:
    window = open_indexed(qtbot, make_window, indexed_folder)
    viewer = open_viewer(qtbot, window, 4)
    chip = viewer.chip_widgets()[0]
    chip.setFocus()
    qtbot.keyClick(chip, Qt.Key.Key_Right)
    assert viewer.photo_id == window.model.photo_id(5)
    qtbot.keyClick(viewer, Qt.Key.Key_Left)
    assert viewer.photo_id == window.model.photo_id(4)


def test_edit_menu_accept_acts_on_the_viewer(qtbot, make_window, indexed_folder: Path) -> None:
    window = open_indexed(qtbot, make_window, indexed_folder)
    viewer = open_viewer(qtbot, window, 3)
    pid = viewer.photo_id
    second = [c for c in viewer.chip_widgets() if c.info.state == "suggested"][1]
    second.setFocus()  # the focused chip, not the detail panel's
    qtbot.waitUntil(lambda: viewer.current_chip() is second)
    with qtbot.waitSignal(window.libraries.correction_done, timeout=30_000):
        window.act_reject.trigger()
    tags = {t.name: t.state for t in window.libraries.queries.photo_tags(pid)}
    assert tags[second.info.name] == "rejected"


def test_a_damaged_photo_shows_a_message(qtbot, make_window, indexed_folder: Path) -> None:
    window = open_indexed(qtbot, make_window, indexed_folder)
    pid = window.model.photo_id(4)
    path = window.libraries.root / window.libraries.queries.photo_detail(pid).path
    path.write_bytes(path.read_bytes()[:200])  # a truncated JPEG
    window.grid.setCurrentIndex(window.model.index(window.model.row_of(pid)))
    window.view_photo(pid)
    viewer = window.viewer
    qtbot.waitUntil(lambda: "cannot be shown" in viewer.message.text(), timeout=30_000)
    assert viewer.pages.currentWidget() is viewer.message
    assert not viewer.view.has_image()
    qtbot.keyClick(viewer, Qt.Key.Key_1)  # zoom keys on no image do no harm
    qtbot.keyClick(viewer, Qt.Key.Key_Escape)
    assert window.stack.currentIndex() == PAGE_LIBRARY


def test_ctrl_wheel_zooms(qtbot, make_window, indexed_folder: Path) -> None:
    window = open_indexed(qtbot, make_window, indexed_folder)
    viewer = open_viewer(qtbot, window, 0)
    qtbot.keyClick(viewer, Qt.Key.Key_1)
    width = size_on_screen(viewer)[0]
    view = viewer.view
    centre = QPointF(view.viewport().rect().center())

    def wheel(modifiers: Qt.KeyboardModifier) -> None:
        event = QWheelEvent(
            centre,
            QPointF(view.viewport().mapToGlobal(centre.toPoint())),
            QPoint(0, 0),
            QPoint(0, 120),
            Qt.MouseButton.NoButton,
            modifiers,
            Qt.ScrollPhase.NoScrollPhase,
            False,
        )
        QApplication.sendEvent(view.viewport(), event)

    wheel(Qt.KeyboardModifier.ControlModifier)
    assert size_on_screen(viewer)[0] == round(width * 1.25, 3)
    assert viewer.scale_label.text() == "125%"
    wheel(Qt.KeyboardModifier.NoModifier)  # a plain wheel scrolls, it does not zoom
    assert size_on_screen(viewer)[0] == round(width * 1.25, 3)
