"""What a grid cell looks like: painted by the real delegate into an image and read back
pixel by pixel, for every badge and selection state."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QRect, Qt
from PySide6.QtGui import (
    QColor,
    QImage,
    QPainter,
    QPalette,
    QPixmap,
    QStandardItem,
    QStandardItemModel,
)
from PySide6.QtWidgets import QStyle, QStyleOptionViewItem

from albumtagger.app.grid import PhotoDelegate
from albumtagger.app.photo_model import SUMMARY_ROLE
from albumtagger.app.thumbnails import ThumbnailLoader
from albumtagger.library.db.queries import PhotoSummary

GREEN = QColor(20, 200, 40)
CELL = 156


def paint_cell(qtbot, status: str, needs_review: bool, state) -> QImage:
    loader = ThumbnailLoader(None, size=CELL - 12)
    pix = QPixmap(120, 90)
    pix.fill(GREEN)
    loader._pixmaps[7] = pix  # the thumbnail is ready
    summary = PhotoSummary(7, "a.jpg", status, None, 120, 90, 1000, "h", 1, needs_review)
    model = QStandardItemModel()
    item = QStandardItem()
    item.setData(summary, SUMMARY_ROLE)
    model.appendRow(item)
    delegate = PhotoDelegate(loader)
    option = QStyleOptionViewItem()
    option.rect = QRect(0, 0, CELL, CELL)
    option.state = state
    option.palette = QPalette()
    image = QImage(CELL, CELL, QImage.Format.Format_RGB32)
    image.fill(Qt.GlobalColor.white)
    painter = QPainter(image)
    delegate.paint(painter, option, model.index(0, 0))
    painter.end()
    return image


SELECTED = QStyle.StateFlag.State_Selected | QStyle.StateFlag.State_Enabled
FOCUSED = SELECTED | QStyle.StateFlag.State_HasFocus


@pytest.mark.parametrize("state", [QStyle.StateFlag.State_Enabled, SELECTED, FOCUSED])
@pytest.mark.parametrize(
    ("status", "review"), [("ok", False), ("ok", True), ("pending", False), ("damaged", False)]
)
def test_the_thumbnail_shows_whatever_the_badge_and_selection(
    qtbot, status: str, review: bool, state
) -> None:
    image = paint_cell(qtbot, status, review, state)
    # the middle of the cell is the thumbnail, whatever is drawn around it
    assert image.pixelColor(CELL // 2, CELL // 2) == GREEN
    assert image.pixelColor(CELL // 2 - 40, CELL // 2 + 30) == GREEN
