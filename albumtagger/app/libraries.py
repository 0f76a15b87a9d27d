"""The libraries of the app: the one on screen and the others of the selector, kept open
(watched and tagged) behind it, each with its worker; the calls to the one on screen and
their replies; job control, the model's state, settings and notices.

A view-model: the window and the dialogs listen to its signals and ask through its
methods and `client`. Reads go through `queries` and `reads` on the GUI thread; every
write is a call to the worker, whose session reports changes back as events.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Iterable
from functools import partial
from pathlib import Path

from PySide6.QtCore import QObject, QSettings, QTimer, Signal

from albumtagger.app.client import OnReply, SessionClient
from albumtagger.app.reads import ReadPool
from albumtagger.app.worker import Call, Reply, SessionFactory, WorkerHandle
from albumtagger.config import DEFAULT_MODEL, Settings, replace_section
from albumtagger.errors import UserError
from albumtagger.events import FolderState, JobProgress, ModelStatus, Notice
from albumtagger.library.db.queries import LibraryQueries
from albumtagger.library.db.store import SIDECAR_DIR
from albumtagger.tagging.decision_state import MIN_EXAMPLES

log = logging.getLogger(__name__)

MAX_RECENT = 10
MAX_BACKGROUND = MAX_RECENT
"""Libraries of the selector kept open (watched and tagged) behind the one on screen."""
BACKGROUND_DELAY_MS = 1500
"""The library on screen gets this head start before the others are opened."""
OFFLINE_STATUS = "Waiting for the folder to come back"
"""What the job status says while the folder is away."""
VERBS = {"accept": "Accepted", "reject": "Rejected", "add": "Added", "remove": "Removed"}


class Libraries(QObject):
    """`qsettings` keeps the recent folders and the model folder chosen; `session_factory`,
    `auto_index` and `watch` are for tests and benchmarks."""

    opening = Signal(object)  # root Path: the library to show is being opened
    attached = Signal(object)  # root Path: `queries` and `reads` read the new library
    library_opened = Signal(object)  # root Path: on screen
    open_failed = Signal(str, str)  # kind (as `worker.classify` says), message
    library_closed = Signal()  # taken off the screen (`reads` goes once this returns)
    recent_changed = Signal()
    event = Signal(object)  # an event of the library on screen (`albumtagger.events`)
    model_status = Signal(object)  # ModelStatus
    download_offered = Signal(str, str)  # model, revision: it is missing
    offline = Signal(str)  # message: the folder is away (until `folder_back`)
    folder_back = Signal()
    job_idle = Signal(str)  # what the job status says when nothing runs
    paused_changed = Signal(bool)
    background_status = Signal(str)  # what the libraries behind are doing ("" nothing)
    notice_shown = Signal(str, str)  # text, level ("info", "warning", "error")
    correction_done = Signal(object)  # Reply (of a correction or an undo)
    undone = Signal(object)  # Reply of an undo, after `correction_done`
    settings_applied = Signal(object)  # what the open library runs with (a dict)

    def __init__(
        self,
        settings: Settings,
        qsettings: QSettings,
        *,
        session_factory: SessionFactory | None = None,
        auto_index: bool = True,
        watch: bool = True,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.qsettings = qsettings
        model = qsettings.value("model/folder")
        if model and settings.model.model == DEFAULT_MODEL:
            settings = replace_section(settings, "model", model=str(model))
        self.settings = settings
        self._factory = session_factory
        self._auto_index = auto_index
        self._watch = watch
        self.root: Path | None = None
        self.queries: LibraryQueries | None = None
        self.reads: ReadPool | None = None
        self.handle: WorkerHandle | None = None
        self.client = SessionClient(self._send)
        """Calls to the session of the library on screen."""
        self._background: dict[Path, WorkerHandle] = {}
        """The other libraries, watched and tagged while the one on screen is idle."""
        self._front_idle = threading.Event()
        self._front_idle.set()
        self._pending: dict[Call, OnReply | None] = {}
        self.worker_idle = False
        self.paused = False
        self.model_state = "not_loaded"
        self.model_text = ""
        """What the last `ModelStatus` said (the reason, when the model is unavailable)."""
        self.last_progress: JobProgress | None = None
        self.last_notice = ""
        self.offline_text = ""
        """What the window says while the folder on screen is away ("" while it is there)."""
        self._closing = False

    @property
    def is_open(self) -> bool:
        """A library is on screen, its reads ready."""
        return self.handle is not None and self.queries is not None

    def library_in_folder(self) -> bool | None:
        """The library on screen is kept inside its photo folder (False: in the data
        folder, the photo folder being read-only; None: no library on screen)."""
        if self.root is None or self.queries is None:
            return None
        return library_inside(self.root, self.queries.db_path)

    def need_library(self) -> bool:
        """True when a library is on screen; otherwise says so."""
        if not self.is_open:
            self.show_notice("Open a photo folder first.")
        return self.is_open

    def watching(self) -> bool:
        return self._watch and self.settings.watch.enabled

    # -- recent folders -----------------------------------------------------------------

    def recent_folders(self) -> list[str]:
        value = self.qsettings.value("recent/folders") or []
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in value]

    def _remember(self, root: Path) -> None:
        folders = [f for f in self.recent_folders() if f != str(root)]
        folders.insert(0, str(root))
        self.qsettings.setValue("recent/folders", folders[:MAX_RECENT])
        self.recent_changed.emit()

    # -- opening and closing ------------------------------------------------------------

    def open_folder(self, folder: Path) -> None:
        """Show this folder's library (creating it); the worker scans and tags it. The
        library shown until now stays open in the background."""
        root = Path(folder).expanduser().absolute()
        previous, self.handle = self.handle, None
        self._close_library()
        if previous is not None:
            if previous.db_path is not None and previous.root != root and self._watch:
                previous.set_background(True)
                self._background[previous.root] = previous
            else:
                self._stop_handles([previous])
        self.root = root
        self._remember(root)
        self.worker_idle = False
        self.model_state, self.model_text = "not_loaded", ""
        self.offline_text = ""
        self._front_idle.clear()
        self.opening.emit(root)
        handle = self._background.pop(root, None)
        if handle is not None and (handle.open_error is not None or not handle.is_running()):
            self._stop_handles([handle])  # it could not open: try afresh
            handle = None
        if handle is None:
            self.handle = self._start_handle(root)
            return
        self.handle = handle
        handle.set_background(False)
        if handle.db_path is not None:
            self._attach(handle.db_path)
            if handle.last_progress is not None:
                self._event_from(handle.last_progress)
            self._idle_from(handle, handle.idle)

    def reopen(self) -> None:
        """Open the library on screen afresh (after it failed, or with new settings)."""
        if self.root is not None:
            self.open_folder(self.root)

    def background_roots(self) -> list[Path]:
        """The libraries kept open behind the one on screen."""
        return list(self._background)

    def close(self) -> None:
        """Stop every worker (the app is closing)."""
        self._closing = True
        handles = [h for h in (self.handle, *self._background.values()) if h is not None]
        self.handle = None
        self._background.clear()
        self._close_library()
        self._stop_handles(handles)

    def _start_handle(self, root: Path) -> WorkerHandle:
        handle = WorkerHandle(
            root,
            self.settings,
            self._factory,
            auto_index=self._auto_index,
            watch=self.watching(),
            front_idle=self._front_idle,
        )
        w = handle.worker
        w.opened.connect(self._opened)
        w.open_failed.connect(self._open_failed)
        w.event.connect(self._event)
        w.replied.connect(self._replied)
        w.failed.connect(self._failed)
        w.idle.connect(self._idle)
        handle.start()
        return handle

    def _stop_handles(self, handles: list[WorkerHandle]) -> None:
        """Stop these workers together (each closes its library in its own thread)."""
        for handle in handles:
            handle.request_stop()
        for handle in handles:
            handle.stop()
            handle.deleteLater()
        # What they leave behind is collected from the event loop, with nothing of Qt's
        # in use, not by a collection that happens to start inside a slot later.
        QTimer.singleShot(0, gc.collect)

    def _open_background(self) -> None:
        """Keep every library of the selector watched and tagged, not only this one."""
        if self._closing or not self.watching():
            return
        for folder in self.recent_folders()[:MAX_BACKGROUND]:
            root = Path(folder)
            if root != self.root and root not in self._background and root.is_dir():
                handle = self._start_handle(root)
                handle.set_background(True)
                self._background[root] = handle
        self._update_background_status()

    def _opened(self, db_path: object) -> None:
        if self.handle is None or self.sender() is not self.handle.worker:
            return
        self._attach(Path(str(db_path)))
        QTimer.singleShot(BACKGROUND_DELAY_MS, self._open_background)

    def _attach(self, db_path: Path) -> None:
        """Show the library whose sidecar is `db_path` (its worker has it open)."""
        try:
            self.queries = LibraryQueries(db_path)
        except UserError as exc:
            self._open_failed("user", str(exc))
            return
        self.reads = ReadPool(db_path, self)
        self.attached.emit(self.root)
        self.library_opened.emit(self.root)

    def _open_failed(self, kind: str, message: str) -> None:
        if self.handle is None or self.sender() not in (self.handle.worker, None):
            return
        self.open_failed.emit(kind, message)

    def _close_library(self) -> None:
        """Take the library off the screen (its worker is the caller's business)."""
        self.library_closed.emit()
        if self.reads is not None:
            self.reads.shutdown()
            self.reads.deleteLater()
            self.reads = None
        if self.queries is not None:
            self.queries.close()
            self.queries = None
        self._pending.clear()
        self.paused = False

    # -- calls and replies --------------------------------------------------------------

    def _send(self, call: Call, on_reply: OnReply | None) -> bool:
        if self.handle is None:
            return False
        self._pending[call] = on_reply
        self.handle.submit(call)
        return True

    def _replied(self, reply: object) -> None:
        if self.handle is None or self.sender() is not self.handle.worker:
            return
        assert isinstance(reply, Reply)
        on_reply = self._pending.pop(reply.request, None)
        if on_reply is not None:
            on_reply(reply)
        elif reply.error:
            self.show_error(reply)

    def show_error(self, reply: Reply) -> None:
        if reply.error_kind == "model":  # the model's one place says why, not a notice
            self._model_status(ModelStatus("unavailable", reply.error))
            return
        if reply.error_kind == "offline":
            self._folder_state(FolderState(False, reply.error))
        self.show_notice(reply.error, "error" if reply.error_kind == "bug" else "warning")

    def show_notice(self, text: str, level: str = "info") -> None:
        self.last_notice = text
        self.notice_shown.emit(text, level)

    # -- corrections --------------------------------------------------------------------

    def correct(self, photo_ids: Iterable[int], tag: str, action: str) -> None:
        """`action` ("accept", "reject", "add" or "remove") `tag` on these photos."""
        ids = [int(i) for i in photo_ids]
        self.client.correct(ids, tag, action, on_reply=self._correction_reply)

    def learn_tag(self, photo_ids: Iterable[int], tag: str) -> None:
        """Give `tag` these photos as examples; a new tag is learned from them alone."""
        ids = [int(i) for i in photo_ids]
        self.client.learn_tag(tag, ids, on_reply=self._learned_reply)

    def _learned_reply(self, reply: Reply) -> None:
        if reply.error:
            self.show_error(reply)
        else:
            added, examples = reply.result  # type: ignore[misc]
            n = len(examples)
            photos = f"{n:,} photo{'s' if n != 1 else ''}"
            name = examples[0].tag if examples else ""
            if added is not None:
                wait = (
                    f"; it is suggested on other photos once it has {MIN_EXAMPLES}"
                    if n < MIN_EXAMPLES
                    else ""
                )
                self.show_notice(f"New tag {name!r}, learned from {photos}{wait}.")
            else:
                self.show_notice(f"Added {photos} as examples of {name!r}.")
        self.correction_done.emit(reply)

    def undo(self) -> None:
        self.client.undo(on_reply=partial(self._correction_reply, undo=True))

    def redo(self) -> None:
        """Put back the correction undone last."""
        self.client.redo(on_reply=partial(self._correction_reply, redo=True))

    def undo_activity(self, entry_id: int) -> None:
        """Undo the correction of an entry of the activity (each photo of it)."""
        self.client.undo_activity(entry_id, on_reply=self._correction_reply)

    def _correction_reply(self, reply: Reply, undo: bool = False, redo: bool = False) -> None:
        result = reply.result
        if reply.error:
            self.show_error(reply)
        elif isinstance(result, list):
            if len(result) == 1:
                self.show_notice(result[0].describe())
            elif result:
                first = result[0]
                verb = VERBS.get(first.action, first.action)
                if first.action == "undo":  # of a correction of several photos
                    verb = "Undid: " + VERBS.get(first.undone_action, "changed").lower()
                scoring = first.scoring_text()  # of a tag this correction created
                self.show_notice(
                    f"{verb} {first.tag!r} on {len(result):,} photos"
                    + (f"; {scoring}." if scoring else ".")
                )
        elif result is None:
            self.show_notice("Nothing to redo." if redo else "Nothing to undo.")
        else:
            self.show_notice(result.describe())
        self.correction_done.emit(reply)
        if undo:
            self.undone.emit(reply)

    # -- worker events ------------------------------------------------------------------

    def _event(self, ev: object) -> None:
        if self.handle is not None and self.sender() is self.handle.worker:
            self._event_from(ev)
        elif isinstance(ev, JobProgress):
            self._update_background_status()

    def _event_from(self, ev: object) -> None:
        if isinstance(ev, JobProgress):
            self.last_progress = ev
        elif isinstance(ev, Notice):
            self.show_notice(ev.text, ev.level)
        elif isinstance(ev, ModelStatus):
            self._model_status(ev)
        elif isinstance(ev, FolderState):
            self._folder_state(ev)
        self.event.emit(ev)

    def _update_background_status(self) -> None:
        """Say what the libraries behind the one on screen are doing, if anything."""
        busy = []
        for root, handle in self._background.items():
            p = handle.last_progress
            if p is not None and not p.finished and not handle.idle and p.total:
                busy.append(f"{root.name or root}: {p.done:,}/{p.total:,}")
        self.background_status.emit("Also tagging " + ", ".join(busy) if busy else "")

    def _model_status(self, ev: ModelStatus) -> None:
        self.model_state, self.model_text = ev.state, ev.text
        self.model_status.emit(ev)
        if ev.state == "unavailable":
            self.client.apply_settings(on_reply=self._offer_download)

    def _offer_download(self, reply: Reply) -> None:
        """The model the open library runs with is missing: offer to download it."""
        if not reply.error and self.model_state == "unavailable":
            self.download_offered.emit(str(reply.result["model"]), str(reply.result["revision"]))

    def _folder_state(self, ev: FolderState) -> None:
        """The folder on screen went away (one notice that stays, the job status says
        so) or came back."""
        if ev.online == (not self.offline_text):
            return
        self.offline_text = "" if ev.online else ev.text
        if ev.online:
            self.folder_back.emit()
        else:
            self.offline.emit(ev.text)
        if self.handle is not None and self.worker_idle and not self.paused:
            self._idle_from(self.handle, True)

    def _failed(self, kind: str, message: str, trace: str) -> None:
        if kind == "offline":
            if self.handle is not None and self.sender() is self.handle.worker:
                self._folder_state(FolderState(False, message))
            return
        if trace:
            log.error("worker error: %s\n%s", message, trace)
        self.show_notice(message if kind != "bug" else f"Something went wrong: {message}", "error")

    def _idle(self, idle: bool) -> None:
        if self.handle is None or self.sender() is not self.handle.worker:
            self._update_background_status()
            return
        self._idle_from(self.handle, idle)

    def _idle_from(self, handle: WorkerHandle, idle: bool) -> None:
        if idle:
            self._front_idle.set()
        else:
            self._front_idle.clear()
        self.worker_idle = idle
        if idle and not self.paused:
            if self.offline_text:
                self.job_idle.emit(OFFLINE_STATUS)
            elif handle.worker.flags.cancelled.is_set():
                self.job_idle.emit("Stopped: Tag again (F5) goes on")
            else:
                self.job_idle.emit("Watching the folder" if self.watching() else "Ready")

    # -- job control --------------------------------------------------------------------

    def pause(self) -> None:
        if self.handle is not None:
            self.handle.pause()
        self.paused = True
        self.paused_changed.emit(True)

    def resume(self) -> None:
        if self.handle is not None:
            self.handle.resume()
        self.paused = False
        self.paused_changed.emit(False)

    def toggle_pause(self) -> None:
        if self.paused:
            self.resume()
        else:
            self.pause()

    def cancel_job(self) -> None:
        if self.handle is not None:
            self.handle.cancel_job()
        if self.paused:
            self.resume()
        self.show_notice("Stopped. Photos already tagged are kept; Tag again (F5) goes on.")

    def reindex(self) -> None:
        if self.handle is not None:
            self.handle.reindex()

    # -- settings -----------------------------------------------------------------------

    def use_model(self, folder: Path) -> None:
        """Use this model folder from now on (remembered), reopening the library."""
        self.qsettings.setValue("model/folder", str(folder))
        self.settings = replace_section(self.settings, "model", model=str(folder))
        self.reopen()

    def apply_settings(self, settings: Settings, *, reopen: bool = False) -> None:
        """Run with `settings` from now on. Thresholds, watching and XMP reach the open
        libraries at once (`settings_applied` follows); the model's settings apply when a
        library is next opened, at once with `reopen`."""
        model_changed = settings.model != self.settings.model
        self.settings = settings
        if reopen and self.root is not None:
            self.show_notice("Settings saved; the library is reopened with them.")
            self.reopen()
            return
        watching = self.watching()
        for handle in (*self._background.values(), self.handle):
            if handle is not None:
                handle.worker.set_watching(watching)
        for handle in self._background.values():
            SessionClient(partial(_submit, handle)).apply_settings(settings)
        note = " The model settings apply when the library is next opened." if model_changed else ""
        if not self.client.apply_settings(settings, on_reply=partial(self._settings_applied, note)):
            self.show_notice("Settings saved." + note)
            return
        if self.worker_idle and not self.paused and self.handle is not None:
            self._idle_from(self.handle, True)
        if watching and self.handle is not None:
            self._open_background()

    def _settings_applied(self, note: str, reply: Reply) -> None:
        if reply.error:
            self.show_error(reply)
            return
        changed = int(reply.result.get("redecided", 0))
        decided = f" Tags decided again: {changed:,} suggestions changed." if changed else ""
        if reply.result.get("redecision"):
            decided = f" {reply.result['redecision']}"
        self.show_notice("Settings saved." + decided + note)
        self.settings_applied.emit(reply.result)


def library_inside(root: Path, db_path: Path | str) -> bool:
    """The sidecar `db_path` is the one inside the photo folder `root`."""
    return Path(db_path).parent == Path(root) / SIDECAR_DIR


def _submit(handle: WorkerHandle, call: Call, _on_reply: OnReply | None) -> bool:
    """Send a call to a library behind the one on screen (its reply is not awaited)."""
    handle.submit(call)
    return True
