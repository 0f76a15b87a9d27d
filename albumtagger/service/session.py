"""One library at work: its only writer, the tagger, the model and the vectors in memory.

`LibrarySession` is what the app's worker thread (and the CLI) holds. Everything that
changes a library goes through it: indexing and watching as short steps (a batch at a
time, so other requests are answered in between), corrections and undo, vocabulary
edits; search and "more like this" run over vectors held in memory. After every commit
it reports what changed through a plain callback (`albumtagger.events`), so a caller
can follow exactly the photos that changed. Each change is a unit of work holding the
library's writer lock (`unit`), so other processes write in between; what they commit
is noticed (`refresh`) and reported as a change of every photo. Use a session from one
thread; `pause`, `resume` and `cancel` may be called from any thread. No Qt here.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from albumtagger import config
from albumtagger.config import Settings
from albumtagger.errors import LibraryOfflineError, ModelError, NotFoundError, UserError
from albumtagger.events import (
    ActivityChanged,
    Event,
    FolderState,
    JobProgress,
    ModelStatus,
    Notice,
    PhotosChanged,
    TagsChanged,
    VocabularyChanged,
    from_store_changes,
)
from albumtagger.library.cleanup import Cleanup, Trashed, forget_missing, trash_photos
from albumtagger.library.db.queries import LibraryQueries, PhotoFilter, PhotoSummary
from albumtagger.library.db.store import SIDECAR_DIR
from albumtagger.library.export import Exporter, ExportReport
from albumtagger.library.folder import WriteAccess, open_library
from albumtagger.library.listing import PhotoListing, photo_listing
from albumtagger.library.lock import Holder, LibraryBusyError
from albumtagger.library.scanner import CancelToken, LinkedCancel
from albumtagger.library.tag_names import clean_name
from albumtagger.library.thumbnails import ThumbnailCache
from albumtagger.model.encoder import QUERY_INSTRUCTION
from albumtagger.model.loading import load_encoder
from albumtagger.service.activity import Activity, ActivityLog
from albumtagger.service.indexing import (
    IndexSummary,
    Progress,
    first_pass_budget,
    index_steps,
    library_settings,
    refinement_left,
)
from albumtagger.service.matching import Judge, library_judges, ranked, search_cutoff
from albumtagger.service.progress import TimeToTags
from albumtagger.service.watching import FolderKeeper
from albumtagger.tagging.decision_state import IMAGE_MODEL_ID_KEY, MATRIX_CHANGES, MODEL_ID_KEY
from albumtagger.tagging.results import (
    Correction,
    Redecision,
    TagInspection,
    ThresholdChange,
    VocabularyChange,
    tag_changes,
)
from albumtagger.tagging.similarity import VectorIndex
from albumtagger.tagging.tagger import Tagger, library_tagger

if TYPE_CHECKING:
    from albumtagger.model.encoder import GmeEncoder

log = logging.getLogger(__name__)

SEARCH_CACHE_SIZE = 256
"""Search texts whose vectors are kept in memory (never stored in the sidecar)."""


def offline_text(root: Path) -> str:
    """What the app says while a library's folder is away (and why a change is refused)."""
    return (
        f"The folder {root} is not there; nothing in its library changes. "
        "Waiting for it to come back."
    )


class LibrarySession:
    """The only writer of one library. Opening is quick (no backup on the way: the daily
    verified backup runs on a background thread)."""

    def __init__(
        self,
        root: Path,
        settings: Settings,
        *,
        data_dir: Path | None = None,
        on_event: Callable[[Event], None] | None = None,
        explicit_model: Collection[str] = (),
        create: bool = True,
        thumbnails: ThumbnailCache | None = None,
        encoder: object | None = None,
        encoder_loader: Callable[[Settings], object] | None = None,
        backup: bool = True,
        write: bool = True,
        wait: float | None = 0.0,
        on_wait: Callable[[Holder], None] | None = None,
    ) -> None:
        """`write`: take the library's writer lock to open it and for each unit of work;
        a session opened only to read (search, listings) leaves it alone. `wait`: how
        long to wait for another process that holds it (0: raise `LibraryBusyError` at
        once; None: as long as it takes), with `on_wait(holder)` told when the waiting
        starts (default: a `Notice`). `encoder_loader`: loads the model on first use
        (the app shares one between its libraries)."""
        self._on_event = on_event
        access = WriteAccess(wait, on_wait or self._tell_waiting) if write else None
        self.library = open_library(
            root, data_dir or config.data_dir(), create=create, write=access
        )
        self.store = self.library.store
        self.root = self.library.root
        self.db_path = self.store.db_path
        try:
            self.settings = library_settings(self.store, settings, explicit_model)
        except BaseException:
            self.library.close()
            raise
        self.thumbnails = thumbnails
        self._encoder = encoder
        self._load_encoder = encoder_loader or load_encoder
        self._closed = CancelToken()
        self._job_cancel = LinkedCancel(self._closed)
        self._running = threading.Event()
        self._running.set()
        self._time_to_tags = TimeToTags()
        self._tagger: Tagger | None = None
        self._keeper: FolderKeeper | None = None
        self._vectors: VectorIndex | None = None
        self._stale_vectors: set[int] = set()
        self._texts: OrderedDict[str, np.ndarray] = OrderedDict()
        self._xmp_due: set[int] = set()
        self._waiting_looked_at: tuple[int, int] | None = None
        """The store's `tags_key` when tags waiting for the model were last looked for."""
        self.online = True
        """The folder was there when last looked at (`FolderState` says each change)."""
        self._activity = ActivityLog()
        self.store.listen(self._store_changed)
        self._data_version = self.store.tags_key()[1]
        self.library.on_taken = self.refresh
        self._backup_thread: threading.Thread | None = None
        if backup:
            self._backup_thread = threading.Thread(
                target=self._backup, name="albumtagger-backup", daemon=True
            )
            self._backup_thread.start()

    # -- plumbing -------------------------------------------------------------------

    def _emit(self, event: Event) -> None:
        if self._on_event is None:
            return
        try:
            self._on_event(event)
        except Exception:
            log.exception("An event listener failed on %s", type(event).__name__)

    def _store_changed(self, changes: dict[str, set[int]]) -> None:
        for kind in MATRIX_CHANGES:
            self._stale_vectors |= changes.get(kind, set())
        if self.settings.xmp.write_on_change:
            self._xmp_due |= changes.get("tags", set())
        if self._tagger is not None:
            self._tagger.store_changed(changes)
        for event in from_store_changes(changes):
            self._emit(event)
        if self._tagger is not None and self._tagger.redecisions:
            done, self._tagger.redecisions = self._tagger.redecisions, []
            for redecision in done:
                self._redecided(redecision)

    def _redecided(self, redecision: Redecision) -> None:
        """A committed re-decision: in the activity, and told (the status bar)."""
        entry = self._activity.redecision(redecision)
        self._emit(Notice("info", entry.text))
        self._emit(ActivityChanged(entry.kind, entry.text))

    def _record(self, results: Sequence[Correction]) -> None:
        """Corrections (or an undo or redo) in the activity."""
        entry = self._activity.corrections(results)
        if entry is not None:
            self._emit(ActivityChanged(entry.kind, entry.text))

    def _vocabulary_edited(self, change: VocabularyChange) -> VocabularyChange:
        """What a vocabulary edit's re-decision did to the tags of existing photos."""
        names = {t.id: t.name for t in self.store.tags()}
        tags = tag_changes(change.changes, names)
        if tags:
            self._redecided(Redecision("vocabulary", tags, len(change.changes.photo_ids())))
        return change

    def _tell_waiting(self, holder: Holder) -> None:
        who = holder.describe()
        self._emit(
            Notice("info", f"Another albumtagger is working on this library ({who}); waiting")
        )

    def unit(self) -> contextlib.AbstractContextManager[None]:
        """One unit of work: the library's writer lock, held until the block ends
        (nested units are part of the outer one); waits as the session was opened to.
        Refused with `LibraryOfflineError` while the folder is away."""
        self.check_folder()
        return self.library.writing()

    def check_folder(self) -> None:
        """Raise `LibraryOfflineError` (saying `offline_text`) when the folder is not there
        (renamed, unplugged; or its in-folder sidecar folder gone); `FolderState` says when
        that changes."""
        try:
            there = self.root.is_dir() and (
                not self.library.sidecar_in_folder or (self.root / SIDECAR_DIR).is_dir()
            )
        except OSError:
            there = False
        self._note_online(there)
        if not there:
            raise LibraryOfflineError(offline_text(self.root))

    def _note_online(self, online: bool) -> None:
        if online != self.online:
            self.online = online
            self._emit(FolderState(online, "" if online else offline_text(self.root)))

    def refresh(self) -> bool:
        """Notice what other processes committed since (a CLI correction beside the app):
        the vectors in memory are dropped (the tagger, which checks the library before each
        operation, drops its decisions itself), and every photo, its tags and the
        vocabulary are reported changed. True if there was anything. Cheap
        when there was not (one PRAGMA): a long-running caller calls it when idle, and
        each unit of work calls it when it takes the lock."""
        version = self.store.tags_key()[1]
        if version == self._data_version:
            return False
        self._data_version = version
        self._vectors = None
        self._stale_vectors.clear()
        ids = tuple(self.store.photo_ids())
        for event in (PhotosChanged(ids, "status"), TagsChanged(ids), VocabularyChanged()):
            self._emit(event)
        return True

    def _backup(self) -> None:
        try:
            self.store.backup_if_due()
        except Exception as exc:
            log.warning("Daily backup of %s failed: %s", self.db_path, exc)
            self._emit(Notice("warning", f"The daily backup of the library failed: {exc}"))
        finally:
            self.store.release_thread_connection()

    def close(self) -> None:
        """Stop any job and watching, and close the library (waits for the backup)."""
        self._closed.cancel()
        self._running.set()
        if self._keeper is not None:
            self._keeper.stop()
            self._keeper = None
        if self._backup_thread is not None:
            self._backup_thread.join()
        self.store.listen(None)
        self.library.close()

    def __enter__(self) -> LibrarySession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def tagger(self) -> Tagger:
        """The library's tagger: the one decision state of this session, made on first use
        and kept (indexing and watching decide with it too)."""
        if self._tagger is None:
            self._tagger = library_tagger(self.store, self.settings, encoder_factory=self.encoder)
        return self._tagger

    def encoder(self) -> GmeEncoder:
        """The model, loaded on first use (reports ModelStatus events)."""
        if self._encoder is None:
            self._emit(ModelStatus("loading", f"Loading the model {self.settings.model.model}"))
            try:
                self._encoder = self._load_encoder(self.settings)
            except ModelError as exc:
                self._emit(ModelStatus("unavailable", str(exc)))
                raise
            self._emit(ModelStatus("ready", f"Model ready ({self._encoder.device})"))
        return self._encoder

    @property
    def model_loaded(self) -> bool:
        return self._encoder is not None

    def apply_settings(self, settings: Settings | None = None) -> dict[str, object]:
        """Take what of `settings` applies to an open library at once (thresholds, watching
        on or off, XMP; the model stays the library's until it is next opened), deciding
        every photo again when the thresholds changed. Returns what the session runs with:
        model, device, precision, token budget, paths, and `redecided` (cells changed)."""
        redecided = 0
        mark = self._activity.mark()
        if settings is not None:
            new = config.keep_section(settings, "model", self.settings)
            new.thresholds.validate()
            refit = new.thresholds != self.settings.thresholds
            self.settings = new
            if self._keeper is not None:
                if new.watch.enabled:
                    self._keeper.settings = new
                else:
                    self._keeper.stop()
                    self._keeper = None
            if refit:
                tagger = self.tagger()
                tagger.use_settings(new)
                with self.unit():
                    redecided = len(tagger.redecide("settings"))
                self.write_xmp()
        m, enc = self.settings.model, self._encoder
        return {
            "model": m.model,
            "revision": m.revision,
            "model_id": getattr(enc, "model_id", None) or self.store.get_setting(MODEL_ID_KEY),
            "device": m.device,
            "dtype": m.dtype,
            "loaded": enc is not None,
            "running_on": str(getattr(enc, "device", "")) if enc is not None else "",
            "precision": str(getattr(enc, "precision", "")) if enc is not None else "",
            "min_image_tokens": getattr(enc, "min_image_tokens", m.min_image_tokens),
            "max_image_tokens": getattr(enc, "max_image_tokens", m.max_image_tokens),
            "root": str(self.root),
            "sidecar": str(self.db_path),
            "watching": self.settings.watch.enabled,
            "redecided": redecided,
            "redecision": next(
                (e.text for e in self._activity.view(None, None).entries if e.id >= mark), ""
            ),
        }

    def write_xmp(self) -> None:
        """Bring the XMP sidecars of photos whose tags changed in line (with the setting
        "write on change"); a folder that cannot be written gets a notice, once."""
        if not self._xmp_due:
            return
        from albumtagger.library.export.xmp_sidecars import XmpWriteError, export_xmp

        due, self._xmp_due = sorted(self._xmp_due), set()
        try:
            with self.unit():
                export_xmp(
                    self.library,
                    include_suggested=self.settings.xmp.include_suggested,
                    photo_ids=due,
                )
        except (LibraryBusyError, LibraryOfflineError):
            self._xmp_due.update(due)  # written with the next change
        except XmpWriteError as exc:
            self._emit(Notice("warning", str(exc)))

    # -- pause, resume, cancel (any thread) -------------------------------------------

    def pause(self) -> None:
        self._running.clear()
        self._time_to_tags.pause()

    def resume(self) -> None:
        self._running.set()
        self._time_to_tags.resume()

    def cancel(self) -> None:
        """Stop the running job at the next batch boundary."""
        self._job_cancel.cancel()
        self.resume()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def _new_job(self) -> LinkedCancel:
        self._job_cancel = LinkedCancel(self._closed)
        return self._job_cancel

    def _job_progress(
        self, job: str, steps: Iterator[Progress], cancel: CancelToken
    ) -> Iterator[JobProgress]:
        """Progress of `steps` as events; holds between batches while paused."""
        last: Progress | None = None
        for p in steps:
            last = p
            event = self._progress_event(job, p)
            self._emit(event)
            yield event
            while not self._running.is_set() and not cancel.cancelled:
                paused = JobProgress(job, p.phase, p.done, p.total, None, None, paused=True)
                self._emit(paused)
                yield paused
                self._running.wait(0.2)
        done = JobProgress(
            job,
            last.phase if last else "",
            last.done if last else 0,
            last.total if last else 0,
            finished=True,
        )
        self._emit(done)
        yield done

    def _progress_event(self, job: str, p: Progress) -> JobProgress:
        """`p` as an event, with the time left until every photo has tags and until
        every photo is refined; the refinement backlog is counted as tagging starts."""
        if p.done == 0 and p.phase in ("first pass", "tag") and self._encoder is not None:
            coarse = first_pass_budget(self.settings, self._encoder)
            image_id = self.store.get_setting(IMAGE_MODEL_ID_KEY) if coarse else None
            unrefined = refinement_left(self.store, image_id) if image_id else 0
            ratio = self._encoder.max_image_tokens / coarse[1] if coarse else 1.0
            self._time_to_tags.set_backlog(unrefined, ratio)
        self._time_to_tags.observe(p.phase, p.done, p.total, p.model_s)
        tags, refined = self._time_to_tags.estimate()
        return JobProgress(
            job, p.phase, p.done, p.total, p.rate, p.eta_s, tags_eta_s=tags, refined_eta_s=refined
        )

    # -- long jobs ------------------------------------------------------------------

    def index(self, *, tag: bool = True, keep_scan: bool = False) -> Iterator[JobProgress]:
        """Scan the folder and tag what is pending, one batch per item; `index_summary`
        holds the result once the iterator is exhausted. `tag=False` only scans and
        reads (no model). All or nothing up to the model, unless `keep_scan` (the app:
        photos are listed even when the model cannot be had)."""
        cancel = self._new_job()
        self.index_summary: IndexSummary | None = None
        steps = index_steps(
            self.library,
            self.settings,
            self.tagger(),
            tag=tag,
            encoder=self._encoder,
            encoder_factory=self.encoder,
            cancel=cancel,
            thumbnails=self.thumbnails,
            atomic=not keep_scan,
        )

        def run() -> Iterator[Progress]:
            self.index_summary = yield from steps

        yield from self._job_progress("index", run(), cancel)
        if self.index_summary is not None:
            self._note_online(not self.index_summary.offline)
        self.write_xmp()

    def watch_step(self, max_seconds: float = 0.5) -> bool:
        """Keep the folder tagged for about `max_seconds` (or one batch of the model);
        starts watching on the first call. True if there was work. Each piece of work
        is a unit of its own; what other processes committed is noticed first, and tags
        waiting for a model that is loaded are scored (`score_waiting_tags`)."""
        self.refresh()
        if self._keeper is None:
            self._keeper = FolderKeeper(
                self.library,
                self.settings,
                self.tagger(),
                self._closed,
                on_message=self._keeper_said,
                encoder=self._encoder,
                on_progress=lambda p: self._emit(self._progress_event("watch", p)),
                encoder_factory=self.encoder,
                thumbnails=self.thumbnails,
            )
        if not self._running.is_set():
            return False
        scored = self.score_waiting_tags()
        end = time.monotonic() + max_seconds
        did = bool(scored and scored.waited)
        while time.monotonic() < end and self._running.is_set():
            if not self._keeper.step():
                break
            did = True
        self._note_online(not self._keeper.offline)
        self.write_xmp()
        return did

    def _keeper_said(self, text: str) -> None:
        """What watching says, as a `Notice`; the folder going away is said by a
        `FolderState` instead (one notice that stays, not a second one that goes)."""
        keeper = self._keeper
        if keeper is not None and keeper.offline and self.online:
            self._note_online(False)
            return
        self._emit(Notice("info", text))

    # -- corrections and vocabulary ---------------------------------------------------

    def correct(self, photo_ids: Sequence[int], tag: str, action: str) -> list[Correction]:
        """Accept, reject, add or remove `tag` on these photos, all or none. A tag that is
        not in the vocabulary yet is added to it: scored at once from the stored photo
        vectors while the model is loaded (its prompts go through it, no photo does),
        otherwise when the model is next loaded (see `score_waiting_tags`). The model is
        never loaded for a correction."""
        with self.unit():
            paths = []
            for pid in photo_ids:
                row = self.store.photo(int(pid))
                if row is None:
                    raise NotFoundError(f"Photo {pid} is not in the library any more.")
                paths.append(row.path)
            tagger = self.tagger()
            with self.store.transaction(durable=True):
                results = [
                    tagger.correct(path, tag, action, encoder=self._encoder) for path in paths
                ]
        self._record(results)
        self.write_xmp()
        return results

    def learn_tag(
        self, tag: str, photo_ids: Sequence[int]
    ) -> tuple[VocabularyChange | None, list[Correction]]:
        """Give `tag` these photos as examples of its look (each gets it, as added by the
        user), all or none. A tag not in the vocabulary yet is added without prompts,
        learned from its photos alone (`add_learned_tag`); the vocabulary change is
        returned then, else None."""
        with self._all_or_none():
            added = None
            if self.store.tag_by_name(clean_name(tag)) is None:
                added = self.tagger().add_learned_tag(tag)
            results = self.correct(photo_ids, tag, "add")
        if added is not None:
            self._vocabulary_edited(added)
        return added, results

    def answer(self, photo_id: int, tag: str, yes: bool) -> Correction:
        """A review answer: does `tag` apply to this photo?"""
        with self.unit():
            row = self.store.photo(int(photo_id))
            if row is None:
                raise NotFoundError(f"Photo {photo_id} is not in the library any more.")
            result = self.tagger().answer(row.path, tag, yes)
        self._record([result])
        return result

    def undo(self) -> Correction | None:
        with self.unit():
            result = self.tagger().undo()
        if result is not None:
            self._record([result])
        self.write_xmp()
        return result

    def redo(self) -> Correction | None:
        """Put back the correction undone last (None: there is none, or a correction was
        made since); exactly as it was while no automatic decision was written since."""
        with self.unit():
            result = self.tagger().redo()
        if result is not None:
            self._record([result])
        self.write_xmp()
        return result

    def undo_activity(self, entry_id: int) -> list[Correction]:
        """Undo the correction of this activity entry (each photo of it); it must be the
        newest correction in effect (see `Activity.undoable`)."""
        view = self.activity()
        entry = next((e for e in view.entries if e.id == entry_id), None)
        if entry is None or not view.undoable(entry):
            raise UserError("Only the newest correction can be undone; undo the newer ones first.")
        results: list[Correction] = []
        with self._all_or_none():
            while self.store.undo_redo_ids()[0] in entry.feedback_ids:
                result = self.tagger().undo()
                if result is None:
                    break
                results.append(result)
        for result in results:
            self._record([result])
        self.write_xmp()
        return results

    def activity(self) -> Activity:
        """What changed lately, newest first (the last `ACTIVITY_LIMIT` changes of this
        session), and which correction undo and redo act on now."""
        undo_id, redo_id = self.store.undo_redo_ids()
        return self._activity.view(undo_id, redo_id)

    def add_tags(self, specs: Sequence[str]) -> VocabularyChange:
        with self.unit():
            change = self.tagger().add_tags(specs)
        return self._vocabulary_edited(change)

    def score_waiting_tags(self) -> VocabularyChange | None:
        """Once the model is loaded, score the tags that wait for it (added without it:
        by a correction, a vocabulary edit, another process) from the stored photo
        vectors, and say so with a `Notice`. None when the model is not loaded, no tag
        waits, or the vocabulary did not change since the last look (cheap then: the
        worker and `watch_step` call it between steps); a library busy elsewhere is
        looked at again next time."""
        if self._encoder is None:
            return None
        key = self.store.tags_key()
        if key == self._waiting_looked_at:
            return None
        self._waiting_looked_at = key  # a failure is not tried again at every step
        tagger = self.tagger()
        if not tagger.unscored_tags():
            return None
        try:
            with self.unit():
                change = tagger.score_waiting_tags()
        except (LibraryBusyError, LibraryOfflineError):
            self._waiting_looked_at = None
            return None
        self._waiting_looked_at = self.store.tags_key()
        self._vocabulary_edited(change)
        if change.waited:
            self._emit(Notice("info", change.describe()))
        self.write_xmp()
        return change

    def remove_tags(self, names: Sequence[str]) -> VocabularyChange:
        """Remove tags from the vocabulary and from every photo (XMP sidecars follow)."""
        with self.unit():
            change = self.tagger().remove_tags(names)
        self.write_xmp()
        return self._vocabulary_edited(change)

    def review_queue(self, limit: int = 20) -> list[dict]:
        return self.tagger().review_queue(limit)

    def review_remaining(self) -> dict[str, int]:
        """Questions review has left, by tag name (close calls without an answer)."""
        return self.tagger().review_remaining()

    def rename_tag(self, old: str, new: str) -> VocabularyChange:
        """Rename a tag: the same tag (cells, answers, threshold, prompts) by a new name."""
        with self.unit():
            change = self.tagger().rename_tag(old, new)
        self.write_xmp()
        return self._vocabulary_edited(change)

    def set_prompts(self, tag: str, prompts: Sequence[str]) -> VocabularyChange:
        """New prompts for a tag (averaged), re-scored from stored photo vectors: only the
        prompts go through the model, no photo is encoded again."""
        with self.unit():
            change = self.tagger().set_prompts(tag, prompts)
        self.write_xmp()
        return self._vocabulary_edited(change)

    def restore_default_vocabulary(self) -> VocabularyChange:
        """Add back missing default tags and give default tags their shipped prompts;
        the user's own tags stay."""
        with self.unit():
            change = self.tagger().restore_default_vocabulary()
        self.write_xmp()
        return self._vocabulary_edited(change)

    def import_vocabulary(self, path: Path | str) -> VocabularyChange:
        """Add the tags of a text file (one `name` or `name: prompt | prompt` a line)."""
        with self.unit():
            change = self.tagger().import_vocabulary(path)
        self.write_xmp()
        return self._vocabulary_edited(change)

    def pin_threshold(self, tag: str, value: float | None) -> ThresholdChange:
        """Pin a tag's threshold by hand (None: give it back to learning); the tag is
        decided again across the library at once. Go back by pinning `previous_pin`."""
        with self.unit():
            change = self.tagger().pin_threshold(tag, value)
        self.write_xmp()
        return change

    def threshold_preview(self, tag: str, value: float | None) -> dict:
        """What `pin_threshold(tag, value)` would change: "carries_now", "carries_after",
        "gain", "lose", "threshold_now", "threshold_after". From memory: fast."""
        return self.tagger().threshold_preview(tag, value)

    def tag_report(self, tag: str) -> TagInspection:
        """One tag for the inspector: threshold and its source, scores, answers, the
        photos either side of the threshold, how many photos carry it."""
        return self.tagger().tag_report(tag)

    def match(self, photo_id: int, texts: Sequence[str]) -> list[dict]:
        """Descriptions ranked for one photo, best first: [{"text", "score",
        "confidence", "threshold", "rule"}].

        Scores come from the photo's stored library vector, so they agree with its tags:
        a text that names a scored tag is scored with that tag's vector (the mean of its
        prompts, the score its tag cell holds) and judged by the tag's threshold; any
        other text by what a new tag of that text would start from (its prior over the
        library's photos). Confidence is "high", "medium" or "low" as for suggestions,
        and "no match" below the threshold (see `matching.ranked`).
        """
        index = self._vector_index()
        vector = index.vector(int(photo_id))
        if vector is None:
            raise NotFoundError("That photo has no vector yet: it is not tagged.")
        tagger = self.tagger()
        texts = list(dict.fromkeys(t.strip() for t in texts if t.strip()))
        scores, judges = [], []
        for text in texts:
            tag_vector = tagger.tag_vector(text)
            text_vector = tag_vector if tag_vector is not None else self.text_vector(text)
            column = None if tag_vector is not None else index.matrix @ text_vector
            scores.append(float(vector @ text_vector))
            judges.append(Judge(*tagger.text_policy(text, column)))
        return ranked(texts, np.array(scores), judges, self.settings)

    def note_view(self, photo_id: int) -> None:
        """The user looked at this photo (the most-viewed are refined first). Cheap: one
        UPDATE, no event."""
        self.store.note_view(int(photo_id))

    # -- search ---------------------------------------------------------------------

    def _vector_index(self) -> VectorIndex:
        image_id = self.store.get_setting(IMAGE_MODEL_ID_KEY) or self.store.get_setting(
            MODEL_ID_KEY
        )
        if image_id is None:
            raise UserError("No photo is tagged yet: index the folder first.")
        if self._vectors is None:
            ids, matrix = self.store.photo_vectors(image_id, statuses=("ok",))
            self._vectors = VectorIndex(ids, matrix)
            self._stale_vectors.clear()
        elif self._stale_vectors:
            stale = sorted(self._stale_vectors)
            self._stale_vectors.clear()
            self._vectors.remove(np.asarray(stale, dtype=np.int64))
            ids, matrix = self.store.photo_vectors(image_id, statuses=("ok",), photo_ids=stale)
            if len(ids):
                self._vectors.update(ids, matrix)
        return self._vectors

    def text_vector(self, text: str) -> np.ndarray:
        """A free text's query vector: kept in memory, a tag prompt's if it is one."""
        text = text.strip()
        if not text:
            raise UserError("The search text is empty.")
        if text in self._texts:
            self._texts.move_to_end(text)
            return self._texts[text]
        model_id = self.store.get_setting(MODEL_ID_KEY)
        if model_id is None:
            raise UserError("No photo is tagged yet: index the folder first.")
        cached = self.store.text_vectors(model_id, QUERY_INSTRUCTION, [text])
        if text in cached:
            vector = cached[text]
        else:
            encoder = self.encoder()
            if encoder.model_id != model_id:
                raise ModelError(
                    f"The library was tagged with {model_id}, not with {encoder.model_id}; "
                    "search with the library's model, or index the library with this one."
                )
            vector = encoder.embed_texts([text], QUERY_INSTRUCTION)[0]
        self._texts[text] = vector
        while len(self._texts) > SEARCH_CACHE_SIZE:
            self._texts.popitem(last=False)
        return vector

    def search(
        self, text: str, top: int = 1000, restrict_to: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Photo ids ranked by how well they match `text`, best first, with cosines."""
        vector = self.text_vector(text)
        return self._vector_index().search(vector, top, restrict_to)

    def search_with_cutoff(
        self, text: str, top: int = 1000, restrict_to: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, float]:
        """`search`, with its relevance cutoff: the photos scoring at least the cutoff
        match the text (the threshold a new tag of the text would start from, learned
        from the text's scores over the library; see `matching.search_cutoff`)."""
        vector = self.text_vector(text)
        index = self._vector_index()
        ids, scores = index.search(vector, top, restrict_to)
        return ids, scores, search_cutoff(self.tagger(), index.matrix, vector)

    def similar(
        self, photo_id: int, top: int = 1000, restrict_to: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Photos most like this one (itself excluded), best first."""
        index = self._vector_index()
        if int(photo_id) not in index:
            raise NotFoundError("That photo has no vector yet: it is not tagged.")
        return index.similar(int(photo_id), top, restrict_to)

    def near_duplicates(self, min_cosine: float = 0.95) -> list[np.ndarray]:
        """Groups of photos whose vectors are nearly the same."""
        return self._vector_index().near_duplicates(min_cosine, cancel=self._job_cancel)

    # -- the command line's requests, one call each --------------------------------------

    def photo_listing(self, paths: Sequence[str] | None = None) -> list[PhotoListing]:
        """Every photo, or those of these relative paths that are in the library, with
        its tag cells, by path; "offline" while the folder is."""
        return photo_listing(self.library, paths)

    def find_photos(self, wanted: PhotoFilter) -> list[PhotoSummary]:
        """The photos a filter matches, in its order."""
        with LibraryQueries(self.db_path) as queries:
            return queries.summaries(queries.photo_ids(wanted))

    def photo_id(self, path: str) -> int:
        """The id of the photo at this relative path; `NotFoundError` if there is none."""
        row = self.store.photo_by_path(path)
        if row is None:
            raise NotFoundError(f"{path} is not in the library; check the path or run index.")
        return row.id

    def correct_photo(self, photo_id: int, actions: Sequence[tuple[str, str]]) -> list[Correction]:
        """Corrections of one photo, (action, tag) in order (see `correct`): all of them
        or none."""
        with self._all_or_none():
            results = [c for action, tag in actions for c in self.correct([photo_id], tag, action)]
        self.write_xmp()
        return results

    def answer_review(self, answers: Sequence[tuple[int, str, bool]]) -> list[Correction]:
        """Review answers, (photo id, tag, yes) in order (see `answer`): all or none."""
        with self._all_or_none():
            return [self.answer(photo_id, tag, yes) for photo_id, tag, yes in answers]

    def rename_tags(self, renames: Sequence[tuple[str, str]]) -> list[VocabularyChange]:
        """Renames, (old, new) in order (see `rename_tag`): all of them or none."""
        with self._all_or_none():
            changes = [self.rename_tag(old, new) for old, new in renames]
        self.write_xmp()
        return changes

    def set_tag_prompts(
        self, prompts: Sequence[tuple[str, Sequence[str]]]
    ) -> list[VocabularyChange]:
        """New prompts for tags, (tag, prompts) in order (see `set_prompts`): all of them
        or none."""
        with self._all_or_none():
            changes = [self.set_prompts(tag, texts) for tag, texts in prompts]
        self.write_xmp()
        return changes

    def export_tags(
        self,
        exporter: Exporter,
        *,
        include_suggested: bool = False,
        photo_ids: Sequence[int] | None = None,
    ) -> ExportReport:
        """Write the tags of every present photo (only `photo_ids`, if given) in an export
        format (see `library.export`), as one unit of work. Raises `ExportError`, with
        the report, if some files could not be written (the others are)."""
        with self.unit():
            return exporter.export(
                self.library, include_suggested=include_suggested, photo_ids=photo_ids
            )

    def forget_missing(self, photo_ids: Sequence[int] | None = None) -> Cleanup:
        """Forget the photos marked missing (only those of `photo_ids`, if given), and
        take out albumtagger's sidecars of them."""
        with self.unit():
            return forget_missing(self.library, photo_ids)

    def trash_photos(self, photo_ids: Sequence[int]) -> Trashed:
        """Move these photos to the system's trash and forget them (see
        `cleanup.trash_photos`: never a deletion; stops at the first the trash refuses)."""
        with self.unit():
            return trash_photos(self.library, photo_ids)

    def text_judges(
        self, model_id: str, texts: Sequence[str], vectors: np.ndarray
    ) -> tuple[list[Judge] | None, str]:
        """How the library judges the scores of these texts (query vectors of the model
        `model_id`), or (None, why) when it has nothing to judge by (see
        `matching.library_judges`)."""
        return library_judges(self.tagger(), model_id, texts, vectors)

    @contextlib.contextmanager
    def _all_or_none(self) -> Iterator[None]:
        """Several of the user's actions as one unit of work and one durable transaction
        (after a rollback the tagger reads the library again by itself)."""
        mark = self._activity.mark()
        try:
            with self.unit(), self.store.transaction(durable=True):
                yield
        except BaseException:
            if self._activity.mark() != mark:
                self._activity.drop_from(mark)
                self._emit(ActivityChanged("rollback", ""))
            raise
