"""Start the desktop app: `run_app(folder, settings)` (what `albumtagger [gui] [FOLDER]` calls)."""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
from pathlib import Path

from PySide6.QtCore import (
    QCoreApplication,
    QObject,
    QSocketNotifier,
    QtMsgType,
    qInstallMessageHandler,
)
from PySide6.QtWidgets import QApplication

from albumtagger import __version__
from albumtagger.config import Settings

log = logging.getLogger(__name__)

ORGANIZATION = "albumtagger"
APPLICATION = "albumtagger"


class SignalWaker(QObject):
    """Turns SIGTERM / SIGINT into a clean close: Python signal handlers only run when
    the interpreter gets control, so a socket pair wakes the Qt event loop."""

    def __init__(self, on_signal, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._read, self._write = socket.socketpair()
        self._read.setblocking(False)
        self._write.setblocking(False)
        self._old_fd = signal.set_wakeup_fd(self._write.fileno())
        self._notifier = QSocketNotifier(self._read.fileno(), QSocketNotifier.Type.Read, self)
        self._notifier.activated.connect(self._woken)
        self._on_signal = on_signal
        self._old = {}
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._old[sig] = signal.signal(sig, self._handler)

    def _handler(self, signum: int, frame: object) -> None:
        pass  # the wakeup fd carries the signal number to _woken

    def _woken(self, *_: object) -> None:
        try:
            data = self._read.recv(64)
        except OSError:
            return
        if data:
            log.info("Closing (signal %d)", data[0])
            self._on_signal()

    def restore(self) -> None:
        self._notifier.setEnabled(False)
        signal.set_wakeup_fd(self._old_fd)
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._read.close()
        self._write.close()


def _qt_message(mode: QtMsgType, context, message: str) -> None:
    level = {
        QtMsgType.QtDebugMsg: logging.DEBUG,
        QtMsgType.QtInfoMsg: logging.INFO,
        QtMsgType.QtWarningMsg: logging.WARNING,
        QtMsgType.QtCriticalMsg: logging.ERROR,
        QtMsgType.QtFatalMsg: logging.CRITICAL,
    }.get(mode, logging.WARNING)
    logging.getLogger("qt").log(level, "%s", message)


def run_app(folder: Path | None, settings: Settings) -> int:
    """Open the window (on `folder`, if given) and run until it is closed. When the app
    already runs (for this person and settings), its window shows `folder` instead."""
    from albumtagger.app.single_instance import InstanceServer, send_to_running

    QCoreApplication.setOrganizationName(ORGANIZATION)
    QCoreApplication.setApplicationName(APPLICATION)
    QCoreApplication.setApplicationVersion(__version__)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    app.setDesktopFileName("albumtagger")
    if send_to_running(folder):
        log.info("Handed %s to the albumtagger already open", folder or "the window")
        return 0
    server = InstanceServer()
    server.listen()

    from albumtagger.app.qtcompat import tune_app_process
    from albumtagger.app.window import MainWindow
    from albumtagger.app.worker import ENCODERS

    tune_app_process()
    qInstallMessageHandler(_qt_message)
    window = MainWindow(settings)
    server.folder_requested.connect(window.open_from_launch)
    waker = SignalWaker(window.close)
    window.show()
    if folder is not None:
        window.open_folder(Path(folder))
    elif os.environ.get("ALBUMTAGGER_REOPEN", "1") != "0":
        recent = window.libraries.recent_folders()
        if recent and Path(recent[0]).is_dir():
            window.open_folder(Path(recent[0]))
    try:
        code = app.exec()
    finally:
        server.close()
        waker.restore()
        qInstallMessageHandler(None)
        ENCODERS.close()
    return int(code)
