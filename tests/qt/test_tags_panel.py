"""The tags panel on its own: order, filter marks, counts and the text filter."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QStandardItemModel

from albumtagger.app.tags_panel import EXCLUDE, INCLUDE, NAME_ROLE, TagsPanel
from albumtagger.library.db.queries import TagInfo

TAGS = [
    TagInfo(1, "beach", 0.3, 0),
    TagInfo(2, "Cat", 0.25, 2),
    TagInfo(3, "dog", None, 0),
    TagInfo(4, "autumn", 0.31, 0, pinned=True),
]


def shown(panel: TagsPanel) -> list[str]:
    proxy = panel.proxy
    return [proxy.index(r, 0).data(NAME_ROLE) for r in range(proxy.rowCount())]


def cell(panel: TagsPanel, name: str, column: int, role=Qt.ItemDataRole.DisplayRole):
    proxy = panel.proxy
    row = shown(panel).index(name)
    return proxy.index(row, column).data(role)


def test_order_marks_and_counts(qtbot) -> None:
    panel = TagsPanel()
    qtbot.addWidget(panel)
    panel.set_tags(TAGS)
    assert shown(panel) == ["autumn", "beach", "Cat", "dog"]  # no counts yet: by name

    panel.set_counts({1: 5, 2: 12, 3: 5}, None)
    assert shown(panel) == ["Cat", "beach", "dog", "autumn"]  # by count, then name
    assert cell(panel, "Cat", 1) == "12"
    assert cell(panel, "autumn", 1) == "0"
    assert cell(panel, "autumn", 0, Qt.ItemDataRole.ForegroundRole) is not None  # dimmed
    assert "pinned by hand" in cell(panel, "autumn", 0, Qt.ItemDataRole.ToolTipRole)
    assert "12 photos" in cell(panel, "Cat", 1, Qt.ItemDataRole.ToolTipRole)

    panel.set_tag_state(3, INCLUDE)
    panel.set_tag_state(4, EXCLUDE)
    assert shown(panel)[:2] == ["dog", "autumn"]  # filtered tags first
    assert cell(panel, "dog", 0) == "+ dog"
    assert cell(panel, "autumn", 0) == "\u2212 autumn"
    assert cell(panel, "autumn", 0, Qt.ItemDataRole.FontRole).strikeOut()
    assert panel.photo_filter().tags == (3,) and panel.photo_filter().exclude == (4,)

    panel.set_counts({1: 5, 2: 1, 3: 5, 4: 2000}, None)
    assert shown(panel) == ["autumn", "dog", "beach", "Cat"]
    assert cell(panel, "autumn", 1) == "2,000"

    panel.clear()
    assert shown(panel) == ["autumn", "beach", "dog", "Cat"]
    assert cell(panel, "dog", 0) == "   dog"

    # Thresholds moved (the same tags): the rows are updated in place.
    moved = [TagInfo(1, "beach", 0.5, 3), *TAGS[1:]]
    panel.set_tags(moved)
    assert "threshold 0.500, learnt from 3" in cell(panel, "beach", 0, Qt.ItemDataRole.ToolTipRole)
    assert cell(panel, "beach", 1) == "5"
    panel.set_tags(TAGS[:2])  # a tag removed
    assert shown(panel) == ["beach", "Cat"]

    panel.filter_box.setText("CA")
    assert shown(panel) == ["Cat"]


def test_painting_the_list_never_calls_python(qtbot) -> None:
    """The cells are Qt's own: a Python `data()` would be asked thousands of times per
    repaint, each call waiting for the interpreter lock while the worker tags photos."""
    panel = TagsPanel()
    qtbot.addWidget(panel)
    model = panel.model
    assert isinstance(model, QStandardItemModel)
    for name in ("data", "rowCount", "columnCount", "index", "flags", "headerData"):
        assert getattr(type(model), name) is getattr(QStandardItemModel, name), name


def test_the_count_column_fits_the_counts(qtbot) -> None:
    """A count column wide enough for a million left "golden retriever" truncated in a
    library of 200 photos; it now fits the largest count, and never narrows under a
    filter (the names beside it would jump)."""
    panel = TagsPanel()
    qtbot.addWidget(panel)
    panel.set_tags(TAGS)
    panel.set_counts({1: 5, 2: 236}, None)
    metrics = panel.view.fontMetrics()
    width = panel.view.header().sectionSize(1)
    assert metrics.horizontalAdvance("236") < width < metrics.horizontalAdvance("1,000,000")
    panel.set_counts({1: 5, 2: 12_345}, None)
    wider = panel.view.header().sectionSize(1)
    assert wider >= metrics.horizontalAdvance("12,345") and wider > width
    panel.set_counts({1: 2, 2: 3}, None)  # a filter: smaller counts, same width
    assert panel.view.header().sectionSize(1) == wider
