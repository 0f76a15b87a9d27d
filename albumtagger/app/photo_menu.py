"""The grid's context menu: what can be done to the selected photos (open, show in the
file manager, copy paths, add or remove a tag, make a tag of them, export XMP sidecars,
find similar photos, forget those that are missing)."""

from __future__ import annotations

import logging
import sys
from collections import Counter
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QProcess, Qt, QUrl
from PySide6.QtGui import QAction, QDesktopServices, QGuiApplication
from PySide6.QtWidgets import (
    QCompleter,
    QDialog,
    QDialogButtonBox,
    QLineEdit,
    QMenu,
    QVBoxLayout,
    QWidget,
)

from albumtagger.app.detail import plain_label
from albumtagger.app.worker import Reply
from albumtagger.errors import UserError
from albumtagger.library.db.queries import PhotoDetail
from albumtagger.library.tag_names import clean_name
from albumtagger.tagging.decision_state import MIN_EXAMPLES

if TYPE_CHECKING:
    from albumtagger.app.browsing import Browsing
    from albumtagger.app.libraries import Libraries

log = logging.getLogger(__name__)

OPEN_AT_MOST = 10
"""Photos opened in their application at once (more would flood the desktop)."""
TAGS_READ_AT_MOST = 5000
"""Photos whose tags are read to list those that can be removed."""


class TagNameDialog(QDialog):
    """Asks for a tag name (completed from `names`, when given)."""

    def __init__(self, title: str, text: str, names: Sequence[str], parent: QWidget) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.setMinimumWidth(360)
        self.edit = QLineEdit()
        self.edit.setAccessibleName("Tag name")
        if names:
            completer = QCompleter(list(names), self)
            completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
            completer.setFilterMode(Qt.MatchFlag.MatchContains)
            self.edit.setCompleter(completer)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        box = QVBoxLayout(self)
        box.addWidget(plain_label(text))
        box.addWidget(self.edit)
        box.addWidget(buttons)

    def name(self) -> str:
        return self.edit.text().strip()


def ask_tag_name(title: str, text: str, names: Sequence[str], parent: QWidget) -> str:
    """The name typed ("" when cancelled)."""
    dialog = TagNameDialog(title, text, names, parent)
    try:
        accepted = dialog.exec() == QDialog.DialogCode.Accepted
        return dialog.name() if accepted else ""
    finally:
        dialog.deleteLater()


def show_in_file_manager(paths: Sequence[Path]) -> None:
    """Show these files in the platform's file manager, selected where it allows;
    else open their folders."""
    if not paths:
        return
    if sys.platform == "darwin":
        QProcess.startDetached("open", ["-R", *(str(p) for p in paths)])
    elif sys.platform == "win32":
        QProcess.startDetached("explorer", [f"/select,{paths[0]}"])
    elif not show_items_over_dbus(paths):
        for folder in dict.fromkeys(p.parent for p in paths):
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))


def show_items_over_dbus(paths: Sequence[Path]) -> bool:
    """The freedesktop FileManager1 ShowItems call (Linux desktops); False when there is
    no such service or it failed."""
    try:
        from PySide6.QtDBus import QDBus, QDBusConnection, QDBusMessage
    except ImportError:
        return False
    service = "org.freedesktop.FileManager1"
    bus = QDBusConnection.sessionBus()
    if not bus.isConnected():
        return False
    registered = bus.interface().isServiceRegistered(service)
    if not registered.isValid() or not registered.value():
        return False
    message = QDBusMessage.createMethodCall(
        service, "/org/freedesktop/FileManager1", service, "ShowItems"
    )
    message.setArguments([[QUrl.fromLocalFile(str(p)).toString() for p in paths], ""])
    reply = bus.call(message, QDBus.CallMode.Block, 3000)
    if reply.type() == QDBusMessage.MessageType.ErrorMessage:
        log.debug("ShowItems failed: %s", reply.errorMessage())
        return False
    return True


class PhotoMenu(QMenu):
    """The menu for `photo_ids` (the selection, in grid order). Each action works on all
    of them; those that need the files leave out the missing ones."""

    def __init__(
        self,
        libraries: Libraries,
        browsing: Browsing,
        photo_ids: Sequence[int],
        parent: QWidget,
    ) -> None:
        super().__init__(parent)
        self._libraries = libraries
        self._browsing = browsing
        queries = libraries.queries
        details = [queries.photo_detail(int(i)) for i in photo_ids] if queries else []
        self.photos: list[PhotoDetail] = [d for d in details if d is not None]
        self.ids = [d.id for d in self.photos]
        self.present = [d for d in self.photos if d.status != "missing"]
        self.missing = [d.id for d in self.photos if d.status == "missing"]
        many = len(self.photos) > 1

        self.act_open = self._add("Open with default application", self.open_externally)
        self.act_open.setEnabled(bool(self.present))
        self.act_show = self._add("Show in file manager", self.show_in_folder)
        self.act_show.setEnabled(bool(self.present))
        self.act_copy = self._add("Copy paths" if many else "Copy path", self.copy_paths)
        self.addSeparator()
        self.act_add = self._add("Add tag\u2026", self.add_tag)
        self.remove_menu = self.addMenu("Remove tag")
        self._fill_remove_menu()
        self.act_make = self._add("New tag from these photos\u2026", self.make_tag)
        self.act_make.setToolTip(
            "A tag learned from how these photos look, not from its name: a person, a pet, a place"
        )
        self.addSeparator()
        self.act_export = self._add("Export XMP sidecars", self.export_xmp)
        self.act_export.setEnabled(bool(self.present))
        self.act_similar = self._add("Find similar", self.find_similar)
        has_vector = bool(self.photos) and self.photos[0].status in ("ok", "missing")
        self.act_similar.setEnabled(has_vector)
        self.addSeparator()
        self.act_forget = self._add(
            "Forget missing photos" if len(self.missing) > 1 else "Forget missing photo",
            self.forget,
        )
        self.act_forget.setToolTip("Remove the missing photos of the selection and their tags")
        self.act_forget.setEnabled(bool(self.missing))
        for action in self.actions():
            if not self.photos:
                action.setEnabled(False)

    def _add(self, text: str, slot) -> QAction:
        action = self.addAction(text)
        action.triggered.connect(slot)
        return action

    def paths(self, photos: Sequence[PhotoDetail] | None = None) -> list[Path]:
        root = self._libraries.root
        if root is None:
            return []
        return [root / d.path for d in (self.photos if photos is None else photos)]

    # -- files ------------------------------------------------------------------------

    def open_externally(self) -> None:
        paths = self.paths(self.present)
        for path in paths[:OPEN_AT_MOST]:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(path)))
        if len(paths) > OPEN_AT_MOST:
            self._libraries.show_notice(f"Opened the first {OPEN_AT_MOST} of {len(paths):,}.")

    def show_in_folder(self) -> None:
        show_in_file_manager(self.paths(self.present))

    def copy_paths(self) -> None:
        QGuiApplication.clipboard().setText("\n".join(str(p) for p in self.paths()))

    # -- tags -------------------------------------------------------------------------

    def carried_tags(self) -> Counter[str]:
        """Tag name: how many of the photos carry it."""
        counts: Counter[str] = Counter()
        queries = self._libraries.queries
        if queries is None:
            return counts
        for pid in self.ids[:TAGS_READ_AT_MOST]:
            counts.update(t.name for t in queries.photo_tags(pid) if t.carried)
        return counts

    def _fill_remove_menu(self) -> None:
        counts = self.carried_tags()
        many = len(self.ids) > 1
        for name, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0].casefold())):
            text = f"{name}  ({n:,})" if many else name
            action = self.remove_menu.addAction(text.replace("&", "&&"))
            action.setData(name)
            action.triggered.connect(partial(self.remove_tag, name))
        self.remove_menu.setEnabled(bool(counts))

    def _vocabulary(self) -> list[str]:
        queries = self._libraries.queries
        return [t.name for t in queries.tags()] if queries is not None else []

    def add_tag(self) -> None:
        n = len(self.ids)
        name = ask_tag_name(
            "Add a tag",
            f"Tag to add to {'these ' + format(n, ',') + ' photos' if n > 1 else 'this photo'}:",
            self._vocabulary(),
            self.parentWidget(),
        )
        if name:
            add_tag_by_hand(self._libraries, self.ids, name, self.parentWidget())

    def remove_tag(self, name: str) -> None:
        self._libraries.correct(self.ids, name, "remove")

    def make_tag(self) -> None:
        new_tag_from_photos(self._libraries, self.ids, self.parentWidget())

    # -- the rest ---------------------------------------------------------------------

    def export_xmp(self) -> None:
        from albumtagger.library.export import exporter

        ids = [d.id for d in self.present]
        suggested = self._libraries.settings.xmp.include_suggested
        self._libraries.client.export_tags(
            exporter("xmp"),
            include_suggested=suggested,
            photo_ids=ids,
            on_reply=partial(_exported, self._libraries),
        )

    def find_similar(self) -> None:
        if self.photos:
            self._browsing.more_like_this(self.photos[0].id)

    def forget(self) -> None:
        if self.missing:
            self._libraries.client.forget_missing(
                list(self.missing), on_reply=partial(_forgotten, self._libraries)
            )


LEARN_BY_WORDS, LEARN_FROM_PHOTOS = "words", "photos"


def ask_how_to_learn(name: str, photos: int, parent: QWidget) -> str | None:
    """Ask how a tag new to the vocabulary is to be found: by its words
    (`LEARN_BY_WORDS`, the default), or from how the photos look (`LEARN_FROM_PHOTOS`: a
    person, a pet, a place); None: cancelled."""
    from PySide6.QtWidgets import QMessageBox

    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Question)
    box.setWindowTitle("A new tag")
    box.setTextFormat(Qt.TextFormat.PlainText)
    these = "these photos" if photos > 1 else "this photo"
    box.setText(
        f"\u201c{name}\u201d is a new tag. Describe what it looks like, or learn it from "
        f"{these}?\n\nA name (a person, a pet, a place) says nothing about a look: learn it "
        f"from photos, and it is suggested on others once {MIN_EXAMPLES} photos have it."
    )
    words = box.addButton("Find it by its words", QMessageBox.ButtonRole.AcceptRole)
    photos_button = box.addButton(f"Learn it from {these}", QMessageBox.ButtonRole.AcceptRole)
    box.addButton(QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(words)
    box.exec()
    clicked = box.clickedButton()
    if clicked is words:
        return LEARN_BY_WORDS
    return LEARN_FROM_PHOTOS if clicked is photos_button else None


def add_tag_by_hand(
    libraries: Libraries, photo_ids: Sequence[int], name: str, parent: QWidget
) -> None:
    """Add the tag `name` to these photos; a name new to the vocabulary asks first how it
    is to be found (`ask_how_to_learn`)."""
    queries = libraries.queries
    known = {t.name.casefold() for t in queries.tags()} if queries is not None else set()
    try:
        new = clean_name(name).casefold() not in known
    except UserError:
        new = False  # the correction says what is wrong with the name
    if not new:
        libraries.correct(photo_ids, name, "add")
        return
    how = ask_how_to_learn(name.strip(), len(photo_ids), parent)
    if how == LEARN_FROM_PHOTOS:
        libraries.learn_tag(photo_ids, name)
    elif how == LEARN_BY_WORDS:
        libraries.correct(photo_ids, name, "add")


def new_tag_from_photos(libraries: Libraries, photo_ids: Sequence[int], parent: QWidget) -> None:
    """Ask for a name, then make a tag learned from these photos (an existing name gets
    them as examples)."""
    if not photo_ids:
        return
    n = len(photo_ids)
    name = ask_tag_name(
        "New tag from these photos",
        f"Name of the tag ({'these ' + format(n, ',') + ' photos' if n > 1 else 'this photo'} "
        f"get it). It is learned from how they look, never from its name, and suggested on "
        f"other photos once it has {MIN_EXAMPLES}:",
        [],
        parent,
    )
    if name:
        libraries.learn_tag(photo_ids, name)


def _exported(libraries: Libraries, reply: Reply) -> None:
    report = getattr(reply.result, "written", None)
    if reply.error:
        libraries.show_error(reply)
    elif report is not None:
        n = len(report)
        libraries.show_notice(f"Wrote {n:,} XMP sidecar{'s' if n != 1 else ''}.")


def _forgotten(libraries: Libraries, reply: Reply) -> None:
    if reply.error:
        libraries.show_error(reply)
    else:
        n = getattr(reply.result, "removed", 0)
        libraries.show_notice(f"Forgot {n:,} missing photo{'s' if n != 1 else ''}.")
