"""The model download panel: when the model is not on this computer and the hub can be
reached, it offers to download it (its size asked off the GUI thread), then shows the
download's progress, speed and time left with Cancel, and Resume after a cancel or an
interruption. The download runs on a thread of its own, so browsing and manual tagging
go on; `downloaded` says when the model is there to be loaded."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QThread, Signal
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from albumtagger.app.pages import duration_text
from albumtagger.errors import ModelError
from albumtagger.model.download import (
    Cancelled,
    DownloadInterrupted,
    DownloadPlan,
    DownloadProgress,
    size_text,
)

log = logging.getLogger(__name__)

STOP_WAIT_MS = 20_000
"""How long closing waits for a download thread (a stalled read ends at its timeout)."""


class _Job(QThread):
    """Runs one function on its own thread (no event loop) and reports through signals,
    which reach the panel on the GUI thread."""

    progress = Signal(object)  # DownloadProgress
    done = Signal(object)  # the function's result
    failed = Signal(str, bool)  # message, resumable
    cancelled = Signal()

    def __init__(self, fn: Callable[[_Job], Any], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._fn = fn

    def run(self) -> None:
        try:
            result = self._fn(self)
        except Cancelled:
            self.cancelled.emit()
        except DownloadInterrupted as exc:
            self.failed.emit(str(exc), True)
        except ModelError as exc:
            self.failed.emit(str(exc), False)
        except Exception as exc:
            log.exception("model download job failed")
            self.failed.emit(f"{type(exc).__name__}: {exc}", True)
        else:
            self.done.emit(result)


def progress_line(p: DownloadProgress) -> str:
    """ "1.20 GB of 4.41 GB · 35.2 MB/s · about 2 min left"."""
    parts = [f"{size_text(p.done)} of {size_text(p.total)}"]
    if p.speed:
        parts.append(f"{size_text(p.speed)}/s")
    if p.eta_s is not None and p.done < p.total:
        parts.append(f"about {duration_text(p.eta_s)} left")
    return " \u00b7 ".join(parts)


def _probe(repo_id: str, revision: str) -> DownloadPlan | str:
    """The download plan, or why there is none to offer ("offline", or the error)."""
    from albumtagger.model.download import plan_download
    from albumtagger.model.files import env_offline, hub_reachable

    if env_offline() or not hub_reachable():
        return "offline"
    try:
        return plan_download(repo_id, revision)
    except ModelError as exc:
        return str(exc)


class ModelDownloadPanel(QFrame):
    """Hidden until `offer(model, revision)` finds the model missing and downloadable.

    `state`: "none", "probing", "offline" (the hub cannot be reached: nothing offered),
    "unavailable" (no download to offer), "offer", "downloading", "stopping", "stopped"
    (cancelled or interrupted: Resume), "done" (downloaded, loading)."""

    downloaded = Signal(object)  # the snapshot folder (Path)
    state_changed = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setAutoFillBackground(True)
        self.setBackgroundRole(QPalette.ColorRole.ToolTipBase)
        self.setForegroundRole(QPalette.ColorRole.ToolTipText)
        self.text = QLabel()
        self.text.setTextFormat(Qt.TextFormat.PlainText)
        self.text.setWordWrap(True)
        self.text.setAccessibleName("Model download")
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.bar.setTextVisible(False)
        self.bar.setAccessibleName("Download progress")
        self.detail = QLabel()
        self.detail.setTextFormat(Qt.TextFormat.PlainText)
        self.detail.setAccessibleName("Downloaded, speed and time left")
        self.download_button = QPushButton()
        self.download_button.clicked.connect(self.start_download)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop the download; what was downloaded is kept")
        self.cancel_button.clicked.connect(self.cancel)
        buttons = QHBoxLayout()
        buttons.addWidget(self.bar, 1)
        buttons.addWidget(self.detail)
        buttons.addStretch(0)
        buttons.addWidget(self.download_button)
        buttons.addWidget(self.cancel_button)
        box = QVBoxLayout(self)
        box.setContentsMargins(8, 4, 8, 4)
        box.addWidget(self.text)
        box.addLayout(buttons)
        self.state = "none"
        self.repo_id = ""
        self.revision = ""
        self.plan: DownloadPlan | None = None
        self.last_progress: DownloadProgress | None = None
        self.message = ""
        self._job: _Job | None = None
        self._cancel = threading.Event()
        self._probe_for = _probe
        self.hide()

    # -- what the window calls ----------------------------------------------------------

    def offer(self, model: str, revision: str | None = None) -> None:
        """The model could not be loaded: when it is a hub checkpoint that is missing and
        the hub answers, offer to download it (checked off the GUI thread)."""
        from albumtagger.model.files import hub_revision, is_hub_model

        if not is_hub_model(model):
            self._set_state("none")
            return
        rev = hub_revision(model, revision)
        same = (model, rev) == (self.repo_id, self.revision)
        if same and self.state not in ("none", "offline", "unavailable"):
            return  # already offered, running or stopped: the person decides
        if self._job is not None:
            return
        self.repo_id, self.revision = model, rev
        self._set_state("probing")
        probe = self._probe_for
        self._start(lambda _job: probe(model, rev), self._probed).start()

    def model_ready(self) -> None:
        """The model loaded: nothing left to show (a running download is left alone)."""
        if self.state not in ("downloading", "stopping", "probing"):
            self._set_state("none")

    def start_download(self) -> None:
        """Download (or resume) the offered model on the panel's own thread."""
        if self._job is not None or not self.repo_id:
            return
        from albumtagger.model.download import download_model

        repo, rev = self.repo_id, self.revision
        self._cancel = threading.Event()
        cancel = self._cancel
        self.message = ""
        if self.plan is not None:
            self.last_progress = DownloadProgress(self.plan.have, self.plan.total, None, None)
        self._set_state("downloading")

        def run(job: _Job) -> Path:
            return download_model(repo, rev, progress=job.progress.emit, cancel=cancel)

        job = self._start(run, self._finished)
        job.progress.connect(self._progress)
        job.cancelled.connect(self._cancelled)
        job.start()

    def cancel(self) -> None:
        """Stop the download at its next chunk (well within a second while data flows)."""
        if self.state == "downloading":
            self._cancel.set()
            self._set_state("stopping")

    def shutdown(self) -> None:
        """Stop what runs and wait for it (the window is closing)."""
        self._cancel.set()
        job = self._job
        if job is not None and not job.wait(STOP_WAIT_MS):
            log.warning("the model download did not stop in time")

    # -- jobs ---------------------------------------------------------------------------

    def _start(self, fn: Callable[[_Job], Any], on_done: Callable[[object], None]) -> _Job:
        job = _Job(fn, self)
        job.done.connect(on_done)
        job.failed.connect(self._failed)
        job.finished.connect(self._job_finished)
        self._job = job
        return job

    def _job_finished(self) -> None:
        job = self.sender()
        if job is self._job:
            self._job = None
        if isinstance(job, _Job):
            job.deleteLater()

    def _release_job(self) -> None:
        """The job reported its end (its function returned): let its thread finish, so
        that the next job can start at once."""
        job, self._job = self._job, None
        if job is not None:
            job.wait()

    def _probed(self, result: object) -> None:
        self._release_job()
        if isinstance(result, DownloadPlan):
            self.plan = result
            self._set_state("unavailable" if result.cached else "offer")
        elif result == "offline":
            self._set_state("offline")
        else:
            self.message = str(result)
            self._set_state("unavailable")

    def _progress(self, p: object) -> None:
        if isinstance(p, DownloadProgress) and self.state in ("downloading", "stopping"):
            self.last_progress = p
            self._show_progress()

    def _finished(self, folder: object) -> None:
        self._release_job()
        self._set_state("done")
        self.downloaded.emit(Path(str(folder)))

    def _cancelled(self) -> None:
        self._release_job()
        self.message = "Download stopped."
        self._set_state("stopped")

    def _failed(self, message: str, resumable: bool) -> None:
        self._release_job()
        if self.state == "probing":
            self.message = message
            self._set_state("unavailable")
            return
        self.message = message if resumable else f"The download failed: {message}"
        self._set_state("stopped")

    # -- display ------------------------------------------------------------------------

    def _set_state(self, state: str) -> None:
        self.state = state
        shown = state in ("offer", "downloading", "stopping", "stopped", "done")
        running = state in ("downloading", "stopping")
        self.bar.setVisible(running or state in ("stopped", "done"))
        self.detail.setVisible(running or state == "stopped")
        self.cancel_button.setVisible(running)
        self.cancel_button.setEnabled(state == "downloading")
        self.download_button.setVisible(state in ("offer", "stopped"))
        repo = self.repo_id
        plan = self.plan
        if state == "offer" and plan is not None:
            if plan.have:
                self.text.setText(
                    f"Part of the AI model {repo} is on this computer: "
                    f"{size_text(plan.have)} of {size_text(plan.total)}. Resume the download "
                    "from the Hugging Face hub to tag photos; browsing goes on meanwhile."
                )
                self.download_button.setText(f"Resume download ({size_text(plan.remaining)})")
            else:
                self.text.setText(
                    f"The AI model {repo} is not on this computer. Download it from the "
                    f"Hugging Face hub ({size_text(plan.total)}, once) to tag photos; browsing "
                    "and correcting tags go on meanwhile."
                )
                self.download_button.setText(f"Download the model ({size_text(plan.total)})")
            self.download_button.setToolTip("Download the model into the Hugging Face cache")
        elif state == "downloading":
            self.text.setText(f"Downloading the AI model {repo}\u2026")
            self._show_progress()
        elif state == "stopping":
            self.text.setText("Stopping the download\u2026")
        elif state == "stopped":
            self.text.setText(
                f"{self.message} What was downloaded is kept; Resume goes on from there."
            )
            self.download_button.setText("Resume download")
            self.download_button.setToolTip("Download the rest of the model")
            self._show_progress()
        elif state == "done":
            self.text.setText(f"The AI model {repo} is downloaded; loading it\u2026")
            self.bar.setValue(self.bar.maximum())
        self.setVisible(shown)
        self.state_changed.emit(state)

    def _show_progress(self) -> None:
        p = self.last_progress
        if p is None or not p.total:
            self.bar.setRange(0, 0)
            self.detail.setText("")
            return
        self.bar.setRange(0, 1000)
        self.bar.setValue(round(p.fraction * 1000))
        self.detail.setText(progress_line(p))
