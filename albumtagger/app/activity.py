"""The Activity panel: what changed in the library lately, newest first (the session's
activity): each correction with its knock-on effect, its undo and redo, and each
re-decision of the library with the tags photos gained and lost. The newest correction
can be undone from here, and the correction undone last redone."""

from __future__ import annotations

import time

from PySide6.QtCore import QPoint, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QDockWidget,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from albumtagger.app.libraries import Libraries
from albumtagger.app.worker import Reply
from albumtagger.events import ActivityChanged
from albumtagger.service.activity import Activity, ActivityEntry

RELOAD_DELAY_MS = 50
"""Changes that come together are shown with one read of the activity."""
MARKS = {"correction": "\u270e", "undo": "\u21b6", "redo": "\u21b7", "redecision": "\u21bb"}


class ActivityPanel(QDockWidget):
    """A dock over `libraries`: reads the activity of the library on screen whenever it
    reports a change, and asks it to undo or redo."""

    shown_activity = Signal(object)  # the Activity now listed

    def __init__(self, libraries: Libraries, parent: QWidget | None = None) -> None:
        super().__init__("Activity", parent)
        self.setObjectName("activity")
        self._libraries = libraries
        self.activity: Activity | None = None
        self.list = QListWidget()
        self.list.setWordWrap(True)
        self.list.setAlternatingRowColors(True)
        self.list.setSpacing(2)
        self.list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.list.customContextMenuRequested.connect(self._menu)
        self.list.currentItemChanged.connect(self._update_buttons)
        self.empty = QLabel("Nothing changed yet in this session.")
        self.empty.setWordWrap(True)
        self.undo_button = QPushButton("Undo")
        self.undo_button.setToolTip(
            "Undo the chosen correction, or else the newest one (only the newest correction "
            "in effect can be undone)"
        )
        self.undo_button.clicked.connect(self.undo_current)
        self.redo_button = QPushButton("Redo")
        self.redo_button.setToolTip("Put back the correction undone last (Ctrl+Shift+Z)")
        self.redo_button.clicked.connect(libraries.redo)
        buttons = QHBoxLayout()
        buttons.addWidget(self.undo_button)
        buttons.addWidget(self.redo_button)
        buttons.addStretch(1)
        body = QWidget()
        box = QVBoxLayout(body)
        box.setContentsMargins(4, 4, 4, 4)
        box.addWidget(self.empty)
        box.addWidget(self.list, 1)
        box.addLayout(buttons)
        self.setWidget(body)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(RELOAD_DELAY_MS)
        self._timer.timeout.connect(self.reload)
        libraries.event.connect(self._event)
        libraries.attached.connect(self._schedule)
        libraries.library_closed.connect(self._clear)
        libraries.correction_done.connect(self._schedule)
        self._show(None)

    # -- reading ------------------------------------------------------------------------

    def _event(self, ev: object) -> None:
        if isinstance(ev, ActivityChanged):
            self._schedule()

    def _schedule(self, *_: object) -> None:
        self._timer.start()

    def reload(self) -> None:
        """Read the activity of the library on screen again."""
        self._libraries.client.activity(on_reply=self._replied)

    def _replied(self, reply: Reply) -> None:
        if not reply.error and isinstance(reply.result, Activity):
            self._show(reply.result)

    def _clear(self) -> None:
        self._timer.stop()
        self._show(None)

    def _show(self, activity: Activity | None) -> None:
        current = self.current_entry()
        self.activity = activity
        self.list.clear()
        for entry in activity.entries if activity is not None else ():
            item = QListWidgetItem(self._text(entry, activity))
            item.setData(Qt.ItemDataRole.UserRole, entry.id)
            item.setToolTip(entry.detail or entry.text)
            self.list.addItem(item)
            if current is not None and entry.id == current.id:
                self.list.setCurrentItem(item)
        self.empty.setVisible(self.list.count() == 0)
        self._update_buttons()
        self.shown_activity.emit(activity)

    @staticmethod
    def _text(entry: ActivityEntry, activity: Activity) -> str:
        when = time.strftime("%H:%M", time.localtime(entry.at))
        text = f"{when}  {MARKS.get(entry.kind, '')} {entry.text}"
        if entry.kind == "correction" and entry.detail:
            text += f"\n{entry.detail}"
        if activity.undoable(entry):
            text += "  (Undo)"
        elif activity.redoable(entry):
            text += "  (undone; Redo)"
        return text

    # -- undo and redo ------------------------------------------------------------------

    def entries(self) -> tuple[ActivityEntry, ...]:
        """The entries listed, newest first."""
        return self.activity.entries if self.activity is not None else ()

    def current_entry(self) -> ActivityEntry | None:
        item = self.list.currentItem()
        if item is None or self.activity is None:
            return None
        wanted = item.data(Qt.ItemDataRole.UserRole)
        return next((e for e in self.activity.entries if e.id == wanted), None)

    def _target(self) -> ActivityEntry | None:
        """The entry Undo acts on: the one chosen, or else the newest correction in
        effect."""
        entry = self.current_entry()
        if entry is None and self.activity is not None:
            entry = next((e for e in self.activity.entries if self.activity.undoable(e)), None)
        return entry

    def _update_buttons(self, *_: object) -> None:
        entry = self._target()
        activity = self.activity
        self.undo_button.setEnabled(
            activity is not None and entry is not None and activity.undoable(entry)
        )
        self.redo_button.setEnabled(activity is not None and activity.redo_id is not None)

    def undo_current(self) -> None:
        """Undo the correction of the chosen entry (when it is the newest in effect; with
        none chosen, the newest correction in effect)."""
        entry = self._target()
        if entry is not None and self.activity is not None and self.activity.undoable(entry):
            self.undo_button.setEnabled(False)  # until the activity is read again
            self._libraries.undo_activity(entry.id)

    def _menu(self, pos: QPoint) -> None:
        item = self.list.itemAt(pos)
        if item is None:
            return
        self.list.setCurrentItem(item)
        entry = self.current_entry()
        if entry is None or self.activity is None:
            return
        menu = QMenu(self)
        undo = menu.addAction("Undo", self.undo_current)
        undo.setEnabled(self.activity.undoable(entry))
        redo = menu.addAction("Redo", self._libraries.redo)
        redo.setEnabled(self.activity.redoable(entry))
        menu.exec(self.list.viewport().mapToGlobal(pos))
