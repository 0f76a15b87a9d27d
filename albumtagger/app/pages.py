"""Small widgets of the main window: the welcome page (no folder yet), the bar above the
grid (library, search, size, sort), the filter chips bar, the model banner, the
empty-grid message, and the job and background status in the status bar."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QPainter, QPaintEvent, QPalette
from PySide6.QtWidgets import (
    QComboBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSlider,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from albumtagger.app.grid import MAX_SIZE, MIN_SIZE
from albumtagger.app.qtcompat import plain_tooltip
from albumtagger.config import DEFAULT_MODEL
from albumtagger.events import JobProgress

SORTS = (
    ("Folder", "path", False),
    ("Name", "name", False),
    ("Date taken (newest)", "taken", True),
    ("Date taken (oldest)", "taken", False),
    ("Date added (newest)", "added", True),
)

MODEL_HELP = (
    "Browsing, filtering and correcting tags work without it; tagging new photos and "
    "searching by text need it.\n"
    "If you have the model folder (GME-Qwen2-VL-2B-Instruct), choose it. Offline? On a "
    "machine with internet, run `hf download {model} --local-dir gme-model`, "
    "copy the gme-model folder here, and choose it."
)

PHASES = {
    "scan": "Looking for photos",
    "model": "Starting",  # the model's state is the model banner's to say
    "vocabulary": "Scoring tag prompts",
    "tag": "Tagging",
}


def duration_text(seconds: float) -> str:
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    m = s // 60
    if m < 60:
        return f"{m} min"
    return f"{m // 60} h {m % 60} min"


def progress_label(p: JobProgress) -> str:
    """What runs and how far: "Tagging 120 / 1,000"."""
    label = PHASES.get(p.phase, p.phase.capitalize() or "Working")
    if p.paused:
        return f"Paused: {label.lower()} {p.done:,} / {p.total:,}"
    if p.total <= 0:
        return f"{label}\u2026"
    return f"{label} {p.done:,} / {p.total:,}"


def rate_text(p: JobProgress) -> str:
    """ "2.5 photos/s" ("" before there is a rate)."""
    return "" if p.paused or p.total <= 0 or not p.rate else f"{p.rate:.1f} photos/s"


def time_left_text(p: JobProgress) -> str:
    """When every photo will have tags (`time_to_tags_text`), or until then the time this
    job has left: "about 5 min left"."""
    estimate = time_to_tags_text(p)
    if estimate or p.paused or p.eta_s is None or p.total <= 0 or p.done >= p.total:
        return estimate
    return f"about {duration_text(p.eta_s)} left"


def progress_text(p: JobProgress) -> str:
    """The job's progress in one line: what runs, the rate, the time left."""
    parts = (progress_label(p), rate_text(p), time_left_text(p))
    return " \u00b7 ".join(t for t in parts if t)


def time_to_tags_text(p: JobProgress) -> str:
    """When every photo will have tags, and when all will be refined: "Tags for all photos
    in about 12 min; refined in about 2 h 5 min" ("" until there is an estimate)."""
    tags, refined = p.tags_eta_s, p.refined_eta_s
    if tags is None:
        return ""
    text = f"Tags for all photos in about {duration_text(tags)}" if tags else "All photos have tags"
    if refined and refined > tags:
        return f"{text}; refined in about {duration_text(refined)}"
    return text if tags else ""


ESTIMATE_WIDTH_TEXT = "Tags for all photos in about 59 min; refined in about 23 h 59 min"
"""The estimate's slot is this wide, whatever it says, so nothing beside it moves."""
LABEL_WIDTH_TEXT = "Looking for photos 888,888 / 888,888"
RATE_WIDTH_TEXT = "888.8 photos/s"
"""The slots of the job's progress text and of its rate."""
BAR_WIDTH = 120


class WelcomePage(QWidget):
    """No folder yet: what to do next, a button, recent folders, drop hint."""

    open_requested = Signal()
    folder_chosen = Signal(object)  # Path

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        title = QLabel("<h2>Open a photo folder to start</h2>")
        title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        hint = QLabel(
            "albumtagger tags the photos in a folder with a local AI model, keeps them tagged "
            "while the app runs, and lets you filter, search and correct the tags.\n"
            "Choose a folder, or drop one on this window."
        )
        hint.setTextFormat(Qt.TextFormat.PlainText)
        hint.setWordWrap(True)
        hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.button = QPushButton("Choose a folder\u2026")
        self.button.setToolTip("Open a photo folder (Ctrl+O)")
        self.button.clicked.connect(self.open_requested)
        self.recent_title = QLabel("<b>Recent folders</b>")
        self.recent = QListWidget()
        self.recent.setAccessibleName("Recent folders")
        self.recent.setMaximumHeight(180)
        self.recent.itemActivated.connect(self._activated)
        self.recent.itemDoubleClicked.connect(self._activated)
        box = QVBoxLayout()
        box.addStretch(1)
        box.addWidget(title)
        box.addWidget(hint)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.button)
        row.addStretch(1)
        box.addLayout(row)
        box.addSpacing(16)
        box.addWidget(self.recent_title)
        box.addWidget(self.recent)
        box.addStretch(2)
        outer = QHBoxLayout(self)
        outer.addStretch(1)
        outer.addLayout(box, 3)
        outer.addStretch(1)

    def set_recent(self, folders: list[str]) -> None:
        self.recent.clear()
        for folder in folders:
            item = QListWidgetItem(folder)
            item.setData(Qt.ItemDataRole.UserRole, folder)
            item.setToolTip(plain_tooltip(f"Open {folder}"))
            self.recent.addItem(item)
        self.recent.setVisible(bool(folders))
        self.recent_title.setVisible(bool(folders))

    def _activated(self, item: QListWidgetItem) -> None:
        self.folder_chosen.emit(Path(item.data(Qt.ItemDataRole.UserRole)))


class LibraryBar(QWidget):
    """Above the grid: the library selector, the search field, the thumbnail size and
    the sort order."""

    def __init__(self, size: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.library_box = QComboBox()
        self.library_box.setToolTip("Switch between your photo folders")
        self.library_box.setAccessibleName("Library")
        self.library_box.setMinimumWidth(180)
        self.search = QLineEdit()
        self.search.setPlaceholderText(
            "Search by meaning, e.g. \u201ckids on a beach\u201d (Ctrl+F)"
        )
        self.search.setClearButtonEnabled(True)
        self.search.setAccessibleName("Search photos by description")
        self.search.setToolTip("Rank photos by how well they match a description (Esc clears)")
        self.zoom = QSlider(Qt.Orientation.Horizontal)
        self.zoom.setRange(MIN_SIZE, MAX_SIZE)
        self.zoom.setValue(size)
        self.zoom.setMaximumWidth(140)
        self.zoom.setToolTip("Thumbnail size (Ctrl++ / Ctrl+-)")
        self.zoom.setAccessibleName("Thumbnail size")
        self.sort = QComboBox()
        for label, order, desc in SORTS:
            self.sort.addItem(label, (order, desc))
        self.sort.setToolTip("Sort the photos")
        self.sort.setAccessibleName("Sort order")
        row = QHBoxLayout(self)
        row.setContentsMargins(6, 6, 6, 0)
        row.addWidget(self.library_box)
        row.addWidget(self.search, 1)
        row.addWidget(QLabel("Size"))
        row.addWidget(self.zoom)
        row.addWidget(self.sort)

    def set_folders(self, folders: list[str], current: Path | None) -> None:
        """The libraries to choose from (then "Add a folder…"), `current` chosen."""
        box = self.library_box
        box.blockSignals(True)
        box.clear()
        for folder in folders:
            box.addItem(Path(folder).name or folder, folder)
            box.setItemData(box.count() - 1, plain_tooltip(folder), Qt.ItemDataRole.ToolTipRole)
        box.addItem("Add a folder\u2026", None)
        if current is not None:
            box.setCurrentIndex(max(0, box.findData(str(current))))
        box.blockSignals(False)

    def sort_order(self) -> tuple[str, bool]:
        """(order, descending) of the sort chosen."""
        return self.sort.currentData() or ("path", False)

    def set_sort_index(self, index: int) -> None:
        """Choose a sort without saying so (restoring the window's state)."""
        self.sort.blockSignals(True)
        self.sort.setCurrentIndex(max(0, min(len(SORTS) - 1, index)))
        self.sort.blockSignals(False)


class MessagePage(QWidget):
    """A centred message with an optional action button (offline folder, errors)."""

    action = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = QLabel()
        self.title.setTextFormat(Qt.TextFormat.PlainText)
        font = self.title.font()
        font.setPointSizeF(font.pointSizeF() * 1.4)
        font.setBold(True)
        self.title.setFont(font)
        self.text = QLabel()
        self.text.setTextFormat(Qt.TextFormat.PlainText)
        self.text.setWordWrap(True)
        self.button = QPushButton()
        self.button.clicked.connect(self.action)
        box = QVBoxLayout(self)
        box.addStretch(1)
        for w in (self.title, self.text):
            w.setAlignment(Qt.AlignmentFlag.AlignCenter)
            box.addWidget(w)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.button)
        row.addStretch(1)
        box.addLayout(row)
        box.addStretch(2)

    def show_message(self, title: str, text: str, button: str = "") -> None:
        self.title.setText(title)
        self.text.setText(text)
        self.button.setText(button)
        self.button.setVisible(bool(button))

    def show_open_failure(self, kind: str, message: str) -> None:
        """Why a library could not be opened (`kind` as `worker.classify` says)."""
        if kind == "offline":
            self.show_message(
                "This folder is offline",
                f"{message}\nConnect the drive (or check the path), then try again.",
                "Try again",
            )
        elif kind == "busy":
            self.show_message(
                "This library is in use",
                f"{message}\nClose the other program (or wait for it to finish), then try again.",
                "Try again",
            )
        else:
            self.show_message(
                "This folder cannot be opened", message, "Choose another folder\u2026"
            )


class Banner(QFrame):
    """A panel above the grid that says what is wrong and what to do (the model's state,
    the folder offline, where the library is kept)."""

    action = Signal()
    closed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setAutoFillBackground(True)
        self.setBackgroundRole(QPalette.ColorRole.ToolTipBase)
        self.setForegroundRole(QPalette.ColorRole.ToolTipText)
        self.text = QLabel()
        self.text.setTextFormat(Qt.TextFormat.PlainText)
        self.text.setWordWrap(True)
        self.text.setAccessibleName("Notice")
        self.button = QPushButton()
        self.button.clicked.connect(self.action)
        close = QToolButton()
        close.setText("\u00d7")
        close.setAutoRaise(True)
        close.setToolTip("Hide this notice")
        close.clicked.connect(self.hide)
        close.clicked.connect(self.closed)
        row = QHBoxLayout(self)
        row.setContentsMargins(8, 4, 4, 4)
        row.addWidget(self.text, 1)
        row.addWidget(self.button)
        row.addWidget(close, 0, Qt.AlignmentFlag.AlignTop)
        self.hide()

    def show_text(self, text: str, button: str = "") -> None:
        self.text.setText(text)
        self.button.setText(button)
        self.button.setVisible(bool(button))
        self.show()

    def show_model_loading(self, text: str) -> None:
        self.show_text(
            f"{text or 'Loading the AI model'}\u2026 Tagging starts when it is ready; "
            "browsing and correcting tags go on meanwhile."
        )

    def show_model_unavailable(self, reason: str) -> None:
        self.show_text(
            f"The AI model could not be loaded: {reason}\n{MODEL_HELP.format(model=DEFAULT_MODEL)}",
            "Choose the model folder\u2026",
        )


class FilterBar(QWidget):
    """Active filters as chips (click one to remove it), "N of M photos", Clear."""

    remove = Signal(str, object)  # kind, key
    clear = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._row = QHBoxLayout()
        self._row.setContentsMargins(0, 0, 0, 0)
        self._row.setSpacing(4)
        self.label = QLabel("Active filters:")
        self.count = QLabel()
        self.count.setAccessibleName("Photos shown")
        self.clear_button = QPushButton("Clear filters")
        self.clear_button.setToolTip("Show every photo again (Ctrl+Shift+C)")
        self.clear_button.clicked.connect(self.clear)
        keep_room = self.clear_button.sizePolicy()  # the bar's height never changes
        keep_room.setRetainSizeWhenHidden(True)
        self.clear_button.setSizePolicy(keep_room)
        outer = QHBoxLayout(self)
        outer.setContentsMargins(6, 2, 6, 2)
        outer.addWidget(self.label)
        outer.addLayout(self._row)
        outer.addStretch(1)
        outer.addWidget(self.count)
        outer.addWidget(self.clear_button)
        self._chips: list[QToolButton] = []
        self.set_chips([])

    def set_chips(self, chips: list[tuple[str, str, object]]) -> None:
        for chip in self._chips:
            self._row.removeWidget(chip)
            chip.deleteLater()
        self._chips = []
        marks = {
            "include": "+ ",
            "exclude": "\u2212 ",
            "quick": "",
            "search": "\u2315 ",
            "folder": "in ",
        }
        for kind, label, key in chips:
            b = QToolButton()
            b.setText(f"{marks.get(kind, '')}{label.replace('&', '&&')}  \u00d7")
            what = {"include": "with", "exclude": "without"}.get(kind)
            if kind == "folder":
                tip = plain_tooltip(
                    f"Showing photos in {label!r} and its sub-folders; click to remove"
                )
            elif what:
                tip = plain_tooltip(f"Showing photos {what} {label!r}; click to remove")
            else:
                tip = "Click to remove"
            b.setToolTip(tip)
            b.setAccessibleName(f"Filter {label}, click to remove")
            b.clicked.connect(lambda _=False, k=kind, key=key: self.remove.emit(k, key))
            self._row.addWidget(b)
            self._chips.append(b)
        self.label.setVisible(bool(chips))
        self.clear_button.setVisible(bool(chips))

    def chip_texts(self) -> list[str]:
        return [c.text() for c in self._chips]

    def set_count(self, shown: int, total: int) -> None:
        self.count.setText(
            f"{total:,} photos" if shown == total else f"{shown:,} of {total:,} photos"
        )


class EmptyGrid(QWidget):
    """In place of the grid when it has nothing to show: what to do next."""

    action = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.text = QLabel()
        self.text.setTextFormat(Qt.TextFormat.PlainText)
        self.text.setWordWrap(True)
        self.text.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.button = QPushButton()
        self.button.clicked.connect(self.action)
        box = QVBoxLayout(self)
        box.addStretch(1)
        box.addWidget(self.text)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.button)
        row.addStretch(1)
        box.addLayout(row)
        box.addStretch(2)

    def show_text(self, text: str, button: str = "") -> None:
        self.text.setText(text)
        self.button.setText(button)
        self.button.setVisible(bool(button))


class SlotLabel(QLabel):
    """A label of the status bar that holds its slot: as wide as `slot_text` (set with
    `set_slot`), whatever it says, elided when the window is too narrow for it; "" as
    `slot_text` makes it as wide as its own text."""

    def __init__(self, slot_text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setTextFormat(Qt.TextFormat.PlainText)
        self._slot = 0
        self.set_slot(slot_text)
        policy = self.sizePolicy()
        policy.setRetainSizeWhenHidden(True)
        self.setSizePolicy(policy)

    def set_slot(self, slot_text: str) -> None:
        width = self.fontMetrics().horizontalAdvance(slot_text) if slot_text else 0
        if width != self._slot:
            self._slot = width
            self.updateGeometry()

    def sizeHint(self) -> QSize:
        hint = super().sizeHint()
        return QSize(self._slot, hint.height()) if self._slot else hint

    def minimumSizeHint(self) -> QSize:
        hint = super().minimumSizeHint()
        if not self._slot:
            return hint
        return QSize(min(self._slot, self.fontMetrics().horizontalAdvance("M" * 4)), hint.height())

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        rect = self.contentsRect()
        text = self.fontMetrics().elidedText(self.text(), Qt.TextElideMode.ElideRight, rect.width())
        self.style().drawItemText(
            painter,
            rect,
            int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter),
            self.palette(),
            self.isEnabled(),
            text,
            self.foregroundRole(),
        )


def _keep_place(widget: QWidget, width: int) -> None:
    """`widget` is `width` wide and keeps its room when hidden (nothing beside it moves)."""
    widget.setFixedWidth(width)
    policy = widget.sizePolicy()
    policy.setRetainSizeWhenHidden(True)
    widget.setSizePolicy(policy)


class BackgroundStatus(SlotLabel):
    """In the status bar, left of the job's part: what the libraries behind the one on
    screen are doing, in the room the job's part leaves (elided; the job's slots never give
    way to it). The status bar hides it while it shows a message."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("", parent)
        policy = QSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        policy.setRetainSizeWhenHidden(True)  # its spacing stays when it goes
        self.setSizePolicy(policy)
        self.setToolTip(
            "The other libraries in the selector are kept watched and tagged while this "
            "one has nothing to do"
        )

    def set_text(self, text: str) -> None:
        """Say `text` ("" says nothing)."""
        self.setText(text)


class JobStatus(QWidget):
    """The status bar's job part: what runs, the rate and time left, when all photos will
    have tags, a progress bar, Pause / Resume, Cancel.

    While a job runs (or is paused) each part has a slot of its own that keeps its width
    and place whatever it says, shown or hidden: the buttons never move under the
    pointer. When nothing runs only the first text is shown, as wide as it says."""

    pause = Signal()
    resume = Signal()
    cancel = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.label = SlotLabel()
        self.label.setAccessibleName("What albumtagger is doing")
        self.rate = SlotLabel(RATE_WIDTH_TEXT)
        self.rate.setAccessibleName("Photos per second")
        self.estimate = SlotLabel(ESTIMATE_WIDTH_TEXT)
        self.estimate.setAccessibleName("Time left; when all photos will be tagged")
        self.estimate.setToolTip(
            "From the photos per second so far (refining costs more per photo than the "
            "first pass); time paused does not count"
        )
        self.bar = QProgressBar()
        self.bar.setTextVisible(False)
        self.bar.setAccessibleName("Progress")
        _keep_place(self.bar, BAR_WIDTH)
        self.pause_button = QPushButton("Pause")
        self.pause_button.setToolTip("Pause tagging (Ctrl+P)")
        self.pause_button.clicked.connect(self._toggle)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop the current job; photos already tagged are kept")
        self.cancel_button.clicked.connect(self.cancel)
        for button, texts in ((self.pause_button, ("Pause", "Resume")), (self.cancel_button, ())):
            hint = button.sizeHint().width()
            grow = max((button.fontMetrics().horizontalAdvance(t) for t in texts), default=0)
            extra = grow - button.fontMetrics().horizontalAdvance(button.text())
            _keep_place(button, hint + max(0, extra))
        self.controls = QWidget()
        """The slots after the first text: shown while a job runs or is paused."""
        row = QHBoxLayout(self.controls)
        row.setContentsMargins(0, 0, 0, 0)
        for w in (self.rate, self.estimate, self.bar, self.pause_button, self.cancel_button):
            row.addWidget(w)
        outer = QHBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(self.label)
        outer.addWidget(self.controls)
        self.paused = False
        self.running = False
        self.set_idle("")

    def _toggle(self) -> None:
        if self.paused:
            self.resume.emit()
        else:
            self.pause.emit()

    def _show_slots(self, shown: bool) -> None:
        """The job's slots (`shown`), or only the first text as wide as it says."""
        self.label.set_slot(LABEL_WIDTH_TEXT if shown else "")
        self.controls.setVisible(shown)

    def set_paused(self, paused: bool) -> None:
        self.paused = paused
        self.pause_button.setText("Resume" if paused else "Pause")
        self.pause_button.setToolTip(
            "Resume tagging (Ctrl+P)" if paused else "Pause tagging (Ctrl+P)"
        )
        if paused:
            self.label.setText("Paused")
            self.pause_button.show()
            self._show_slots(True)

    def set_progress(self, p: JobProgress) -> None:
        self.running = not p.finished
        if p.finished:
            self.set_idle("Done" if p.job == "index" else "")
            return
        self.label.setText(progress_label(p))
        self.rate.setText(rate_text(p))
        self.estimate.setText(time_left_text(p))
        if p.total > 0:
            self.bar.setRange(0, p.total)
            self.bar.setValue(min(p.done, p.total))
        else:
            self.bar.setRange(0, 0)
        for w in (self.rate, self.estimate, self.bar, self.pause_button, self.cancel_button):
            w.show()
        self._show_slots(True)

    def set_idle(self, text: str) -> None:
        self.running = False
        self.label.setText(text)
        for w in (self.rate, self.estimate, self.bar, self.cancel_button):
            w.hide()
        self.pause_button.setVisible(self.paused)
        self._show_slots(self.paused)
