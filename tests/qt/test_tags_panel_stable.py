"""The tags list stays still under the pointer: a click changes the counts, and a list
that re-sorted between two clicks on one row gave the second click to another tag (a
user clicked "turtle" twice, meaning include then exclude, and got "+turtle +river")."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QPoint, Qt, QTimer
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QHBoxLayout, QLabel, QMenu, QWidget

from albumtagger.app.tags_panel import (
    EXCLUDE,
    INCLUDE,
    NAME_ROLE,
    SETTLE_MS,
    TAG_ID_ROLE,
    TagsPanel,
)
from albumtagger.library.db.queries import PhotoFilter, TagInfo

TAGS = [
    TagInfo(1, "sky", 0.3, 0),
    TagInfo(2, "beach", 0.3, 0),
    TagInfo(3, "forest", 0.3, 0),
    TagInfo(4, "turtle", 0.3, 0),
    TagInfo(5, "river", 0.3, 0),
]
ID = {t.name: t.id for t in TAGS}

# Unfiltered: sky 9, beach 7, forest 5, turtle 4, river 3. Among the turtle photos: sky 4,
# beach 3, river 2, forest 0, so including "turtle" moves it to the top and "river" to
# the row "turtle" had.
PHOTOS = [
    {"turtle", "sky", "beach", "river"},
    {"turtle", "sky", "beach", "river"},
    {"turtle", "sky", "beach"},
    {"turtle", "sky"},
    {"sky", "beach", "forest"},
    {"sky", "beach", "forest"},
    {"sky", "beach", "forest"},
    {"sky", "beach", "forest", "river"},
    {"sky", "forest"},
]
BY_COUNT = ["sky", "beach", "forest", "turtle", "river"]


def counts(f: PhotoFilter) -> dict[int, int]:
    """Each tag's photos under the filter, as the window's counts would say."""
    names = {t.id: t.name for t in TAGS}
    want = {names[i] for i in f.tags}
    hide = {names[i] for i in f.exclude}
    out = dict.fromkeys(names, 0)
    for photo in PHOTOS:
        if want and not (want & photo if f.match_any else want <= photo):
            continue
        if hide & photo:
            continue
        for tag_id, name in names.items():
            out[tag_id] += name in photo
    return out


def shown(panel: TagsPanel) -> list[str]:
    proxy = panel.proxy
    return [proxy.index(r, 0).data(NAME_ROLE) for r in range(proxy.rowCount())]


def by_count(panel: TagsPanel) -> list[str]:
    """The order the list has once it caught up: filtered tags, then count, then name."""
    tags = [t for t in panel.model.tags() if panel.filter_box.text().casefold() in t.name]
    return [
        t.name
        for t in sorted(
            tags,
            key=lambda t: (
                panel.model.state(t.id) is None,
                -panel.model.count(t.id),
                t.name.casefold(),
            ),
        )
    ]


@pytest.fixture
def setup(qtbot):
    """The panel beside another widget, its counts following its filter at once (as the
    window's do, a moment later)."""
    top = QWidget()
    qtbot.addWidget(top)
    panel = TagsPanel()
    elsewhere = QLabel("the grid")
    elsewhere.setMinimumSize(200, 200)
    layout = QHBoxLayout(top)
    layout.addWidget(panel)
    layout.addWidget(elsewhere)
    top.resize(600, 500)
    panel.set_tags(TAGS)
    panel.set_counts(counts(panel.photo_filter()), None)
    panel.changed.connect(lambda: panel.set_counts(counts(panel.photo_filter()), None))
    top.show()
    qtbot.waitExposed(top)
    assert shown(panel) == BY_COUNT
    yield panel, elsewhere
    top.close()


def row_point(panel: TagsPanel, name: str) -> QPoint:
    index = panel.proxy.index(shown(panel).index(name), 0)
    return panel.view.visualRect(index).center()


def click(panel: TagsPanel, at: QPoint) -> None:
    QTest.mouseClick(
        panel.view.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, at
    )


def tag_at(panel: TagsPanel, at: QPoint) -> str:
    return panel.view.indexAt(at).data(NAME_ROLE)


def test_two_clicks_on_a_row_include_then_exclude_its_tag(setup) -> None:
    panel, elsewhere = setup
    at = row_point(panel, "turtle")
    QTest.mouseMove(panel.view.viewport(), at)  # the pointer comes over the list

    click(panel, at)
    assert panel.model.state(ID["turtle"]) == INCLUDE
    assert panel.model.count(ID["forest"]) == 0  # the counts changed...
    assert shown(panel) == BY_COUNT  # ...in place: the rows stayed put
    assert tag_at(panel, at) == "turtle"
    assert panel.proxy.index(2, 1).data() == "0"  # forest's count, on forest's row

    QTest.qWait(SETTLE_MS + 300)  # a pause, with the pointer still over the list
    assert shown(panel) == BY_COUNT
    click(panel, at)
    assert panel.model.states() == {ID["turtle"]: EXCLUDE}
    assert tag_at(panel, at) == "turtle"

    QTest.mouseMove(elsewhere, QPoint(20, 20))  # the pointer leaves: the order catches up
    assert shown(panel) == by_count(panel) == ["turtle", "forest", "sky", "beach", "river"]


def test_the_order_catches_up_when_the_clicks_settle(setup, qtbot) -> None:
    """A click with no pointer over the panel (a tap): the rows stay still for the next
    click, and catch up once the clicks have settled."""
    panel, elsewhere = setup
    QTest.mouseMove(elsewhere, QPoint(20, 20))
    at = row_point(panel, "turtle")
    click(panel, at)  # a press and release, with no move over the panel
    assert not panel.underMouse()
    assert panel.model.state(ID["turtle"]) == INCLUDE
    assert shown(panel) == BY_COUNT
    click(panel, at)
    assert panel.model.states() == {ID["turtle"]: EXCLUDE}
    assert shown(panel) == BY_COUNT
    qtbot.waitUntil(lambda: shown(panel) != BY_COUNT, timeout=SETTLE_MS + 2_000)
    assert shown(panel) == by_count(panel) == ["turtle", "forest", "sky", "beach", "river"]


def test_tags_come_and_go_without_moving_the_rest(setup) -> None:
    panel, elsewhere = setup
    at = row_point(panel, "turtle")
    QTest.mouseMove(panel.view.viewport(), at)
    click(panel, at)  # +turtle: by count it would be turtle, sky, beach, river, forest
    assert shown(panel) == BY_COUNT

    zebra = TagInfo(6, "zebra", 0.3, 0)
    panel.set_tags([t for t in TAGS if t.name != "forest"] + [zebra])
    panel.set_counts({**counts(panel.photo_filter()), zebra.id: 4}, None)
    assert shown(panel) == ["sky", "beach", "turtle", "river", "zebra"]
    assert tag_at(panel, at) == "river"  # the rows below the removed one moved up one
    assert panel.proxy.index(4, 1).data() == "4"

    QTest.mouseMove(elsewhere, QPoint(20, 20))
    assert shown(panel) == by_count(panel) == ["turtle", "sky", "zebra", "beach", "river"]


def test_the_text_filter_keeps_the_order_shown(setup) -> None:
    panel, elsewhere = setup
    at = row_point(panel, "turtle")
    QTest.mouseMove(panel.view.viewport(), at)
    click(panel, at)
    panel.filter_box.setText("r")
    assert shown(panel) == ["forest", "turtle", "river"]
    panel.filter_box.clear()
    assert shown(panel) == BY_COUNT
    panel.filter_box.setText("r")

    QTest.mouseMove(elsewhere, QPoint(20, 20))
    assert shown(panel) == by_count(panel) == ["turtle", "river", "forest"]


def test_the_keyboard_moves_through_the_rows_as_shown(setup) -> None:
    panel, elsewhere = setup
    at = row_point(panel, "turtle")
    QTest.mouseMove(panel.view.viewport(), at)
    click(panel, at)
    view = panel.view
    assert view.currentIndex().data(NAME_ROLE) == "turtle"
    QTest.keyClick(view, Qt.Key.Key_Down)
    assert view.currentIndex().data(NAME_ROLE) == "river"  # the row below, as shown
    QTest.keyClick(view, Qt.Key.Key_Up)
    QTest.keyClick(view, Qt.Key.Key_Up)
    assert view.currentIndex().data(NAME_ROLE) == "forest"

    QTest.mouseMove(elsewhere, QPoint(20, 20))
    assert shown(panel) == ["turtle", "sky", "beach", "river", "forest"]
    assert view.currentIndex().data(NAME_ROLE) == "forest"  # the current tag is kept
    QTest.keyClick(view, Qt.Key.Key_Up)
    assert view.currentIndex().data(NAME_ROLE) == "river"
    assert int(view.currentIndex().data(TAG_ID_ROLE)) == ID["river"]


# A popup menu raises itself and grabs the keyboard, which offscreen does not support.
@pytest.mark.qt_log_ignore(
    r"This plugin does not support raise\(\)",
    r"This plugin does not support grabbing the keyboard",
    r"This plugin does not support propagateSizeHints",
)
def test_the_menu_filters_in_place(setup, qtbot) -> None:
    """The menu (the mouse's or the keyboard's) changes the filter without moving the
    rows under it; they catch up once it has closed and the clicks have settled."""
    panel, elsewhere = setup
    QTest.mouseMove(elsewhere, QPoint(20, 20))
    at = row_point(panel, "turtle")
    chosen: list[str] = []
    while_open: list[list[str]] = []

    def choose() -> None:
        menu = QApplication.activePopupWidget()
        if isinstance(menu, QMenu):
            try:
                action = menu.actions()[0]
                chosen.append(action.text())
                action.trigger()
                while_open.append(shown(panel))
            finally:
                menu.close()

    QTimer.singleShot(0, choose)
    panel.view.customContextMenuRequested.emit(at)
    assert chosen == ["Only photos with \u201cturtle\u201d"]
    assert while_open == [BY_COUNT]
    assert panel.model.states() == {ID["turtle"]: INCLUDE}
    assert shown(panel) == BY_COUNT
    qtbot.waitUntil(lambda: shown(panel) != BY_COUNT, timeout=SETTLE_MS + 2_000)
    assert shown(panel) == by_count(panel) == ["turtle", "sky", "beach", "river", "forest"]
