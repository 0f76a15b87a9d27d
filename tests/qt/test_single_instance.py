"""One window per folder: a later launch hands its folder to the app already open (which
comes to the front and shows it) and ends; a socket left by a crashed app is taken over,
a live app's never; an app that does not answer lets the launch start on its own."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from PySide6.QtCore import QDir, Qt
from PySide6.QtNetwork import QLocalServer

from albumtagger.app.single_instance import InstanceServer, send_to_running, server_name
from tests.conftest import REPO, make_photo

OFFSCREEN = pytest.mark.qt_log_ignore(
    r"This plugin does not support (raise\(\)|propagateSizeHints)"
)
"""What the offscreen platform says of a window shown and brought to the front."""


@pytest.fixture
def name() -> str:
    return f"albumtagger-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def listening(qtbot, make_window, name: str):
    """A window (not tagging) whose server listens as `name`."""
    window = make_window(auto_index=False, watch=False)
    server = InstanceServer(name, parent=window)
    assert server.listen()
    server.folder_requested.connect(window.open_from_launch)
    yield window, server
    server.close()


@OFFSCREEN
def test_a_launch_hands_its_folder_to_the_open_window(
    qtbot, listening, name: str, photo_folder: Path
) -> None:
    window, _server = listening
    window.showMinimized()
    with qtbot.waitSignal(window.libraries.library_opened, timeout=30_000):
        assert send_to_running(photo_folder, name)
    assert window.libraries.root == photo_folder
    assert not window.windowState() & Qt.WindowState.WindowMinimized
    assert window.isVisible()


@OFFSCREEN
def test_the_folder_on_screen_is_not_opened_again(
    qtbot, listening, name: str, photo_folder: Path
) -> None:
    window, server = listening
    with qtbot.waitSignal(window.libraries.library_opened, timeout=30_000):
        window.open_folder(photo_folder)
    handle = window.libraries.handle
    window.showMinimized()
    with qtbot.waitSignal(server.folder_requested) as asked:
        assert send_to_running(photo_folder / "trip" / "..", name)
    assert asked.args == [photo_folder.absolute()]
    assert window.libraries.handle is handle  # the same library, not reopened
    assert not window.windowState() & Qt.WindowState.WindowMinimized


@OFFSCREEN
def test_a_launch_without_a_folder_brings_the_window_forward(qtbot, listening, name: str) -> None:
    window, server = listening
    window.showMinimized()
    with qtbot.waitSignal(server.folder_requested) as asked:
        assert send_to_running(None, name)
    assert asked.args == [None]
    assert not window.windowState() & Qt.WindowState.WindowMinimized
    assert window.libraries.root is None


def test_nothing_listening_means_the_launch_starts_on_its_own(qapp, name: str) -> None:
    assert not send_to_running(None, name)


def test_an_app_that_does_not_answer_lets_the_launch_start(qapp, name: str) -> None:
    mute = QLocalServer()  # accepts, never answers (a frozen app)
    assert mute.listen(name)
    try:
        t0 = time.monotonic()
        assert not send_to_running(Path("/photos"), name, timeout_ms=500)
        assert time.monotonic() - t0 < 5
        assert not InstanceServer(name).listen()  # and its socket is left alone
    finally:
        mute.close()


@pytest.mark.skipif(sys.platform == "win32", reason="a Unix socket file left behind")
def test_a_socket_left_by_a_crashed_app_is_taken_over(qtbot, name: str, tmp_path: Path) -> None:
    path = Path(QDir.tempPath()) / name
    left = socket.socket(socket.AF_UNIX)
    left.bind(str(path))  # bound, never listening: what a killed app leaves
    left.close()
    try:
        server = InstanceServer(name)
        assert server.listen()
        with qtbot.waitSignal(server.folder_requested) as asked:
            assert send_to_running(tmp_path, name)
        assert asked.args == [tmp_path]
        server.close()
        assert not path.exists()
    finally:
        path.unlink(missing_ok=True)


def test_a_live_app_keeps_its_name(qtbot, name: str, tmp_path: Path) -> None:
    first = InstanceServer(name)
    assert first.listen()
    second = InstanceServer(name)
    try:
        assert not second.listen()
        with qtbot.waitSignal(first.folder_requested) as asked:
            assert send_to_running(tmp_path, name)
        assert asked.args == [tmp_path]
    finally:
        first.close()
        second.close()


def test_the_name_differs_by_settings_and_data(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.delenv("ALBUMTAGGER_INSTANCE_NAME", raising=False)
    monkeypatch.setenv("ALBUMTAGGER_CONFIG", str(tmp_path / "a" / "config.toml"))
    monkeypatch.setenv("ALBUMTAGGER_DATA_DIR", str(tmp_path / "data"))
    a = server_name()
    monkeypatch.setenv("ALBUMTAGGER_CONFIG", str(tmp_path / "b" / "config.toml"))
    b = server_name()
    monkeypatch.setenv("ALBUMTAGGER_DATA_DIR", str(tmp_path / "other data"))
    assert len({a, b, server_name()}) == 3
    monkeypatch.setenv("ALBUMTAGGER_INSTANCE_NAME", "given")
    assert server_name() == "given"


# -- real launches -------------------------------------------------------------------------


def test_later_launches_hand_over_and_exit(qtbot, tmp_path: Path) -> None:
    """The app on folder A; `albumtagger A` and `albumtagger B` each end at once with
    status 0, and the first app opens B."""
    a, b = tmp_path / "A", tmp_path / "B"
    make_photo(a / "a.jpg", seed=1)
    make_photo(b / "b.jpg", seed=2)
    env = {
        **os.environ,
        "ALBUMTAGGER_CONFIG": str(tmp_path / "config" / "config.toml"),
        "ALBUMTAGGER_DATA_DIR": str(tmp_path / "data"),
        "ALBUMTAGGER_CACHE_DIR": str(tmp_path / "cache"),
        "ALBUMTAGGER_MODEL": str(tmp_path / "no model"),  # the banner, no model process
        "ALBUMTAGGER_REOPEN": "0",
        "XDG_CONFIG_HOME": str(tmp_path / "xdg"),  # the window's QSettings
        "QT_QPA_PLATFORM": "offscreen",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    env.pop("ALBUMTAGGER_INSTANCE_NAME", None)  # named after these settings and data
    log = tmp_path / "first.log"

    def launch(folder: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "albumtagger", "-v", str(folder)],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=10,
        )

    with log.open("w") as err:
        first = subprocess.Popen(
            [sys.executable, "-m", "albumtagger", "-v", str(a)],
            env=env,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        qtbot.waitUntil(
            lambda: "Listening for later launches" in log.read_text() or first.poll() is not None,
            timeout=30_000,
        )
        assert first.poll() is None, log.read_text()
        same = launch(a)
        assert same.returncode == 0, same.stderr
        assert "Handed" in same.stderr
        other = launch(b)
        assert other.returncode == 0, other.stderr
        qtbot.waitUntil(
            lambda: (
                (b / ".albumtagger" / "library.sqlite").exists()
                and f"Opening {b} for another launch" in log.read_text()
            ),
            timeout=15_000,
        )
        assert f"Opening {a} for another launch" not in log.read_text()
        assert first.poll() is None
    finally:
        first.terminate()
        try:
            first.wait(30)
        except subprocess.TimeoutExpired:
            first.kill()
            first.wait()
    assert first.returncode == 0, log.read_text()
