"""A library's folder that goes away while the window has it open (renamed, unplugged): one
notice says so and stays until the folder is back, the status bar does not claim to
watch it, and a correction meanwhile is refused with that same message (never a
database error); once the folder is back the notice goes by itself and corrections work."""

from __future__ import annotations

from pathlib import Path

import pytest

from albumtagger.app.libraries import OFFLINE_STATUS
from albumtagger.errors import LibraryOfflineError
from albumtagger.events import FolderState
from albumtagger.service.session import LibrarySession, offline_text
from tests.qt.conftest import PHOTOS


def open_watched(qtbot, make_window, folder: Path):
    window = make_window()
    with qtbot.waitSignal(window.libraries.library_opened, timeout=30_000):
        window.open_folder(folder)
    qtbot.waitUntil(lambda: window.model.rowCount() == PHOTOS, timeout=30_000)
    qtbot.waitUntil(lambda: window.job.label.text() == "Watching the folder", timeout=60_000)
    return window


def accept(qtbot, window, pid: int, tag: str):
    with qtbot.waitSignal(window.libraries.correction_done, timeout=30_000) as blocker:
        window.libraries.correct([pid], tag, "accept")
    return blocker.args[0]


def test_a_folder_renamed_away_says_so_once_until_it_is_back(
    qtbot, make_window, indexed_folder: Path
) -> None:
    window = open_watched(qtbot, make_window, indexed_folder)
    lib = window.libraries
    pid = int(window.model.ids[0])
    suggested = [t.name for t in lib.queries.photo_tags(pid) if t.state == "suggested"]
    assert len(suggested) >= 2
    message = offline_text(indexed_folder)

    away = indexed_folder.with_name("renamed-away")
    indexed_folder.rename(away)
    qtbot.waitUntil(window.offline_banner.isVisible, timeout=30_000)
    assert window.offline_banner.text.text() == message
    assert "offline" not in window.statusBar().currentMessage()  # said once, not twice
    qtbot.waitUntil(lambda: window.job.label.text() == OFFLINE_STATUS, timeout=30_000)

    # a correction meanwhile is refused with the same words, not a database error
    reply = accept(qtbot, window, pid, suggested[0])
    assert (reply.error, reply.error_kind) == (message, "offline")
    assert window.statusBar().currentMessage() == message
    # the notice is not on a timer: when the status bar's message goes (15 s), it stays,
    # and nothing says the folder is watched
    window.statusBar().clearMessage()
    reply = accept(qtbot, window, pid, suggested[0])  # the worker stepped on meanwhile
    assert reply.error_kind == "offline"
    assert window.offline_banner.isVisible() and window.offline_banner.text.text() == message
    assert window.job.label.text() == OFFLINE_STATUS
    assert not window.banner.isVisible()  # one notice, not two
    assert suggested[0] not in {
        t.name for t in lib.queries.photo_tags(pid) if t.state == "accepted"
    }

    away.rename(indexed_folder)
    qtbot.waitUntil(lambda: not window.offline_banner.isVisible(), timeout=30_000)
    qtbot.waitUntil(lambda: window.job.label.text() == "Watching the folder", timeout=30_000)
    reply = accept(qtbot, window, pid, suggested[1])
    assert not reply.error
    assert suggested[1] in {t.name for t in lib.queries.photo_tags(pid) if t.state == "accepted"}


def test_the_session_refuses_a_change_while_the_folder_is_away(
    app_env, indexed_folder: Path, tmp_path: Path
) -> None:
    from albumtagger.config import load_settings

    events = []
    with LibrarySession(indexed_folder, load_settings(), on_event=events.append) as session:
        pid = session.store.photo_ids()[0]
        away = indexed_folder.with_name("away")
        indexed_folder.rename(away)
        with pytest.raises(LibraryOfflineError) as info:
            session.correct([pid], "beach", "accept")
        assert str(info.value) == offline_text(indexed_folder)
        assert [e for e in events if isinstance(e, FolderState)] == [
            FolderState(False, offline_text(indexed_folder))
        ]
        away.rename(indexed_folder)
        session.correct([pid], "beach", "accept")
        assert [e for e in events if isinstance(e, FolderState)][-1] == FolderState(True)
