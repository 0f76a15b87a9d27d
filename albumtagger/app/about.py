"""About and help: the version, the model and device in use, where the library and the
settings live, and the keyboard map.

The keyboard map is read from the window's own actions and their shortcuts each time it
is shown, so it never goes stale; the keys of the grid and of review mode (handled by
those widgets, not by actions) are added to it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import shiboken6
from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QAction, QDesktopServices, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from albumtagger import __version__
from albumtagger.app.libraries import library_inside
from albumtagger.config import config_path, data_dir

if TYPE_CHECKING:
    from albumtagger.app.libraries import Libraries
    from albumtagger.app.worker import Reply

GRID_KEYS = (
    ("Arrows, Home, End, Page Up, Page Down", "Move in the grid"),
    ("Shift+arrows, Ctrl+click, Shift+click", "Select several photos"),
    ("Enter, double click", "View the photo full size (\u2190 \u2192, F fit, 1 100%, Esc back)"),
    ("Esc (in the search field)", "Clear the search"),
    ("A, R, Delete", "Accept, reject, remove the framed tag; the frame moves to the next one"),
    ("Tab, arrows (in the details)", "Frame another of the photo's tags"),
)
_NATIVE = QKeySequence.SequenceFormat.NativeText


def key_names(keys: tuple) -> str:
    return " or ".join(QKeySequence(k).toString(_NATIVE) for k in keys)


def review_keys() -> list[tuple[str, str]]:
    """The keys of review mode, from its own key lists where it has them."""
    yes: tuple = (Qt.Key.Key_Y, Qt.Key.Key_Right)
    no: tuple = (Qt.Key.Key_N, Qt.Key.Key_Left)
    skip: tuple = (Qt.Key.Key_Space,)
    try:
        from albumtagger.app import review

        yes, no, skip = review.YES_KEYS, review.NO_KEYS, review.SKIP_KEYS
    except (ImportError, AttributeError):
        pass
    undo = QKeySequence(QKeySequence.StandardKey.Undo).toString(_NATIVE)
    return [
        (key_names(yes), "Yes: the tag applies"),
        (key_names(no), "No: it does not"),
        (key_names(skip), "Skip this question"),
        (f"{undo} or Backspace", "Undo the last answer"),
        ("Esc", "Leave review mode"),
    ]


def action_text(action: QAction) -> str:
    """An action's menu text without its mnemonic marker and ellipsis."""
    text = action.text().replace("&&", "\0").replace("&", "").replace("\0", "&")
    return text.removesuffix("\u2026").removesuffix("...")


def shortcut_text(action: QAction) -> str:
    return ", ".join(s.toString(_NATIVE) for s in action.shortcuts() if not s.isEmpty())


def _menu_actions(menu: QMenu, where: str) -> Iterator[tuple[str, QAction]]:
    for action in menu.actions():
        if action.isSeparator():
            continue
        sub = action.menu()
        if sub is not None:
            yield from _menu_actions(sub, f"{where} \u203a {action_text(action)}")
        else:
            yield where, action


def keyboard_map(window: QWidget) -> list[tuple[str, str, str]]:
    """(where, what, keys) for every action of the window's menus that has a shortcut,
    then its other actions with one, then the grid and review keys."""
    rows: list[tuple[str, str, str]] = []
    seen: set[int] = set()
    bar = window.menuBar() if hasattr(window, "menuBar") else None
    if bar is not None:
        for top in bar.actions():
            menu = top.menu()
            if menu is None:
                continue
            for where, action in _menu_actions(menu, action_text(top)):
                seen.add(id(action))
                keys = shortcut_text(action)
                if keys:
                    rows.append((where, action_text(action), keys))
    for action in window.actions():
        keys = shortcut_text(action)
        if id(action) not in seen and keys:
            rows.append(("Window", action_text(action), keys))
    rows.extend(("Grid", what, keys) for keys, what in GRID_KEYS)
    rows.extend(("Review mode", what, keys) for keys, what in review_keys())
    return rows


def open_folder(path: Path) -> bool:
    """Show a folder in the system's file manager."""
    return QDesktopServices.openUrl(QUrl.fromLocalFile(str(path)))


def _existing(path: Path) -> Path:
    """`path` or its nearest folder that exists."""
    for candidate in (path, *path.parents):
        if candidate.is_dir():
            return candidate
    return path


class AboutDialog(QDialog):
    """Version, model and device in use, the library's and the settings' places, and the
    keyboard map (`show_keys()` opens on it)."""

    info_ready = Signal(object)  # what the open library's session said (or None)

    def __init__(self, libraries: Libraries, window: QWidget) -> None:
        """`window`: whose menus and actions the keyboard map lists (the parent)."""
        super().__init__(window)
        self.setWindowTitle("About albumtagger")
        self._libraries = libraries
        self._window = window
        self.tabs = QTabWidget()
        self.tabs.addTab(self._about_page(), "&About")
        self.tabs.addTab(self._keys_page(), "&Keyboard")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        box = QVBoxLayout(self)
        box.addWidget(self.tabs, 1)
        box.addWidget(buttons)
        self.resize(720, 560)
        self.info: dict[str, Any] | None = None
        self.set_info(None)
        self.refresh_keys()

    # -- the about page --------------------------------------------------------------------

    @staticmethod
    def _path_row(name: str) -> tuple[QLineEdit, QPushButton, QHBoxLayout]:
        field = QLineEdit()
        field.setReadOnly(True)
        field.setAccessibleName(name)
        button = QPushButton("Open folder")
        button.setToolTip(f"Show the folder of the {name.lower()} in the file manager")
        row = QHBoxLayout()
        row.addWidget(field, 1)
        row.addWidget(button)
        return field, button, row

    def _about_page(self) -> QWidget:
        page = QWidget()
        box = QVBoxLayout(page)
        self.version_label = QLabel(f"albumtagger {__version__}")
        self.version_label.setTextFormat(Qt.TextFormat.PlainText)
        font = self.version_label.font()
        font.setPointSizeF(font.pointSizeF() * 1.5)
        font.setBold(True)
        self.version_label.setFont(font)
        self.version_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        blurb = QLabel(
            "A local AI photo tagger: the GME model describes every photo, each tag learns "
            "its own threshold from your corrections, and everything is kept in a library "
            "database (where: see below)."
        )
        blurb.setTextFormat(Qt.TextFormat.PlainText)
        blurb.setWordWrap(True)
        box.addWidget(self.version_label)
        box.addWidget(blurb)

        group = QGroupBox("Model")
        form = QFormLayout(group)
        self.model_label = self._value_label("Model in use")
        self.device_label = self._value_label("Device in use")
        self.budget_label = self._value_label("Image tokens")
        form.addRow("Model:", self.model_label)
        form.addRow("Runs on:", self.device_label)
        form.addRow("Image tokens:", self.budget_label)
        box.addWidget(group)

        group = QGroupBox("Where things are")
        form = QFormLayout(group)
        self.folder_path, self.folder_button, row = self._path_row("Photo folder")
        form.addRow("Photo folder:", row)
        self.sidecar_path, self.sidecar_button, row = self._path_row("Library")
        form.addRow("Library:", row)
        self.sidecar_note = QLabel()
        self.sidecar_note.setTextFormat(Qt.TextFormat.PlainText)
        self.sidecar_note.setWordWrap(True)
        self.sidecar_note.setAccessibleName("Where the library is kept")
        form.addRow("", self.sidecar_note)
        self.settings_path, self.settings_button, row = self._path_row("Settings file")
        form.addRow("Settings:", row)
        self.data_path, self.data_button, row = self._path_row("Data folder")
        form.addRow("Data:", row)
        self.settings_note = QLabel()
        self.settings_note.setTextFormat(Qt.TextFormat.PlainText)
        self.settings_note.setWordWrap(True)
        form.addRow("", self.settings_note)
        for field, button in (
            (self.folder_path, self.folder_button),
            (self.sidecar_path, self.sidecar_button),
            (self.settings_path, self.settings_button),
            (self.data_path, self.data_button),
        ):
            button.clicked.connect(lambda _=False, f=field: self._open(f))
        box.addWidget(group)
        box.addStretch(1)
        return page

    @staticmethod
    def _value_label(name: str) -> QLabel:
        label = QLabel()
        label.setTextFormat(Qt.TextFormat.PlainText)
        label.setWordWrap(True)
        label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        label.setAccessibleName(name)
        return label

    def _open(self, field: QLineEdit) -> None:
        text = field.text()
        if text:
            path = Path(text)
            open_folder(_existing(path if path.is_dir() else path.parent))

    def take_reply(self, reply: Reply) -> None:
        """The session's answer to `apply_settings()`."""
        if not shiboken6.isValid(self):
            return  # closed before the library answered
        if reply.error:
            self.set_info(None)
            self.device_label.setText(f"The library could not say: {reply.error}")
        else:
            self.set_info(reply.result)
        self.info_ready.emit(self.info)

    def set_info(self, info: Mapping[str, Any] | None) -> None:
        """Show what the open library's session runs with (`LibrarySession.apply_settings`),
        or the configured settings when no library is open (None)."""
        if not shiboken6.isValid(self):
            return  # closed before the library answered
        self.info = dict(info) if info is not None else None
        m = self._libraries.settings.model
        if info is None:
            self.model_label.setText(f"{m.model} (no library open)")
            self.device_label.setText(f"Device {m.device}, precision {m.dtype} (as set)")
            low, high = m.min_image_tokens, m.max_image_tokens
            loaded = False
        else:
            model_id = info.get("model_id")
            extra = f" ({model_id})" if model_id and model_id != info["model"] else ""
            self.model_label.setText(f"{info['model']}{extra}")
            if info.get("loaded"):
                self.device_label.setText(f"{info['running_on']}, {info['precision']} (loaded)")
            else:
                self.device_label.setText(
                    f"Not loaded yet: it loads when a photo needs tagging or a text search "
                    f"runs. Set: device {info['device']}, precision {info['dtype']}."
                )
            low, high = info.get("min_image_tokens", 0), info.get("max_image_tokens", 0)
            loaded = bool(info.get("loaded"))
        if low and high:
            self.budget_label.setText(f"{low:,} to {high:,} per photo")
        else:
            self.budget_label.setText(
                "automatic" + ("" if loaded else " (fixed for the device when the model loads)")
            )
        root, queries = self._libraries.root, self._libraries.queries
        sidecar = (info or {}).get("sidecar") or (queries.db_path if queries else "")
        self.folder_path.setText(str(root) if root is not None else "")
        self.sidecar_path.setText(str(sidecar) if sidecar else "")
        if not sidecar:
            self.sidecar_path.setPlaceholderText("No library open")
            self.sidecar_note.setText("")
        elif root is not None and library_inside(root, sidecar):
            self.sidecar_note.setText("Inside the photo folder (its .albumtagger folder).")
        else:
            self.sidecar_note.setText(
                "In the data folder: the photo folder is read-only, so its library is kept "
                "here instead."
            )
        for button, field in (
            (self.folder_button, self.folder_path),
            (self.sidecar_button, self.sidecar_path),
        ):
            button.setEnabled(bool(field.text()))
        settings = config_path()
        self.settings_path.setText(str(settings))
        self.data_path.setText(str(data_dir()))
        self.settings_note.setText(
            "Edit > Settings changes them."
            if settings.is_file()
            else "Not written yet: the defaults are in use (Edit > Settings writes it)."
        )

    # -- the keyboard page -----------------------------------------------------------------

    def _keys_page(self) -> QWidget:
        page = QWidget()
        box = QVBoxLayout(page)
        self.keys_table = QTableWidget(0, 3)
        self.keys_table.setHorizontalHeaderLabels(["Keys", "Does", "Where"])
        self.keys_table.setAccessibleName("Keyboard shortcuts")
        self.keys_table.verticalHeader().hide()
        self.keys_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.keys_table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.keys_table.setWordWrap(False)
        self.keys_table.setAlternatingRowColors(True)
        rows = self.keys_table.verticalHeader()
        rows.setDefaultSectionSize(self.fontMetrics().height() + 8)
        header = self.keys_table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        box.addWidget(self.keys_table)
        return page

    def refresh_keys(self) -> None:
        """Fill the keyboard map from the window's actions as they are now."""
        rows = keyboard_map(self._window)
        self.keys_table.setRowCount(len(rows))
        for r, (where, what, keys) in enumerate(rows):
            for c, text in enumerate((keys, what, where)):
                self.keys_table.setItem(r, c, QTableWidgetItem(text))

    def keyboard_rows(self) -> list[tuple[str, str, str]]:
        """(keys, does, where) as the table shows them."""
        t = self.keys_table
        return [
            (t.item(r, 0).text(), t.item(r, 1).text(), t.item(r, 2).text())
            for r in range(t.rowCount())
        ]

    def show_keys(self) -> None:
        self.tabs.setCurrentIndex(1)


def open_about(libraries: Libraries, window: QWidget, keys: bool = False) -> AboutDialog:
    """Show the About dialog over `window` (on the keyboard map with `keys`); the session
    of the open library is asked what it runs with."""
    dialog = AboutDialog(libraries, window)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    if keys:
        dialog.show_keys()
    libraries.client.apply_settings(on_reply=dialog.take_reply)
    dialog.show()
    return dialog
