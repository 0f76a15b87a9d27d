"""Hostile tag and file names in the app: every label shows them as text (never as rich
text), every tooltip shows them literally."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import Qt as GuiQt
from PySide6.QtGui import QTextDocument
from PySide6.QtWidgets import QAbstractButton, QLabel

from albumtagger.app.tags_panel import TAG_ID_ROLE
from albumtagger.library.db.store import AutoTag
from albumtagger.library.folder import open_library
from tests.conftest import make_photo, scan_and_read

TAGS = ["<b>x</b>", "<img src=x>", "'); drop table tags;--", "שלום 🐶", "a &amp; b"]
FILES = ["<b>bold</b>.jpg", "<img src=x>.jpg", "'); DROP TABLE photos;--.jpg", "שלום 🐶.jpg"]
FOLDER = "<i>album</i> & co"  # a folder `<i>album<` holding `i> & co`


def shown(tip: str) -> str:
    """What Qt shows of a tooltip: rich text rendered when Qt takes it for rich text."""
    if not GuiQt.mightBeRichText(tip):
        return tip
    doc = QTextDocument()
    doc.setHtml(tip)
    return doc.toPlainText()


def hostile_library(tmp_path: Path) -> Path:
    folder = tmp_path / FOLDER
    for i, name in enumerate(FILES):
        make_photo(folder / name, seed=i, size=(64, 48))
    library = open_library(folder, tmp_path / "prep-data")
    try:
        scan_and_read(library)
        store = library.store
        with store.transaction():
            store.add_tags([(name, [name]) for name in TAGS])
        for i, row in enumerate(sorted(store.photos(), key=lambda r: r.path)):
            tags = [store.tag_by_name(TAGS[i % len(TAGS)]), store.tag_by_name(TAGS[0])]
            store.replace_suggestions({row.id: [AutoTag(t.id, 0.4, False, "high") for t in tags]})
            for t in tags:
                store.set_user_decision(row.id, t.id, "accepted", "auto", 0.4)
    finally:
        library.close()
    return folder


def user_labels(window) -> list[QLabel]:
    """Labels and buttons whose text holds a hostile name."""
    marks = ("<b>x</b>", "<b>bold", "b>.jpg", "<img src=x", "<i>album", "drop table", "שלום")
    out = []
    for w in window.findChildren(QLabel):
        if any(m in w.text().lower() for m in marks):
            out.append(w)
    return out


def test_hostile_names_are_shown_as_text(qtbot, make_window, tmp_path: Path) -> None:
    folder = hostile_library(tmp_path)
    window = make_window()
    with qtbot.waitSignal(window.libraries.library_opened, timeout=30_000):
        window.open_folder(folder)
    qtbot.waitUntil(
        lambda: (
            window.model.rowCount() == len(FILES)
            and window.tags_panel.model.rowCount() >= len(TAGS)
            and not window.browsing.counts_pending()
        ),
        timeout=60_000,
    )

    # The grid: names as display text, tooltips shown literally.
    def grid_tips() -> list:
        return [
            window.model.data(window.model.index(r), Qt.ItemDataRole.ToolTipRole)
            for r in range(window.model.rowCount())
        ]

    qtbot.waitUntil(lambda: None not in grid_tips(), timeout=30_000)
    paths = set()
    for row in range(window.model.rowCount()):
        index = window.model.index(row)
        tip = shown(window.model.data(index, Qt.ItemDataRole.ToolTipRole))
        paths.add(tip.splitlines()[0])
    assert paths == set(FILES)

    # The tags panel.
    panel = window.tags_panel.model
    names = set()
    for row in range(panel.rowCount()):
        index = panel.index(row, 0)
        name = panel.data(index, Qt.ItemDataRole.DisplayRole).strip()
        tip = shown(panel.data(index, Qt.ItemDataRole.ToolTipRole))
        assert tip.startswith(name + ":"), (name, tip)
        names.add(name)
    assert set(TAGS) <= names

    # The details of the photo named "<b>bold</b>.jpg", with its "<b>x</b>" chip.
    row = next(
        r
        for r in range(window.model.rowCount())
        if "bold" in window.model.data(window.model.index(r), Qt.ItemDataRole.ToolTipRole)
    )
    window.grid.setCurrentIndex(window.model.index(row))
    detail = window.detail
    qtbot.waitUntil(
        lambda: (
            detail.detail is not None
            and detail.detail.path == "<b>bold</b>.jpg"
            and len(detail.chip_widgets()) >= 1
        ),
        timeout=30_000,
    )
    assert detail.name.text() == "b>.jpg"
    assert detail.name.textFormat() == Qt.TextFormat.PlainText
    assert shown(detail.name.toolTip()) == "<b>bold</b>.jpg"
    assert detail.facts.textFormat() == Qt.TextFormat.PlainText
    assert "Folder: <b>bold<" in detail.facts.text()
    chips = {chip.info.name: chip for chip in detail.chip_widgets()}
    assert "<b>x</b>" in chips
    for name, chip in chips.items():
        assert chip.label.textFormat() == Qt.TextFormat.PlainText
        assert chip.label.text().startswith(name)
        assert shown(chip.toolTip()).startswith(name + "\n"), chip.toolTip()

    # A filter on "<b>x</b>": its chip in the filter bar.
    bold = next(
        panel.data(panel.index(r, 0), TAG_ID_ROLE)
        for r in range(panel.rowCount())
        if panel.data(panel.index(r, 0), Qt.ItemDataRole.DisplayRole).strip() == "<b>x</b>"
    )
    with qtbot.waitSignal(window.browsing.filter_applied, timeout=30_000):
        window.tags_panel.set_tag_state(bold, "include")
    chips_bar = [
        b for b in window.filter_bar.findChildren(QAbstractButton) if "<b>x</b>" in b.text()
    ]
    assert chips_bar, window.filter_bar.chip_texts()
    for b in chips_bar:
        assert "'<b>x</b>'" in shown(b.toolTip()), b.toolTip()

    # Every label that shows a hostile name shows it as text.
    labels = user_labels(window)
    assert labels
    for label in labels:
        assert label.textFormat() == Qt.TextFormat.PlainText, label.text()

    # The folder: in the recent list and the library switcher.
    recent = window.welcome.recent
    tips = [shown(recent.item(i).toolTip()) for i in range(recent.count())]
    assert f"Open {folder}" in tips, tips
    box = window.library_box
    box_tips = [
        shown(box.itemData(i, Qt.ItemDataRole.ToolTipRole) or "") for i in range(box.count())
    ]
    assert str(folder) in box_tips, box_tips
