"""What the grid shows of the library on screen: the filter (set by the tags panel, the
folder tree and the sort), a search (by text, or "more like this"), and the photos
selected; the filters of each library, kept for the next time it is opened.

A text search stops at a relevance cutoff (learned by the worker as a new tag's
threshold would be, adjustable here); "show all" goes on with the rest, best first, and
stays chosen for later searches until the matches alone are asked for again.

A view-model over `Libraries`: photo ids, counts and the vocabulary are read off the GUI
thread (`ReadPool`) and handed to the window by signals; changes the worker reports are
gathered and read again; a photo shown a moment counts as viewed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal

from albumtagger.app.libraries import Libraries
from albumtagger.app.photo_model import file_name
from albumtagger.app.worker import Reply
from albumtagger.events import (
    JobProgress,
    PhotosChanged,
    TagsChanged,
    ThresholdsChanged,
    VocabularyChanged,
)
from albumtagger.library.db.queries import LibraryQueries, PhotoFilter

FOLDERS_AFTER_MS = 300
"""The folder tree's counts are read this long after the other counts, when no other
filter came meanwhile."""
VIEW_DWELL_MS = 1000
"""A photo in the detail panel this long counts as viewed."""
REQUERY_MS = 250
"""Changes reported by the worker are gathered this long before the grid re-queries."""
SEARCH_TOP = 2000
CUTOFF_STEP = 0.01
"""One click of the search's "stricter" / "looser" buttons moves its cutoff this much."""

Query = tuple  # ("text", text) | ("similar", photo id, file name)

EVERY_PHOTO = PhotoFilter(hide_missing=True)
"""What the window shows unfiltered: every photo but those whose file is gone (the
Missing quick filter shows them)."""


def unfiltered(f: PhotoFilter) -> bool:
    """Whether `f` shows every photo the window shows unfiltered (in any order)."""
    return replace(f, order="path", descending=False) == EVERY_PHOTO


@dataclass
class FilterState:
    """The filters of one library as the person left them: tags included and excluded
    (ids), all/any, quick filters (keys), the folder and the search text."""

    include: list[int] = field(default_factory=list)
    exclude: list[int] = field(default_factory=list)
    match_any: bool = False
    quick: list[str] = field(default_factory=list)
    folder: str = ""
    search: str = ""

    @classmethod
    def from_json(cls, text: object) -> FilterState:
        """The state saved as `to_json` says; a value it cannot read is no filter."""
        try:
            data = json.loads(str(text))
            return cls(
                include=[int(t) for t in data.get("include", [])],
                exclude=[int(t) for t in data.get("exclude", [])],
                match_any=bool(data.get("match_any", False)),
                quick=[str(k) for k in data.get("quick", [])],
                folder=str(data.get("folder", "")),
                search=str(data.get("search", "")),
            )
        except (TypeError, ValueError, AttributeError):
            return cls()

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


SHOW_ALL_KEY = "search/show_all"


def filters_key(root: Path) -> str:
    """Where a library's filters are kept in the window's QSettings: keyed by the
    library's folder (a digest: paths hold characters QSettings keys cannot)."""
    return "filters/" + hashlib.sha256(str(root).encode("utf-8", "surrogatepass")).hexdigest()[:24]


class Browsing(QObject):
    """`ids_ready` hands over the photos to show; `filter_applied` follows once they are
    shown, `search_done(Reply)` after each search reply."""

    ids_ready = Signal(object, object)  # ids, scores (a search's, else None)
    counts_ready = Signal(object, object)  # tag counts, QuickCounts
    folders_ready = Signal(object, object)  # photos per folder: shown, every (folder_counts)
    tags_ready = Signal(object)  # the vocabulary: list of TagInfo
    photos_changed = Signal(object)  # ids whose tags or files changed (a set)
    query_changed = Signal()
    status = Signal(str, int)  # a status-bar message ("" clears it), its timeout in ms
    filter_applied = Signal()
    search_done = Signal(object)  # Reply
    results_changed = Signal()  # a text search's results, its cutoff or "show all" changed

    def __init__(self, libraries: Libraries, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.libraries = libraries
        self.filter = EVERY_PHOTO
        self.filtering = False
        """The filter looks at more than the sort order."""
        self.folder = ""
        """The folder chosen in the folder tree ("" every folder)."""
        self.want_folders = False
        """The folder tree is shown: its counts are read with the others."""
        self.query: Query | None = None
        self.search_pending = False
        self.total = 0
        """Photos in the library."""
        self.shown: tuple[int, ...] = ()
        """The photos selected, as the detail panel shows them."""
        self._search_token = 0
        self.results: tuple[np.ndarray, np.ndarray] | None = None
        """The last text search's photos and scores, best first (every one it found)."""
        self.cutoff: float | None = None
        """The text search's relevance cutoff in use (None: no text search on screen)."""
        self.learned_cutoff: float | None = None
        self.show_all = str(libraries.qsettings.value(SHOW_ALL_KEY, "false")) == "true"
        """Show a text search's photos below the cutoff too (kept for later searches and
        the next start)."""
        self._cutoff_text = ""
        self._changed_ids: set[int] = set()
        self._ids_stale = True
        """The grid's photos may have changed (not only their tags): read them again."""
        self._viewed: int | None = None
        self._requery_timer = self._timer(REQUERY_MS, self._requery)
        self._counts_timer = self._timer(0, self._update_counts)
        self._folders_timer = self._timer(FOLDERS_AFTER_MS, self._read_folders)
        self._folders_filter = PhotoFilter()
        self._view_timer = self._timer(VIEW_DWELL_MS, self._note_view)
        libraries.library_opened.connect(self._library_opened)
        libraries.library_closed.connect(self._library_closed)
        libraries.event.connect(self._event)
        libraries.correction_done.connect(self._corrected)

    def _timer(self, ms: int, slot: Callable[[], None]) -> QTimer:
        timer = QTimer(self)
        timer.setSingleShot(True)
        timer.setInterval(ms)
        timer.timeout.connect(slot)
        return timer

    def _library_opened(self, _root: object) -> None:
        self.reload_tags()
        self.apply_filter()

    def _library_closed(self) -> None:
        self.query = None
        self.folder = ""
        self._forget_results()

    # -- the filter ---------------------------------------------------------------------

    def set_filter(self, f: PhotoFilter, filtering: bool, *, apply: bool = True) -> None:
        """The filter of the tags panel and the sort (with `folder` and without missing
        photos, unless the filter asks for them); shown at once unless not `apply`."""
        self.filter = replace(f, folder=self.folder, hide_missing=True)
        self.filtering = filtering or bool(self.folder)
        if apply:
            self.apply_filter()

    def set_want_folders(self, want: bool) -> None:
        """Read the counts per folder (the tree is shown) or not; read them now."""
        self.want_folders = want
        if want:
            self._counts_timer.start()

    # -- filters kept per library -------------------------------------------------------

    def saved_filters(self, root: Path) -> FilterState:
        """The filters `root`'s library was left with (none: a state with no filter)."""
        value = self.libraries.qsettings.value(filters_key(root))
        return FilterState() if value is None else FilterState.from_json(value)

    def save_filters(self, root: Path, state: FilterState) -> None:
        key = filters_key(root)
        if state == FilterState():
            self.libraries.qsettings.remove(key)
        else:
            self.libraries.qsettings.setValue(key, state.to_json())

    def restore_search(self, text: str) -> None:
        """Search for `text` when the filter is next applied (opening a library)."""
        text = text.strip()
        self.query = ("text", text) if text else None

    def apply_filter(self) -> None:
        """Read the filter's photos (or run the search again, if any) and the counts;
        `filter_applied` once the grid has them."""
        reads = self.libraries.reads
        if reads is None:
            return
        if self.query is not None:
            self._submit_query()
        else:
            f = self.filter
            queries = self.libraries.queries
            if self.libraries.worker_idle and queries is not None and not reads.pending("ids"):
                # Nothing competes for the GIL: reading here is quicker than a round trip.
                self._ids_ready(queries.photo_ids(f))
            else:
                reads.read("ids", lambda q: q.photo_ids(f), self._ids_ready)
        self._counts_timer.start()

    def _ids_ready(self, ids: object) -> None:
        if self.query is not None:
            return  # a search was started meanwhile; its reply shows the photos
        self._show(np.asarray(ids), None)
        self.filter_applied.emit()

    def _show(self, ids: np.ndarray, scores: np.ndarray | None) -> None:
        if scores is None and not self.filtering:
            self.total = len(ids)  # every photo is shown
        self.ids_ready.emit(ids, scores)

    def _update_counts(self) -> None:
        reads = self.libraries.reads
        if reads is None:
            return
        f = self.filter

        def count(q: LibraryQueries) -> tuple:
            quick = q.quick_counts(f)
            total = quick.total if unfiltered(f) else q.count(EVERY_PHOTO)
            return q.tag_counts(f), quick, total

        reads.read("counts", count, lambda result: self._counts_ready(result, f))

    def counts_pending(self) -> bool:
        reads = self.libraries.reads
        return reads is not None and reads.pending("counts")

    def _counts_ready(self, result: object, f: PhotoFilter) -> None:
        tags, quick, self.total = result  # type: ignore[misc]
        self.counts_ready.emit(tags, quick)
        if self.want_folders:
            self._folders_filter = f
            self._folders_timer.start()

    def _read_folders(self) -> None:
        """The photos per folder under the filter, once the filter has settled (a scan
        of every path: it must not compete with the grid and the counts)."""
        reads, f = self.libraries.reads, self._folders_filter
        if reads is not None and self.want_folders:
            reads.read(
                "folders",
                lambda q: (q.folder_counts(f), q.folder_counts(EVERY_PHOTO)),
                lambda folders: self.folders_ready.emit(*folders),
            )

    def reload_tags(self) -> None:
        reads = self.libraries.reads
        if reads is not None:
            reads.read("tags", lambda q: q.tags(), self.tags_ready.emit)

    def empty_text(self) -> tuple[str, str]:
        """What the grid says when it shows no photo, and its button's text ("" none)."""
        lib, progress = self.libraries, self.libraries.last_progress
        if self.search_pending:
            return "Searching\u2026", ""
        if self.results is not None and self.below and not self.show_all:
            return (
                f"No photo scores {self.cutoff:.2f} or more for this search.\nShow all "
                "of them, or make the cutoff looser (above the photos).",
                "Clear the filters",
            )
        if self.filtering or self.query is not None:
            return "No photo matches these filters.", "Clear the filters"
        if progress is not None and not progress.finished:
            return "Looking for photos\u2026 they appear here as they are found.", ""
        if lib.model_state == "unavailable":
            return (
                "No photos yet: the folder is read once the model is available (see above).",
                "",
            )
        return (
            f"No photos in {lib.root} yet.\nCopy photos into the folder: they appear here as "
            "they are found and tagged.",
            "",
        )

    # -- changes from the worker --------------------------------------------------------

    def _event(self, ev: object) -> None:
        if isinstance(ev, JobProgress):
            if ev.finished:
                self._ids_stale = True
                self._requery_timer.start(0)
        elif isinstance(ev, (PhotosChanged, TagsChanged)):
            self._changed_ids.update(ev.ids)
            self._ids_stale |= isinstance(ev, PhotosChanged)
            if not self._requery_timer.isActive():
                self._requery_timer.start()
        elif isinstance(ev, (VocabularyChanged, ThresholdsChanged)):
            self.reload_tags()
            self._requery_timer.start()

    def _corrected(self, _reply: object) -> None:
        """Show a correction's effect at once; the worker's TagsChanged events follow."""
        self._requery_timer.start(0)

    def requery_pending(self) -> bool:
        return self._requery_timer.isActive()

    def _requery(self) -> None:
        """After changes from the worker: the filter's photos and the counts again."""
        reads = self.libraries.reads
        if reads is None:
            return
        changed, self._changed_ids = self._changed_ids, set()
        # Tag changes alone leave the grid's photos as they are unless the filter looks at
        # tags: at 100k photos reading them again is a query the window can do without.
        stale, self._ids_stale = self._ids_stale, False
        if self.query is None and (stale or self.filtering):
            f = self.filter
            reads.read("ids", lambda q: q.photo_ids(f), self._ids_ready)
        self._update_counts()
        if changed:
            self.photos_changed.emit(changed)

    # -- search -------------------------------------------------------------------------

    def search(self, text: str) -> None:
        """Rank the photos by how well they match `text` (blank: the search ends)."""
        text = text.strip()
        if not text:
            self.clear_search()
            return
        self.query = ("text", text)
        self._submit_query()
        self.query_changed.emit()

    def more_like_this(self, photo_id: int) -> None:
        queries = self.libraries.queries
        detail = queries.photo_detail(photo_id) if queries else None
        name = file_name(detail.path) if detail else f"photo {photo_id}"
        self.query = ("similar", int(photo_id), name)
        self._submit_query()
        self.query_changed.emit()

    def clear_search(self) -> None:
        self.query = None
        self.search_pending = False
        self._forget_results()
        self.query_changed.emit()
        self.apply_filter()

    def drop_query(self) -> None:
        """Forget the search without showing the filter's photos (the caller does)."""
        self.query = None
        self._forget_results()
        self.query_changed.emit()

    def _submit_query(self) -> None:
        reads = self.libraries.reads
        if self.libraries.handle is None or reads is None or self.query is None:
            return
        self._search_token += 1
        self.search_pending = True
        self.status.emit("Searching\u2026", 0)
        token, query = self._search_token, self.query
        if not self.filtering:
            self._send_query(token, query, None)
            return
        f = self.filter
        reads.read(
            "search-restrict",
            lambda q: q.photo_ids(f),
            lambda ids: self._send_query(token, query, ids),
        )

    def _send_query(self, token: int, query: Query, restrict: np.ndarray | None) -> None:
        if token != self._search_token:
            return
        client, on_reply = self.libraries.client, partial(self._search_reply, token)
        if query[0] == "text":
            client.search_with_cutoff(query[1], SEARCH_TOP, restrict, on_reply=on_reply)
        else:
            client.similar(query[1], SEARCH_TOP, restrict, on_reply=on_reply)

    def _search_reply(self, token: int, reply: Reply) -> None:
        if token != self._search_token or self.query is None:
            return
        self.search_pending = False
        if reply.error:
            self.libraries.show_error(reply)
            self.status.emit("", 0)
        elif self.query[0] == "text":
            ids, scores, cutoff = reply.result
            self.results = (np.asarray(ids, dtype=np.int64), np.asarray(scores, np.float32))
            if self.query[1] != self._cutoff_text or self.learned_cutoff != cutoff:
                self.cutoff = float(cutoff)  # a new search: its learned cutoff
            self.learned_cutoff = float(cutoff)
            self._cutoff_text = self.query[1]
            self._show_results()
            n = len(ids)
            self.status.emit(
                f"{self.passed:,} of {n:,} photos match, best first "
                f"({reply.seconds * 1000:.0f} ms)",
                8000,
            )
            self.filter_applied.emit()
        else:
            ids, scores = reply.result
            self._forget_results()
            self._show(np.asarray(ids, dtype=np.int64), np.asarray(scores))
            self.status.emit(
                f"{len(ids):,} photos, best match first ({reply.seconds * 1000:.0f} ms)", 8000
            )
            self.filter_applied.emit()
        self.search_done.emit(reply)

    # -- the search's cutoff ------------------------------------------------------------

    @property
    def passed(self) -> int:
        """The text search's photos scoring at least the cutoff."""
        if self.results is None or self.cutoff is None:
            return 0
        return int(np.count_nonzero(self.results[1] >= np.float32(self.cutoff)))

    @property
    def below(self) -> int:
        """The text search's photos under the cutoff ("Show all" shows them too)."""
        return 0 if self.results is None else len(self.results[0]) - self.passed

    def set_show_all(self, on: bool) -> None:
        """Show the search's photos under the cutoff too (or the matches alone again)."""
        self.show_all = bool(on)
        self.libraries.qsettings.setValue(SHOW_ALL_KEY, "true" if on else "false")
        if self.results is not None:
            self._show_results()

    def set_cutoff(self, value: float | None) -> None:
        """Move the search's cutoff (None: back to the learned one)."""
        if self.results is None:
            return
        self.cutoff = self.learned_cutoff if value is None else round(float(value), 4)
        self._show_results()

    def nudge_cutoff(self, steps: int) -> None:
        """Stricter (steps > 0) or looser (steps < 0) by `CUTOFF_STEP` a step."""
        if self.cutoff is not None:
            self.set_cutoff(self.cutoff + steps * CUTOFF_STEP)

    def _show_results(self) -> None:
        assert self.results is not None
        ids, scores = self.results
        n = len(ids) if self.show_all else self.passed
        self._show(ids[:n], scores[:n])
        self.results_changed.emit()

    def _forget_results(self) -> None:
        had = self.results is not None
        self.results = None
        self.cutoff = self.learned_cutoff = None
        self._cutoff_text = ""
        if had:
            self.results_changed.emit()

    # -- the selection ------------------------------------------------------------------

    def set_shown(self, photo_ids: tuple[int, ...]) -> None:
        """The photos the detail panel shows: one shown a moment counts as viewed (the
        most viewed photos are refined first)."""
        self.shown = photo_ids
        if len(photo_ids) == 1 and photo_ids[0] != self._viewed:
            self._viewed = photo_ids[0]
            self._view_timer.start()

    def _note_view(self) -> None:
        if self._viewed is not None and self.shown == (self._viewed,):
            self.libraries.client.note_view(self._viewed, on_reply=lambda reply: None)
