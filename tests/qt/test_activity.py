"""The Activity panel and redo: corrections and re-decisions listed with their counts,
undo from the panel, Ctrl+Shift+Z, and the status bar after photos arrive."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from PySide6.QtCore import Qt

from tests.conftest import make_photo
from tests.qt.test_window import first_photo, open_indexed


def _state(folder: Path, photo_id: int, tag: str) -> str | None:
    conn = sqlite3.connect(folder / ".albumtagger" / "library.sqlite")
    row = conn.execute(
        "SELECT pt.state FROM photo_tags pt JOIN tags t ON t.id = pt.tag_id "
        "WHERE pt.photo_id = ? AND t.name = ?",
        (photo_id, tag),
    ).fetchone()
    conn.close()
    return None if row is None else row[0]


def _texts(window) -> list[str]:
    panel = window.activity
    return [panel.list.item(i).text() for i in range(panel.list.count())]


def test_the_panel_lists_a_correction_undoes_it_and_ctrl_shift_z_redoes_it(
    qtbot, make_window, indexed_folder: Path
) -> None:
    window = open_indexed(qtbot, make_window, indexed_folder)
    window.act_activity.trigger()
    assert window.activity.isVisible() and window.act_activity.isChecked()
    assert window.act_activity.text() == "&Activity"
    pid = first_photo(window)
    name = next(c.info.name for c in window.detail.chip_widgets() if c.info.state == "suggested")

    with qtbot.waitSignal(window.libraries.correction_done, timeout=30_000):
        window.libraries.correct([pid], name, "reject")
    assert _state(indexed_folder, pid, name) == "rejected"
    qtbot.waitUntil(lambda: bool(window.activity.entries()), timeout=30_000)
    entry = window.activity.entries()[0]
    assert entry.kind == "correction" and entry.text.startswith(f"You rejected {name!r} on ")
    assert window.activity.activity.undoable(entry)
    assert entry.text in _texts(window)[0] and "(Undo)" in _texts(window)[0]

    assert window.activity.list.currentItem() is None  # none chosen: the newest correction
    assert window.activity.undo_button.isEnabled()
    with qtbot.waitSignal(window.libraries.correction_done, timeout=30_000):
        qtbot.mouseClick(window.activity.undo_button, Qt.MouseButton.LeftButton)
    assert _state(indexed_folder, pid, name) == "suggested"
    qtbot.waitUntil(lambda: window.activity.entries()[0].kind == "undo", timeout=30_000)
    assert window.activity.activity.redoable(entry)
    assert window.activity.redo_button.isEnabled()

    assert window.act_redo.shortcut().toString() == "Ctrl+Shift+Z"
    with qtbot.waitSignal(window.libraries.correction_done, timeout=30_000):
        window.act_redo.trigger()
    assert _state(indexed_folder, pid, name) == "rejected"
    assert window.libraries.last_notice.startswith(f"Redid: rejected {name!r}")
    qtbot.waitUntil(lambda: window.activity.entries()[0].kind == "redo", timeout=30_000)
    assert not window.activity.redo_button.isEnabled()


def test_photos_arriving_say_which_tags_changed(qtbot, make_window, indexed_folder: Path) -> None:
    window = open_indexed(qtbot, make_window, indexed_folder)
    window.act_activity.trigger()
    for i in range(28):
        make_photo(indexed_folder / f"new_{i:02d}.jpg", seed=900 + i, size=(100 + 4 * i, 72))
    window.libraries.reindex()

    def redecided() -> bool:
        return any(e.kind == "redecision" for e in window.activity.entries())

    qtbot.waitUntil(redecided, timeout=240_000)
    entry = next(e for e in window.activity.entries() if e.kind == "redecision")
    assert entry.text.startswith("Re-decided after 28 new photos: ")
    top = entry.tags[0]
    assert top.gained + top.lost > 0
    count = f"+{top.gained}" if top.gained else f"-{top.lost}"
    assert f"{top.tag!r} {count}" in entry.text
    assert any(entry.text in t for t in _texts(window))
    qtbot.waitUntil(lambda: window.statusBar().currentMessage() == entry.text, timeout=30_000)


def test_a_settings_change_names_the_tags_it_changed(
    qtbot, make_window, indexed_folder: Path
) -> None:
    from albumtagger.config import replace_section

    window = open_indexed(qtbot, make_window, indexed_folder)
    settings = window.libraries.settings
    new = replace_section(
        settings, "thresholds", base_threshold=0.4, preference="precision"
    )  # fewer tags
    with qtbot.waitSignal(window.libraries.settings_applied, timeout=60_000) as applied:
        window.libraries.apply_settings(new)
    text = applied.args[0]["redecision"]
    assert text.startswith("Re-decided after a settings change: '")
    assert window.libraries.last_notice == f"Settings saved. {text}"
    qtbot.waitUntil(lambda: any(e.text == text for e in window.activity.entries()), timeout=30_000)
