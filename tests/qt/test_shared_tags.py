"""Several photos selected: the detail panel lists the tags all of them carry and, apart,
those some of them carry ("n of m"); a + puts a tag on all of them, an x takes it off all."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QItemSelectionModel, Qt

from tests.qt.conftest import PHOTOS

REPLY_MS = 30_000


def open_indexed(qtbot, make_window, folder: Path):
    window = make_window()
    with qtbot.waitSignal(window.libraries.library_opened, timeout=30_000):
        window.open_folder(folder)
    qtbot.waitUntil(
        lambda: window.model.rowCount() == PHOTOS and window.libraries.queries is not None,
        timeout=30_000,
    )
    return window


def correct(qtbot, window, ids, tag: str, action: str) -> None:
    with qtbot.waitSignal(window.libraries.correction_done, timeout=REPLY_MS) as blocker:
        window.libraries.correct(ids, tag, action)
    assert not blocker.args[0].error


def carried(window, pid: int) -> set[str]:
    """The tags a photo carries, as the sidecar has them."""
    return {t.name for t in window.libraries.queries.photo_tags(pid) if t.carried}


def shared(window) -> tuple[dict[str, str], dict[str, str]]:
    """The panel's tags on all and on some: name -> the count it shows ("" for all)."""
    on_all, some = window.detail.shared_chips()
    return (
        {c.name: "" for c in on_all},
        {c.name: c.count_label.text() for c in some if c.count_label is not None},
    )


def test_tags_on_all_and_on_some_of_the_selected_photos(
    qtbot, make_window, indexed_folder: Path
) -> None:
    window = open_indexed(qtbot, make_window, indexed_folder)
    ids = [window.model.photo_id(r) for r in (0, 2, 5)]
    everywhere, once = (t.name for t in window.libraries.queries.tags()[:2])
    correct(qtbot, window, ids, everywhere, "add")
    correct(qtbot, window, ids, once, "remove")
    correct(qtbot, window, ids[:1], once, "add")

    sel = window.grid.selectionModel()
    for pid in ids:
        sel.select(
            window.model.index(window.model.row_of(pid)), QItemSelectionModel.SelectionFlag.Select
        )
    assert sorted(window.detail.photo_ids) == sorted(ids)
    expected_all = set.intersection(*(carried(window, p) for p in ids))
    expected_some = set.union(*(carried(window, p) for p in ids)) - expected_all
    qtbot.waitUntil(lambda: set(shared(window)[0]) == expected_all, timeout=REPLY_MS)
    on_all, some = shared(window)
    assert everywhere in on_all
    assert set(some) == expected_some
    assert some[once] == "1 of 3"
    assert window.detail.all_title.text() == "On all 3" and window.detail.all_title.isVisible()
    assert window.detail.some_title.isVisible()

    # + on a tag some of them carry: all three carry it
    chip = next(c for c in window.detail.shared_chips()[1] if c.name == once)
    assert "remove" in chip.buttons
    with qtbot.waitSignal(window.libraries.correction_done, timeout=REPLY_MS) as blocker:
        qtbot.mouseClick(chip.buttons["add"], Qt.MouseButton.LeftButton)
    assert not blocker.args[0].error
    assert all(once in carried(window, p) for p in ids)
    qtbot.waitUntil(lambda: once in shared(window)[0], timeout=REPLY_MS)
    assert once not in shared(window)[1]

    # x on a tag all of them carry: none of them carries it
    chip = next(c for c in window.detail.shared_chips()[0] if c.name == everywhere)
    assert "add" not in chip.buttons
    with qtbot.waitSignal(window.libraries.correction_done, timeout=REPLY_MS) as blocker:
        qtbot.mouseClick(chip.buttons["remove"], Qt.MouseButton.LeftButton)
    assert not blocker.args[0].error
    assert not any(everywhere in carried(window, p) for p in ids)
    qtbot.waitUntil(lambda: everywhere not in {**shared(window)[0], **shared(window)[1]})

    # one photo selected again: its own chips, the shared lists go
    window.grid.select_photos(ids[:1])
    assert window.detail.photo_ids == (ids[0],)
    assert not window.detail.shared_chips()[0] and not window.detail.all_box.isVisible()
