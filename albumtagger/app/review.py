"""Review mode: the suggestions nearest their tag's threshold, one photo and tag at a
time, answered yes or no with a key; each answer goes to the thresholds at once.

Keys (handled by the dialog itself, so they work without focus on a button):
Y or Right arrow: yes; N or Left arrow: no; Space: skip; Ctrl+Z or Backspace: undo the
last answer; Esc: back to the photos.

The queue is read from the worker ahead of time and read again after every answer (an
answer moves its tag's threshold, which changes what is worth asking), so the next
question shows at once while the worker learns from the last one. With it, how many
questions remain (close calls without an answer) for the tag asked about and in all.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QFont, QImage, QKeyEvent, QKeySequence, QPainter, QPixmap
from PySide6.QtWidgets import (
    QDialog,
    QHBoxLayout,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from albumtagger.app.detail import PreviewLoader, plain_label
from albumtagger.app.numbers import fixed, score_and_threshold
from albumtagger.app.photo_model import file_name
from albumtagger.app.worker import Reply
from albumtagger.tagging.results import Correction

if TYPE_CHECKING:
    from albumtagger.app.libraries import Libraries

FETCH = 30
"""Queue items asked for at a time (plus those skipped, which the queue still holds)."""
LOW = 5
"""Fewer items than this waiting: ask for more."""
PREVIEW_PIXELS = 1600
"""Longest side of the decoded preview."""
CACHED_PREVIEWS = 6
PREFETCH = 2
"""Previews decoded ahead of the one on screen."""
MOVED = 5e-4
"""Threshold changes smaller than this are reported as unchanged."""

YES_KEYS = (Qt.Key.Key_Y, Qt.Key.Key_Right)
NO_KEYS = (Qt.Key.Key_N, Qt.Key.Key_Left)
SKIP_KEYS = (Qt.Key.Key_Space,)
KEYS_HELP = (
    "Y or \u2192 yes \u00b7 N or \u2190 no \u00b7 Space skip \u00b7 Ctrl+Z undo \u00b7 Esc back"
)


@dataclass(frozen=True)
class ReviewItem:
    """One question: does `tag` apply to this photo?"""

    photo_id: int
    path: str
    tag: str
    score: float
    threshold: float
    suggested: bool

    @property
    def key(self) -> tuple[str, str]:
        return (self.path, self.tag)


def article(word: str) -> str:
    """ "a" or "an" before `word` (by its first letter)."""
    return "an" if word[:1].lower() in "aeiou" else "a"


def threshold_text(c: Correction) -> str:
    """What the answer did to its tag's threshold, in words."""
    before, after = c.threshold_before, c.threshold_after
    if c.note:
        return f"\u201c{c.tag}\u201d: {c.note}"
    if before is None or after is None:
        return f"The threshold of \u201c{c.tag}\u201d is not learned yet."
    if abs(after - before) < MOVED:
        return f"The threshold of \u201c{c.tag}\u201d stayed at {fixed(after)}."
    way = "stricter" if after > before else "looser"
    return f"Threshold of \u201c{c.tag}\u201d: {fixed(before)} \u2192 {fixed(after)} ({way})"


class PreviewView(QWidget):
    """A photo scaled to fill the space (aspect kept), or a line of text."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(240, 180)
        self.setAccessibleName("Photo")
        self._pixmap = QPixmap()
        self._scaled = QPixmap()
        self.text = ""

    def sizeHint(self) -> QSize:
        return QSize(800, 600)

    def has_image(self) -> bool:
        return not self._pixmap.isNull()

    def set_image(self, image: QImage) -> None:
        self._pixmap = QPixmap.fromImage(image)
        self.text = ""
        self._rescale()

    def set_text(self, text: str) -> None:
        self._pixmap = QPixmap()
        self._scaled = QPixmap()
        self.text = text
        self.update()

    def _rescale(self) -> None:
        if self._pixmap.isNull():
            self._scaled = QPixmap()
        else:
            ratio = self.devicePixelRatioF()
            target = self.size() * ratio
            self._scaled = self._pixmap.scaled(
                target,
                Qt.AspectRatioMode.KeepAspectRatio,
                Qt.TransformationMode.SmoothTransformation,
            )
            self._scaled.setDevicePixelRatio(ratio)
        self.update()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._rescale()

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        if not self._scaled.isNull():
            size = self._scaled.deviceIndependentSize()
            x = (self.width() - size.width()) / 2
            y = (self.height() - size.height()) / 2
            painter.drawPixmap(int(x), int(y), self._scaled)
        elif self.text:
            painter.setPen(self.palette().placeholderText().color())
            painter.drawText(
                self.rect(), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self.text
            )
        painter.end()


class ReviewDialog(QDialog):
    """Review mode over the main window. `answered(Correction)` after each answer the
    worker took; `item_shown(ReviewItem | None)` whenever the question changes."""

    answered = Signal(object)
    item_shown = Signal(object)
    queue_read = Signal()
    remaining_read = Signal()

    def __init__(self, libraries: Libraries, parent: QWidget) -> None:
        super().__init__(parent)
        self._libraries = libraries
        self.root = libraries.root
        self.setWindowTitle("Review suggestions \u2013 albumtagger")
        self.setWindowModality(Qt.WindowModality.WindowModal)
        self.current: ReviewItem | None = None
        self.upcoming: list[ReviewItem] = []
        self.answers = 0
        """Answers the worker took (less those undone)."""
        self.photos_changed = 0
        """Other photos whose tags changed because an answer moved a threshold."""
        self.tag_added = 0
        self.tag_removed = 0
        self.left: dict[str, int] | None = None
        """Questions remaining by tag, as last read (None: not read yet)."""
        self._history: list[tuple[ReviewItem, Correction]] = []
        self._answered: set[tuple[str, str]] = set()
        self._skipped: set[tuple[str, str]] = set()
        self._fetching = False
        self._dirty = False
        self._exhausted = False
        self._closed = False
        self._images: OrderedDict[int, QImage | str] = OrderedDict()
        self._build()
        self._loader = PreviewLoader(self)
        self._loader.ready.connect(self._image_ready)
        self._prefetcher = PreviewLoader(self)
        self._prefetcher.ready.connect(self._image_ready)
        self._prefetching: int | None = None
        self._preview_state: tuple[int, str] | None = None
        libraries.undone.connect(self._undone)
        libraries.library_opened.connect(self._library_changed)
        self._show_current()

    # -- building ---------------------------------------------------------------------

    def _build(self) -> None:
        self.preview = PreviewView()
        self.file = plain_label(accessible="File")
        self.file.setAlignment(Qt.AlignmentFlag.AlignCenter)

        big = QFont(self.font())
        big.setPointSizeF(big.pointSizeF() * 1.6)
        self.question_start = plain_label()
        self.question_start.setWordWrap(False)
        self.tag_label = plain_label(accessible="Tag")
        self.tag_label.setWordWrap(False)
        self.question_end = plain_label("?")
        self.question_end.setWordWrap(False)
        for label in (self.question_start, self.tag_label, self.question_end):
            label.setFont(big)
        emphasis = QFont(big)
        emphasis.setBold(True)
        emphasis.setItalic(True)
        self.tag_label.setFont(emphasis)
        question = QHBoxLayout()
        question.setSpacing(0)
        question.addStretch(1)
        question.addWidget(self.question_start)
        question.addWidget(self.tag_label)
        question.addWidget(self.question_end)
        question.addStretch(1)
        self.detail = plain_label(accessible="Score")
        self.detail.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty = plain_label(accessible="Nothing to review")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.setFont(big)
        self.empty.hide()

        self.yes = self._button("Yes (Y)", lambda: self.answer(True))
        self.no = self._button("No (N)", lambda: self.answer(False))
        self.skip_button = self._button("Skip (Space)", self.skip)
        self.undo_button = self._button("Undo (Ctrl+Z)", self.undo)
        self.leave = self._button("Back to the photos (Esc)", self.reject)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        for b in (self.no, self.yes, self.skip_button):
            buttons.addWidget(b)
        buttons.addSpacing(24)
        buttons.addWidget(self.undo_button)
        buttons.addWidget(self.leave)
        buttons.addStretch(1)

        self.counter = plain_label(accessible="Answers")
        self.counter.setToolTip(
            "Answers given in this review, and the other photos whose tags changed "
            "because an answer moved a tag's threshold (how many gained or lost the "
            "asked tag)"
        )
        self.moved = plain_label(accessible="Threshold change")
        self.remaining = plain_label(accessible="Questions left")
        self.remaining.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.remaining.setToolTip(
            "Close calls nobody answered yet: suggestions short of high confidence and "
            "photos that just missed a tag"
        )
        self.status = plain_label(accessible="Status")
        self.keys = plain_label(KEYS_HELP, accessible="Keys")
        self.keys.setEnabled(False)
        self.keys.setWordWrap(False)
        footer = QHBoxLayout()
        footer.addWidget(self.counter, 1)
        footer.addWidget(self.moved, 2)
        footer.addWidget(self.keys, 0, Qt.AlignmentFlag.AlignRight)

        box = QVBoxLayout(self)
        box.addWidget(self.preview, 1)
        box.addWidget(self.empty, 1)
        box.addWidget(self.file)
        box.addLayout(question)
        box.addWidget(self.detail)
        box.addWidget(self.remaining)
        box.addLayout(buttons)
        box.addWidget(self.status)
        box.addLayout(footer)
        self._update_counter()

    def _button(self, text: str, slot) -> QPushButton:
        button = QPushButton(text)
        # The dialog takes every key; a focused button would eat Space and the arrows.
        button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        button.clicked.connect(slot)
        return button

    # -- opening and closing ------------------------------------------------------------

    def start(self) -> None:
        """Show over the main window and read the queue."""
        self.setGeometry(self.parentWidget().geometry())
        self.open()
        self.setFocus()
        self._fetch()

    def done(self, result: int) -> None:
        if not self._closed:
            self._closed = True
            self._libraries.undone.disconnect(self._undone)
            self._libraries.library_opened.disconnect(self._library_changed)
            self._loader.shutdown()
            self._prefetcher.shutdown()
        super().done(result)

    def _library_changed(self, *_: object) -> None:
        self.reject()

    # -- keys ---------------------------------------------------------------------------

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key = event.key()
        plain = not event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier
        if event.matches(QKeySequence.StandardKey.Undo) or (plain and key == Qt.Key.Key_Backspace):
            self.undo()
        elif plain and key in YES_KEYS:
            self.answer(True)
        elif plain and key in NO_KEYS:
            self.answer(False)
        elif plain and key in SKIP_KEYS:
            self.skip()
        elif key == Qt.Key.Key_Escape:
            self.reject()
        else:
            super().keyPressEvent(event)
            return
        event.accept()

    # -- the queue ------------------------------------------------------------------------

    @property
    def fetching(self) -> bool:
        """The queue is being read (or will be read again)."""
        return self._fetching or self._dirty

    def _fetch(self) -> None:
        """Ask the worker for the queue (once at a time; again after it if asked meanwhile)."""
        if self._closed:
            return
        if self._fetching:
            self._dirty = True
            return
        limit = FETCH + len(self._skipped) + len(self._answered)
        on_reply = partial(self._queue_reply, limit)
        self._fetching = self._libraries.client.review_queue(limit, on_reply=on_reply)
        if not self._fetching:
            self.status.setText("No library is open.")
        else:
            self._libraries.client.review_remaining(on_reply=self._remaining_reply)
        self._show_current()

    def _remaining_reply(self, reply: Reply) -> None:
        if self._closed or reply.error:
            return
        self.left = dict(reply.result or {})
        self._show_remaining()
        self.remaining_read.emit()

    def _show_remaining(self) -> None:
        left = self.left
        if left is None:
            self.remaining.setText("")
            return
        total = sum(left.values())
        in_all = f"{total:,} question{'s' if total != 1 else ''} left in all"
        if self.current is None:
            self.remaining.setText(in_all if total else "")
            return
        n = left.get(self.current.tag, 0)
        self.remaining.setText(f"{n:,} left for \u201c{self.current.tag}\u201d, {total:,} in all")

    def _queue_reply(self, asked: int, reply: Reply) -> None:
        if self._closed:
            return
        if reply.error:
            self._fetching = False
            self.status.setText(f"Could not read the suggestions: {reply.error}")
            self._show_current()
            return
        items: list[dict[str, Any]] = list(reply.result or [])
        self._exhausted = len(items) < asked
        skip = self._answered | self._skipped
        if self.current is not None:
            skip.add(self.current.key)
        upcoming = []
        for i in items:
            item = ReviewItem(
                int(i["photo_id"]),
                str(i["path"]),
                str(i["tag"]),
                float(i.get("score", 0.0)),
                float(i.get("threshold", 0.0)),
                bool(i.get("suggested", False)),
            )
            if item.key not in skip:
                upcoming.append(item)
                skip.add(item.key)
        self.upcoming = upcoming
        self._fetching = False
        if self._dirty:
            self._dirty = False
            self._fetch()
        if self.current is None:
            self._advance()
        else:
            self._prefetch()
            self._show_current()
        self.queue_read.emit()

    def _advance(self) -> None:
        self.current = self.upcoming.pop(0) if self.upcoming else None
        if len(self.upcoming) < LOW and not self._exhausted:
            self._fetch()
        self._show_current()
        self._prefetch()

    # -- answering ------------------------------------------------------------------------

    def answer(self, yes: bool) -> None:
        """Send the answer about the photo on screen and show the next question."""
        item = self.current
        if item is None or self._closed:
            return
        self._answered.add(item.key)
        on_reply = partial(self._answer_reply, item)
        sent = self._libraries.client.answer(item.photo_id, item.tag, yes, on_reply=on_reply)
        if not sent:
            self._answered.discard(item.key)
            return
        self._exhausted = False
        self._fetch()  # after the answer in the worker's queue: the queue it learned
        self._advance()

    def _answer_reply(self, item: ReviewItem, reply: Reply) -> None:
        if self._closed:
            return
        if reply.error:
            self._answered.discard(item.key)
            self.status.setText(f"The answer about {file_name(item.path)} failed: {reply.error}")
            return
        correction = reply.result
        assert isinstance(correction, Correction)
        self._history.append((item, correction))
        self.answers += 1
        self.photos_changed += correction.photos_changed
        self.tag_added += correction.added
        self.tag_removed += correction.removed
        self.moved.setText(threshold_text(correction))
        self.status.setText("")
        self._update_counter()
        self.answered.emit(correction)

    def skip(self) -> None:
        """Leave this question for another time (it is not asked again in this review)."""
        if self.current is None:
            return
        self._skipped.add(self.current.key)
        self._advance()

    def undo(self) -> None:
        """Undo the newest correction (the last answer, when there is one)."""
        self._libraries.undo()

    def _undone(self, reply: Reply) -> None:
        if self._closed:
            return
        if reply.error:
            self.status.setText(f"Undo failed: {reply.error}")
            return
        c = reply.result
        if c is None:
            self.status.setText("Nothing to undo.")
            return
        assert isinstance(c, Correction)
        self.moved.setText(threshold_text(c))
        if self._history and (self._history[-1][1].path, self._history[-1][1].tag) == (
            c.path,
            c.tag,
        ):
            item, old = self._history.pop()
            self.answers -= 1
            self.photos_changed -= old.photos_changed
            self.tag_added -= old.added
            self.tag_removed -= old.removed
            self._answered.discard(item.key)
            # Ask the same question again.
            if self.current is not None:
                self.upcoming.insert(0, self.current)
            self.current = item
            self.status.setText(f"Undone: your answer about {file_name(item.path)}.")
            self._update_counter()
            self._show_current()
            self._prefetch()
        else:
            self.status.setText(c.describe())
        self._exhausted = False
        self._fetch()

    # -- showing ----------------------------------------------------------------------------

    def _update_counter(self) -> None:
        n = self.answers
        changed = self.photos_changed
        text = f"{n:,} answer{'s' if n != 1 else ''} \u00b7 {changed:,} other photo"
        text += f"{'s' if changed != 1 else ''} re-tagged"
        if self.tag_added or self.tag_removed:
            text += f" (asked tag +{self.tag_added:,} / \u2212{self.tag_removed:,})"
        self.counter.setText(text)

    def _show_current(self) -> None:
        item = self.current
        has = item is not None
        self._show_remaining()
        for w in (self.preview, self.file, self.detail):
            w.setVisible(has)
        for w in (self.question_start, self.tag_label, self.question_end):
            w.setVisible(has)
        for b in (self.yes, self.no, self.skip_button):
            b.setEnabled(has)
        self.empty.setVisible(not has)
        if item is None:
            if self._fetching:
                self.empty.setText("Looking for suggestions worth a second look\u2026")
            else:
                text = (
                    "Nothing needs review right now.\nEvery suggestion is clearly above or "
                    "below its tag's threshold."
                )
                if self._skipped:
                    text += f"\nYou skipped {len(self._skipped):,}; they come back next time."
                self.empty.setText(text)
            self.item_shown.emit(None)
            return
        self.file.setText(item.path)
        self.question_start.setText(f"Is this {article(item.tag)} ")
        self.tag_label.setText(item.tag)
        guess = "suggested" if item.suggested else "not suggested"
        score, threshold = score_and_threshold(item.score, item.threshold)
        self.detail.setText(f"Score {score}, threshold {threshold}: {guess}, but only just")
        self._show_preview(item)
        self.item_shown.emit(item)

    def _show_preview(self, item: ReviewItem) -> None:
        image = self._images.get(item.photo_id)
        state = (item.photo_id, "loading" if image is None else "ready")
        if state == self._preview_state:
            return
        self._preview_state = state
        if isinstance(image, QImage):
            self.preview.set_image(image)
        elif isinstance(image, str):
            self.preview.set_text(f"No preview: {image}" if image else "No preview")
        else:
            self.preview.set_text("Loading\u2026")
            if self.root is not None:
                self._loader.load(Path(self.root) / item.path, item.photo_id, PREVIEW_PIXELS)

    # -- previews -------------------------------------------------------------------------

    def _image_ready(self, photo_id: int, image: object, problem: str) -> None:
        if self._closed:
            return
        self._images[photo_id] = image if isinstance(image, QImage) else problem
        self._images.move_to_end(photo_id)
        keep = {i.photo_id for i in self.upcoming[:PREFETCH]}
        if self.current is not None:
            keep.add(self.current.photo_id)
        for pid in list(self._images):
            if len(self._images) <= CACHED_PREVIEWS:
                break
            if pid not in keep:
                del self._images[pid]
        if self._prefetching == photo_id:
            self._prefetching = None
        if self.current is not None and self.current.photo_id == photo_id:
            self._show_current()
        self._prefetch()

    def _prefetch(self) -> None:
        """Decode the next previews while the person looks at this one."""
        if self._prefetching is not None or self.root is None or self._closed:
            return
        for item in self.upcoming[:PREFETCH]:
            if item.photo_id not in self._images:
                self._prefetching = item.photo_id
                self._prefetcher.load(Path(self.root) / item.path, item.photo_id, PREVIEW_PIXELS)
                return
