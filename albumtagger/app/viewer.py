"""The full-size viewer: one photo of the grid over the whole window, decoded off the GUI
thread, fitted to the window or at 100% (dragged or scrolled to pan), with its tags as
chips beneath.

Keys (taken before the window's shortcuts): Left / Right and PageUp / PageDown the
previous and next photo of the grid's order; F or 0 fit; 1 100%; Z either; A / R /
Delete act on the framed tag (at first the best suggestion) and frame the next; Esc
back to the grid.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtGui import QImage, QKeyEvent, QPainter, QPixmap, QWheelEvent
from PySide6.QtWidgets import (
    QFrame,
    QGraphicsPixmapItem,
    QGraphicsScene,
    QGraphicsView,
    QHBoxLayout,
    QLabel,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from albumtagger.app.detail import FlowLayout, PreviewLoader, TagChip, plain_label
from albumtagger.app.photo_model import PhotoListModel
from albumtagger.app.qtcompat import plain_tooltip
from albumtagger.library.db.queries import PhotoDetail, PhotoTagInfo

if TYPE_CHECKING:
    from albumtagger.app.libraries import Libraries

FULL_SIZE = 16384
"""Longest side a photo is decoded at (larger ones are scaled down to it)."""
WHEEL_STEP = 1.25
"""Zoom factor of one wheel notch with Ctrl held."""

PREVIOUS_KEYS = (Qt.Key.Key_Left, Qt.Key.Key_PageUp)
NEXT_KEYS = (Qt.Key.Key_Right, Qt.Key.Key_PageDown)
FIT_KEYS = (Qt.Key.Key_F, Qt.Key.Key_0)
TAG_KEYS = {
    Qt.Key.Key_A: "accept",
    Qt.Key.Key_R: "reject",
    Qt.Key.Key_Delete: "remove",
    Qt.Key.Key_Backspace: "remove",
}
OWN_KEYS = {
    *PREVIOUS_KEYS,
    *NEXT_KEYS,
    *FIT_KEYS,
    *TAG_KEYS,
    Qt.Key.Key_1,
    Qt.Key.Key_Z,
    Qt.Key.Key_Escape,
}
"""Keys the viewer answers itself, before any shortcut of the window."""
KEYS_HELP = (
    "\u2190 \u2192 previous / next \u00b7 F fit \u00b7 1 100% \u00b7 A accept \u00b7 R reject"
    " \u00b7 Delete remove \u00b7 Esc back"
)


class ImageView(QGraphicsView):
    """One image, fitted to the view (`fitted`) or at 100% (one image pixel on one
    screen pixel), panned by dragging or scrolling; Ctrl+wheel zooms (`zoomed`)."""

    zoomed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self.item = QGraphicsPixmapItem()
        self.item.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        self.scene().addItem(self.item)
        self.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.setAccessibleName("Photo")
        self.fitted = True

    def set_image(self, image: QImage) -> None:
        self.item.setPixmap(QPixmap.fromImage(image))
        self.setSceneRect(self.item.boundingRect())
        self.fit()

    def clear(self) -> None:
        self.item.setPixmap(QPixmap())
        self.setSceneRect(self.item.boundingRect())

    def has_image(self) -> bool:
        return not self.item.pixmap().isNull()

    def image_size(self):
        return self.item.pixmap().size()

    def fit(self) -> None:
        """The whole image in the view, enlarged or reduced (aspect kept)."""
        self.fitted = True
        if self.has_image():
            self.fitInView(self.item, Qt.AspectRatioMode.KeepAspectRatio)

    def actual_size(self) -> None:
        """100%: one image pixel on one pixel of the screen."""
        self.fitted = False
        scale = 1 / self.devicePixelRatioF()
        self.resetTransform()
        self.scale(scale, scale)

    def toggle(self) -> None:
        if self.fitted:
            self.actual_size()
        else:
            self.fit()

    def zoom(self) -> float:
        """Screen pixels (device independent) per image pixel."""
        return self.transform().m11()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self.fitted:
            self.fit()

    def wheelEvent(self, event: QWheelEvent) -> None:
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier and self.has_image():
            steps = event.angleDelta().y() / 120
            if steps:
                self.fitted = False
                factor = WHEEL_STEP**steps
                self.scale(factor, factor)
                self.zoomed.emit()
            event.accept()
            return
        super().wheelEvent(event)


class PhotoViewer(QWidget):
    """A page of the window. `correct(photo ids, tag, action)` as the detail panel's;
    `shown(photo id)` whenever another photo is on screen; `closed(photo id)` on Esc,
    with the photo last viewed."""

    correct = Signal(object, str, str)
    shown = Signal(int)
    closed = Signal(int)

    def __init__(
        self, libraries: Libraries, model: PhotoListModel, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self._libraries = libraries
        self._model = model
        self.photo_id: int | None = None
        self.detail: PhotoDetail | None = None
        self._chips: list[TagChip] = []
        self._current_chip: TagChip | None = None
        self._answered: set[str] = set()
        """Tags of the photo shown acted on (their replies may not be back yet)."""
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setAccessibleName("Photo viewer")
        self._build()
        self.loader = PreviewLoader(self)
        self.loader.ready.connect(self._image_ready)

    def _build(self) -> None:
        top = QHBoxLayout()
        top.setContentsMargins(8, 4, 8, 0)
        self.name = plain_label(accessible="File name")
        self.name.setWordWrap(False)
        font = self.name.font()
        font.setBold(True)
        self.name.setFont(font)
        self.position = plain_label(accessible="Position in the grid")
        self.position.setWordWrap(False)
        self.scale_label = plain_label(accessible="Zoom")
        self.scale_label.setWordWrap(False)
        help_label = plain_label(KEYS_HELP)
        help_label.setWordWrap(False)
        help_label.setEnabled(False)
        top.addWidget(self.name)
        top.addWidget(self.position)
        top.addStretch(1)
        top.addWidget(self.scale_label)
        top.addWidget(help_label)

        self.view = ImageView()
        self.view.zoomed.connect(self._update_scale)
        self.message = QLabel()
        self.message.setTextFormat(Qt.TextFormat.PlainText)
        self.message.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.message.setWordWrap(True)
        self.message.setAccessibleName("Message")
        self.pages = QStackedWidget()
        self.pages.addWidget(self.view)
        self.pages.addWidget(self.message)

        self.chips_box = QWidget()
        self.chips_box.setAccessibleName("Tags of this photo")
        self.chips_layout = FlowLayout(self.chips_box)
        self.no_tags = plain_label("No tags yet.")

        box = QVBoxLayout(self)
        box.setContentsMargins(0, 0, 0, 6)
        box.setSpacing(4)
        box.addLayout(top)
        box.addWidget(self.pages, 1)
        tags = QVBoxLayout()
        tags.setContentsMargins(8, 0, 8, 0)
        tags.addWidget(self.chips_box)
        tags.addWidget(self.no_tags)
        box.addLayout(tags)

    # -- showing ----------------------------------------------------------------------

    def open(self, photo_id: int) -> None:
        """Show this photo (the window shows the viewer's page)."""
        self._show(photo_id)
        self.setFocus(Qt.FocusReason.OtherFocusReason)

    def clear(self) -> None:
        """Nothing on screen (the library went)."""
        self.photo_id = None
        self.detail = None
        self.view.clear()
        self._set_chips([])
        self._show_message("")

    def _show(self, photo_id: int) -> None:
        queries = self._libraries.queries
        detail = queries.photo_detail(photo_id) if queries is not None else None
        if queries is None or detail is None:
            return
        if photo_id != self.photo_id:
            self._answered = set()
        self.photo_id = photo_id
        self.detail = detail
        name = detail.path.rpartition("/")[2]
        self.name.setText(name)
        self.name.setToolTip(plain_tooltip(detail.path))
        self._update_position()
        self._set_chips(queries.photo_tags(photo_id))
        root = self._libraries.root
        self.view.clear()
        if detail.status == "missing" or root is None:
            self._show_message("The file is missing: its tags are kept.")
        else:
            self._show_message("Loading\u2026")
            self.loader.load(root / detail.path, photo_id, FULL_SIZE)
        self.shown.emit(photo_id)

    def _update_position(self) -> None:
        row = self._model.row_of(self.photo_id) if self.photo_id is not None else -1
        total = self._model.rowCount()
        self.position.setText(f"{row + 1:,} of {total:,}" if row >= 0 else "")

    def _show_message(self, text: str) -> None:
        self.message.setText(text)
        self.pages.setCurrentWidget(self.message)
        self.scale_label.setText("")

    def _image_ready(self, photo_id: int, image: object, problem: str) -> None:
        if photo_id != self.photo_id:
            return
        if isinstance(image, QImage) and not image.isNull():
            self.pages.setCurrentWidget(self.view)
            self.view.set_image(image)
            self._update_scale()
        else:
            why = problem or "it cannot be read"
            self._show_message(f"This photo cannot be shown: {why}.")

    def _update_scale(self) -> None:
        if self.view.has_image():
            zoom = f"{self.view.zoom() * self.devicePixelRatioF() * 100:.0f}%"
            self.scale_label.setText(f"fit ({zoom})" if self.view.fitted else zoom)

    def refresh(self, changed: set[int] | None = None) -> None:
        """Read the photo's tags again (when they may have changed)."""
        queries = self._libraries.queries
        if self.photo_id is None or queries is None:
            return
        if changed is not None and self.photo_id not in changed:
            return
        tags = queries.photo_tags(self.photo_id)
        if [c.info for c in self._chips] != tags:
            keep = self._current_chip.info.name if self._current_chip else None
            self._set_chips(tags, keep)
        self._update_position()

    # -- moving and zooming -----------------------------------------------------------

    def step(self, delta: int) -> bool:
        """The photo `delta` places on in the grid's order (none past either end)."""
        if self.photo_id is None:
            return False
        row = self._model.row_of(self.photo_id)
        target = row + delta
        if row < 0 or not 0 <= target < self._model.rowCount():
            return False
        self._show(self._model.photo_id(target))
        return True

    def fit(self) -> None:
        self.view.fit()
        self._update_scale()

    def actual_size(self) -> None:
        self.view.actual_size()
        self._update_scale()

    def toggle_size(self) -> None:
        self.view.toggle()
        self._update_scale()

    # -- tags -------------------------------------------------------------------------

    def _set_chips(self, tags: list[PhotoTagInfo], keep: str | None = None) -> None:
        had_focus = any(c.hasFocus() for c in self._chips)
        for chip in self._chips:
            self.chips_layout.removeWidget(chip)
            chip.hide()
            chip.deleteLater()
        self._chips = []
        for info in tags:
            chip = TagChip(info, self.chips_box)
            chip.acted.connect(self._chip_clicked)
            chip.keyed.connect(self._chip_keyed)
            chip.stepped.connect(self._chip_stepped)
            chip.focused.connect(self._chip_focused)
            self.chips_layout.addWidget(chip)
            self._chips.append(chip)
        kept = next((c for c in self._chips if c.info.name == keep), None)
        self._set_current(kept or next(iter(self._open_suggestions()), None))
        if had_focus:
            (self._current_chip or self).setFocus()
        self.no_tags.setVisible(self.photo_id is not None and not tags)
        self.chips_layout.invalidate()
        self.chips_box.updateGeometry()

    def _open_suggestions(self) -> list[TagChip]:
        """Suggestions not answered yet, best first (the order tags come in)."""
        return [
            c
            for c in self._chips
            if c.info.state == "suggested" and c.info.name not in self._answered
        ]

    def _set_current(self, chip: TagChip | None) -> None:
        """The chip A / R / Delete act on, framed."""
        self._current_chip = chip
        for c in self._chips:
            c.set_marked(c is chip)

    def chip_widgets(self) -> list[TagChip]:
        return list(self._chips)

    def current_chip(self) -> TagChip | None:
        return self._current_chip

    def act_on_current(self, action: str) -> bool:
        """A / R / Delete: act on the framed tag (at first the best suggestion), then
        frame the next suggestion."""
        chip = self._current_chip
        if chip is None or self.photo_id is None:
            return False
        if chip.info.state == {"accept": "accepted", "reject": "rejected"}.get(action):
            return False
        self._act(chip, action, move_on=True)
        return True

    def _act(self, chip: TagChip, action: str, *, move_on: bool) -> None:
        """Send the correction; the frame moves on from this chip when it was on it (or
        a key acted) to the next open suggestion after it, else the first one left."""
        if self.photo_id is None:
            return
        self._answered.add(chip.info.name)
        self.correct.emit((self.photo_id,), chip.info.name, action)
        if not move_on and chip is not self._current_chip:
            return
        had_focus = chip.hasFocus()
        open_ = self._open_suggestions()
        at = self._chips.index(chip)
        later = [c for c in open_ if self._chips.index(c) > at]
        following = (later or open_ or [None])[0]
        self._set_current(following)
        if had_focus:
            (following or self).setFocus()

    def _chip_focused(self, chip: object) -> None:
        if isinstance(chip, TagChip):
            self._set_current(chip)

    def _chip_clicked(self, name: str, action: str) -> None:
        chip = next((c for c in self._chips if c.info.name == name), None)
        if chip is not None:
            self._act(chip, action, move_on=False)

    def _chip_keyed(self, name: str, action: str) -> None:
        chip = next((c for c in self._chips if c.info.name == name), None)
        if chip is not None:
            self._act(chip, action, move_on=True)

    def _chip_stepped(self, _chip: object, delta: int) -> None:
        """Left / Right on a focused chip: the previous or next photo, as anywhere in
        the viewer."""
        self.step(delta)
        self.setFocus()

    # -- keys -------------------------------------------------------------------------

    def event(self, event: QEvent) -> bool:
        if (
            event.type() == QEvent.Type.ShortcutOverride
            and isinstance(event, QKeyEvent)
            and self._own_key(event)
        ):
            event.accept()  # the key comes to keyPressEvent, not to a window shortcut
            return True
        return super().event(event)

    @staticmethod
    def _own_key(event: QKeyEvent) -> bool:
        modifiers = event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier
        return event.key() in OWN_KEYS and modifiers == Qt.KeyboardModifier.NoModifier

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key = event.key()
        if not self._own_key(event):
            super().keyPressEvent(event)
            return
        if key in PREVIOUS_KEYS:
            self.step(-1)
        elif key in NEXT_KEYS:
            self.step(1)
        elif key in FIT_KEYS:
            self.fit()
        elif key == Qt.Key.Key_1:
            self.actual_size()
        elif key == Qt.Key.Key_Z:
            self.toggle_size()
        elif key in TAG_KEYS:
            self.act_on_current(TAG_KEYS[Qt.Key(key)])
        elif key == Qt.Key.Key_Escape and self.photo_id is not None:
            self.closed.emit(self.photo_id)
        event.accept()

    def shutdown(self) -> None:
        self.loader.shutdown()
