"""The grid's context menu: each action works on all the selected photos."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from PySide6.QtCore import QItemSelectionModel, QTimer, QUrl
from PySide6.QtGui import QDesktopServices, QGuiApplication
from PySide6.QtWidgets import QApplication

from albumtagger.app import photo_menu
from albumtagger.app.photo_menu import PhotoMenu, TagNameDialog
from tests.qt.conftest import PHOTOS
from tests.qt.test_window import open_indexed


def select_rows(window, rows) -> list[int]:
    sel = window.grid.selectionModel()
    sel.clearSelection()
    for row in rows:
        sel.select(window.model.index(row), QItemSelectionModel.SelectionFlag.Select)
    return [window.model.photo_id(r) for r in rows]


def menu_at(window, row: int) -> PhotoMenu:
    """The menu a right click on `row` opens."""
    rect = window.grid.visualRect(window.model.index(row))
    menu = window.photo_menu(rect.center())
    assert menu is not None
    return menu


def answer_dialog(qtbot, text: str) -> None:
    """Type `text` in the tag-name dialog about to open, and press OK."""

    def answer() -> None:
        dialog = QApplication.activeModalWidget()
        if not isinstance(dialog, TagNameDialog):
            QTimer.singleShot(20, answer)
            return
        dialog.edit.setText(text)
        dialog.accept()

    QTimer.singleShot(0, answer)


def tag_states(window, pid: int) -> dict[str, str]:
    return {t.name: t.state for t in window.libraries.queries.photo_tags(pid)}


def test_the_menu_is_for_the_selection_or_the_photo_clicked(
    qtbot, make_window, indexed_folder: Path
) -> None:
    window = open_indexed(qtbot, make_window, indexed_folder)
    ids = select_rows(window, [4, 1, 2])
    assert menu_at(window, 2).ids == [ids[1], ids[2], ids[0]]  # the grid's order
    assert menu_at(window, 7).ids == [window.model.photo_id(7)]  # not selected: that one
    menu = menu_at(window, 1)
    texts = [a.text() for a in menu.actions() if not a.isSeparator()]
    assert texts == [
        "Open with default application",
        "Show in file manager",
        "Copy paths",
        "Add tag\u2026",
        "Remove tag",
        "New tag from these photos\u2026",
        "Export XMP sidecars",
        "Find similar",
        "Forget missing photo",
    ]
    enabled = {a.text() for a in menu.actions() if a.isEnabled()}
    assert "Forget missing photo" not in enabled  # none of them is missing
    assert {"Open with default application", "Copy paths", "Remove tag"} <= enabled


def test_forget_only_for_missing_photos_and_only_those_selected(
    qtbot, make_window, indexed_folder: Path
) -> None:
    (indexed_folder / "img_01.jpg").unlink()
    (indexed_folder / "img_02.jpg").unlink()
    window = make_window()
    with qtbot.waitSignal(window.libraries.library_opened, timeout=30_000):
        window.open_folder(indexed_folder)
    queries = window.libraries.queries
    by_path = {queries.photo_detail(int(i)).path: int(i) for i in queries.photo_ids()}
    gone, kept_missing = by_path["img_01.jpg"], by_path["img_02.jpg"]
    present = by_path["img_04.jpg"]
    qtbot.waitUntil(  # the opening scan marks them missing; the grid leaves them out
        lambda: (
            queries.photo_detail(gone).status == "missing"
            and queries.photo_detail(kept_missing).status == "missing"
            and window.model.rowCount() == PHOTOS - 2
        ),
        timeout=60_000,
    )
    assert not menu_at(window, window.model.row_of(present)).act_forget.isEnabled()
    # Missing photos are shown under the Missing quick filter.
    window.tags_panel.set_quick("missing", True)
    qtbot.waitUntil(
        lambda: sorted(window.model.ids) == sorted([gone, kept_missing]), timeout=30_000
    )
    window.grid.select_photos([gone])
    menu = menu_at(window, window.model.row_of(gone))
    assert menu.act_forget.isEnabled()

    with qtbot.waitSignal(  # the opening scan's own notice may come meanwhile
        window.libraries.notice_shown,
        timeout=30_000,
        check_params_cb=lambda text, *_: text.startswith("Forgot"),
    ) as blocker:
        menu.act_forget.trigger()
    assert blocker.args[0] == "Forgot 1 missing photo."
    assert queries.photo_detail(gone) is None
    assert queries.photo_detail(kept_missing).status == "missing"
    assert queries.photo_detail(present).status == "ok"
    qtbot.waitUntil(lambda: window.model.row_of(gone) < 0, timeout=30_000)


def test_copy_paths_puts_them_on_the_clipboard(qtbot, make_window, indexed_folder: Path) -> None:
    window = open_indexed(qtbot, make_window, indexed_folder)
    ids = select_rows(window, [0, 3])
    menu = menu_at(window, 0)
    menu.act_copy.trigger()
    queries = window.libraries.queries
    expected = [str(indexed_folder / queries.photo_detail(i).path) for i in ids]
    assert QGuiApplication.clipboard().text().split("\n") == expected


def test_add_and_remove_a_tag_on_all_selected(qtbot, make_window, indexed_folder: Path) -> None:
    window = open_indexed(qtbot, make_window, indexed_folder)
    ids = select_rows(window, [0, 2, 5])
    other = window.model.photo_id(1)
    menu = menu_at(window, 2)
    answer_dialog(qtbot, "family")
    with qtbot.waitSignal(window.libraries.correction_done, timeout=30_000) as blocker:
        menu.act_add.trigger()
    assert not blocker.args[0].error
    for pid in ids:
        assert tag_states(window, pid)["family"] == "accepted"
    assert tag_states(window, other).get("family") != "accepted"

    menu = menu_at(window, 0)
    removable = {a.data(): a for a in menu.remove_menu.actions()}
    assert "family" in removable and removable["family"].text() == "family  (3)"
    with qtbot.waitSignal(window.libraries.correction_done, timeout=30_000):
        removable["family"].trigger()
    for pid in ids:
        assert tag_states(window, pid).get("family") in (None, "rejected")


def test_the_add_dialog_completes_tag_names(qtbot, make_window, indexed_folder: Path) -> None:
    window = open_indexed(qtbot, make_window, indexed_folder)
    names = [t.name for t in window.libraries.queries.tags()]
    dialog = TagNameDialog("Add a tag", "Tag:", names, window)
    qtbot.addWidget(dialog)
    completer = dialog.edit.completer()
    assert completer is not None
    assert sorted(completer.model().stringList()) == sorted(names)
    assert dialog.minimumWidth() >= 360  # room for a long tag name


def test_new_tag_from_the_selection_is_learned_from_them(
    qtbot, make_window, indexed_folder: Path
) -> None:
    window = open_indexed(qtbot, make_window, indexed_folder)
    ids = select_rows(window, [1, 4])
    assert "grandma's garden" not in {t.name for t in window.libraries.queries.tags()}
    menu = menu_at(window, 1)
    assert menu.act_make.text().startswith("New tag from these photos")
    answer_dialog(qtbot, "grandma's garden")
    with qtbot.waitSignal(window.libraries.notice_shown, timeout=60_000) as blocker:
        menu.act_make.trigger()
    assert blocker.args[0] == (
        'New tag "grandma\'s garden", learned from 2 photos; it is suggested on other '
        "photos once it has 3."
    )
    db = sqlite3.connect(window.libraries.queries.db_path)
    try:  # its name is never read as a description
        assert db.execute(
            "SELECT prompts FROM tags WHERE name = ?", ("grandma's garden",)
        ).fetchone() == ("[]",)
    finally:
        db.close()
    for pid in ids:
        assert tag_states(window, pid)["grandma's garden"] == "accepted"
    # Edit > New tag from selected photos: the third photo; now it is suggested
    select_rows(window, [6])
    answer_dialog(qtbot, "grandma's garden")
    with qtbot.waitSignal(window.libraries.notice_shown, timeout=60_000) as blocker:
        window.act_learn.trigger()
    assert blocker.args[0] == 'Added 1 photo as examples of "grandma\'s garden".'


def test_export_xmp_writes_sidecars_of_just_the_selection(
    qtbot, make_window, indexed_folder: Path
) -> None:
    window = open_indexed(qtbot, make_window, indexed_folder)
    every = [int(i) for i in window.model.ids]
    with qtbot.waitSignal(window.libraries.correction_done, timeout=30_000):
        window.libraries.correct(every, "holiday", "add")  # every photo has a keyword
    ids = select_rows(window, [1, 3])
    menu = menu_at(window, 3)
    with qtbot.waitSignal(window.libraries.notice_shown, timeout=30_000) as blocker:
        menu.act_export.trigger()
    assert blocker.args[0] == "Wrote 2 XMP sidecars."
    queries = window.libraries.queries
    wanted = {queries.photo_detail(i).path + ".xmp" for i in ids}
    written = {
        p.relative_to(indexed_folder).as_posix()
        for p in indexed_folder.rglob("*.xmp")
        if ".albumtagger" not in p.parts
    }
    assert written == wanted
    assert len(every) == PHOTOS


def test_open_with_default_application_and_show_in_folder(
    qtbot, make_window, indexed_folder: Path, monkeypatch
) -> None:
    opened: list[QUrl] = []
    monkeypatch.setattr(QDesktopServices, "openUrl", staticmethod(opened.append))
    monkeypatch.setattr(photo_menu, "show_items_over_dbus", lambda paths: False)
    monkeypatch.setattr(photo_menu.sys, "platform", "linux")
    window = open_indexed(qtbot, make_window, indexed_folder)
    ids = select_rows(window, [0, 1])
    paths = [indexed_folder / window.libraries.queries.photo_detail(i).path for i in ids]
    menu = menu_at(window, 0)
    menu.act_open.trigger()
    assert opened == [QUrl.fromLocalFile(str(p)) for p in paths]

    opened.clear()
    menu.act_show.trigger()  # no file manager to ask: the folders open
    assert opened == [QUrl.fromLocalFile(str(f)) for f in dict.fromkeys(p.parent for p in paths)]


def test_find_similar_shows_photos_like_the_first(qtbot, make_window, indexed_folder: Path) -> None:
    window = open_indexed(qtbot, make_window, indexed_folder)
    ids = select_rows(window, [2, 6])
    with qtbot.waitSignal(window.browsing.search_done, timeout=30_000):
        menu_at(window, 2).act_similar.trigger()
    assert window.browsing.query is not None and window.browsing.query[:2] == ("similar", ids[0])


@pytest.mark.parametrize(
    ("button", "expected"),
    [
        ("Find it by its words", photo_menu.LEARN_BY_WORDS),
        ("Learn it from these photos", photo_menu.LEARN_FROM_PHOTOS),
        ("Cancel", None),
    ],
)
def test_the_new_name_question(qtbot, new_tags_by_their_words, button: str, expected) -> None:
    """The real question box (the other tests answer it by a stand-in)."""
    from PySide6.QtWidgets import QMessageBox, QWidget

    parent = QWidget()
    qtbot.addWidget(parent)
    seen: list[str] = []

    def click() -> None:
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox):
            QTimer.singleShot(20, click)
            return
        seen.append(box.text())
        for b in box.buttons():
            if b.text().replace("&", "") == button:
                b.click()
                return

    QTimer.singleShot(0, click)
    assert new_tags_by_their_words("Grandma", 2, parent) == expected
    assert seen and seen[0].startswith("\u201cGrandma\u201d is a new tag.")
