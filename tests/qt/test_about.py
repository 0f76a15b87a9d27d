"""About and help: the version, the model and device, where the library and the settings
live, and a keyboard map built from the window's own actions."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from PySide6.QtGui import QAction, QKeySequence

from albumtagger import __version__
from albumtagger.app import about
from albumtagger.app.about import action_text, shortcut_text
from albumtagger.config import config_path
from tests.conftest import GOLDEN_MODEL
from tests.qt.conftest import PHOTOS


def open_indexed(qtbot, make_window, folder: Path):
    window = make_window()
    with qtbot.waitSignal(window.libraries.library_opened, timeout=30_000):
        window.open_folder(folder)
    qtbot.waitUntil(lambda: window.model.rowCount() == PHOTOS, timeout=30_000)
    return window


def menu_shortcuts(window) -> list[QAction]:
    """Every action of the window's menus (submenus included) that has a shortcut."""
    found: list[QAction] = []

    def walk(menu) -> None:
        for action in menu.actions():
            if action.menu() is not None:
                walk(action.menu())
            elif not action.isSeparator() and not action.shortcut().isEmpty():
                found.append(action)

    for top in window.menuBar().actions():
        if top.menu() is not None:
            walk(top.menu())
    return found


def test_about_shows_version_model_library_and_settings(
    qtbot, make_window, indexed_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    window = open_indexed(qtbot, make_window, indexed_folder)
    opened: list[Path] = []
    monkeypatch.setattr(about, "open_folder", lambda path: opened.append(path) or True)
    dialog = window.show_about()
    qtbot.waitUntil(lambda: dialog.info is not None, timeout=30_000)  # the session answered
    info = dialog.info
    assert __version__ in dialog.version_label.text()
    sidecar = Path(window.libraries.queries.db_path)
    assert info["sidecar"] == str(sidecar)
    assert dialog.sidecar_path.text() == str(sidecar)
    assert dialog.folder_path.text() == str(indexed_folder)
    assert dialog.settings_path.text() == str(config_path())
    assert str(GOLDEN_MODEL) in dialog.model_label.text()
    assert "cpu" in dialog.device_label.text()
    assert dialog.budget_label.text() == "4 to 16 per photo"
    assert "defaults are in use" in dialog.settings_note.text()  # no settings file yet
    dialog.sidecar_button.click()
    dialog.settings_button.click()
    assert opened[0] == sidecar.parent
    assert config_path().parent.is_relative_to(opened[1])  # the nearest folder that exists
    dialog.close()


def test_about_without_a_library_shows_the_settings(qtbot, make_window) -> None:
    window = make_window()
    dialog = window.show_about()
    assert __version__ in dialog.version_label.text()
    assert dialog.info is None
    assert dialog.sidecar_path.text() == ""
    assert not dialog.sidecar_button.isEnabled()
    assert dialog.settings_path.text() == str(config_path())
    assert "no library open" in dialog.model_label.text()
    dialog.close()


def test_keyboard_map_lists_every_menu_shortcut(qtbot, make_window) -> None:
    window = make_window()
    actions = menu_shortcuts(window)
    assert window.act_settings in actions and window.act_keys in actions
    window.act_keys.trigger()
    dialog = window.findChild(about.AboutDialog)
    assert dialog is not None and dialog.isVisible()
    assert dialog.tabs.currentIndex() == 1  # on the keyboard map
    rows = {(keys, does) for keys, does, _ in dialog.keyboard_rows()}
    for action in actions:
        assert (shortcut_text(action), action_text(action)) in rows, action.text()
    wheres = {where for _, _, where in dialog.keyboard_rows()}
    assert {"Grid", "Review mode"} <= wheres
    assert any(does.startswith("Yes") for _, does, _ in dialog.keyboard_rows())
    dialog.close()


def test_keyboard_map_follows_the_actions(qtbot, make_window) -> None:
    window = make_window()
    menu = window.menuBar().actions()[0].menu()
    extra = QAction("Something &new\u2026", window)
    extra.setShortcut(QKeySequence("Ctrl+Shift+Y"))
    menu.addAction(extra)
    window.act_reindex.setShortcuts([QKeySequence("F5"), QKeySequence("Ctrl+Shift+F5")])
    dialog = window.show_keys()
    rows = dialog.keyboard_rows()
    keys = QKeySequence("Ctrl+Shift+Y").toString(QKeySequence.SequenceFormat.NativeText)
    assert (keys, "Something new", "File") in rows
    assert any(does == "Tag again" and ", " in k for k, does, _ in rows)
    dialog.close()


def test_no_two_menu_actions_share_a_shortcut(make_window) -> None:
    window = make_window()
    counts = Counter(s.toString() for action in menu_shortcuts(window) for s in action.shortcuts())
    assert [k for k, n in counts.items() if n > 1] == []
