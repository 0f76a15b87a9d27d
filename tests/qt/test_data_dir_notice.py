"""A read-only photo folder's library is kept in the data folder: the window says so (a
notice that stays until closed) and About says where it is, never "inside the photo
folder"; a folder that holds its own library gets no such notice."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtWidgets import QLabel

from albumtagger.library import folder as library_folder


def open_folder(qtbot, make_window, folder: Path):
    window = make_window(auto_index=False, watch=False)
    with qtbot.waitSignal(window.libraries.library_opened, timeout=30_000):
        window.open_folder(folder)
    return window


def about_texts(qtbot, window) -> tuple[str, list[str]]:
    dialog = window.show_about()
    qtbot.waitUntil(lambda: dialog.info is not None, timeout=30_000)  # the session answered
    texts = [label.text() for label in dialog.findChildren(QLabel) if label.text()]
    note = dialog.sidecar_note.text()
    dialog.close()
    return note, texts


def test_a_read_only_folder_says_its_library_is_in_the_data_folder(
    qtbot, make_window, photo_folder: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # as root no folder is read-only to chmod: the check the library makes says so instead
    monkeypatch.setattr(library_folder, "_writable", lambda folder: False)
    window = open_folder(qtbot, make_window, photo_folder)
    db_path = Path(window.libraries.queries.db_path)
    assert not (photo_folder / ".albumtagger").exists()
    assert db_path.is_relative_to(tmp_path / "data")
    assert window.libraries.library_in_folder() is False

    banner = window.location_banner
    qtbot.waitUntil(banner.isVisible, timeout=10_000)
    text = banner.text.text()
    assert "read-only" in text and str(db_path.parent) in text

    note, texts = about_texts(qtbot, window)
    assert "data folder" in note and "read-only" in note
    assert not [t for t in texts if "inside the photo folder" in t.lower()]
    assert window.location_banner.isVisible()  # it stays until the person closes it


def test_a_folder_with_its_own_library_says_nothing_of_it(
    qtbot, make_window, photo_folder: Path
) -> None:
    window = open_folder(qtbot, make_window, photo_folder)
    assert (photo_folder / ".albumtagger" / "library.sqlite").is_file()
    assert window.libraries.library_in_folder() is True
    assert not window.location_banner.isVisible()
    note, _ = about_texts(qtbot, window)
    assert note.startswith("Inside the photo folder")
