"""The photo grid: a QListView over `PhotoListModel`, a delegate that paints a cached
pixmap (or a placeholder) with a status badge, and the visible-rows bookkeeping that
drives summary pages and thumbnail requests."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import (
    QItemSelection,
    QItemSelectionModel,
    QModelIndex,
    QPersistentModelIndex,
    QRect,
    QSize,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QColor, QFont, QKeyEvent, QPainter, QPalette, QPen
from PySide6.QtWidgets import QAbstractItemView, QListView, QStyle, QStyledItemDelegate

from albumtagger.app.photo_model import PHOTO_ID_ROLE, SCORE_ROLE, SUMMARY_ROLE, PhotoListModel
from albumtagger.app.thumbnails import ThumbnailLoader
from albumtagger.library.db.queries import PhotoSummary

MIN_SIZE, MAX_SIZE, DEFAULT_SIZE = 64, 256, 144
_MARGIN = 6

BADGES = {
    "damaged": ("!", "damaged"),
    "missing": ("x", "missing"),
    "pending": ("~", "waiting to be tagged"),
    "review": ("?", "needs review"),
}


def badge_of(summary: PhotoSummary | None) -> str | None:
    if summary is None:
        return None
    if summary.status in ("damaged", "missing", "pending"):
        return summary.status
    if summary.needs_review:
        return "review"
    return None


class PhotoDelegate(QStyledItemDelegate):
    """Paints one cell: selection, the thumbnail or a placeholder, a badge, focus."""

    def __init__(self, loader: ThumbnailLoader, parent=None) -> None:
        super().__init__(parent)
        self._loader = loader
        self.painted = 0
        """Cells painted (for tests and benchmarks)."""
        self._badge_font: QFont | None = None
        self.cell: QSize | None = None
        """The grid's cell (widened to share out the view's width), once known."""
        self._score_font: QFont | None = None
        self.scores_painted = 0
        """Score badges painted (for tests)."""

    def sizeHint(self, option, index) -> QSize:  # constant: uniform items
        if self.cell is not None:
            return self.cell
        s = self._loader.size + 2 * _MARGIN
        return QSize(s, s)

    def paint(self, painter: QPainter, option, index: QModelIndex | QPersistentModelIndex) -> None:
        self.painted += 1
        palette: QPalette = option.palette
        cell: QRect = option.rect
        state = option.state
        selected = bool(state & QStyle.StateFlag.State_Selected)
        painter.save()
        if selected:
            painter.fillRect(cell, palette.color(QPalette.ColorRole.Highlight))
        side = self._loader.size  # the thumbnail's box, centred in the (widened) cell
        area = QRect(0, 0, side, side)
        area.moveCenter(cell.center())
        summary: PhotoSummary | None = index.data(SUMMARY_ROLE)
        pix = self._loader.pixmap(summary) if summary is not None else None
        image = area
        if pix is not None and not pix.isNull():
            w, h = pix.width(), pix.height()
            x = area.x() + (area.width() - w) // 2
            y = area.y() + (area.height() - h) // 2
            painter.drawPixmap(x, y, pix)
            image = QRect(x, y, w, h)
        else:
            inner = area.adjusted(4, 4, -4, -4)
            painter.fillRect(inner, palette.color(QPalette.ColorRole.AlternateBase))
            painter.setPen(QPen(palette.color(QPalette.ColorRole.Mid), 1))
            painter.drawRect(inner.adjusted(0, 0, -1, -1))
            if summary is not None and area.width() >= 96:
                painter.setPen(palette.color(QPalette.ColorRole.PlaceholderText))
                name = summary.path.rpartition("/")[2]
                text = painter.fontMetrics().elidedText(
                    name, Qt.TextElideMode.ElideMiddle, inner.width() - 8
                )
                painter.drawText(inner, Qt.AlignmentFlag.AlignCenter, text)
        badge = badge_of(summary)
        if badge is not None:
            self._paint_badge(painter, palette, area, BADGES[badge][0], badge)
        score = index.data(SCORE_ROLE)
        if score is not None:
            self._paint_score(painter, image, score)
        if state & QStyle.StateFlag.State_HasFocus:
            pen = QPen(palette.color(QPalette.ColorRole.Text), 1, Qt.PenStyle.DotLine)
            painter.setPen(pen)
            painter.drawRect(cell.adjusted(1, 1, -2, -2))
        elif selected:
            pen = QPen(palette.color(QPalette.ColorRole.HighlightedText), 2)
            painter.setPen(pen)
            painter.drawRect(area.adjusted(-2, -2, 1, 1))
        painter.restore()

    def _paint_badge(
        self, painter: QPainter, palette: QPalette, area: QRect, text: str, kind: str
    ) -> None:
        d = max(16, area.width() // 7)
        rect = QRect(area.right() - d - 2, area.top() + 2, d, d)
        if kind in ("damaged", "missing"):
            back = palette.color(QPalette.ColorRole.BrightText)
            back.setRgb(200, 40, 40) if kind == "damaged" else back.setRgb(110, 110, 110)
        else:
            back = palette.color(QPalette.ColorRole.Highlight)
        painter.save()  # the badge's brush must not fill the focus frame drawn after it
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.setPen(QPen(Qt.GlobalColor.white, 1.5))  # stands out on a selected cell too
        painter.setBrush(back)
        painter.drawEllipse(rect)
        if self._badge_font is None:
            self._badge_font = QFont(painter.font())
            self._badge_font.setBold(True)
        font = QFont(self._badge_font)
        font.setPixelSize(int(d * 0.7))
        painter.setFont(font)
        painter.setPen(Qt.GlobalColor.white)
        painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, text)
        painter.restore()

    def _paint_score(self, painter: QPainter, area: QRect, score: float) -> None:
        """A search's score, small, in the bottom left corner of the photo (`area`)."""
        if self._score_font is None:
            self._score_font = QFont(painter.font())
            self._score_font.setPixelSize(11)
        painter.setFont(self._score_font)
        text = f"{score:.2f}"
        size = painter.fontMetrics().size(0, text)
        rect = QRect(area.left(), area.bottom() - size.height() - 1, size.width() + 6, 0)
        rect.setHeight(size.height() + 2)
        painter.fillRect(rect, QColor(0, 0, 0, 160))
        painter.setPen(Qt.GlobalColor.white)
        painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, text)
        self.scores_painted += 1


class PhotoGrid(QListView):
    """The grid. Emits `opened(photo_id)` on Enter / double click."""

    opened = Signal(int)

    def __init__(self, model: PhotoListModel, loader: ThumbnailLoader, parent=None) -> None:
        super().__init__(parent)
        self._loader = loader
        self._delegate = PhotoDelegate(loader, self)
        self.setItemDelegate(self._delegate)
        # List mode with left-to-right wrapping flow is the icon grid without the
        # free-movement machinery of IconMode (cheaper at 100k rows).
        self.setViewMode(QListView.ViewMode.ListMode)
        self.setFlow(QListView.Flow.LeftToRight)
        self.setWrapping(True)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setMovement(QListView.Movement.Static)
        self.setUniformItemSizes(True)
        self.setLayoutMode(QListView.LayoutMode.Batched)
        self.setBatchSize(2000)
        self.setSpacing(0)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setAccessibleName("Photos")
        self.setModel(model)
        self._apply_size()
        self._visible_timer = QTimer(self)
        self._visible_timer.setSingleShot(True)
        self._visible_timer.setInterval(0)
        self._visible_timer.timeout.connect(self.update_visible)
        self.verticalScrollBar().valueChanged.connect(self._visible_timer.start)
        model.modelReset.connect(self._visible_timer.start)
        model.rowsInserted.connect(self._visible_timer.start)
        loader.changed.connect(self.viewport().update)
        model.summaries_arrived.connect(self.viewport().update)
        self.doubleClicked.connect(self._open_index)
        self.activated.connect(self._open_index)

    @property
    def delegate(self) -> PhotoDelegate:
        return self._delegate

    def photo_model(self) -> PhotoListModel:
        model = self.model()
        assert isinstance(model, PhotoListModel)
        return model

    # -- size -------------------------------------------------------------------------

    def thumb_size(self) -> int:
        return self._loader.size

    def set_thumb_size(self, size: int) -> None:
        size = max(MIN_SIZE, min(MAX_SIZE, int(size)))
        if size == self._loader.size:
            return
        self._loader.set_size(size)
        self._apply_size()
        self.viewport().update()

    def _apply_size(self) -> None:
        """Cells as wide as the viewport's width shared by the columns that fit, so the
        grid fills its width (no empty strip at the right) and stays square enough."""
        s = self._loader.size + 2 * _MARGIN
        width = self.viewport().width()
        cols = max(1, width // s)
        cell = QSize(max(s, (width - 1) // cols), s)  # a row wraps once it reaches the edge
        if self.gridSize() != cell:
            self._delegate.cell = cell  # items fill their cells: the photo sits centred
            self.setGridSize(cell)
        self.setIconSize(QSize(self._loader.size, self._loader.size))

    # -- visible rows -----------------------------------------------------------------

    def visible_rows(self) -> tuple[int, int]:
        """First and last row on screen (last may be beyond the model)."""
        grid = self.gridSize()
        gw, gh = max(1, grid.width()), max(1, grid.height())
        cols = max(1, self.viewport().width() // gw)
        top = self.verticalScrollBar().value()
        first_line = top // gh
        last_line = (top + max(1, self.viewport().height()) - 1) // gh
        return first_line * cols, (last_line + 1) * cols - 1

    def visible_ids(self) -> list[int]:
        first, last = self.visible_rows()
        return [int(i) for i in self.photo_model().ids[max(0, first) : last + 1]]

    def update_visible(self) -> None:
        """Fetch summaries of what is on screen (and a page around) and drop thumbnail
        jobs for rows scrolled away."""
        self._apply_size()  # the viewport may have changed since (a scroll bar came)
        model = self.photo_model()
        first, last = self.visible_rows()
        span = last - first + 1
        model.ensure_rows(first - span, last + span)
        ids = model.ids[max(0, first - span) : last + span + 1]
        self._loader.retain({int(i) for i in ids})

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._apply_size()
        self._visible_timer.start()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self._visible_timer.start()

    # -- keys -------------------------------------------------------------------------

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            index = self.currentIndex()
            if index.isValid():
                self._open_index(index)
                event.accept()
                return
        rows = self.photo_model().rowCount()
        if (
            event.key() in (Qt.Key.Key_Home, Qt.Key.Key_End)
            and rows
            and not event.modifiers() & Qt.KeyboardModifier.ShiftModifier
        ):
            # The first / last photo, also before any photo was current (Qt's list view
            # then moves to the first row whatever the key).
            row = 0 if event.key() == Qt.Key.Key_Home else rows - 1
            self.select_photos([self.photo_model().photo_id(row)])
            event.accept()
            return
        super().keyPressEvent(event)

    def _open_index(self, index: QModelIndex) -> None:
        if index.isValid():
            self.opened.emit(int(index.data(PHOTO_ID_ROLE)))

    def selected_ids(self) -> list[int]:
        model = self.photo_model()
        return [model.photo_id(i.row()) for i in self.selectionModel().selectedIndexes()]

    def current_id(self) -> int | None:
        index = self.currentIndex()
        return int(index.data(PHOTO_ID_ROLE)) if index.isValid() else None

    # -- selection as photo ids ------------------------------------------------------------

    def shows(self, photo_ids: Sequence[int]) -> bool:
        """Every one of these photos is in the grid."""
        model = self.photo_model()
        return all(model.row_of(int(i)) >= 0 for i in photo_ids)

    def select_photos(self, photo_ids: Sequence[int]) -> None:
        """Select these photos (those in the grid), the first one current, scrolled to."""
        model = self.photo_model()
        rows = [r for r in (model.row_of(int(i)) for i in photo_ids) if r >= 0]
        if not rows:
            return
        selection = QItemSelection()
        for r in rows:
            selection.select(model.index(r), model.index(r))
        sel = self.selectionModel()
        first = model.index(rows[0])
        sel.setCurrentIndex(first, QItemSelectionModel.SelectionFlag.NoUpdate)
        sel.select(selection, QItemSelectionModel.SelectionFlag.ClearAndSelect)
        self.scrollTo(first)

    def restore_selection(self, selected: list[int], current: int | None) -> None:
        """After the grid's photos changed: the current photo and the selection as they
        were, where those photos are still shown."""
        model, sel = self.photo_model(), self.selectionModel()
        if current is not None:
            row = model.row_of(current)
            if row >= 0 and self.currentIndex().row() != row:
                sel.setCurrentIndex(model.index(row), sel.SelectionFlag.NoUpdate)
        if selected and not sel.selectedIndexes():
            for pid in selected[:500]:
                row = model.row_of(pid)
                if row >= 0:
                    sel.select(model.index(row), sel.SelectionFlag.Select)
