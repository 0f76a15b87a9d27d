"""Keeping a folder tagged, live: the folder watcher feeding the tagging pipeline.

`watch_folder` scans and tags the folder once, then loops until cancelled: settled
changes from the `FolderWatcher` are applied to the sidecar and whatever is pending is
tagged, with one encoder for the whole session (loaded when first needed). A periodic
reconcile scan catches anything the events missed. When the root goes away the
library is offline: nothing is written until it is back, then a scan catches up. A
dead observer is restarted (and followed by a scan); when live events cannot be had
the watcher polls, and says so. Errors are logged, reported, and retried with a
growing pause: the loop never dies silently. Cancelling returns within about a
quarter of a second, or after the batch of photos in the model at that moment.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from albumtagger.config import Settings
from albumtagger.library.folder import Library
from albumtagger.library.fs_events import ApplySummary, ChangeSet, FolderWatcher, apply_changes
from albumtagger.library.lock import LibraryBusyError
from albumtagger.library.scanner import (
    CancelToken,
    LinkedCancel,
    ScanReport,
    run_to_end,
    scan,
)
from albumtagger.library.thumbnails import ThumbnailCache
from albumtagger.model.loading import load_encoder
from albumtagger.service.indexing import (
    REFINE_CHUNK,
    Progress,
    RefineReport,
    TaggingReport,
    needs_model,
    refine_steps,
    refinement_left,
    settle_decisions,
    tag_pending,
)
from albumtagger.tagging.decision_state import IMAGE_MODEL_ID_KEY, DecisionState
from albumtagger.tagging.tagger import library_tagger

if TYPE_CHECKING:
    from albumtagger.model.encoder import GmeEncoder

log = logging.getLogger(__name__)

POLL_STEP_S = 0.25
"""Longest wait for changes before the loop looks at cancel, the root and the observer."""
OFFLINE_CHECK_S = 0.5
MAX_BACKOFF_S = 60.0
SETTLE_AFTER_S = 30.0
"""A folder quiet this long after photos were decided with stored thresholds gets a full
re-decision (the thresholds follow the library)."""
REFINE_RECHECK_S = 30.0
"""How long a folder with nothing to refine waits before looking again (a first pass
that finishes looks at once)."""
SILENT_PERIODS = 2
BUSY_RETRY_S = 1.0
"""After another process held the library too long for a step, try again this soon."""
"""Periodic scans in a row that find changes no event reported before polling instead."""


@dataclass
class WatchSummary:
    """What a watch session did, in total."""

    scans: int = 0
    added: int = 0
    changed: int = 0
    moved: int = 0
    missing: int = 0
    tagged: int = 0
    reused: int = 0
    damaged: int = 0
    restarts: int = 0
    offline_periods: int = 0
    errors: int = 0
    polling: bool = False
    refined: int = 0
    """Photos embedded again at the full budget after a coarse first pass."""


def watch_folder(
    library: Library,
    settings: Settings,
    cancel: CancelToken,
    on_message: Callable[[str], None] | None = None,
    encoder: GmeEncoder | None = None,
    on_progress: Callable[[Progress], None] | None = None,
) -> WatchSummary:
    """Scan and tag `library`, then keep it tagged until `cancel` is set."""
    decisions = library_tagger(library.store, settings)
    return FolderKeeper(
        library, settings, decisions, cancel, on_message, encoder, on_progress
    ).run()


class FolderKeeper:
    """Keeps one library in line with its folder, one bounded `step` at a time: so a
    caller (the CLI's loop, the app's worker) can answer other requests in between.
    Photos are decided with `decisions`, the library's tagger (a session's own)."""

    def __init__(
        self,
        library: Library,
        settings: Settings,
        decisions: DecisionState,
        cancel: CancelToken,
        on_message: Callable[[str], None] | None = None,
        encoder: GmeEncoder | None = None,
        on_progress: Callable[[Progress], None] | None = None,
        encoder_factory: Callable[[], GmeEncoder] | None = None,
        thumbnails: ThumbnailCache | None = None,
    ) -> None:
        self.library = library
        self.settings = settings
        self.decisions = decisions
        self.cancel = cancel
        self._on_message = on_message
        self.encoder = encoder
        self.on_progress = on_progress
        w = settings.watch
        self.watcher = FolderWatcher(
            library.root,
            quiet_seconds=w.quiet_seconds,
            force_polling=w.force_polling,
            poll_seconds=w.poll_seconds,
            follow_links_outside=settings.library.follow_links_outside,
        )
        self.summary = WatchSummary()
        self.offline = False
        self.last_reconcile = time.monotonic()
        self.events_at_reconcile = 0
        self.silent_periods = 0
        self._online_at: float | None = None
        self.last_activity = time.monotonic()
        self._encoder_factory = encoder_factory or (lambda: load_encoder(self.settings))
        self.thumbnails = thumbnails
        self._job: Generator[Progress, None, TaggingReport | RefineReport] | None = None
        self._refine_after = 0.0
        self._refining = False
        """The last refinement refined photos: look at the folder without waiting, so
        the next one follows at once (unless there are changes)."""
        self._job_cancel: LinkedCancel | None = None
        self._job_checked = 0.0
        self._started = False
        self._backoff = 0.0
        self._retry_at = 0.0

    def say(self, message: str) -> None:
        log.info("%s", message)
        if self._on_message is not None:
            try:
                self._on_message(message)
            except Exception:
                log.exception("on_message failed")

    # -- the loop -------------------------------------------------------------------

    def run(self) -> WatchSummary:
        """Step until cancelled; returns what the whole session did."""
        try:
            while not self.cancel.cancelled:
                if not self.step():
                    self._sleep(min(0.1, max(0.0, self._retry_at - time.monotonic())))
        finally:
            self.stop()
        return self.summary

    def stop(self) -> None:
        if self._job_cancel is not None:
            self._job_cancel.cancel()
        if self._job is not None:
            self._job.close()
            self._job = None
        self.watcher.stop()
        self.summary.polling = self.watcher.polling

    def step(self) -> bool:
        """One bounded piece of work: a batch of tagging, or a short wait for changes
        and what they need. True if it did work. Errors are reported and retried with a
        growing pause (the step returns at once meanwhile); a model that cannot be
        loaded is raised."""
        if self.cancel.cancelled or time.monotonic() < self._retry_at:
            return False
        try:
            if self._job is not None:
                self._advance()
                did = True
            elif not self._started:
                self._started = True
                self._begin()
                did = True
            else:
                did = self._step()
            self._backoff = 0.0
            return did
        except _Fatal as fatal:
            raise fatal.error from None
        except LibraryBusyError:
            # Another process holds the library a while (the wait was told): the step
            # that could not start is done again shortly, with a scan for what it held.
            self._job = None
            self._retry_at = time.monotonic() + BUSY_RETRY_S
            self.watcher.request_rescan()
            return False
        except Exception as exc:
            self.summary.errors += 1
            self._job = None
            self._backoff = min(MAX_BACKOFF_S, max(1.0, self._backoff * 2))
            self._retry_at = time.monotonic() + self._backoff
            log.exception("Error while watching %s", self.library.root)
            self.watcher.request_rescan()  # what that step held may be lost
            self.say(f"Error while watching: {exc}. Trying again in {self._backoff:.0f} s.")
            return True

    def _begin(self) -> None:
        """Start watching before the first scan, so nothing slips between the two."""
        if not self.library.is_online():
            self._go_offline()
            return
        self._start_watcher()
        self._reconcile(initial=True)

    def _online(self) -> bool:
        """`library.is_online()`, fully checked at most every `OFFLINE_CHECK_S` (it lists
        the root), with a cheap look at the root in between."""
        now = time.monotonic()
        recent = self._online_at is not None and now - self._online_at < OFFLINE_CHECK_S
        if recent and self.watcher.root_present():
            return True
        online = self.library.is_online()
        self._online_at = now if online else None
        return online

    def _step(self) -> bool:
        if not self._online():
            if not self.offline:
                self._go_offline()
            self._sleep(OFFLINE_CHECK_S)
            return False
        if self.offline:
            self._come_back()
            return True
        if not self.watcher.is_alive():
            self.summary.restarts += 1
            self.say("The folder watcher stopped; restarting it and rescanning the folder.")
            self.watcher.restart(rescan=False)
            self._announce_mode()
            self._reconcile()
            return True
        changes = self.watcher.poll_changes(0.0 if self._refining else POLL_STEP_S)
        if self.cancel.cancelled:
            return False
        if changes.root_gone:
            if self.library.is_online():  # another folder now stands at the root's path
                self.watcher.restart(rescan=False)
                self._reconcile()
            return True
        applied = self._apply(changes) if changes else ApplySummary()
        if applied.offline:
            return True
        now = time.monotonic()
        if changes:
            self.last_activity = now
        due = now - self.last_reconcile >= self.settings.watch.reconcile_seconds
        if changes.rescan or due:
            self._reconcile(periodic=due and not changes.rescan)
        elif applied.pending or self.library.store.pending_photos(limit=1):
            self._tag()
        elif now - self.last_activity >= SETTLE_AFTER_S:
            self.last_activity = now
            if settle_decisions(self.decisions, force=True):
                self.say("The folder is quiet: every photo's tags were re-decided.")
                return True
            return self._refine()
        elif not changes:
            return self._refine()
        return True

    # -- pieces ---------------------------------------------------------------------

    def _start_watcher(self) -> None:
        self.watcher.start()
        self._announce_mode()

    def _announce_mode(self) -> None:
        w = self.watcher
        if w.polling and w.fallback_reason:
            self.say(
                f"Live change events are not available ({w.fallback_reason}); "
                f"checking the folder every {w.poll_seconds:g} s instead."
            )
        elif w.polling:
            self.say(f"Checking the folder every {w.poll_seconds:g} s for changes.")

    def _apply(self, changes: ChangeSet) -> ApplySummary:
        applied = apply_changes(self.library, changes)
        s = self.summary
        s.added += applied.added
        s.changed += applied.changed + applied.returned
        s.moved += applied.moved
        s.missing += applied.missing
        if applied.pending or applied.moved or applied.missing:
            self.say(f"Folder changes: {applied.describe()}.")
        return applied

    def _reconcile(self, *, initial: bool = False, periodic: bool = False) -> None:
        """Scan the whole folder (the truth), then tag what is pending."""
        token = LinkedCancel(self.cancel)
        follow = self.settings.library.follow_links_outside
        self.watcher.follow_links_outside = follow  # the rule of the last scan (settings change)
        report: ScanReport = run_to_end(scan(self.library, token, follow_links_outside=follow))
        self.summary.scans += 1
        self.last_reconcile = time.monotonic()
        if report.offline:
            if not self.offline:
                self._go_offline()
            return
        if token.cancelled:
            return
        s = self.summary
        s.added += report.added
        s.changed += report.changed + report.returned
        s.missing += report.missing
        found = report.added + report.changed + report.returned + report.missing
        if found:
            self.say(
                f"Scan: {report.added} new, {report.changed} changed, "
                f"{report.returned} back, {report.missing} missing."
            )
        for path, why in report.problems[:20]:
            self.say(f"Skipped {path}: {why}")
        events = self.watcher.events_seen
        if events != self.events_at_reconcile:
            self.silent_periods = 0
        elif periodic and found and not self.watcher.polling:
            # Changes, yet not one event since the last scan: twice in a row means the
            # filesystem does not report changes (a network share, a VM's shared folder).
            self.silent_periods += 1
            if self.silent_periods >= SILENT_PERIODS:
                self.silent_periods = 0
                self.watcher.fall_back_to_polling(
                    "the folder changed but raised no change events (a network share?)"
                )
                self._announce_mode()
                events = self.watcher.events_seen
        self.events_at_reconcile = events
        if periodic:  # a session can run for days: keep the daily backup going
            self.library.store.backup_if_due()
        self._tag(initial=initial)

    def _tag(self, *, initial: bool = False) -> None:
        """Start tagging every pending photo with the session's encoder (loaded when
        first needed); `step` then advances it one batch at a time."""
        store = self.library.store
        if initial:
            if not needs_model(self.library, self.settings, self.decisions):
                settle_decisions(self.decisions, force=True)
                return
        elif not store.pending_photos(limit=1):
            return
        self.last_activity = time.monotonic()
        encoder, cancel = self._job_start()
        self._job = tag_pending(
            self.library,
            self.settings,
            encoder,
            self.decisions,
            cancel,
            settle=initial,
            thumbnails=self.thumbnails,
        )

    def _job_start(self) -> tuple[object, LinkedCancel]:
        """The model (loaded on first use) and the cancel token of a job about to start."""
        if self.encoder is None:
            try:
                self.encoder = self._encoder_factory()
            except Exception as exc:
                raise _Fatal(exc) from exc
        self._job_cancel = LinkedCancel(self.cancel)
        self._job_checked = time.monotonic()
        return self.encoder, self._job_cancel

    def _refine(self) -> bool:
        """Nothing else to do: refine a few first-pass photos at the full budget (the most
        viewed, then the newest, first); `step` advances it a batch at a time. True if a
        refinement started."""
        now = time.monotonic()
        self._refining = False
        if now < self._refine_after:
            return False
        store = self.library.store
        image_id = store.get_setting(IMAGE_MODEL_ID_KEY)
        if not image_id or not refinement_left(store, image_id):
            self._refine_after = now + REFINE_RECHECK_S
            return False
        encoder, cancel = self._job_start()
        self._job = refine_steps(
            self.library, self.settings, encoder, self.decisions, cancel, max_photos=REFINE_CHUNK
        )
        return True

    def _advance(self) -> None:
        """One batch of the tagging job."""
        assert self._job is not None and self._job_cancel is not None
        try:
            progress = next(self._job)
        except StopIteration as stop:
            self._job = None
            self._finish(stop.value)
            return
        if self.on_progress is not None:
            self.on_progress(progress)
        now = time.monotonic()
        if now - self._job_checked >= OFFLINE_CHECK_S:
            self._job_checked = now
            if not self.library.is_online():
                self._job_cancel.cancel()  # stop reading a folder that is not there

    def _finish(self, report: TaggingReport | RefineReport) -> None:
        s = self.summary
        if isinstance(report, RefineReport):
            s.refined += report.refined
            self._refining = report.refined > 0 and not report.cancelled
            if not report.refined:  # nothing could be refined now: do not spin
                self._refine_after = time.monotonic() + REFINE_RECHECK_S
            return
        self._refine_after = 0.0  # a first pass may have left photos to refine
        s.tagged += report.tagged
        s.reused += report.reused
        s.damaged += report.damaged
        done = report.tagged + report.reused
        if done or report.damaged:
            extra = f", {report.damaged} damaged" if report.damaged else ""
            photos = "1 photo" if done == 1 else f"{done} photos"
            self.say(f"Tagged {photos} in {report.seconds:.1f} s{extra}.")

    def _go_offline(self) -> None:
        self.offline = True
        self.summary.offline_periods += 1
        self.watcher.stop()
        self.say(
            f"{self.library.root} is offline (drive unplugged or folder moved?). "
            "Nothing is marked missing; waiting for it to come back."
        )

    def _come_back(self) -> None:
        self.say(f"{self.library.root} is back; catching up.")
        self.offline = False
        self.watcher.restart(rescan=False)
        self._announce_mode()
        self._reconcile()

    def _sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while not self.cancel.cancelled:
            left = end - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(0.1, left))


class _Fatal(Exception):
    """Wraps an error the loop must not retry (the model cannot be loaded)."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error
