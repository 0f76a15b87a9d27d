"""The one long-lived worker: owns the `LibrarySession` of a library on its own QThread and
runs a loop of short steps (a request from the window, a batch of the index job, a watch
step), so a correction or a search is answered between two batches. Each step that
writes holds the library's writer lock only while it works, so a CLI command can write
in between; what others commit is noticed on the next step and reported as events.

The app talks to it through `WorkerHandle` (GUI thread): calls (`Call`, made by
`app.client.SessionClient`) go by a queued signal and are answered by a `Reply`; pause,
resume and cancel go straight to the session (thread-safe), because a queued "cancel"
would wait behind the step it means to stop. The session's events come back as one
queued `event` signal carrying the plain dataclasses of `albumtagger.events`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QCoreApplication, QObject, QThread, QTimer, Signal, Slot

from albumtagger.config import Settings
from albumtagger.errors import LibraryOfflineError, ModelError, UserError
from albumtagger.events import Event, JobProgress, ModelStatus
from albumtagger.library.lock import LibraryBusyError
from albumtagger.model.encoder_process import EncoderProcess
from albumtagger.model.shared import EncoderPool
from albumtagger.tagging.decision_state import cyclic_gc_paused

if TYPE_CHECKING:
    from albumtagger.service.session import LibrarySession

log = logging.getLogger(__name__)

PROGRESS_INTERVAL_S = 0.25
IDLE_WATCH_MS = 300
"""Pause between watch steps that found nothing to do."""
WATCH_STEP_S = 0.25
MODEL_RETRY_S = 60.0
"""After the model failed to load, watching waits this long before trying again."""
BUSY_WAIT_S = 2.0
"""How long a step waits for another process working on the library (then the step is
tried again later, and a request is answered with the other process named)."""
BUSY_RETRY_S = 1.0


# -- requests and replies ---------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Call:
    """One `LibrarySession` method to run in the worker (`SessionClient` makes them):
    `name` says which, `run(session)` calls it with its arguments."""

    name: str
    run: Callable[[LibrarySession], Any]


@dataclass(frozen=True, eq=False)
class Reply:
    """The answer to one call: `result`, or `error` (a message for the person) with
    `error_kind` (as `classify` says)."""

    request: Call
    result: Any = None
    error: str = ""
    error_kind: str = ""
    seconds: float = 0.0


def classify(exc: BaseException) -> tuple[str, str]:
    """(kind, message) of an error: "model", "offline", "busy" (another process works on
    the library), "user" (the message says what to do) or "bug"."""
    if isinstance(exc, ModelError):
        return "model", str(exc)
    if isinstance(exc, LibraryOfflineError):
        return "offline", str(exc)
    if isinstance(exc, LibraryBusyError):
        return "busy", str(exc)
    if isinstance(exc, UserError):
        return "user", str(exc)
    return "bug", bug_message(exc)


def bug_message(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


@dataclass
class _Flags:
    stop: threading.Event = field(default_factory=threading.Event)
    paused: threading.Event = field(default_factory=threading.Event)
    cancelled: threading.Event = field(default_factory=threading.Event)
    """Set by Cancel: no tagging (nor watching) until the window asks again."""
    background: threading.Event = field(default_factory=threading.Event)
    """Set while another library is on screen: tag and watch only when that one's
    worker is idle (requests are still served at once)."""


SessionFactory = Callable[..., Any]

ENCODERS = EncoderPool(EncoderProcess)
"""The app's models, each in a process of its own (so the window never waits on one);
libraries that use the same model share it."""


MODEL_SOURCE_FIELDS = ("model", "revision", "min_image_tokens", "max_image_tokens")


def explicit_model_fields(environ: dict[str, str] | None = None) -> set[str]:
    """Model settings given on purpose by environment variables: they win over the model a
    library records (as in the CLI)."""
    env = os.environ if environ is None else environ
    return {
        f
        for f in MODEL_SOURCE_FIELDS
        if f"ALBUMTAGGER_{f.upper()}" in env or f"ALBUMTAGGER_MODEL_{f.upper()}" in env
    }


def default_session_factory(
    root: Path,
    settings: Settings,
    on_event: Callable[[Event], None],
    explicit_model: set[str] | frozenset[str] = frozenset(),
    backup: bool = True,
):
    from albumtagger.library.thumbnails import ThumbnailCache
    from albumtagger.service.session import LibrarySession

    return LibrarySession(
        root,
        settings,
        on_event=on_event,
        explicit_model=explicit_model_fields() | set(explicit_model),
        thumbnails=ThumbnailCache(),
        backup=backup,
        encoder_loader=ENCODERS.get,
        wait=BUSY_WAIT_S,
    )


class Worker(QObject):
    """Lives in the worker thread; everything here runs there."""

    opened = Signal(object)  # the session's db_path
    open_failed = Signal(str, str)  # kind (as `classify` says), message
    event = Signal(object)  # an albumtagger.events.Event
    replied = Signal(object)  # a Reply
    failed = Signal(str, str, str)  # kind, message, traceback
    idle = Signal(bool)  # True when the job is done and watching found nothing
    finished = Signal()

    def __init__(
        self,
        root: Path,
        settings: Settings,
        factory: SessionFactory | None = None,
        *,
        auto_index: bool = True,
        watch: bool = True,
        front_idle: threading.Event | None = None,
    ) -> None:
        """`front_idle`: set while the library on screen has nothing to do; a worker in
        the background waits for it between steps."""
        super().__init__()
        self.root = root
        self._front_idle = front_idle
        self.settings = settings
        self._factory = factory or default_session_factory
        self._auto_index = auto_index
        self._watch = watch
        self.flags = _Flags()
        self._requests: deque[Call] = deque()
        self._session: Any = None
        self._session_lock = threading.Lock()
        self._job: Iterator[JobProgress] | None = None
        self._timer: QTimer | None = None
        self._last_progress = 0.0
        self._was_idle: bool | None = None
        self._closed = False
        self._watch_retry_at = 0.0
        self._reindex_at = 0.0
        """When an index job stopped by another process's work is started again."""

    # -- life ---------------------------------------------------------------------------

    @Slot()
    def start(self) -> None:
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._step)
        try:
            session = self._factory(self.root, self.settings, on_event=self._on_event)
        except Exception as exc:
            kind, message = classify(exc)
            if kind == "bug":
                log.exception("opening %s failed", self.root)
            self.open_failed.emit(kind, message)
            return
        with self._session_lock:
            self._session = session
        if self.flags.stop.is_set():
            self._close_session()
            return
        self.opened.emit(session.db_path)
        if self._auto_index:
            self._job = iter(session.index(keep_scan=True))
        self._kick()

    @Slot(object)
    def submit(self, call: Call) -> None:
        self._requests.append(call)
        self._kick()

    @Slot()
    def reindex(self) -> None:
        """Scan and tag again (after a cancel, or when the folder comes back)."""
        self._watch_retry_at = 0.0
        self.flags.cancelled.clear()
        if self._session is not None and self._job is None:
            self._job = iter(self._session.index(keep_scan=True))
        self._kick()

    @Slot()
    def shutdown(self) -> None:
        """Stop for good (queued from the window, after `WorkerHandle.stop` set the flag)."""
        self.flags.stop.set()
        if self._timer is not None:
            self._timer.stop()
        self._job = None
        self._close_session()
        # Hand this object back to the GUI thread so it is deleted there.
        app = QCoreApplication.instance()
        if app is not None:
            self.moveToThread(app.thread())
        self.finished.emit()
        thread = QThread.currentThread()
        thread.quit()

    def cancel_now(self) -> None:
        """From any thread: stop the running job at its next check, and keep from
        tagging (watching included) until `reindex`."""
        self.flags.cancelled.set()
        with self._session_lock:
            session = self._session
        if session is not None:
            session.cancel()

    def set_paused(self, paused: bool) -> None:
        """From any thread."""
        with self._session_lock:
            session = self._session
        if paused:
            self.flags.paused.set()
            if session is not None:
                session.pause()
        else:
            self.flags.paused.clear()
            if session is not None:
                session.resume()

    def _close_session(self) -> None:
        if self._closed:
            return
        self._closed = True
        with self._session_lock:
            session, self._session = self._session, None
        if session is not None:
            try:
                session.close()
            except Exception:
                log.exception("closing the library failed")

    # -- the loop -----------------------------------------------------------------------

    def _kick(self, delay_ms: int = 0) -> None:
        timer = self._timer
        if timer is None or self.flags.stop.is_set():
            return
        if timer.isActive() and timer.remainingTime() <= delay_ms:
            return
        timer.start(delay_ms)

    def _step(self) -> None:
        if self.flags.stop.is_set() or self._session is None:
            return
        try:
            if self._requests:
                self._serve(self._requests.popleft())
                self._kick()
                return
            self._session.refresh()  # what other processes committed, as events
            if self._yielding():
                self._kick(IDLE_WATCH_MS)
                return
            paused = self.flags.paused.is_set()
            if self._reindex_at and time.monotonic() >= self._reindex_at:
                self._reindex_at = 0.0
                if self._job is None and not self.flags.cancelled.is_set():
                    self._job = iter(self._session.index(keep_scan=True))
            if self._job is not None and not paused:
                self._job_step()
                self._kick()
                return
            cancelled = self.flags.cancelled.is_set()
            if self._watch and not paused and not cancelled and self._job is None:
                if time.monotonic() < self._watch_retry_at:
                    self._set_idle(True)
                    self._kick(IDLE_WATCH_MS)
                    return
                try:
                    did = bool(self._session.watch_step(WATCH_STEP_S))
                except ModelError as exc:
                    # Watching needs the model to tag what it finds: try again later.
                    self._watch_retry_at = time.monotonic() + MODEL_RETRY_S
                    self.event.emit(ModelStatus("unavailable", str(exc)))
                    did = False
                self._set_idle(not did)
                self._kick(0 if did else IDLE_WATCH_MS)
                return
            if self._job is None and not paused:
                self._session.score_waiting_tags()  # watching does it when it is on
            self._set_idle(self._job is None)
            if paused:
                self._kick(IDLE_WATCH_MS)
        except Exception as exc:  # a bug in a step: say it, keep serving requests
            log.exception("worker step failed")
            self.failed.emit("bug", bug_message(exc), traceback.format_exc())
            self._job = None
            self._kick(IDLE_WATCH_MS)

    def set_watching(self, watching: bool) -> None:
        """From any thread: watch the folder between jobs, or not (read before each step)."""
        self._watch = bool(watching)

    def _yielding(self) -> bool:
        front = self._front_idle
        return self.flags.background.is_set() and front is not None and not front.is_set()

    def _set_idle(self, idle: bool) -> None:
        if idle != self._was_idle:
            self._was_idle = idle
            self.idle.emit(idle)

    def _job_step(self) -> None:
        assert self._job is not None
        self._set_idle(False)
        try:
            progress = next(self._job)
        except StopIteration:
            self._job = None
            return
        except Exception as exc:
            self._job = None
            kind, message = classify(exc)
            if kind == "bug":
                raise
            if kind == "model":
                self.event.emit(ModelStatus("unavailable", message))
            elif kind == "busy":
                # Another process held the library longer than a step waits (the wait was
                # told): the job starts again soon and goes on where the library stands.
                self._reindex_at = time.monotonic() + BUSY_RETRY_S
            else:
                self.failed.emit(kind, message, "")
            return
        if isinstance(progress, JobProgress):
            self._emit_progress(progress)

    def _serve(self, call: Call) -> None:
        t0 = time.perf_counter()
        try:
            with cyclic_gc_paused():  # what a request makes is freed when it returns
                result = call.run(self._session)
        except Exception as exc:
            kind, message = classify(exc)
            if kind == "bug":
                log.exception("request %s failed", call.name)
            reply = Reply(call, error=message, error_kind=kind)
        else:
            reply = Reply(call, result=result)
        self.replied.emit(replace(reply, seconds=time.perf_counter() - t0))

    # -- events -------------------------------------------------------------------------

    def _on_event(self, ev: Event) -> None:
        """The session's callback (worker thread): progress is throttled to ~10/s."""
        if isinstance(ev, JobProgress):
            self._emit_progress(ev)
            return
        self.event.emit(ev)

    def _emit_progress(self, p: JobProgress) -> None:
        now = time.monotonic()
        if p.finished or p.done >= p.total or now - self._last_progress >= PROGRESS_INTERVAL_S:
            self._last_progress = now
            self.event.emit(p)


class WorkerHandle(QObject):
    """GUI-thread side: starts the thread, forwards requests, stops cleanly."""

    _request = Signal(object)
    _reindex = Signal()
    _shutdown = Signal()

    def __init__(
        self,
        root: Path,
        settings: Settings,
        factory: SessionFactory | None = None,
        *,
        auto_index: bool = True,
        watch: bool = True,
        front_idle: threading.Event | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.root = root
        self.thread = QThread()
        self.thread.setObjectName(f"albumtagger worker {root.name}")
        self.worker = Worker(
            root, settings, factory, auto_index=auto_index, watch=watch, front_idle=front_idle
        )
        self.worker.moveToThread(self.thread)
        self.thread.started.connect(self.worker.start)
        self._request.connect(self.worker.submit)
        self._reindex.connect(self.worker.reindex)
        self._shutdown.connect(self.worker.shutdown)
        self._stopped = False
        # What the app needs when it brings this library to the front again.
        self.db_path: Path | None = None
        self.open_error: tuple[str, str] | None = None
        self.last_progress: JobProgress | None = None
        self.idle = False
        self.worker.opened.connect(self._opened)
        self.worker.open_failed.connect(self._open_failed)
        self.worker.event.connect(self._event)
        self.worker.idle.connect(self._idle)

    def _opened(self, db_path: object) -> None:
        self.db_path = Path(str(db_path))

    def _open_failed(self, kind: str, message: str) -> None:
        self.open_error = (kind, message)

    def _event(self, ev: object) -> None:
        if isinstance(ev, JobProgress):
            self.last_progress = ev

    def _idle(self, idle: bool) -> None:
        self.idle = idle

    def set_background(self, background: bool) -> None:
        """In the background, tag and watch only while the library on screen is idle."""
        if background:
            self.worker.flags.background.set()
        else:
            self.worker.flags.background.clear()

    def start(self) -> None:
        self.thread.start()

    def submit(self, call: Call) -> None:
        if not self._stopped:
            self._request.emit(call)

    def reindex(self) -> None:
        """Scan and tag again (after a cancel, or when the folder comes back)."""
        if not self._stopped:
            self._reindex.emit()

    def pause(self) -> None:
        self.worker.set_paused(True)

    def resume(self) -> None:
        self.worker.set_paused(False)

    def cancel_job(self) -> None:
        self.worker.cancel_now()

    def is_running(self) -> bool:
        return self.thread.isRunning()

    def request_stop(self) -> None:
        """Cancel what runs and ask the worker to close its session, without waiting."""
        if self._stopped:
            return
        self._stopped = True
        self.worker.flags.stop.set()
        self.worker.cancel_now()
        if self.thread.isRunning():
            self._shutdown.emit()

    def stop(self, timeout_ms: int = 30_000) -> bool:
        """Cancel what runs, close the session in its thread, wait for the thread."""
        self.request_stop()
        if self.thread.isRunning() and not self.thread.wait(timeout_ms):
            log.error("the worker did not stop in %d ms; waiting longer", timeout_ms)
            self.thread.wait()
        return True
