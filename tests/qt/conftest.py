"""Fixtures of the desktop-app tests: a real window over a real sidecar, offscreen, with
the golden checkpoint, QSettings and caches in temporary folders."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings

from tests.conftest import make_photo

PHOTOS = 12


@pytest.fixture(autouse=True)
def collect_qt_garbage(qapp):
    """After each test (and after qtbot closed its widgets): run the deferred deletes and
    the cyclic garbage collector now, at the top of the stack, so a test's windows,
    workers and dialogs are not torn down at a random moment inside the next test's
    event loop (PySide crashes when a collection frees a QObject that Qt is using)."""
    yield
    from PySide6.QtCore import QCoreApplication, QEvent

    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    gc.collect()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)


@pytest.fixture(autouse=True)
def new_tags_by_their_words(monkeypatch: pytest.MonkeyPatch):
    """A tag new to the vocabulary, added by hand, is found by its words unless a test
    answers the window's question otherwise (the question is a modal box). Gives the
    real question, for the test of the box itself."""
    from albumtagger.app import photo_menu

    real = photo_menu.ask_how_to_learn
    monkeypatch.setattr(photo_menu, "ask_how_to_learn", lambda *a: photo_menu.LEARN_BY_WORDS)
    return real


@pytest.fixture(autouse=True)
def mouse_buttons_up(qapp):
    """Each test starts with QTest's mouse buttons up. QTest remembers the buttons it
    pressed from one test to the next, and its double click leaves the left one down:
    the next test's `mouseMove` then arrives as a drag, and a click after it is lost."""
    from PySide6.QtCore import QPoint, Qt
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QWidget

    scratch = QWidget()
    for button in (Qt.MouseButton.LeftButton, Qt.MouseButton.RightButton):
        QTest.mouseRelease(scratch, button, Qt.KeyboardModifier.NoModifier, QPoint(1, 1))
    scratch.deleteLater()
    yield


@pytest.fixture
def qsettings(tmp_path: Path) -> QSettings:
    """Window state and recent folders in a temporary file, never the user's."""
    return QSettings(str(tmp_path / "qt-settings.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def app_env(golden_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("ALBUMTAGGER_CACHE_DIR", str(tmp_path / "cache"))
    return golden_env


@pytest.fixture
def photo_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    for i in range(PHOTOS):
        sub = "trip" if i % 3 == 0 else ""
        make_photo(folder / sub / f"img_{i:02d}.jpg", seed=i, size=(96 + 8 * i, 64))
    return folder


@pytest.fixture
def make_window(qtbot, app_env, qsettings):
    """A factory of real main windows; each is closed (its worker stopped) at the end."""
    from albumtagger.app.window import MainWindow
    from albumtagger.config import load_settings

    made = []

    def make(**kwargs):
        window = MainWindow(load_settings(), qsettings, **kwargs)
        qtbot.addWidget(window)
        window.resize(1100, 700)
        window.show()
        made.append(window)
        return window

    yield make
    for window in made:
        window.close()
        if window.libraries.handle is not None:
            assert not window.libraries.handle.is_running()


def wait_indexed(qtbot, window, photos: int, timeout: int = 120_000) -> None:
    """Until the index job finished and the grid shows `photos` photos, all tagged."""

    def done() -> bool:
        p = window.libraries.last_progress
        if p is None or not p.finished or p.job != "index":
            return False
        if window.model.rowCount() != photos or window.libraries.queries is None:
            return False
        return window.libraries.queries.quick_counts().pending == 0

    qtbot.waitUntil(done, timeout=timeout)


@pytest.fixture(scope="session")
def indexed_template(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A folder of photos indexed once with the golden model (by the CLI); tests copy it."""
    from tests.conftest import GOLDEN_SETTINGS_ENV, run_cli

    base = tmp_path_factory.mktemp("template")
    folder = base / "photos"
    for i in range(PHOTOS):
        sub = "trip" if i % 3 == 0 else ""
        make_photo(folder / sub / f"img_{i:02d}.jpg", seed=i, size=(96 + 8 * i, 64))
    env = {
        "ALBUMTAGGER_CONFIG": str(base / "config.toml"),
        "ALBUMTAGGER_DATA_DIR": str(base / "data"),
        "ALBUMTAGGER_CACHE_DIR": str(base / "cache"),
        "HF_HUB_OFFLINE": "1",
        **GOLDEN_SETTINGS_ENV,
    }
    run_cli("index", str(folder), env=env)
    return folder, env


@pytest.fixture
def indexed_folder(indexed_template, tmp_path: Path) -> Path:
    """A copy of the indexed template (photos and sidecar) of this test's own."""
    import shutil

    folder, _ = indexed_template
    copy = tmp_path / "indexed"
    shutil.copytree(folder, copy)
    return copy


def pytest_collection_modifyitems(items) -> None:
    # The offscreen platform says this of every top-level window it shows.
    for item in items:
        if "tests/qt/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(
                pytest.mark.qt_log_ignore(r"This plugin does not support propagateSizeHints")
            )
