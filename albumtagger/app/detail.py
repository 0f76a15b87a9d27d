"""The detail panel: a large preview (decoded off the GUI thread by the library's safe
loader), the photo's facts, its tags as chips (accept / reject / remove), an add-tag field
with completion, and a section that ranks descriptions typed by the user for the photo;
and, with several photos selected, the tags all of them carry and those some carry, each
added to or removed from all of them at once.

One chip is the current one, marked by a thick frame whether or not the keyboard is in
the panel: A / R / Delete act on it (the window routes them here from the grid too), and
the mark then moves on to the next suggestion at once, before the worker replies, so
quick keys never act on a chip other than the one marked when each was pressed."""

from __future__ import annotations

import datetime as _dt
import logging
from pathlib import Path

from PySide6.QtCore import (
    QCoreApplication,
    QEvent,
    QObject,
    QRect,
    QRunnable,
    QSize,
    Qt,
    QThreadPool,
    QTimer,
    Signal,
)
from PySide6.QtGui import QColor, QFont, QImage, QKeyEvent, QPainter, QPalette, QPen, QPixmap
from PySide6.QtWidgets import (
    QCompleter,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLayout,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
    QWidgetItem,
)

from albumtagger.app.match_panel import Matcher, MatchPanel
from albumtagger.app.numbers import fixed, score_and_threshold
from albumtagger.app.qtcompat import plain_tooltip
from albumtagger.errors import ImageError
from albumtagger.library.db.queries import PhotoDetail, PhotoTagInfo
from albumtagger.library.images import read_photo

log = logging.getLogger(__name__)

PREVIEW_SIZE = 640
PREVIEW_MAX_HEIGHT = 360
MARK_COLOR = QColor(230, 126, 0)
"""The current chip's frame: an amber of its own, unlike the accepted chips' fill."""
MARK_WIDTH = 3
_COMMAND_MODIFIERS = (
    Qt.KeyboardModifier.ControlModifier
    | Qt.KeyboardModifier.AltModifier
    | Qt.KeyboardModifier.MetaModifier
)


def plain_label(text: str = "", *, accessible: str = "") -> QLabel:
    label = QLabel(text)
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    if accessible:
        label.setAccessibleName(accessible)
    return label


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} bytes"


# -- preview loading --------------------------------------------------------------------


class _PreviewSignals(QObject):
    done = Signal(int, int, object, str)  # photo id, token, QImage or None, problem


class _PreviewJob(QRunnable):
    def __init__(self, path: Path, photo_id: int, token: int, size: int, signals) -> None:
        super().__init__()
        self._path, self._id, self._token, self._size = path, photo_id, token, size
        self._signals = signals

    def run(self) -> None:
        image: QImage | None = None
        problem = ""
        try:
            photo = read_photo(self._path, target_pixels=self._size * self._size)
            pil = photo.image
            pil.thumbnail((self._size, self._size))
            data = pil.tobytes("raw", "RGB")
            image = QImage(
                data, pil.width, pil.height, 3 * pil.width, QImage.Format.Format_RGB888
            ).copy()
        except ImageError as exc:
            problem = exc.reason
        except OSError as exc:
            problem = exc.strerror or str(exc)
        except Exception as exc:
            log.exception("preview of %s failed", self._path)
            problem = str(exc)
        self._signals.done.emit(self._id, self._token, image, problem)


class PreviewLoader(QObject):
    ready = Signal(int, object, str)  # photo id, QImage or None, problem

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)
        self._signals = _PreviewSignals(self)  # dies with this object, in the GUI thread
        self._signals.done.connect(self._done)
        self._token = 0

    def load(self, path: Path, photo_id: int, size: int = PREVIEW_SIZE) -> None:
        self._token += 1
        self._pool.clear()
        self._pool.start(_PreviewJob(path, photo_id, self._token, size, self._signals))

    def _done(self, photo_id: int, token: int, image: object, problem: str) -> None:
        if token == self._token:
            self.ready.emit(photo_id, image, problem)

    def shutdown(self) -> None:
        self._token += 1
        self._pool.clear()
        self._pool.waitForDone(5000)


# -- a flow layout for chips ------------------------------------------------------------


class FlowLayout(QLayout):
    def __init__(self, parent: QWidget | None = None, spacing: int = 4) -> None:
        super().__init__(parent)
        self._items: list[QWidgetItem] = []
        self._spacing = spacing
        self.setContentsMargins(0, 0, 0, 0)

    def addItem(self, item) -> None:
        self._items.append(item)

    def count(self) -> int:
        return len(self._items)

    def itemAt(self, i: int):
        return self._items[i] if 0 <= i < len(self._items) else None

    def takeAt(self, i: int):
        return self._items.pop(i) if 0 <= i < len(self._items) else None

    def expandingDirections(self) -> Qt.Orientation:
        return Qt.Orientation(0)

    def hasHeightForWidth(self) -> bool:
        return True

    def heightForWidth(self, width: int) -> int:
        return self._place(QRect(0, 0, width, 0), move=False)

    def setGeometry(self, rect: QRect) -> None:
        super().setGeometry(rect)
        self._place(rect, move=True)

    def sizeHint(self) -> QSize:
        return self.minimumSize()

    def minimumSize(self) -> QSize:
        size = QSize()
        for item in self._items:
            size = size.expandedTo(item.minimumSize())
        return size

    def _place(self, rect: QRect, *, move: bool) -> int:
        x, y, line = rect.x(), rect.y(), 0
        for item in self._items:
            hint = item.sizeHint()
            if x + hint.width() > rect.right() + 1 and line > 0:
                x = rect.x()
                y += line + self._spacing
                line = 0
            if move:
                item.setGeometry(QRect(x, y, hint.width(), hint.height()))
            x += hint.width() + self._spacing
            line = max(line, hint.height())
        return y + line - rect.y()


# -- chips ------------------------------------------------------------------------------


_NO_TAGS = {
    "ok": "No tag passed its threshold on this photo: add one below.",
    "pending": "No tags yet: the photo is waiting to be tagged.",
    "damaged": "No tags: the photo could not be read.",
    "missing": "No tags.",
}
"""What the panel says of a photo without tags, by its status (it never says "tagged"
beside "No tags yet")."""


class TagChip(QFrame):
    """One tag of one photo. Accepted: solid; suggested: outlined with its score;
    fallback: dimmed; rejected: struck through. The current chip of the panel wears a
    thick amber frame (`marked`). A / R / Delete pressed on it emit `keyed`; its buttons
    emit `acted`; Left / Right emit `stepped`."""

    acted = Signal(str, str)  # tag name, action (accept | reject | remove): a button
    keyed = Signal(str, str)  # tag name, action: a key pressed on the chip
    stepped = Signal(object, int)  # this chip, -1 (Left) or +1 (Right)
    focused = Signal(object)

    def __init__(self, info: PhotoTagInfo, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.info = info
        self.marked = False
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(6, MARK_WIDTH, MARK_WIDTH, MARK_WIDTH)  # room for the mark
        layout.setSpacing(2)
        text = info.name
        if info.state == "suggested" and info.score is not None:
            text = f"{info.name}  {info.score:.2f}".replace(" 0.", " .")
        self.label = QLabel(text)
        self.label.setTextFormat(Qt.TextFormat.PlainText)
        layout.addWidget(self.label)
        self.buttons: dict[str, QToolButton] = {}
        if info.state == "suggested":
            self._button("accept", "\u2713", "Accept this tag (A)", layout)
            self._button("reject", "\u2717", "Reject this tag: it is wrong (R)", layout)
        elif info.state == "accepted":
            self._button("remove", "\u00d7", "Remove this tag (Delete)", layout)
        else:
            self._button("accept", "\u21ba", "Accept this tag after all (A)", layout)
        self._style()
        self.setToolTip(plain_tooltip(self._tooltip()))
        self.setAccessibleName(f"Tag {info.name}, {self.state_text()}")

    def _button(self, action: str, text: str, tip: str, layout: QHBoxLayout) -> None:
        b = QToolButton(self)
        b.setText(text)
        b.setToolTip(tip)
        b.setAccessibleName(f"{tip.split(' (')[0]}: {self.info.name}")
        b.setAutoRaise(True)
        b.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        b.clicked.connect(lambda _=False, a=action: self.acted.emit(self.info.name, a))
        layout.addWidget(b)
        self.buttons[action] = b

    def state_text(self) -> str:
        i = self.info
        if i.state == "suggested":
            return "suggested, low confidence (fallback)" if i.fallback else "suggested"
        return i.state

    def _tooltip(self) -> str:
        i = self.info
        if i.score is not None and i.threshold is not None:
            score_text, th_text = score_and_threshold(i.score, i.threshold)
            score, th = f"score {score_text}", f"threshold {th_text}"
        else:
            score = "not scored" if i.score is None else f"score {fixed(i.score)}"
            th = "no threshold yet" if i.threshold is None else f"threshold {fixed(i.threshold)}"
        src = "added by you" if i.source == "user" else "automatic"
        conf = i.confidence or ("none" if i.state == "rejected" else "unknown")
        return (
            f"{i.name}\n{self.state_text()} ({src})\n{score} \u00b7 {th}\nconfidence: {conf}\n"
            "A accept \u00b7 R reject \u00b7 Delete remove (the framed tag)"
        )

    def _style(self) -> None:
        i = self.info
        palette = self.palette()
        font = QFont(self.label.font())
        if i.state == "accepted":
            self.setFrameShape(QFrame.Shape.Box)
            self.setAutoFillBackground(True)
            palette.setColor(QPalette.ColorRole.Window, palette.color(QPalette.ColorRole.Highlight))
            palette.setColor(
                QPalette.ColorRole.WindowText, palette.color(QPalette.ColorRole.HighlightedText)
            )
            palette.setColor(
                QPalette.ColorRole.ButtonText, palette.color(QPalette.ColorRole.HighlightedText)
            )
            font.setBold(True)
        elif i.state == "suggested":
            self.setFrameShape(QFrame.Shape.Box)
            if i.fallback:
                dim = palette.color(QPalette.ColorRole.PlaceholderText)
                palette.setColor(QPalette.ColorRole.WindowText, dim)
                font.setItalic(True)
        else:
            self.setFrameShape(QFrame.Shape.NoFrame)
            palette.setColor(
                QPalette.ColorRole.WindowText, palette.color(QPalette.ColorRole.PlaceholderText)
            )
            font.setStrikeOut(True)
        self.setPalette(palette)
        self.label.setPalette(palette)
        self.label.setFont(font)

    def set_marked(self, marked: bool) -> None:
        """Wear (or take off) the current chip's frame."""
        if marked != self.marked:
            self.marked = marked
            self.setAccessibleDescription(
                "current tag: A, R and Delete act on it" if marked else ""
            )
            self.update()

    def paintEvent(self, event) -> None:
        super().paintEvent(event)
        if self.marked:
            painter = QPainter(self)
            pen = QPen(MARK_COLOR, MARK_WIDTH)
            pen.setJoinStyle(Qt.PenJoinStyle.MiterJoin)
            painter.setPen(pen)
            half = MARK_WIDTH / 2
            painter.drawRect(self.rect().toRectF().adjusted(half, half, -half, -half))
            painter.end()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key = event.key()
        if key == Qt.Key.Key_A and self.info.state != "accepted":
            self.keyed.emit(self.info.name, "accept")
        elif key == Qt.Key.Key_R and self.info.state != "rejected":
            self.keyed.emit(self.info.name, "reject")
        elif key in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace):
            self.keyed.emit(self.info.name, "remove")
        elif key in (Qt.Key.Key_Left, Qt.Key.Key_Right):
            self.stepped.emit(self, -1 if key == Qt.Key.Key_Left else 1)
        else:
            super().keyPressEvent(event)
            return
        event.accept()

    def focusInEvent(self, event) -> None:
        super().focusInEvent(event)
        self.focused.emit(self)

    def mousePressEvent(self, event) -> None:
        self.setFocus(Qt.FocusReason.MouseFocusReason)
        super().mousePressEvent(event)


class SharedTagChip(QFrame):
    """A tag of several photos: on all of them, or on `count` of `total` (then a + adds
    it to all). Its x removes it from all of them."""

    acted = Signal(str, str)  # tag name, action (add | remove)

    def __init__(self, name: str, count: int, total: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.name, self.count, self.total = name, count, total
        self.setFrameShape(QFrame.Shape.Box)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(6, 1, 2, 1)
        layout.setSpacing(2)
        self.label = QLabel(name)
        self.label.setTextFormat(Qt.TextFormat.PlainText)
        layout.addWidget(self.label)
        self.count_label: QLabel | None = None
        if count < total:
            self.count_label = QLabel(f"{count:,} of {total:,}")
            self.count_label.setTextFormat(Qt.TextFormat.PlainText)
            self.count_label.setForegroundRole(QPalette.ColorRole.PlaceholderText)
            layout.addWidget(self.count_label)
        self.buttons: dict[str, QToolButton] = {}
        if count < total:
            self._button("add", "+", f"Add this tag to all {total:,}", layout)
        self._button("remove", "\u00d7", f"Remove this tag from all {total:,}", layout)
        on = "all" if count >= total else f"{count:,} of {total:,}"
        self.setAccessibleName(f"Tag {name}, on {on} selected photos")

    def _button(self, action: str, text: str, tip: str, layout: QHBoxLayout) -> None:
        b = QToolButton(self)
        b.setText(text)
        b.setToolTip(tip)
        b.setAccessibleName(f"{tip}: {self.name}")
        b.setAutoRaise(True)
        b.clicked.connect(lambda _=False, a=action: self.acted.emit(self.name, a))
        layout.addWidget(b)
        self.buttons[action] = b


# -- the panel --------------------------------------------------------------------------


class DetailPanel(QScrollArea):
    """Signals carry plain data; the window turns them into worker requests.
    `answered_all(photo id)`: a key answered the last open suggestion of that photo."""

    correct = Signal(object, str, str)  # photo ids (tuple), tag name, action
    more_like_this = Signal(int)
    shown = Signal(object)  # the photo ids shown (a tuple), whenever they are set
    answered_all = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setAccessibleName("Photo details")
        body = QWidget()
        self.setWidget(body)
        layout = QVBoxLayout(body)
        layout.setContentsMargins(6, 6, 6, 6)

        self.preview = QLabel()
        self.preview.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.preview.setMinimumSize(160, 120)
        self.preview.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.preview.setAccessibleName("Preview")
        self.preview.setTextFormat(Qt.TextFormat.PlainText)
        layout.addWidget(self.preview)

        self.name = plain_label(accessible="File name")
        font = self.name.font()
        font.setBold(True)
        self.name.setFont(font)
        self.facts = plain_label(accessible="File facts")
        layout.addWidget(self.name)
        layout.addWidget(self.facts)

        self.similar_button = QPushButton("More like this")
        self.similar_button.setToolTip("Show the photos most like this one (needs the model)")
        self.similar_button.clicked.connect(self._similar)
        layout.addWidget(self.similar_button)

        self.tags_title = QLabel("<b>Tags</b>")
        layout.addWidget(self.tags_title)
        self.chips_box = QWidget()
        self.chips_box.setAccessibleName("Tags of this photo")
        self.chips = FlowLayout(self.chips_box)
        layout.addWidget(self.chips_box)
        self.no_tags = plain_label("No tags yet.")
        layout.addWidget(self.no_tags)

        self.all_title = plain_label()
        self.all_box = QWidget()
        self.all_box.setAccessibleName("Tags on all the selected photos")
        self.all_chips = FlowLayout(self.all_box)
        self.some_title = plain_label()
        self.some_box = QWidget()
        self.some_box.setAccessibleName("Tags on some of the selected photos")
        self.some_chips = FlowLayout(self.some_box)
        for title in (self.all_title, self.some_title):
            font = title.font()
            font.setBold(True)
            title.setFont(font)
        for w in (self.all_title, self.all_box, self.some_title, self.some_box):
            layout.addWidget(w)

        self.add_field = QLineEdit()
        self.add_field.setPlaceholderText("Add a tag\u2026 (Enter)")
        self.add_field.setAccessibleName("Add a tag")
        self.add_field.setToolTip("Type a tag and press Enter to add it")
        self.add_field.returnPressed.connect(self._add)
        layout.addWidget(self.add_field)
        self.remove_field = QLineEdit()
        self.remove_field.setPlaceholderText("Remove a tag from all selected\u2026 (Enter)")
        self.remove_field.setAccessibleName("Remove a tag from the selected photos")
        self.remove_field.returnPressed.connect(self._remove)
        layout.addWidget(self.remove_field)
        self.match = MatchPanel()
        self.match.setAccessibleName("Match descriptions")
        self.match.matched.connect(self._match_shown)
        self._reveal_timer = QTimer(self)
        self._reveal_timer.setSingleShot(True)
        self._reveal_timer.setInterval(0)
        self._reveal_timer.timeout.connect(self._reveal_match)
        self.match.edit.submitted.connect(self._match_asked)
        self.match.button.clicked.connect(self._match_asked)
        layout.addWidget(self.match)
        layout.addStretch(1)

        self.completer = QCompleter([], self)
        self.completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.completer.setFilterMode(Qt.MatchFlag.MatchContains)
        self.add_field.setCompleter(self.completer)
        self.remove_field.setCompleter(self.completer)

        self.loader = PreviewLoader(self)
        self.loader.ready.connect(self._preview_ready)
        self._photo_ids: tuple[int, ...] = ()
        self.detail: PhotoDetail | None = None
        self._chip_widgets: list[TagChip] = []
        self._mark: str | None = None
        """The current chip's tag name (None: no chip is current)."""
        self._mark_photo: int | None = None
        """The photo `_mark` belongs to; another photo gets its best suggestion."""
        self._mark_done = False
        """Every suggestion of `_mark_photo` was answered: no chip is current on purpose."""
        self._answered: set[str] = set()
        """Tags of `_mark_photo` acted on here whose chips still show them suggested (the
        worker has not replied yet): the mark passes over them."""
        self._shared_widgets: list[SharedTagChip] = []
        self.show_nothing()

    # -- content ----------------------------------------------------------------------

    @property
    def photo_ids(self) -> tuple[int, ...]:
        """The photos shown: one, several (selected together) or none."""
        return self._photo_ids

    @photo_ids.setter
    def photo_ids(self, ids: tuple[int, ...]) -> None:
        self._photo_ids = ids
        self.shown.emit(ids)

    def set_client(self, client: Matcher | None) -> None:
        """What the match section asks (the session of the library on screen)."""
        self.match.set_client(client)

    def set_vocabulary(self, names: list[str]) -> None:
        self.completer.model().setStringList(names)  # type: ignore[attr-defined]

    def show_nothing(self) -> None:
        self.photo_ids = ()
        self.detail = None
        self._forget_mark()
        self._set_shared({}, 0)
        self.preview.clear()
        self.preview.setText("Select a photo to see it here.")
        self.name.setText("")
        self.facts.setText("")
        self._set_chips([])
        self.no_tags.hide()
        for w in (self.add_field, self.remove_field, self.similar_button, self.tags_title):
            w.hide()
        self.match.set_photo(None)
        self.match.hide()

    def show_many(self, ids: tuple[int, ...]) -> None:
        """Several photos: their shared tags follow with `set_shared`."""
        if ids != self.photo_ids:
            self._set_shared({}, 0)
        self.photo_ids = ids
        self.detail = None
        self._forget_mark()
        self.preview.clear()
        self.preview.setText(f"{len(ids):,} photos selected")
        self.name.setText("")
        self.facts.setText("Add or remove a tag on all of them at once.")
        self._set_chips([])
        self.no_tags.hide()
        self.similar_button.hide()
        self.tags_title.hide()
        self.add_field.setPlaceholderText(f"Add a tag to all {len(ids):,}\u2026 (Enter)")
        self.add_field.show()
        self.remove_field.show()
        self.match.set_photo(None)
        self.match.hide()

    def show_photo(
        self, detail: PhotoDetail, tags: list[PhotoTagInfo], root: Path | None, *, reload=True
    ) -> None:
        same = self.detail is not None and self.detail.id == detail.id
        unchanged = same and detail == self.detail and self.photo_ids == (detail.id,)
        if unchanged and not reload and [c.info for c in self._chip_widgets] == tags:
            return  # a refresh that changed nothing: new chips would relayout the panel
        self.photo_ids = (detail.id,)
        self.detail = detail
        folder, _, name = detail.path.rpartition("/")
        self.name.setText(name)
        self.name.setToolTip(plain_tooltip(detail.path))
        lines = [f"Folder: {folder or '(top)'}", f"Size: {human_size(detail.size)}"]
        if detail.width and detail.height:
            lines.append(f"Dimensions: {detail.width} \u00d7 {detail.height}")
        if detail.taken_at is not None:
            lines.append(f"Taken: {_dt.datetime.fromtimestamp(detail.taken_at):%Y-%m-%d %H:%M}")
        else:  # the photo does not say: the file's time is the best guess
            modified = _dt.datetime.fromtimestamp(detail.mtime_ns / 1e9)
            lines.append(f"File date: {modified:%Y-%m-%d %H:%M}")
        carried = any(t.state in ("accepted", "suggested") for t in tags)
        status = {
            "ok": "tagged" if carried else "scored; no tag passed its threshold",
            "pending": "waiting to be tagged",
            "damaged": "damaged",
            "missing": "missing: the file is gone (its tags are kept)",
        }.get(detail.status, detail.status)
        lines.append(f"Status: {status}")
        self.no_tags.setText(_NO_TAGS.get(detail.status, "No tags."))
        if detail.error:
            lines.append(f"Reason: {detail.error}")
        self.facts.setText("\n".join(lines))
        self.similar_button.setVisible(detail.status in ("ok", "missing"))
        self.add_field.setPlaceholderText("Add a tag\u2026 (Enter)")
        self.add_field.show()
        self.remove_field.hide()
        self.tags_title.show()
        self._set_shared({}, 0)
        self._set_chips(tags)
        self.no_tags.setVisible(not tags)
        self.match.set_photo(detail.id, detail.status)
        self.match.show()
        if reload or not same:
            if root is not None and detail.status != "missing":
                self.preview.setText("Loading\u2026")
                self.loader.load(root / detail.path, detail.id)
            else:
                self.preview.setPixmap(QPixmap())
                self.preview.setText("The file is missing." if detail.status == "missing" else "")

    def _set_chips(self, tags: list[PhotoTagInfo]) -> None:
        """New chips for `tags` (of `detail`, if any). The mark stays on its tag while the
        same photo is shown; another photo's mark starts on its best suggestion."""
        had_focus = any(c.hasFocus() for c in self._chip_widgets)
        for chip in self._chip_widgets:
            self.chips.removeWidget(chip)
            chip.hide()  # at once: deleteLater waits for the event loop
            chip.deleteLater()
        self._chip_widgets = []
        for info in tags:
            chip = TagChip(info, self.chips_box)
            chip.acted.connect(self._chip_acted)
            chip.keyed.connect(self._chip_keyed)
            chip.stepped.connect(self._chip_stepped)
            chip.focused.connect(self._chip_focused)
            chip.installEventFilter(self)
            self.chips.addWidget(chip)
            self._chip_widgets.append(chip)
        photo = self.detail.id if self.detail is not None else None
        states = {c.info.name: c.info.state for c in self._chip_widgets}
        if photo is None or photo != self._mark_photo:
            self._mark_photo = photo
            self._mark_done = False
            self._answered = set()
            self._mark = None
        self._answered = {n for n in self._answered if states.get(n) == "suggested"}
        if self._mark not in states and not self._mark_done:
            self._mark = self._best_mark()
        self._show_mark(focus=had_focus)
        before: QWidget = self.similar_button
        for chip in self._chip_widgets:  # Tab past the last chip: the add field
            QWidget.setTabOrder(before, chip)
            before = chip
        QWidget.setTabOrder(before, self.add_field)
        self.chips.invalidate()
        self.chips_box.updateGeometry()

    def _open_suggestions(self) -> list[TagChip]:
        """Suggested chips not answered yet, in order (best score first)."""
        return [
            c
            for c in self._chip_widgets
            if c.info.state == "suggested" and c.info.name not in self._answered
        ]

    def _best_mark(self) -> str | None:
        """The best open suggestion; without one, the first chip."""
        chips = self._open_suggestions() or self._chip_widgets
        return chips[0].info.name if chips else None

    def _forget_mark(self) -> None:
        self._mark, self._mark_photo, self._mark_done = None, None, False
        self._answered = set()

    def _set_mark(self, name: str | None, *, focus: bool = False) -> None:
        self._mark = name
        self._mark_done = name is None
        self._show_mark(focus=focus)

    def _show_mark(self, *, focus: bool) -> None:
        current = self.current_chip()
        for chip in self._chip_widgets:
            chip.set_marked(chip is current)
        if focus and current is not None and not current.hasFocus():
            current.setFocus(Qt.FocusReason.OtherFocusReason)

    def chip_widgets(self) -> list[TagChip]:
        return list(self._chip_widgets)

    def current_chip(self) -> TagChip | None:
        """The marked chip: what A / R / Delete act on (None: nothing is marked)."""
        if self._mark is None:
            return None
        return next((c for c in self._chip_widgets if c.info.name == self._mark), None)

    def focus_chips(self) -> None:
        chip = self.current_chip() or (self._chip_widgets[0] if self._chip_widgets else None)
        if chip is not None:
            chip.setFocus()

    # -- acting -----------------------------------------------------------------------

    def act_on_current(self, action: str) -> bool:
        """A / R / Delete: act on the marked chip, then mark the next open suggestion;
        after the last one, `answered_all` (the window goes on to the next photo)."""
        chip = self.current_chip()
        if chip is None or len(self.photo_ids) != 1:
            return False
        if action == "accept" and chip.info.state == "accepted":
            return False
        if action == "reject" and chip.info.state == "rejected":
            return False
        self._act(chip, action, keyed=True)
        return True

    def _act(self, chip: TagChip, action: str, *, keyed: bool) -> None:
        """Send the correction, and move the mark off this chip when it was on it (or a
        key acted): to the next open suggestion after it, else the first one left."""
        name, photo = chip.info.name, self.photo_ids[0]
        was_suggestion = chip.info.state == "suggested"
        self._answered.add(name)
        self.correct.emit(self.photo_ids, name, action)
        if self._mark != name and not keyed:
            return  # a click on another chip: the mark stays where it is
        had_focus = chip.hasFocus()
        open_ = self._open_suggestions()
        at = self._chip_widgets.index(chip)
        later = [c for c in open_ if self._chip_widgets.index(c) > at]
        following = (later or open_ or [None])[0]
        self._set_mark(following.info.name if following else None, focus=had_focus)
        if following is None and keyed and was_suggestion:
            self.answered_all.emit(photo)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        """Tab / Shift+Tab on a chip mark the next / previous chip (past the last one,
        the keyboard goes on to the field after the chips)."""
        if (
            isinstance(obj, TagChip)
            and event.type() == QEvent.Type.KeyPress
            and isinstance(event, QKeyEvent)
            and event.key() in (Qt.Key.Key_Tab, Qt.Key.Key_Backtab)
            and not event.modifiers() & _COMMAND_MODIFIERS
        ):
            back = event.key() == Qt.Key.Key_Backtab or bool(
                event.modifiers() & Qt.KeyboardModifier.ShiftModifier
            )
            return self._step_mark(obj, -1 if back else 1)
        return super().eventFilter(obj, event)

    def _chip_stepped(self, chip: object, step: int) -> None:
        if isinstance(chip, TagChip):
            self._step_mark(chip, step)

    def _step_mark(self, chip: TagChip, step: int) -> bool:
        if chip not in self._chip_widgets:
            return False
        at = self._chip_widgets.index(chip) + step
        if not 0 <= at < len(self._chip_widgets):
            return False
        self._set_mark(self._chip_widgets[at].info.name, focus=True)
        return True

    def _chip_focused(self, chip: object) -> None:
        if isinstance(chip, TagChip) and chip in self._chip_widgets:
            self._set_mark(chip.info.name)

    def _chip_acted(self, name: str, action: str) -> None:
        chip = next((c for c in self._chip_widgets if c.info.name == name), None)
        if chip is not None and len(self.photo_ids) == 1:
            self._act(chip, action, keyed=False)

    def _chip_keyed(self, name: str, action: str) -> None:
        chip = next((c for c in self._chip_widgets if c.info.name == name), None)
        if chip is not None and len(self.photo_ids) == 1:
            self._act(chip, action, keyed=True)

    # -- several photos ---------------------------------------------------------------

    def set_shared(self, ids: tuple[int, ...], counts: dict[str, int]) -> None:
        """The tags these photos carry, with how many carry each (shown while these
        photos are the ones shown)."""
        if ids == self.photo_ids and len(ids) > 1:
            self._set_shared(counts, len(ids))

    def shared_chips(self) -> tuple[list[SharedTagChip], list[SharedTagChip]]:
        """The chips of the tags on all the photos shown, and of those on some."""
        on_all = [c for c in self._shared_widgets if c.count >= c.total]
        return on_all, [c for c in self._shared_widgets if c.count < c.total]

    def _set_shared(self, counts: dict[str, int], total: int) -> None:
        for chip in self._shared_widgets:
            chip.hide()
            chip.deleteLater()
        self._shared_widgets = []
        on_all = sorted((n for n, k in counts.items() if k >= total), key=str.casefold)
        some = sorted(
            (n for n, k in counts.items() if k < total), key=lambda n: (-counts[n], n.casefold())
        )
        for names, flow, box in (
            (on_all, self.all_chips, self.all_box),
            (some, self.some_chips, self.some_box),
        ):
            for name in names:
                chip = SharedTagChip(name, counts[name], total, box)
                chip.acted.connect(self._shared_acted)
                flow.addWidget(chip)
                self._shared_widgets.append(chip)
            flow.invalidate()
            box.updateGeometry()
        shown = total > 1
        self.all_title.setText(f"On all {total:,}" if on_all else f"No tag is on all {total:,}")
        self.some_title.setText(f"On some ({len(some):,} tags)")
        self.all_title.setVisible(shown and bool(counts))
        self.all_box.setVisible(shown and bool(on_all))
        self.some_title.setVisible(shown and bool(some))
        self.some_box.setVisible(shown and bool(some))

    def _shared_acted(self, name: str, action: str) -> None:
        if len(self.photo_ids) > 1:
            self.correct.emit(self.photo_ids, name, action)

    def _add(self) -> None:
        name = self.add_field.text().strip()
        if name and self.photo_ids:
            self.add_field.clear()
            self.correct.emit(self.photo_ids, name, "add")

    def _remove(self) -> None:
        name = self.remove_field.text().strip()
        if name and self.photo_ids:
            self.remove_field.clear()
            self.correct.emit(self.photo_ids, name, "remove")

    def _similar(self) -> None:
        if self.detail is not None:
            self.more_like_this.emit(self.detail.id)

    def _match_asked(self) -> None:
        self._reveal_timer.start()

    def _match_shown(self, asked: bool) -> None:
        """Bring the ranking the user asked for into view (re-matches leave the scroll),
        once the new rows are laid out."""
        if asked:
            self._reveal_timer.start()

    def _reveal_match(self) -> None:
        # The new rows' geometry first (their layouts may still be waiting to run, each
        # inside the last): scrolling to a row that is not laid out scrolls nowhere.
        for _ in range(3):
            QCoreApplication.sendPostedEvents(None, QEvent.Type.LayoutRequest)
        shown = [self.match.message, *self.match.rows[:3]]
        self.ensureWidgetVisible(shown[-1], 0, 8)
        self.ensureWidgetVisible(self.match.edit, 0, 8)

    def _preview_ready(self, photo_id: int, image: object, problem: str) -> None:
        if self.detail is None or self.detail.id != photo_id:
            return
        if isinstance(image, QImage):
            pix = QPixmap.fromImage(image)
            width = max(160, self.viewport().width() - 16)
            height = max(160, min(PREVIEW_MAX_HEIGHT, self.viewport().height() // 2))
            if pix.width() > width or pix.height() > height:
                pix = pix.scaled(
                    width,
                    height,
                    Qt.AspectRatioMode.KeepAspectRatio,
                    Qt.TransformationMode.SmoothTransformation,
                )
            self.preview.setPixmap(pix)
        else:
            self.preview.setPixmap(QPixmap())
            self.preview.setText(f"No preview: {problem}" if problem else "No preview")

    def shutdown(self) -> None:
        self.loader.shutdown()
