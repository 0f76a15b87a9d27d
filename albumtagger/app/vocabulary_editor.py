"""The vocabulary editor: the library's tags (filterable) with their prompts; add, rename
and remove tags, edit prompts, import a list from a text file, restore the shipped
default vocabulary.

Every edit runs in the worker, one at a time; new or changed tags are scored from the
photos' stored vectors (only the prompts go through the model), and the editor says what
the edit did, how long it took, and any error beside the form.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import (
    QDialog,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from albumtagger.app.detail import plain_label
from albumtagger.app.qtcompat import confirm
from albumtagger.app.worker import Reply
from albumtagger.events import VocabularyChanged
from albumtagger.tagging.results import VocabularyChange

if TYPE_CHECKING:
    from albumtagger.app.client import OnReply
    from albumtagger.app.libraries import Libraries

NAME_ROLE = Qt.ItemDataRole.UserRole + 1
RELOAD_MS = 300
"""Vocabulary changes reported by the worker are gathered this long before re-reading."""

PROMPTS_HELP = (
    "One prompt a line. A tag's vector is the average of its prompts' vectors, so "
    "several prompts describe it from several sides (\u201cbeach\u201d, \u201csand and "
    "sea\u201d). Saving scores the library again from the stored photo vectors: no photo "
    "is read or encoded again."
)
NEW_PROMPTS_HINT = (
    "Prompts, one a line (optional: the name and \u201ca photo of NAME\u201d by default)"
)


def remove_text(name: str) -> str:
    """What removing a tag does, for the confirmation (as `Tagger.remove_tags` does it)."""
    return (
        f"Remove the tag \u201c{name}\u201d from the vocabulary?\n\n"
        "It is taken off every photo, including photos where you accepted or added it "
        "yourself, and its answers and threshold are forgotten. The photos that carried "
        "it are decided again, so another tag may take its place.\n\n"
        "This cannot be undone; adding the tag again scores it afresh."
    )


RESTORE_TEXT = (
    "Restore the shipped default vocabulary?\n\n"
    "Default tags you removed are added back, and default tags whose prompts you changed "
    "get their shipped prompts again. Your own tags, answers and pinned thresholds stay. "
    "The library is scored from the stored photo vectors: no photo is encoded again."
)


def change_text(change: VocabularyChange, seconds: float) -> str:
    """What an edit did, with how long it took."""
    text = change.describe()
    if not change.photos_scored:
        text += f" Done in {seconds:.1f} s."
    return text


def prompt_lines(text: str) -> list[str]:
    """The non-empty lines of a prompts box, trimmed."""
    return [line.strip() for line in text.splitlines() if line.strip()]


class VocabularyEditor(QDialog):
    """The vocabulary, beside the main window (not modal). `tags_loaded` after the list
    is read, `prompts_loaded` after the selected tag's prompts arrived, `edited(Reply)`
    after each edit the worker answered (error or not)."""

    tags_loaded = Signal()
    prompts_loaded = Signal()
    edited = Signal(object)

    def __init__(self, libraries: Libraries, parent: QWidget) -> None:
        super().__init__(parent)
        self._libraries = libraries
        self.setWindowTitle("Vocabulary \u2013 albumtagger")
        self.resize(860, 600)
        self.selected: str | None = None
        """The tag whose name and prompts the form shows."""
        self.loaded_prompts: tuple[str, ...] | None = None
        self.last_change: VocabularyChange | None = None
        self.busy = False
        self.loading = False
        """The list is being read."""
        self._closed = False
        self._prompt_token = 0
        self._select_after: str | None = None
        self._reload_form = False
        self._reload_timer = QTimer(self)
        self._reload_timer.setSingleShot(True)
        self._reload_timer.setInterval(RELOAD_MS)
        self._reload_timer.timeout.connect(self.load_tags)
        self._build()
        libraries.event.connect(self._library_event)
        libraries.library_opened.connect(self._library_changed)

    # -- building -------------------------------------------------------------------------

    def _build(self) -> None:
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("Filter tags\u2026")
        self.filter.setClearButtonEnabled(True)
        self.filter.setAccessibleName("Filter the tags")
        self.filter.textChanged.connect(self._apply_filter)
        self.list = QListWidget()
        self.list.setAccessibleName("Tags")
        self.list.setSortingEnabled(False)
        self.list.currentItemChanged.connect(self._current_changed)
        self.count = plain_label(accessible="Number of tags")
        left = QVBoxLayout()
        left.addWidget(self.filter)
        left.addWidget(self.list, 1)
        left.addWidget(self.count)

        # The selected tag.
        self.name_edit = QLineEdit()
        self.name_edit.setAccessibleName("Tag name")
        self.name_edit.returnPressed.connect(self.rename)
        self.rename_button = QPushButton("Rename")
        self.rename_button.setToolTip(
            "The same tag by a new name: its photos, answers, threshold and prompts stay"
        )
        self.rename_button.clicked.connect(self.rename)
        name_row = QHBoxLayout()
        name_row.addWidget(self.name_edit, 1)
        name_row.addWidget(self.rename_button)
        self.prompts_edit = QPlainTextEdit()
        self.prompts_edit.setAccessibleName("Prompts of the tag")
        self.prompts_edit.setTabChangesFocus(True)
        self.prompts_edit.setToolTip(PROMPTS_HELP)
        prompts_help = plain_label(PROMPTS_HELP)
        prompts_help.setEnabled(False)
        self.save_button = QPushButton("Save prompts")
        self.save_button.setToolTip("Score the tag again with these prompts (averaged)")
        self.save_button.clicked.connect(self.save_prompts)
        self.remove_button = QPushButton("Remove tag\u2026")
        self.remove_button.setToolTip("Take the tag off every photo and out of the vocabulary")
        self.remove_button.clicked.connect(lambda: self.remove())
        tag_buttons = QHBoxLayout()
        tag_buttons.addWidget(self.save_button)
        tag_buttons.addStretch(1)
        tag_buttons.addWidget(self.remove_button)
        self.tag_box = QGroupBox("Selected tag")
        form = QFormLayout(self.tag_box)
        form.addRow("Name", name_row)
        form.addRow("Prompts", self.prompts_edit)
        form.addRow("", prompts_help)
        form.addRow("", tag_buttons)

        # A new tag.
        self.new_name = QLineEdit()
        self.new_name.setPlaceholderText("Name, e.g. harbour")
        self.new_name.setAccessibleName("New tag name")
        self.new_name.returnPressed.connect(self.add)
        self.new_prompts = QPlainTextEdit()
        self.new_prompts.setPlaceholderText(NEW_PROMPTS_HINT)
        self.new_prompts.setAccessibleName("Prompts of the new tag")
        self.new_prompts.setTabChangesFocus(True)
        self.new_prompts.setMaximumHeight(80)
        self.add_button = QPushButton("Add tag")
        self.add_button.setToolTip(
            "Add the tag and score every photo from its stored vector (only the prompts go "
            "through the model; no photo is encoded again)"
        )
        self.add_button.clicked.connect(self.add)
        new_box = QGroupBox("New tag")
        new_form = QFormLayout(new_box)
        new_form.addRow("Name", self.new_name)
        new_form.addRow("Prompts", self.new_prompts)
        new_form.addRow("", self.add_button)

        self.error = plain_label(accessible="Error")
        red = self.error.palette()
        red.setColor(QPalette.ColorRole.WindowText, Qt.GlobalColor.red)
        self.error.setPalette(red)
        self.error.hide()
        self.result = plain_label(accessible="Result of the last edit")

        self.import_button = QPushButton("Import from a text file\u2026")
        self.import_button.setToolTip(
            "Add the tags of a UTF-8 text file: one a line, \u201cname\u201d or "
            "\u201cname: prompt | prompt\u201d; lines starting with # are skipped"
        )
        self.import_button.clicked.connect(lambda: self.import_file())
        self.restore_button = QPushButton("Restore the default vocabulary\u2026")
        self.restore_button.setToolTip(
            "Add back the shipped tags you removed and give them their shipped prompts"
        )
        self.restore_button.clicked.connect(lambda: self.restore_defaults())
        bottom = QHBoxLayout()
        bottom.addWidget(self.import_button)
        bottom.addWidget(self.restore_button)
        bottom.addStretch(1)

        right = QVBoxLayout()
        right.addWidget(self.tag_box, 1)
        right.addWidget(new_box)
        right.addWidget(self.error)
        right.addLayout(bottom)
        right.addWidget(self.result)
        right_widget = QWidget()
        right_widget.setLayout(right)

        box = QHBoxLayout(self)
        box.addLayout(left, 2)
        box.addWidget(right_widget, 3)
        self._update_enabled()

    def _update_enabled(self) -> None:
        has_tag = self.selected is not None
        for w in (self.rename_button, self.save_button, self.remove_button):
            w.setEnabled(has_tag and not self.busy)
        self.prompts_edit.setReadOnly(not has_tag or self.loaded_prompts is None)
        self.name_edit.setEnabled(has_tag)
        for w in (self.add_button, self.import_button, self.restore_button):
            w.setEnabled(not self.busy)

    # -- opening and closing --------------------------------------------------------------

    def start(self) -> None:
        """Show beside the main window and read the tags."""
        self.show()
        self.load_tags()

    def done(self, result: int) -> None:
        if not self._closed:
            self._closed = True
            self._reload_timer.stop()
            self._libraries.library_opened.disconnect(self._library_changed)
            self._libraries.event.disconnect(self._library_event)
        super().done(result)

    @property
    def closed(self) -> bool:
        return self._closed

    def _library_changed(self, *_: object) -> None:
        self.reject()

    def _library_event(self, ev: object) -> None:
        if not self._closed and isinstance(ev, VocabularyChanged) and not self.busy:
            self._reload_timer.start()

    # -- the list -------------------------------------------------------------------------

    def load_tags(self) -> None:
        """Read the tags and their photo counts (off this thread)."""
        reads = self._libraries.reads
        if self._closed or reads is None:
            return
        self.loading = True
        reads.read(f"vocabulary-{id(self)}", lambda q: (q.tags(), q.tag_counts()), self._tags_ready)

    def _tags_ready(self, result: object) -> None:
        if self._closed:
            return
        self.loading = False
        tags, counts = result  # type: ignore[misc]
        reload_form, self._reload_form = self._reload_form, False
        keep = self._select_after if self._select_after is not None else self.selected
        self._select_after = None
        self.list.blockSignals(True)
        self.list.clear()
        chosen: QListWidgetItem | None = None
        for tag in sorted(tags, key=lambda t: t.name.casefold()):
            n = counts.get(tag.id, 0)
            item = QListWidgetItem(f"{tag.name}  \u00b7  {n:,} photo{'s' if n != 1 else ''}")
            item.setData(NAME_ROLE, tag.name)
            item.setData(Qt.ItemDataRole.AccessibleTextRole, f"{tag.name}, {n} photos")
            self.list.addItem(item)
            if keep is not None and tag.name.casefold() == keep.casefold():
                chosen = item
        self.list.blockSignals(False)
        self.count.setText(f"{len(tags):,} tags")
        self._apply_filter(self.filter.text())
        if chosen is not None:
            self.list.blockSignals(True)
            self.list.setCurrentItem(chosen)
            self.list.blockSignals(False)
            self.list.scrollToItem(chosen)
            if reload_form or chosen.data(NAME_ROLE) != self.selected:
                self._show_tag(str(chosen.data(NAME_ROLE)))
        elif self.selected is not None or reload_form:
            self._show_tag(None)
        self.tags_loaded.emit()

    def names(self) -> list[str]:
        """The tag names listed (filtered out or not)."""
        return [self.list.item(i).data(NAME_ROLE) for i in range(self.list.count())]

    def _apply_filter(self, text: str) -> None:
        needle = " ".join(text.split()).casefold()
        shown = 0
        for i in range(self.list.count()):
            item = self.list.item(i)
            hide = bool(needle) and needle not in str(item.data(NAME_ROLE)).casefold()
            item.setHidden(hide)
            shown += not hide
        total = self.list.count()
        self.count.setText(f"{total:,} tags" if shown == total else f"{shown:,} of {total:,} tags")

    def select(self, name: str) -> None:
        """Show this tag in the form."""
        for i in range(self.list.count()):
            item = self.list.item(i)
            if str(item.data(NAME_ROLE)).casefold() == name.casefold():
                self.list.setCurrentItem(item)
                return

    def _current_changed(self, current: QListWidgetItem | None, _previous: object) -> None:
        self._show_tag(None if current is None else str(current.data(NAME_ROLE)))

    def _show_tag(self, name: str | None) -> None:
        self.selected = name
        self.loaded_prompts = None
        self._prompt_token += 1
        self.name_edit.setText(name or "")
        self.prompts_edit.setPlainText("")
        self.tag_box.setTitle(f"Tag \u201c{name}\u201d" if name else "Selected tag")
        self._update_enabled()
        if name is None:
            return
        self.prompts_edit.setPlaceholderText("Reading the prompts\u2026")
        token = self._prompt_token
        self._libraries.client.tag_report(name, on_reply=partial(self._prompts_ready, token))

    def _prompts_ready(self, token: int, reply: Reply) -> None:
        if self._closed or token != self._prompt_token:
            return
        self.prompts_edit.setPlaceholderText("")
        if reply.error:
            self._show_error(reply.error)
            return
        self.loaded_prompts = tuple(reply.result.prompts)
        self.prompts_edit.setPlainText("\n".join(self.loaded_prompts))
        self._update_enabled()
        self.prompts_loaded.emit()

    # -- edits ----------------------------------------------------------------------------

    def _show_error(self, text: str) -> None:
        self.error.setText(text)
        self.error.setVisible(bool(text))

    def _edit(self, send: Callable[..., bool], *args: object, select: str | None = None) -> bool:
        """Run one edit in the worker (one at a time): `send(*args, on_reply=...)`, a method
        of the session client."""
        if self._closed or self.busy:
            return False
        self._show_error("")
        self.busy = True
        self._update_enabled()
        self.result.setText("Working\u2026")
        on_reply: OnReply = partial(self._edited, select=select)
        if not send(*args, on_reply=on_reply):
            self.busy = False
            self._update_enabled()
            self.result.setText("")
            self._show_error("No library is open.")
            return False
        return True

    def _edited(self, reply: Reply, select: str | None) -> None:
        if self._closed:
            return
        self.busy = False
        self._update_enabled()
        if reply.error:
            self.result.setText("")
            self._show_error(reply.error)
        else:
            change: VocabularyChange = reply.result
            self.last_change = change
            text = change_text(change, reply.seconds)
            self.result.setText(text)
            self._libraries.show_notice(text)
            self._select_after = select
            self._reload_form = True
            self.load_tags()
        self.edited.emit(reply)

    def add(self) -> None:
        """Add the tag of the "New tag" form."""
        name = " ".join(self.new_name.text().split())
        prompts = prompt_lines(self.new_prompts.toPlainText())
        if not name:
            self._show_error("Type the new tag's name.")
            return
        if ":" in name:
            self._show_error("A tag name cannot contain \u201c:\u201d; choose another name.")
            return
        if any("|" in p for p in prompts):
            self._show_error(
                "A prompt cannot contain \u201c|\u201d here; put each prompt on a line of its own."
            )
            return
        spec = f"{name}: {' | '.join(prompts)}" if prompts else name
        if self._edit(self._libraries.client.add_tags, [spec], select=name):
            self.new_name.clear()
            self.new_prompts.clear()

    def rename(self) -> None:
        """Give the selected tag the name typed."""
        if self.selected is None:
            return
        new = " ".join(self.name_edit.text().split())
        if not new:
            self._show_error("A tag name cannot be empty.")
            return
        if new == self.selected:
            return
        self._edit(self._libraries.client.rename_tag, self.selected, new, select=new)

    def save_prompts(self) -> None:
        """Give the selected tag the prompts typed (averaged)."""
        if self.selected is None or self.loaded_prompts is None:
            return
        prompts = prompt_lines(self.prompts_edit.toPlainText())
        if not prompts:
            self._show_error("A tag needs at least one prompt.")
            return
        self._edit(self._libraries.client.set_prompts, self.selected, prompts, select=self.selected)

    def remove(self, *, confirm: bool = True) -> None:
        """Remove the selected tag (after asking)."""
        name = self.selected
        if name is None or self.busy:
            return
        if confirm and not self._confirm("Remove tag", remove_text(name), "Remove"):
            return
        self._edit(self._libraries.client.remove_tags, [name], select="")

    def import_file(self, path: Path | str | None = None) -> None:
        """Add the tags of a text file (asked for when not given)."""
        if self.busy:
            return
        if path is None:
            chosen, _ = QFileDialog.getOpenFileName(
                self,
                "Import tags from a text file",
                "",
                "Text files (*.txt);;All files (*)",
            )
            if not chosen:
                return
            path = chosen
        self._edit(self._libraries.client.import_vocabulary, str(path))

    def restore_defaults(self, *, confirm: bool = True) -> None:
        """Add back the shipped default tags and their prompts (after asking)."""
        if self.busy:
            return
        if confirm and not self._confirm("Restore the default vocabulary", RESTORE_TEXT, "Restore"):
            return
        self._edit(self._libraries.client.restore_default_vocabulary, select=self.selected)

    def _confirm(self, title: str, text: str, action: str) -> bool:
        return confirm(self, title, text, action)
