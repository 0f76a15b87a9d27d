"""One window per person and settings: a second launch hands its folder to the app that
already runs, and ends.

The running app listens on a local socket (`InstanceServer`). A launch first tries it
(`send_to_running`): one line of JSON, `{"folder": ABSOLUTE PATH or null}`, answered by
the line `ok`. When nothing listens, or the app there does not answer within
`ANSWER_TIMEOUT_MS`, the launch opens a window of its own.

The socket's name (`server_name`) comes from the user, the data dir and the settings
file, so two people, or two test configurations, never meet; `ALBUMTAGGER_INSTANCE_NAME`
sets it outright. A socket left behind by an app that crashed is taken over.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import logging
import os
from pathlib import Path

from PySide6.QtCore import QEventLoop, QObject, QTimer, Signal
from PySide6.QtNetwork import QAbstractSocket, QLocalServer, QLocalSocket

from albumtagger.config import config_path, data_dir

log = logging.getLogger(__name__)

NAME_ENV = "ALBUMTAGGER_INSTANCE_NAME"
ANSWER_TIMEOUT_MS = 2000
"""How long a launch waits for the running app's answer before it starts on its own."""
PROBE_TIMEOUT_MS = 500
"""How long `listen` waits to learn whether a socket of the same name has an app behind it."""
REQUEST_TIMEOUT_MS = 5000
"""A connection that has sent no whole request by then is dropped."""
OK = b"ok\n"


def server_name() -> str:
    """The socket name of this person's app with these settings and data."""
    name = os.environ.get(NAME_ENV, "").strip()
    if name:
        return name
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid
        user = str(os.getuid()) if hasattr(os, "getuid") else ""
    key = "\0".join((user, str(data_dir().absolute()), str(config_path().absolute())))
    return "albumtagger-" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def send_to_running(
    folder: Path | None, name: str | None = None, timeout_ms: int = ANSWER_TIMEOUT_MS
) -> bool:
    """Hand `folder` (None: just the window) to the app listening as `name`: True when it
    said it got it (this launch is done), False when none listens or it did not answer
    within `timeout_ms`. Runs the event loop meanwhile (a server in this same process
    answers too), for at most about `timeout_ms`."""
    name = name or server_name()
    path = None if folder is None else os.path.abspath(Path(folder).expanduser())
    request = json.dumps({"folder": path}).encode() + b"\n"
    socket = QLocalSocket()
    loop = QEventLoop()
    timer = QTimer()
    timer.setSingleShot(True)
    reply = bytearray()
    over, connected = [False], [False]

    def send() -> None:
        connected[0] = True
        socket.write(request)

    def finish(*_: object) -> None:
        if socket.isOpen():
            reply.extend(socket.readAll().data())
        over[0] = True
        loop.quit()

    def read() -> None:
        reply.extend(socket.readAll().data())
        if b"\n" in reply:
            finish()

    socket.connected.connect(send)
    socket.readyRead.connect(read)
    socket.disconnected.connect(finish)
    socket.errorOccurred.connect(finish)  # none listens, or it went away
    timer.timeout.connect(finish)
    try:
        socket.connectToServer(name)
        if not over[0]:
            timer.start(timeout_ms)
            loop.exec()
    finally:
        timer.stop()
        for signal in (socket.connected, socket.readyRead, socket.disconnected):
            signal.disconnect()
        socket.errorOccurred.disconnect()
        socket.abort()
    if bytes(reply) == OK:
        return True
    if connected[0]:
        log.info("The albumtagger listening as %s did not answer (%r)", name, bytes(reply))
    return False


class InstanceServer(QObject):
    """Listens for later launches (`listen`); each one's folder comes out of
    `folder_requested`, after the launch was told it was heard."""

    folder_requested = Signal(object)  # Path, or None: a launch without a folder

    def __init__(self, name: str | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.name = name or server_name()
        self._server = QLocalServer(self)
        self._server.newConnection.connect(self._connected)
        self._buffers: dict[QLocalSocket, bytes] = {}

    def listen(self) -> bool:
        """Start listening; a socket left by an app that crashed is taken over. False when
        another app answers on the name (this one then runs without listening)."""
        if self._server.listen(self.name):
            log.info("Listening for later launches as %s", self.name)
            return True
        if self._server.serverError() == QAbstractSocket.SocketError.AddressInUseError:
            if _answers(self.name):
                log.info("Another albumtagger listens as %s; this one does not", self.name)
                return False
            QLocalServer.removeServer(self.name)
            if self._server.listen(self.name):
                log.info("Took over %s, left by an albumtagger that ended", self.name)
                return True
        log.info("Cannot listen as %s: %s", self.name, self._server.errorString())
        return False

    def close(self) -> None:
        """Stop listening (the socket goes) and drop the connections not answered yet."""
        self._server.close()
        for socket in list(self._buffers):
            self._drop(socket)

    def _connected(self) -> None:
        while self._server.hasPendingConnections():
            socket = self._server.nextPendingConnection()
            self._buffers[socket] = b""
            socket.readyRead.connect(lambda s=socket: self._read(s))
            socket.disconnected.connect(lambda s=socket: self._drop(s))
            QTimer.singleShot(REQUEST_TIMEOUT_MS, socket, lambda s=socket: self._drop(s))

    def _drop(self, socket: QLocalSocket) -> None:
        if self._buffers.pop(socket, None) is not None or socket.isOpen():
            socket.abort()
        socket.deleteLater()

    def _read(self, socket: QLocalSocket) -> None:
        if socket not in self._buffers:
            return
        data = self._buffers[socket] + bytes(socket.readAll().data())
        if b"\n" not in data:
            self._buffers[socket] = data[:65536]
            return
        del self._buffers[socket]
        try:
            request = json.loads(data.split(b"\n", 1)[0])
            path = request["folder"]
            folder = None if path is None else Path(str(path))
        except (ValueError, TypeError, KeyError):
            log.info("Ignored a request that is not albumtagger's: %r", data[:200])
            socket.abort()
            socket.deleteLater()
            return
        socket.write(OK)
        socket.disconnectFromServer()  # once the answer is written
        log.info("Another launch asks for %s", folder or "the window")
        self.folder_requested.emit(folder)


def _answers(name: str) -> bool:
    """Whether an app listens as `name` (a socket left behind refuses the connection)."""
    socket = QLocalSocket()
    socket.connectToServer(name)
    try:
        return socket.waitForConnected(PROBE_TIMEOUT_MS)
    finally:
        socket.abort()
