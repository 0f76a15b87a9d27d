"""The tag inspector: one tag's threshold and where it comes from, a histogram of its
scores over the library (drawn with QPainter) with the threshold, the user's answers and
the median marked, and the photos either side of the threshold.

Dragging the threshold line (or typing a value) asks the worker what pinning that value
would do (`threshold_preview`, answered from memory): one request at a time, the latest
value wins, older answers are dropped. "Pin this threshold" and "Give back to learning"
apply it (`pin_threshold`), and the tag is read again.
"""

from __future__ import annotations

import math
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QPointF, QRectF, QSize, Qt, QTimer, Signal
from PySide6.QtGui import (
    QColor,
    QFontMetrics,
    QIcon,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPainterPath,
    QPaintEvent,
    QPalette,
    QPen,
    QPolygonF,
)
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDoubleSpinBox,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from albumtagger.app.detail import plain_label
from albumtagger.app.duplicates import PhotoTile, Reveal
from albumtagger.app.numbers import fixed
from albumtagger.app.photo_model import file_name
from albumtagger.app.thumbnails import ThumbnailLoader
from albumtagger.app.worker import Reply
from albumtagger.events import ThresholdsChanged, VocabularyChanged
from albumtagger.library.db.queries import PhotoSummary
from albumtagger.tagging.decision_state import MIN_EXAMPLES
from albumtagger.tagging.results import TagInspection, ThresholdChange

if TYPE_CHECKING:
    from albumtagger.app.libraries import Libraries

BINS = 60
DECIMALS = 3
STEP = 10.0**-DECIMALS
"""A dragged threshold snaps to this (the spin box shows as many decimals)."""
PREVIEW_INTERVAL_MS = 60
"""While dragging, at most one preview request per this long (and one in flight)."""
REFRESH_MS = 300
"""Threshold changes reported by the worker are gathered this long before re-reading."""
TILE = 88
GRAB_PX = 6
"""How near the threshold line a press grabs it (anywhere else moves it there)."""

YES_COLOR = QColor(30, 150, 60)
NO_COLOR = QColor(205, 40, 40)
LINE_COLOR = QColor(230, 115, 0)


def nice_step(span: float, target: int) -> float:
    """A 1, 2 or 5 times a power of ten that cuts `span` into about `target` pieces."""
    if span <= 0 or not math.isfinite(span):
        return 1.0
    raw = span / max(target, 1)
    power = 10.0 ** math.floor(math.log10(raw))
    for m in (1.0, 2.0, 5.0, 10.0):
        if m * power >= raw:
            return m * power
    return 10.0 * power


def _photos(n: int) -> str:
    return f"{n:,} photo" if n == 1 else f"{n:,} photos"


_WAYS = (
    ("accepted", "accepted"),
    ("passing", "over the threshold"),
    ("fallback", "through the fallback"),
)


def carried_text(report: TagInspection) -> str:
    """How many photos carry the tag and how: a tag can be carried with no photo over
    its threshold (accepted by the user, or given by the fallback)."""
    text = f"Carried by {_photos(report.carries)}"
    parts = [f"{report.carried_by[k]:,} {words}" for k, words in _WAYS if report.carried_by.get(k)]
    if parts and report.carries:
        text += f" ({', '.join(parts)})"
    return text


def nothing_above_text(report: TagInspection) -> str:
    """What the empty "just above" strip says: no photo passes the threshold, and why
    the photos that carry the tag carry it all the same."""
    if not report.carries:
        return "No photo scores above it."
    how = {"accepted": "were accepted", "fallback": "have it through the fallback"}
    ways = " or ".join(v for k, v in how.items() if report.carried_by.get(k))
    if not ways:
        return "No photo scores above it."
    return f"No photo scores above it: the {_photos(report.carries)} that carry it {ways}."


class ScoreHistogram(QWidget):
    """A histogram of one tag's scores over the library: bars at or above the threshold
    are stronger; the threshold is a vertical line that can be dragged (or moved with the
    arrow keys); the user's yes / no answers are ticks and crosses under the axis at
    their scores; the median is a dashed line. `threshold_dragged(value)` while the
    person moves it (not when set from code)."""

    threshold_dragged = Signal(float)
    drag_finished = Signal(float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(420, 220)
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setAccessibleName("Histogram of the tag's scores")
        self.scores = np.zeros(0, dtype=np.float32)
        self.yes = np.zeros(0, dtype=np.float32)
        self.no = np.zeros(0, dtype=np.float32)
        self.median: float | None = None
        self.threshold: float | None = None
        self.log_scale = False
        self.counts = np.zeros(BINS, dtype=np.int64)
        self.edges = np.linspace(0.0, 1.0, BINS + 1)
        self._data_range = (0.0, 1.0)
        self.lo, self.hi = 0.0, 1.0
        self.dragging = False
        self._hover = False

    def sizeHint(self) -> QSize:
        return QSize(720, 300)

    # -- data ---------------------------------------------------------------------------

    def set_data(
        self,
        scores: np.ndarray,
        yes: np.ndarray,
        no: np.ndarray,
        median: float | None,
        threshold: float | None,
    ) -> None:
        self.scores = np.asarray(scores, dtype=np.float32)
        self.yes = np.asarray(yes, dtype=np.float32)
        self.no = np.asarray(no, dtype=np.float32)
        self.median = median
        self.threshold = threshold
        values = [a for a in (self.scores, self.yes, self.no) if a.size]
        points = [float(x) for x in (median, threshold) if x is not None]
        if values or points:
            lo = min([float(a.min()) for a in values] + points)
            hi = max([float(a.max()) for a in values] + points)
        else:
            lo, hi = 0.0, 1.0
        self._data_range = (lo, hi)
        self._fit_range()
        self._describe()

    def _fit_range(self) -> None:
        """The x range: every score and marker with a margin, and the threshold."""
        lo, hi = self._data_range
        if self.threshold is not None:
            lo, hi = min(lo, self.threshold), max(hi, self.threshold)
        span = max(hi - lo, 0.02)
        pad = span * 0.06
        lo, hi = max(lo - pad, -1.0), min(hi + pad, 1.0)
        if (lo, hi) != (self.lo, self.hi) or not self.counts.any():
            self.lo, self.hi = lo, hi
            self.counts, self.edges = np.histogram(self.scores, bins=BINS, range=(lo, hi))
        self.update()

    def set_threshold(self, value: float | None) -> None:
        """Move the line (from code: nothing is emitted)."""
        self.threshold = value
        lo, hi = self._data_range
        if value is not None and not (self.lo <= value <= self.hi):
            self._data_range = (min(lo, value), max(hi, value))
        self._fit_range()

    def set_log_scale(self, on: bool) -> None:
        self.log_scale = bool(on)
        self.update()

    def _describe(self) -> None:
        n = int(self.scores.size)
        text = f"{_photos(n)} scored"
        if n:
            text += f", from {fixed(float(self.scores.min()))} to {fixed(float(self.scores.max()))}"
        if self.median is not None:
            text += f", median {fixed(self.median)}"
        text += f"; {self.yes.size} yes and {self.no.size} no answers marked"
        self.setAccessibleDescription(text)

    # -- geometry -----------------------------------------------------------------------

    def plot_rect(self) -> QRectF:
        """Where the bars are drawn (axes on its left and bottom edges)."""
        fm = QFontMetrics(self.font())
        left = fm.horizontalAdvance("10,000") + 14
        top = 2 * fm.height() + 10
        bottom = 2 * 11 + 8 + 2 * fm.height() + 6
        return QRectF(
            left, top, max(self.width() - left - 16, 10), max(self.height() - top - bottom, 10)
        )

    def x_of(self, value: float) -> float:
        r = self.plot_rect()
        return r.left() + (value - self.lo) / (self.hi - self.lo) * r.width()

    def value_at(self, x: float) -> float:
        """The threshold at widget x (clamped to the range shown, snapped to STEP)."""
        r = self.plot_rect()
        frac = min(max((x - r.left()) / r.width(), 0.0), 1.0)
        value = self.lo + frac * (self.hi - self.lo)
        return round(min(max(value, -1.0), 1.0), DECIMALS)

    def _bar_height(self, count: int, top: int, height: float) -> float:
        if count <= 0 or top <= 0:
            return 0.0
        if self.log_scale:
            return height * math.log1p(count) / math.log1p(top)
        return height * count / top

    # -- painting -----------------------------------------------------------------------

    def paintEvent(self, event: QPaintEvent) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        pal = self.palette()
        fm = QFontMetrics(self.font())
        text_color = pal.color(QPalette.ColorRole.WindowText)
        dim = pal.color(QPalette.ColorGroup.Disabled, QPalette.ColorRole.WindowText)
        r = self.plot_rect()
        p.fillRect(r, pal.color(QPalette.ColorRole.Base))

        top = int(self.counts.max()) if self.counts.size else 0
        self._paint_y_axis(p, r, fm, top, text_color, dim)
        self._paint_bars(p, r, top, pal)
        self._paint_x_axis(p, r, fm, text_color, dim)
        if self.median is not None and self.scores.size:
            x = self.x_of(self.median)
            pen = QPen(dim, 1.2, Qt.PenStyle.DashLine)
            p.setPen(pen)
            p.drawLine(QPointF(x, r.top()), QPointF(x, r.bottom()))
            p.setPen(dim)
            label = "median"
            w = fm.horizontalAdvance(label)
            lx = x + 4 if x + 4 + w < r.right() else x - 4 - w
            p.drawText(QPointF(lx, r.top() + fm.ascent() + 2), label)
        self._paint_answers(p, r)
        self._paint_threshold(p, r, fm)
        self._paint_legend(p, r, fm, text_color, dim)
        if not self.scores.size:
            p.setPen(dim)
            p.drawText(r, Qt.AlignmentFlag.AlignCenter, "No photo is scored for this tag yet.")
        if self.hasFocus():
            p.setPen(QPen(pal.color(QPalette.ColorRole.Highlight), 1, Qt.PenStyle.DotLine))
            p.setBrush(Qt.BrushStyle.NoBrush)
            p.drawRect(self.rect().adjusted(0, 0, -1, -1))
        p.end()

    def _paint_y_axis(self, p, r: QRectF, fm, top: int, color, dim) -> None:
        p.setPen(QPen(color, 1))
        p.drawLine(QPointF(r.left(), r.top()), QPointF(r.left(), r.bottom()))
        if top <= 0:
            return
        if self.log_scale:
            ticks = [0] + [10**k for k in range(0, int(math.log10(top)) + 1)]
        else:
            step = max(1, int(nice_step(top, 4)))
            ticks = list(range(0, top + 1, step))
        for t in ticks:
            y = r.bottom() - self._bar_height(t, top, r.height())
            p.setPen(QPen(color, 1))
            p.drawLine(QPointF(r.left() - 4, y), QPointF(r.left(), y))
            if t:
                p.setPen(QPen(dim, 1, Qt.PenStyle.DotLine))
                p.drawLine(QPointF(r.left() + 1, y), QPointF(r.right(), y))
            p.setPen(color)
            text = f"{t:,}"
            p.drawText(
                QPointF(r.left() - 7 - fm.horizontalAdvance(text), y + fm.ascent() / 2 - 1), text
            )
        p.setPen(color)
        p.drawText(
            QPointF(4, r.top() - fm.descent() - 4), "photos" + (" (log)" if self.log_scale else "")
        )

    def _paint_bars(self, p, r: QRectF, top: int, pal: QPalette) -> None:
        if top <= 0:
            return
        base = pal.color(QPalette.ColorRole.Highlight)
        strong, weak = QColor(base), QColor(base)
        weak.setAlpha(90)
        p.setPen(Qt.PenStyle.NoPen)
        for i, count in enumerate(self.counts):
            if not count:
                continue
            x0, x1 = self.x_of(float(self.edges[i])), self.x_of(float(self.edges[i + 1]))
            h = max(self._bar_height(int(count), top, r.height()), 1.5)
            above = self.threshold is not None and float(self.edges[i + 1]) > self.threshold
            p.setBrush(strong if above else weak)
            p.drawRect(QRectF(x0 + 0.5, r.bottom() - h, max(x1 - x0 - 1.0, 1.0), h))

    def _paint_x_axis(self, p, r: QRectF, fm, color, dim) -> None:
        p.setPen(QPen(color, 1))
        p.drawLine(QPointF(r.left(), r.bottom()), QPointF(r.right(), r.bottom()))
        step = nice_step(self.hi - self.lo, max(2, int(r.width() // 70)))
        decimals = max(0, -math.floor(math.log10(step)))
        first = math.ceil(self.lo / step) * step
        y_labels = r.bottom() + 2 * 11 + 8 + fm.ascent()
        k = 0
        while first + k * step <= self.hi + 1e-12:
            v = first + k * step
            k += 1
            x = self.x_of(v)
            p.drawLine(QPointF(x, r.bottom()), QPointF(x, r.bottom() + 4))
            text = f"{v:.{decimals}f}"
            w = fm.horizontalAdvance(text)
            p.drawText(QPointF(x - w / 2, y_labels), text)
        p.setPen(dim)
        label = "score"
        p.drawText(QPointF(r.right() - fm.horizontalAdvance(label), y_labels + fm.height()), label)

    def _paint_answers(self, p, r: QRectF) -> None:
        """Yes: green ticks in the first row under the axis; no: red crosses below."""
        y_yes = r.bottom() + 5 + 4
        y_no = r.bottom() + 5 + 11 + 4
        pen = QPen(YES_COLOR, 2.0)
        pen.setCapStyle(Qt.PenCapStyle.RoundCap)
        p.setPen(pen)
        p.setBrush(Qt.BrushStyle.NoBrush)
        for s in self.yes:
            x = self.x_of(float(s))
            path = QPainterPath(QPointF(x - 4, y_yes))
            path.lineTo(x - 1, y_yes + 3)
            path.lineTo(x + 4, y_yes - 4)
            p.drawPath(path)
        pen = QPen(NO_COLOR, 2.0)
        pen.setCapStyle(Qt.PenCapStyle.RoundCap)
        p.setPen(pen)
        for s in self.no:
            x = self.x_of(float(s))
            p.drawLine(QPointF(x - 3.5, y_no - 3.5), QPointF(x + 3.5, y_no + 3.5))
            p.drawLine(QPointF(x - 3.5, y_no + 3.5), QPointF(x + 3.5, y_no - 3.5))

    def _paint_threshold(self, p, r: QRectF, fm) -> None:
        if self.threshold is None:
            return
        x = self.x_of(self.threshold)
        width = 3.0 if (self.dragging or self._hover) else 2.0
        p.setPen(QPen(LINE_COLOR, width))
        p.drawLine(QPointF(x, r.top() - 2), QPointF(x, r.bottom() + 24))
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(LINE_COLOR)
        p.drawPolygon(
            QPolygonF(
                [QPointF(x - 6, r.top() - 9), QPointF(x + 6, r.top() - 9), QPointF(x, r.top() - 1)]
            )
        )
        label = f"threshold {self.threshold:.{DECIMALS}f}"
        w = fm.horizontalAdvance(label)
        lx = x + 9 if x + 9 + w < self.width() - 2 else x - 9 - w
        p.setPen(LINE_COLOR)
        p.drawText(QPointF(lx, r.top() - 4), label)

    def _paint_legend(self, p, r: QRectF, fm, color, dim) -> None:
        items = [
            ("yes", f"yes ({self.yes.size})"),
            ("no", f"no ({self.no.size})"),
            ("median", "median"),
            ("line", "threshold (drag)"),
        ]
        y = fm.ascent() + 2
        x = float(self.width() - 8)
        for kind, text in reversed(items):
            x -= fm.horizontalAdvance(text)
            p.setPen(color)
            p.drawText(QPointF(x, y), text)
            cx, cy = x - 10, y - fm.ascent() / 2 + 1
            if kind == "yes":
                pen = QPen(YES_COLOR, 2.0)
                p.setPen(pen)
                path = QPainterPath(QPointF(cx - 4, cy))
                path.lineTo(cx - 1, cy + 3)
                path.lineTo(cx + 4, cy - 4)
                p.setBrush(Qt.BrushStyle.NoBrush)
                p.drawPath(path)
            elif kind == "no":
                p.setPen(QPen(NO_COLOR, 2.0))
                p.drawLine(QPointF(cx - 3.5, cy - 3.5), QPointF(cx + 3.5, cy + 3.5))
                p.drawLine(QPointF(cx - 3.5, cy + 3.5), QPointF(cx + 3.5, cy - 3.5))
            elif kind == "median":
                p.setPen(QPen(dim, 1.2, Qt.PenStyle.DashLine))
                p.drawLine(QPointF(cx, cy - 6), QPointF(cx, cy + 6))
            else:
                p.setPen(QPen(LINE_COLOR, 2.0))
                p.drawLine(QPointF(cx, cy - 6), QPointF(cx, cy + 6))
            x -= 26

    # -- the mouse and keys ---------------------------------------------------------------

    def _near_line(self, x: float) -> bool:
        return self.threshold is not None and abs(x - self.x_of(self.threshold)) <= GRAB_PX

    def _move_to(self, x: float) -> None:
        value = self.value_at(x)
        if value != self.threshold:
            self.threshold = value
            self.update()
            self.threshold_dragged.emit(value)

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() != Qt.MouseButton.LeftButton or not self.scores.size:
            super().mousePressEvent(event)
            return
        self.setFocus(Qt.FocusReason.MouseFocusReason)
        self.dragging = True
        if not self._near_line(event.position().x()):
            self._move_to(event.position().x())
        self.update()
        event.accept()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        x = event.position().x()
        if self.dragging:
            self._move_to(x)
        else:
            hover = self._near_line(x)
            if hover != self._hover:
                self._hover = hover
                if hover:
                    self.setCursor(Qt.CursorShape.SizeHorCursor)
                else:
                    self.unsetCursor()
                self.update()
        event.accept()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if self.dragging and event.button() == Qt.MouseButton.LeftButton:
            self.dragging = False
            self.update()
            if self.threshold is not None:
                self.drag_finished.emit(self.threshold)
            event.accept()
            return
        super().mouseReleaseEvent(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        steps = {
            Qt.Key.Key_Left: -STEP,
            Qt.Key.Key_Right: STEP,
            Qt.Key.Key_PageDown: -10 * STEP,
            Qt.Key.Key_PageUp: 10 * STEP,
        }
        delta = steps.get(Qt.Key(event.key()))
        if delta is None or self.threshold is None or not self.scores.size:
            super().keyPressEvent(event)
            return
        value = round(min(max(self.threshold + delta, -1.0), 1.0), DECIMALS)
        self.set_threshold(value)
        self.threshold_dragged.emit(value)
        event.accept()


class PhotoStrip(QFrame):
    """A row of photos (thumbnail, score and file name); a click selects one in the
    main window's grid."""

    clicked = Signal(int)

    def __init__(self, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.title = plain_label(title)
        self.empty = plain_label("")
        self.empty.setEnabled(False)
        self.row = QHBoxLayout()
        self.row.setSpacing(2)
        self.row.addStretch(1)
        inner = QWidget()
        inner.setLayout(self.row)
        self.scroll = QScrollArea()
        self.scroll.setWidget(inner)
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.scroll.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.scroll.setFixedHeight(TILE + 3 * QFontMetrics(self.font()).height() + 26)
        box = QVBoxLayout(self)
        box.setContentsMargins(6, 4, 6, 4)
        box.addWidget(self.title)
        box.addWidget(self.empty)
        box.addWidget(self.scroll)
        self.tiles: list[PhotoTile] = []

    def set_photos(
        self, photos: list[tuple[int, float]], summaries: dict[int, PhotoSummary], empty: str
    ) -> None:
        for tile in self.tiles:
            self.row.removeWidget(tile)
            tile.deleteLater()
        self.tiles = []
        for pid, score in photos:
            summary = summaries.get(pid)
            path = summary.path if summary is not None else f"photo {pid}"
            tile = PhotoTile(pid, path)
            tile.setIconSize(QSize(TILE, TILE))
            tile.setFixedWidth(TILE + 24)
            name = tile.fontMetrics().elidedText(
                file_name(path), Qt.TextElideMode.ElideMiddle, TILE + 16
            )
            tile.setText(f"{fixed(score)}\n{name}".replace("&", "&&"))
            tile.setAccessibleName(f"{file_name(path)}, score {fixed(score)}")
            tile.clicked.connect(lambda _=False, p=pid: self.clicked.emit(p))
            self.row.insertWidget(self.row.count() - 1, tile)
            self.tiles.append(tile)
        self.empty.setText(empty if not photos else "")
        self.empty.setVisible(not photos)
        self.scroll.setVisible(bool(photos))


class TagInspector(QDialog):
    """One tag, beside the main window (not modal). `report_shown` after a tag report is
    on screen, `preview_shown(dict)` after a preview for the value shown arrived,
    `pinned(ThresholdChange)` after a pin or a give-back was applied."""

    report_shown = Signal()
    preview_shown = Signal(object)
    pinned = Signal(object)

    def __init__(
        self, libraries: Libraries, reveal: Reveal, parent: QWidget, tag_id: int, name: str
    ) -> None:
        super().__init__(parent)
        self._libraries = libraries
        self._reveal = reveal
        self.tag_id = tag_id
        self.name = name
        self.report: TagInspection | None = None
        self.preview: dict | None = None
        """The last preview shown (for the value in the spin box)."""
        self.last_change: ThresholdChange | None = None
        self._closed = False
        self._report_token = 0
        self._asking: float | None = None
        """The value whose preview is on its way (one at a time)."""
        self._pinning = False
        self._summaries: dict[int, PhotoSummary] = {}
        self.setWindowTitle(f"Tag \u201c{name}\u201d \u2013 albumtagger")
        self.resize(860, 720)
        self.loader = ThumbnailLoader(libraries.root, size=TILE, parent=self)
        self.loader.changed.connect(self._thumbs_arrived)
        self._throttle = QTimer(self)
        self._throttle.setSingleShot(True)
        self._throttle.setInterval(PREVIEW_INTERVAL_MS)
        self._throttle.timeout.connect(self._ask_preview)
        self._refresh_timer = QTimer(self)
        self._refresh_timer.setSingleShot(True)
        self._refresh_timer.setInterval(REFRESH_MS)
        self._refresh_timer.timeout.connect(self.refresh)
        self._build()
        libraries.event.connect(self._library_event)
        libraries.library_opened.connect(self._library_changed)

    # -- building -------------------------------------------------------------------------

    def _build(self) -> None:
        self.title = plain_label(accessible="Tag")
        font = self.title.font()
        font.setBold(True)
        font.setPointSizeF(font.pointSizeF() * 1.3)
        self.title.setFont(font)
        self.prompts = plain_label(accessible="Prompts")
        self.source = plain_label(accessible="Where the threshold comes from")
        self.facts = plain_label(accessible="Answers and photos")
        self.facts.setWordWrap(False)
        self.facts.setToolTip(
            "Through the fallback: the photo's best tags, given when too few of its tags "
            "pass their thresholds, so that no photo is left without tags."
        )
        self.state = plain_label(accessible="Threshold state")
        state_font = self.state.font()
        state_font.setBold(True)
        self.state.setFont(state_font)

        self.histogram = ScoreHistogram()
        self.histogram.threshold_dragged.connect(self._dragged)
        self.histogram.drag_finished.connect(self._dragged)
        self.log_box = QCheckBox("Log scale")
        self.log_box.setToolTip("Count the photos on a logarithmic scale (small bins show)")
        self.log_box.toggled.connect(self.histogram.set_log_scale)

        self.spin = QDoubleSpinBox()
        self.spin.setDecimals(DECIMALS)
        self.spin.setRange(-1.0, 1.0)
        self.spin.setSingleStep(0.005)
        self.spin.setAccessibleName("Threshold to try")
        self.spin.setToolTip(
            "A threshold to try: the line in the histogram follows, and the numbers below "
            "say what pinning it would change"
        )
        self.spin.valueChanged.connect(self._value_changed)
        label = QLabel("Threshold")
        label.setBuddy(self.spin)
        self.reset_button = QPushButton("Back to the current one")
        self.reset_button.setToolTip("Put the line back at the threshold in effect")
        self.reset_button.clicked.connect(self.reset_value)
        self.preview_label = plain_label(accessible="What this threshold would change")
        self.preview_label.setToolTip(
            "Exact: what pinning this value would do. It can differ from the bars, since "
            "your own decisions stay, and a photo keeps at most its maximum number of tags."
        )
        self.pin_button = QPushButton("Pin this threshold")
        self.pin_button.setToolTip(
            "Use this threshold from now on, whatever the answers say; the tag is decided "
            "again across the library at once"
        )
        self.pin_button.clicked.connect(self.pin)
        self.learn_button = QPushButton("Give back to learning")
        self.learn_button.setToolTip(
            "Forget the pinned value: the threshold is learned from the answers again"
        )
        self.learn_button.clicked.connect(self.give_back)
        self.message = plain_label(accessible="Result")

        controls = QHBoxLayout()
        controls.addWidget(label)
        controls.addWidget(self.spin)
        controls.addWidget(self.reset_button)
        controls.addStretch(1)
        controls.addWidget(self.log_box)
        buttons = QHBoxLayout()
        buttons.addWidget(self.state, 1)
        buttons.addWidget(self.pin_button)
        buttons.addWidget(self.learn_button)

        self.above = PhotoStrip("Just above the threshold")
        self.below = PhotoStrip("Just below the threshold")
        self.above.clicked.connect(self.photo_clicked)
        self.below.clicked.connect(self.photo_clicked)
        hint = plain_label(
            "Drag the line (or type a value) to see what would change. Click a photo to "
            "select it in the main window."
        )
        hint.setEnabled(False)

        head = QGridLayout()
        head.addWidget(self.title, 0, 0)
        head.addWidget(self.facts, 0, 1, Qt.AlignmentFlag.AlignRight)
        head.addWidget(self.prompts, 1, 0, 1, 2)
        head.addWidget(self.source, 2, 0, 1, 2)
        head.setColumnStretch(0, 1)

        box = QVBoxLayout(self)
        box.addLayout(head)
        box.addWidget(self.histogram, 1)
        box.addLayout(controls)
        box.addWidget(self.preview_label)
        box.addLayout(buttons)
        box.addWidget(self.message)
        box.addWidget(self.above)
        box.addWidget(self.below)
        box.addWidget(hint)
        self._enable(False)

    def _enable(self, on: bool) -> None:
        pinned = self.report is not None and self.report.pinned is not None
        has_scores = self.report is not None and self.report.scores.size > 0
        for w in (self.spin, self.reset_button, self.histogram):
            w.setEnabled(on and has_scores)
        self.pin_button.setEnabled(on and has_scores and not self._pinning)
        self.learn_button.setEnabled(on and pinned and not self._pinning)

    # -- opening and closing --------------------------------------------------------------

    def start(self) -> None:
        """Show beside the main window and read the tag."""
        self.title.setText(self.name)
        self.source.setText("Reading the tag\u2026")
        self.show()
        self.refresh()

    def done(self, result: int) -> None:
        if not self._closed:
            self._closed = True
            self._throttle.stop()
            self._refresh_timer.stop()
            self._libraries.library_opened.disconnect(self._library_changed)
            self._libraries.event.disconnect(self._library_event)
            self.loader.shutdown()
            self.deleteLater()
        super().done(result)

    @property
    def closed(self) -> bool:
        return self._closed

    def _library_changed(self, *_: object) -> None:
        self.reject()

    def _library_event(self, ev: object) -> None:
        if self._closed:
            return
        mine = isinstance(ev, ThresholdsChanged) and self.tag_id in ev.tag_ids
        if mine or isinstance(ev, VocabularyChanged):
            self._refresh_timer.start()

    # -- the tag report -------------------------------------------------------------------

    def refresh(self) -> None:
        """Read the tag again (its current name: it may have been renamed)."""
        if self._closed:
            return
        self._refresh_timer.stop()
        queries = self._libraries.queries
        if queries is not None:
            current = next((t for t in queries.tags() if t.id == self.tag_id), None)
            if current is None:
                self._gone()
                return
            self.name = current.name
        self._report_token += 1
        token = self._report_token
        on_reply = partial(self._report_ready, token)
        if not self._libraries.client.tag_report(self.name, on_reply=on_reply):
            self.source.setText("No library is open.")

    def _gone(self) -> None:
        self.report = None
        self.source.setText("This tag is no longer in the vocabulary.")
        self._enable(False)

    def _report_ready(self, token: int, reply: Reply) -> None:
        if self._closed or token != self._report_token:
            return
        if reply.error:
            self.source.setText(reply.error)
            self._enable(False)
            return
        report: TagInspection = reply.result
        keep = self.report is not None and self._user_value() is not None
        value = self.spin.value() if keep else None
        self.report = report
        self.setWindowTitle(f"Tag \u201c{report.name}\u201d \u2013 albumtagger")
        self.title.setText(report.name)
        self.prompts.setText(
            ("Prompt: " if len(report.prompts) == 1 else "Prompts (averaged): ")
            + " \u00b7 ".join(report.prompts)
            if report.prompts
            else "No description: learned from the photos it was given, never from its name"
        )
        threshold = "no threshold yet" if report.threshold is None else f"{fixed(report.threshold)}"
        self.source.setText(f"Threshold {threshold}. {report.source_text}")
        yes, no = report.answers.get("yes", 0), report.answers.get("no", 0)
        self.facts.setText(f"{carried_text(report)} \u00b7 answers: {yes} yes, {no} no")
        if report.pinned is not None:
            self.state.setText(f"Pinned by hand at {fixed(report.pinned)}")
        elif report.source == "not_scored":
            self.state.setText("Not scored yet")
        elif not report.prompts and yes < MIN_EXAMPLES:
            self.state.setText(
                f"Suggested on other photos once {MIN_EXAMPLES} photos have it (now {yes})"
            )
        else:
            self.state.setText("Learning from answers")
        self.histogram.set_data(
            report.scores, report.yes_scores, report.no_scores, report.median, report.threshold
        )
        self.spin.blockSignals(True)
        self.spin.setValue(value if value is not None else (report.threshold or 0.0))
        self.spin.blockSignals(False)
        self.histogram.set_threshold(self.spin.value() if report.threshold is not None else None)
        self._enable(True)
        self.preview = None
        self._show_preview_state()
        if value is not None:
            self._value_changed(value)
        self._read_strips(report)
        self.report_shown.emit()

    def _user_value(self) -> float | None:
        """The value in the spin box when the person moved it off the threshold."""
        if self.report is None or self.report.threshold is None:
            return None
        value = self.spin.value()
        return None if abs(value - self.report.threshold) < STEP / 2 else value

    # -- trying a threshold ----------------------------------------------------------------

    def _dragged(self, value: float) -> None:
        self.spin.setValue(value)  # valueChanged does the rest

    def set_value(self, value: float) -> None:
        """Try this threshold (as typing it does)."""
        self.spin.setValue(value)

    def reset_value(self) -> None:
        if self.report is not None and self.report.threshold is not None:
            self.spin.setValue(self.report.threshold)

    def _value_changed(self, value: float) -> None:
        self.histogram.set_threshold(value)
        self.preview = None
        if self._user_value() is None:
            self._show_preview_state()
            return
        self.preview_label.setText(f"At {fixed(value)}: counting\u2026")
        if self._asking is None and not self._throttle.isActive():
            self._ask_preview()

    def _ask_preview(self) -> None:
        """Ask for the value shown, unless a preview is on its way (its reply asks again)."""
        if self._closed or self.report is None or self._asking is not None:
            return
        value = self._user_value()
        if value is None:
            return
        value = round(value, DECIMALS)
        self._asking = value
        self._throttle.start()
        on_reply = partial(self._preview_ready, value)
        if not self._libraries.client.threshold_preview(self.name, value, on_reply=on_reply):
            self._asking = None

    def _preview_ready(self, asked: float, reply: Reply) -> None:
        if self._closed:
            return
        self._asking = None
        current = self._user_value()
        if current is None or asked != round(current, DECIMALS):
            if current is not None and not self._throttle.isActive():
                self._ask_preview()  # stale: the value moved on meanwhile
            return
        if reply.error:
            self.preview_label.setText(reply.error)
            return
        self.preview = dict(reply.result)
        self.preview_label.setText(self.preview_text(self.preview))
        self.preview_shown.emit(self.preview)

    @staticmethod
    def preview_text(preview: dict) -> str:
        gain, lose = int(preview["gain"]), int(preview["lose"])
        after, now = int(preview["carries_after"]), int(preview["carries_now"])
        value = preview.get("threshold_after")
        at = f"At {fixed(value)}: " if value is not None else ""
        if not gain and not lose:
            return f"{at}no photo would change ({_photos(after)} carry the tag)."
        return (
            f"{at}{_photos(gain)} would gain the tag and {lose:,} would lose it "
            f"({after:,} would carry it, {now:,} now)."
        )

    def _show_preview_state(self) -> None:
        report = self.report
        if report is None or report.threshold is None:
            self.preview_label.setText("")
            return
        self.preview_label.setText(
            f"The threshold in effect: {_photos(report.carries)} carry the tag. Drag the "
            "line or type a value to see what another one would change."
        )

    # -- pinning --------------------------------------------------------------------------

    def pin(self) -> None:
        """Pin the threshold shown."""
        self._pin(round(self.spin.value(), DECIMALS))

    def give_back(self) -> None:
        """Give the threshold back to learning."""
        self._pin(None)

    def _pin(self, value: float | None) -> None:
        if self._closed or self.report is None or self._pinning:
            return
        self._pinning = True
        self._enable(True)
        self.message.setText("Applying\u2026")
        if not self._libraries.client.pin_threshold(self.name, value, on_reply=self._pin_done):
            self._pinning = False
            self.message.setText("No library is open.")

    def _pin_done(self, reply: Reply) -> None:
        if self._closed:
            return
        self._pinning = False
        if reply.error:
            self.message.setText(reply.error)
            self._enable(True)
            return
        change: ThresholdChange = reply.result
        self.last_change = change
        self.message.setText(change.describe())
        self._libraries.show_notice(change.describe())
        # Show the pinned value (or the learned one) as the threshold in effect.
        self.spin.blockSignals(True)
        if change.threshold_after is not None:
            self.spin.setValue(change.threshold_after)
        self.spin.blockSignals(False)
        self.report = None  # read afresh, the line back at the threshold in effect
        self.refresh()
        self.pinned.emit(change)

    # -- the photos either side -------------------------------------------------------------

    def _read_strips(self, report: TagInspection) -> None:
        ids = [pid for pid, _ in report.above] + [pid for pid, _ in report.below]
        reads = self._libraries.reads
        if reads is None:
            return
        token = self._report_token
        reads.read(
            f"inspector-{id(self)}",
            lambda q: q.summaries(ids),
            lambda summaries: self._strips_ready(token, report, summaries),
        )

    def _strips_ready(self, token: int, report: TagInspection, summaries) -> None:
        if self._closed or token != self._report_token:
            return
        self._summaries = {s.id: s for s in summaries}
        threshold = "" if report.threshold is None else f" ({fixed(report.threshold)})"
        self.above.title.setText(
            f"Just above the threshold{threshold}: the nearest photos that pass it"
        )
        self.below.title.setText("Just below the threshold: the nearest photos that miss it")
        self.above.set_photos(report.above, self._summaries, nothing_above_text(report))
        self.below.set_photos(report.below, self._summaries, "No photo scores below it.")
        self._thumbs_arrived()

    def _thumbs_arrived(self) -> None:
        if self._closed:
            return
        for tile in self.above.tiles + self.below.tiles:
            if tile.icon().isNull():
                summary = self._summaries.get(tile.photo_id)
                pixmap = self.loader.pixmap(summary) if summary is not None else None
                if pixmap is not None:
                    tile.setIcon(QIcon(pixmap))

    def photo_clicked(self, photo_id: int) -> None:
        """Select this photo in the main window's grid."""
        self._reveal([photo_id])


def open_inspector(
    libraries: Libraries, reveal: Reveal, parent: QWidget, name: str | None
) -> TagInspector | None:
    """The inspector of tag `name` (None: the person chose no tag) beside `parent`; an
    open one of the same tag is brought to the front."""
    if not libraries.need_library():
        return None
    if name is None:
        libraries.show_notice("Choose a tag in the tags list first, then inspect it.")
        return None
    folded = " ".join(str(name).split()).casefold()
    tags = libraries.queries.tags() if libraries.queries is not None else []
    tag = next((t for t in tags if t.name.casefold() == folded), None)
    if tag is None:
        libraries.show_notice(f"There is no tag \u201c{name}\u201d in the vocabulary.")
        return None
    for dialog in parent.findChildren(TagInspector):
        if dialog.tag_id == tag.id and not dialog.closed:
            dialog.raise_()
            dialog.activateWindow()
            return dialog
    dialog = TagInspector(libraries, reveal, parent, tag.id, tag.name)
    dialog.start()
    return dialog
