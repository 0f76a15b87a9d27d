"""The main window: library selector, search, filter chips, tags panel, photo grid,
detail panel and job status, over one library at a time.

Reads go through `LibraryQueries` on this (the GUI) thread; every write is a request to
the worker (`app.worker`), whose session reports changes back as events.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from pathlib import Path

import numpy as np
from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMainWindow,
    QSlider,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from albumtagger.app.detail import DetailPanel
from albumtagger.app.download_panel import ModelDownloadPanel
from albumtagger.app.grid import DEFAULT_SIZE, MAX_SIZE, MIN_SIZE, PhotoGrid
from albumtagger.app.pages import (
    Banner,
    EmptyGrid,
    FilterBar,
    JobStatus,
    MessagePage,
    WelcomePage,
)
from albumtagger.app.photo_model import PhotoListModel, file_name
from albumtagger.app.qtcompat import plain_tooltip
from albumtagger.app.reads import ReadPool
from albumtagger.app.tags_panel import TagsPanel
from albumtagger.app.thumbnails import ThumbnailLoader
from albumtagger.app.worker import (
    Call,
    Correct,
    Reindex,
    Reply,
    Search,
    SessionFactory,
    Similar,
    Undo,
    WorkerHandle,
)
from albumtagger.config import DEFAULT_MODEL, Settings, replace_section
from albumtagger.errors import UserError
from albumtagger.events import (
    JobProgress,
    ModelStatus,
    Notice,
    PhotosChanged,
    TagsChanged,
    ThresholdsChanged,
    VocabularyChanged,
)
from albumtagger.library.db.queries import LibraryQueries, PhotoFilter
from albumtagger.library.thumbnails import ThumbnailCache
from albumtagger.model.files import set_downloads_allowed

log = logging.getLogger(__name__)

MAX_RECENT = 10
VIEW_DWELL_MS = 1000
"""A photo in the detail panel this long counts as viewed."""
MAX_BACKGROUND = MAX_RECENT
"""Libraries of the selector kept open (watched and tagged) behind the one on screen."""
BACKGROUND_DELAY_MS = 1500
"""The library on screen gets this head start before the others are opened."""
REQUERY_MS = 250
"""Changes reported by the worker are gathered this long before the grid re-queries."""
SEARCH_TOP = 2000

SORTS = (
    ("Folder", "path", False),
    ("Name", "name", False),
    ("Date taken (newest)", "taken", True),
    ("Date taken (oldest)", "taken", False),
    ("Date added (newest)", "added", True),
)

PAGE_WELCOME, PAGE_LIBRARY, PAGE_MESSAGE = 0, 1, 2

MODEL_HELP = (
    "Browsing, filtering and correcting tags work without it; tagging new photos and "
    "searching by text need it.\n"
    "If you have the model folder (GME-Qwen2-VL-2B-Instruct), choose it. Offline? On a "
    "machine with internet, run `huggingface-cli download {model} --local-dir gme-model`, "
    "copy the gme-model folder here, and choose it."
)


class MainWindow(QMainWindow):
    """`qsettings`: where window state and recent folders are kept (tests pass their own).
    `session_factory`, `auto_index` and `watch` are for tests and benchmarks."""

    library_opened = Signal(object)  # root Path
    filter_applied = Signal()
    correction_done = Signal(object)  # Reply
    search_done = Signal(object)  # Reply
    notice_shown = Signal(str)
    settings_applied = Signal(object)  # what the open library runs with (a dict)

    def __init__(
        self,
        settings: Settings,
        qsettings: QSettings | None = None,
        *,
        session_factory: SessionFactory | None = None,
        auto_index: bool = True,
        watch: bool = True,
        thumbnail_cache: ThumbnailCache | None = None,
    ) -> None:
        super().__init__()
        set_downloads_allowed(False)  # the model is downloaded only when asked (the panel)
        self.settings = settings
        self.qsettings = qsettings if qsettings is not None else QSettings()
        self._factory = session_factory
        self._auto_index = auto_index
        self._watch = watch
        self.root: Path | None = None
        self.queries: LibraryQueries | None = None
        self.reads: ReadPool | None = None
        self.handle: WorkerHandle | None = None
        self._background: dict[Path, WorkerHandle] = {}
        """The other libraries, watched and tagged while the one on screen is idle."""
        self._front_idle = threading.Event()
        self._front_idle.set()
        self._calls: dict[int, tuple[Call, object]] = {}
        self._search_token = 0
        self._query: tuple | None = None  # ("text", text) | ("similar", id, name)
        self._search_pending = False
        self._worker_idle = False
        self._changed_ids: set[int] = set()
        self._total = 0
        self._closing = False
        self.last_notice = ""
        self.model_state = "not_loaded"
        self.last_progress: JobProgress | None = None
        self.setWindowTitle("albumtagger")
        self.setAcceptDrops(True)
        self.resize(1280, 820)

        self.loader = ThumbnailLoader(
            None, thumbnail_cache, size=int(self.qsettings.value("view/thumb_size", DEFAULT_SIZE))
        )
        self.model = PhotoListModel(None, self)
        self._build()
        self._build_menus()
        self._requery_timer = QTimer(self)
        self._requery_timer.setSingleShot(True)
        self._requery_timer.setInterval(REQUERY_MS)
        self._requery_timer.timeout.connect(self._requery)
        self._ids_stale = True
        """The grid's photos may have changed (not only their tags): read them again."""
        self._counts_timer = QTimer(self)
        self._counts_timer.setSingleShot(True)
        self._counts_timer.setInterval(0)
        self._counts_timer.timeout.connect(self._update_counts)
        self._viewed: int | None = None
        self._view_timer = QTimer(self)
        self._view_timer.setSingleShot(True)
        self._view_timer.setInterval(VIEW_DWELL_MS)
        self._view_timer.timeout.connect(self._note_view)
        self._restore_state()
        self._show_welcome()

    # -- building ---------------------------------------------------------------------

    def _build(self) -> None:
        self.stack = QStackedWidget()
        self.setCentralWidget(self.stack)
        self.welcome = WelcomePage()
        self.welcome.open_requested.connect(self.choose_folder)
        self.welcome.folder_chosen.connect(self.open_folder)
        self.message_page = MessagePage()
        self.message_page.action.connect(self._message_action)

        library = QWidget()
        top = QHBoxLayout()
        top.setContentsMargins(6, 6, 6, 0)
        self.library_box = QComboBox()
        self.library_box.setToolTip("Switch between your photo folders")
        self.library_box.setAccessibleName("Library")
        self.library_box.setMinimumWidth(180)
        self.library_box.activated.connect(self._library_chosen)
        self.search = QLineEdit()
        self.search.setPlaceholderText(
            "Search by meaning, e.g. \u201ckids on a beach\u201d (Ctrl+F)"
        )
        self.search.setClearButtonEnabled(True)
        self.search.setAccessibleName("Search photos by description")
        self.search.setToolTip("Rank photos by how well they match a description (Esc clears)")
        self.search.returnPressed.connect(self.run_search)
        self.search.textChanged.connect(self._search_text_changed)
        self.search.installEventFilter(self)
        self.zoom = QSlider(Qt.Orientation.Horizontal)
        self.zoom.setRange(MIN_SIZE, MAX_SIZE)
        self.zoom.setValue(self.loader.size)
        self.zoom.setMaximumWidth(140)
        self.zoom.setToolTip("Thumbnail size (Ctrl++ / Ctrl+-)")
        self.zoom.setAccessibleName("Thumbnail size")
        self.zoom.valueChanged.connect(self._zoom_changed)
        self.sort = QComboBox()
        for label, order, desc in SORTS:
            self.sort.addItem(label, (order, desc))
        self.sort.setToolTip("Sort the photos")
        self.sort.setAccessibleName("Sort order")
        self.sort.currentIndexChanged.connect(self.apply_filter)
        top.addWidget(self.library_box)
        top.addWidget(self.search, 1)
        top.addWidget(QLabel("Size"))
        top.addWidget(self.zoom)
        top.addWidget(self.sort)

        self.filter_bar = FilterBar()
        self.filter_bar.remove.connect(self._remove_filter)
        self.filter_bar.clear.connect(self.clear_filters)
        self.banner = Banner()
        self.banner.action.connect(self.choose_model_folder)
        self.download_panel = ModelDownloadPanel()
        self.download_panel.downloaded.connect(self._model_downloaded)

        self.tags_panel = TagsPanel()
        self.tags_panel.changed.connect(self.apply_filter)
        self.tags_panel.inspect_requested.connect(self.inspect_tag)
        self.grid = PhotoGrid(self.model, self.loader)
        self.grid.opened.connect(self._open_photo)
        self.grid.selectionModel().selectionChanged.connect(self._selection_changed)
        self.grid.selectionModel().currentChanged.connect(self._selection_changed)
        self.grid.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.grid.customContextMenuRequested.connect(self._grid_menu)
        self.empty = EmptyGrid()
        self.empty.action.connect(self.clear_filters)
        self.grid_stack = QStackedWidget()
        self.grid_stack.addWidget(self.grid)
        self.grid_stack.addWidget(self.empty)
        self.detail = DetailPanel()
        self.detail.correct.connect(self.correct)
        self.detail.more_like_this.connect(self.more_like_this)
        self.detail.set_call(self.call)

        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.tags_panel)
        self.splitter.addWidget(self.grid_stack)
        self.splitter.addWidget(self.detail)
        self.splitter.setStretchFactor(0, 0)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setStretchFactor(2, 0)
        self.splitter.setSizes([240, 760, 300])
        self.splitter.setChildrenCollapsible(True)

        box = QVBoxLayout(library)
        box.setContentsMargins(0, 0, 0, 0)
        box.setSpacing(2)
        box.addLayout(top)
        box.addWidget(self.filter_bar)
        box.addWidget(self.banner)
        box.addWidget(self.download_panel)
        box.addWidget(self.splitter, 1)

        self.stack.addWidget(self.welcome)
        self.stack.addWidget(library)
        self.stack.addWidget(self.message_page)

        self.job = JobStatus()
        self.job.pause.connect(self.pause)
        self.job.resume.connect(self.resume)
        self.job.cancel.connect(self.cancel_job)
        self.background_status = QLabel()
        self.background_status.setTextFormat(Qt.TextFormat.PlainText)
        self.background_status.setToolTip(
            "The other libraries in the selector are kept watched and tagged while this "
            "one has nothing to do"
        )
        self.background_status.hide()
        self.statusBar().addPermanentWidget(self.background_status)
        self.statusBar().addPermanentWidget(self.job)
        self.loader.changed.connect(self._thumbs_changed)

    def _action(self, text: str, shortcut=None, slot=None, tip: str = "") -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        if tip:
            action.setToolTip(tip)
            action.setStatusTip(tip)
        if slot is not None:
            action.triggered.connect(slot)
        self.addAction(action)
        return action

    def _build_menus(self) -> None:
        bar = self.menuBar()
        K = QKeySequence.StandardKey
        m = bar.addMenu("&File")
        self.act_open = self._action("&Open folder\u2026", K.Open, self.choose_folder)
        m.addAction(self.act_open)
        self.recent_menu = m.addMenu("Open &recent")
        m.addSeparator()
        self.act_pause = self._action("&Pause tagging", "Ctrl+P", self.toggle_pause)
        self.act_cancel = self._action("&Cancel tagging", None, self.cancel_job)
        self.act_reindex = self._action(
            "&Tag again", "F5", self.reindex, "Scan the folder and tag what is new"
        )
        self.act_model = self._action(
            "Choose the &model folder\u2026", None, self.choose_model_folder
        )
        for a in (self.act_pause, self.act_cancel, self.act_reindex, self.act_model):
            m.addAction(a)
        m.addSeparator()
        self.act_quit = self._action("&Quit", K.Quit, self.close)
        m.addAction(self.act_quit)

        m = bar.addMenu("&Edit")
        self.act_undo = self._action("&Undo correction", K.Undo, self.undo)
        m.addAction(self.act_undo)
        m.addSeparator()
        self.act_accept = self._action(
            "&Accept tag",
            "A",
            lambda: self.detail.act_on_current("accept"),
            "Accept the focused suggestion",
        )
        self.act_reject = self._action(
            "&Reject tag",
            "R",
            lambda: self.detail.act_on_current("reject"),
            "Reject the focused suggestion",
        )
        self.act_remove = self._action(
            "Re&move tag",
            K.Delete,
            lambda: self.detail.act_on_current("remove"),
            "Remove the focused tag",
        )
        self.act_add = self._action("A&dd tag\u2026", "Ctrl+T", self._focus_add, "Add a tag")
        for a in (self.act_accept, self.act_reject, self.act_remove, self.act_add):
            m.addAction(a)
        m.addSeparator()
        self.act_find = self._action("&Search\u2026", K.Find, self._focus_search)
        self.act_similar = self._action("More &like this", "Ctrl+L", self._similar_current)
        self.act_select_all = self._action("Select &all", K.SelectAll, self.grid.selectAll)
        self.act_clear = self._action("&Clear filters", "Ctrl+Shift+C", self.clear_filters)
        for a in (self.act_find, self.act_similar, self.act_select_all, self.act_clear):
            m.addAction(a)
        m.addSeparator()
        self.act_settings = self._action("&Settings\u2026", K.Preferences, self.show_settings)
        if self.act_settings.shortcut().isEmpty():
            self.act_settings.setShortcut(QKeySequence("Ctrl+,"))
        self.act_settings.setMenuRole(QAction.MenuRole.PreferencesRole)
        self.act_vocabulary = self._action(
            "&Vocabulary\u2026",
            "Ctrl+Shift+V",
            self.show_vocabulary,
            "Add, rename and remove tags, edit their prompts, import a list",
        )
        m.addAction(self.act_vocabulary)
        m.addAction(self.act_settings)

        m = bar.addMenu("&View")
        self.act_zoom_in = self._action("Zoom &in", K.ZoomIn, lambda: self._zoom_by(24))
        self.act_zoom_out = self._action("Zoom &out", K.ZoomOut, lambda: self._zoom_by(-24))
        self.act_detail = self._action("Show &details", None, self._open_current)
        self.act_detail.setShortcuts([QKeySequence("Ctrl+Return")])
        self.act_full = self._action("&Full screen", K.FullScreen, self.toggle_full_screen)
        if self.act_full.shortcut().isEmpty():
            self.act_full.setShortcut(QKeySequence("F11"))
        for a in (self.act_zoom_in, self.act_zoom_out, self.act_detail, self.act_full):
            m.addAction(a)
        m.addSeparator()
        self.act_review = self._action(
            "&Review suggestions\u2026",
            "Ctrl+R",
            self.open_review,
            "Answer yes or no to the suggestions nearest their tag's threshold",
        )
        self.act_duplicates = self._action(
            "Near &duplicates\u2026",
            "Ctrl+Shift+D",
            self.open_duplicates,
            "Groups of photos that are nearly the same: bursts, copies, edits",
        )
        self.act_inspect = self._action(
            "&Inspect tag\u2026",
            "Ctrl+I",
            lambda: self.inspect_tag(None),
            "The threshold, score histogram and nearest photos of the tag chosen in the tags list",
        )
        m.addAction(self.act_review)
        m.addAction(self.act_duplicates)
        m.addAction(self.act_inspect)

        m = bar.addMenu("&Help")
        self.act_keys = self._action("&Keyboard shortcuts", K.HelpContents, self.show_keys)
        if self.act_keys.shortcut().isEmpty():
            self.act_keys.setShortcut(QKeySequence("F1"))
        self.act_about = self._action("&About albumtagger", None, self.show_about)
        self.act_about.setMenuRole(QAction.MenuRole.AboutRole)
        m.addAction(self.act_keys)
        m.addAction(self.act_about)
        self._update_recent_menu()

    # -- state --------------------------------------------------------------------------

    def _restore_state(self) -> None:
        geometry = self.qsettings.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        splitter = self.qsettings.value("window/splitter")
        if splitter is not None:
            self.splitter.restoreState(splitter)
        sort = self.qsettings.value("view/sort")
        if sort is not None:
            try:
                self.sort.blockSignals(True)
                self.sort.setCurrentIndex(max(0, min(len(SORTS) - 1, int(sort))))
            finally:
                self.sort.blockSignals(False)
        model = self.qsettings.value("model/folder")
        if model and self.settings.model.model == DEFAULT_MODEL:
            self.settings = replace_section(self.settings, "model", model=str(model))

    def _save_state(self) -> None:
        self.qsettings.setValue("window/geometry", self.saveGeometry())
        self.qsettings.setValue("window/splitter", self.splitter.saveState())
        self.qsettings.setValue("view/thumb_size", self.loader.size)
        self.qsettings.setValue("view/sort", self.sort.currentIndex())
        self.qsettings.sync()

    def recent_folders(self) -> list[str]:
        value = self.qsettings.value("recent/folders") or []
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in value]

    def _remember(self, root: Path) -> None:
        folders = [f for f in self.recent_folders() if f != str(root)]
        folders.insert(0, str(root))
        self.qsettings.setValue("recent/folders", folders[:MAX_RECENT])
        self._update_recent_menu()

    def _update_recent_menu(self) -> None:
        folders = self.recent_folders()
        self.recent_menu.clear()
        for folder in folders:
            action = self.recent_menu.addAction(folder.replace("&", "&&"))
            action.triggered.connect(lambda _=False, f=folder: self.open_folder(Path(f)))
        self.recent_menu.setEnabled(bool(folders))
        self.welcome.set_recent(folders)
        self.library_box.blockSignals(True)
        self.library_box.clear()
        for folder in folders:
            self.library_box.addItem(Path(folder).name or folder, folder)
            self.library_box.setItemData(
                self.library_box.count() - 1, plain_tooltip(folder), Qt.ItemDataRole.ToolTipRole
            )
        self.library_box.addItem("Add a folder\u2026", None)
        if self.root is not None:
            at = self.library_box.findData(str(self.root))
            self.library_box.setCurrentIndex(max(0, at))
        self.library_box.blockSignals(False)

    # -- opening a library --------------------------------------------------------------

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a photo folder")
        if folder:
            self.open_folder(Path(folder))

    def _library_chosen(self, index: int) -> None:
        folder = self.library_box.itemData(index)
        if folder is None:
            self.choose_folder()
            self._update_recent_menu()
        elif Path(folder) != self.root:
            self.open_folder(Path(folder))

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
        self.setWindowTitle(f"{root.name} \u2013 albumtagger")
        self.stack.setCurrentIndex(PAGE_MESSAGE)
        self.message_page.show_message("Opening\u2026", str(root))
        self._message_kind = ""
        self.banner.hide()
        self._worker_idle = False
        self.model_state = "not_loaded"
        self._front_idle.clear()
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
                self._event_from(handle, handle.last_progress)
            self._idle_from(handle, handle.idle)

    def _start_handle(self, root: Path) -> WorkerHandle:
        handle = WorkerHandle(
            root,
            self.settings,
            self._factory,
            auto_index=self._auto_index,
            watch=self._watching(),
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
        if self._closing or not self._watching():
            return
        for folder in self.recent_folders()[:MAX_BACKGROUND]:
            root = Path(folder)
            if root != self.root and root not in self._background and root.is_dir():
                handle = self._start_handle(root)
                handle.set_background(True)
                self._background[root] = handle
        self._update_background_status()

    def background_roots(self) -> list[Path]:
        """The libraries kept open behind the one on screen."""
        return list(self._background)

    def _opened(self, db_path: object) -> None:
        if self.handle is None or self.sender() is not self.handle.worker:
            return
        self._attach(Path(str(db_path)))
        QTimer.singleShot(BACKGROUND_DELAY_MS, self._open_background)

    def _attach(self, db_path: Path) -> None:
        """Show the library whose sidecar is `db_path` (its worker has it open)."""
        try:
            self.queries = LibraryQueries(Path(str(db_path)))
        except UserError as exc:
            self._open_failed("user", str(exc))
            return
        self.reads = ReadPool(Path(str(db_path)), self)
        self.model.set_reads(self.reads)
        self.loader.set_root(self.root)
        self.stack.setCurrentIndex(PAGE_LIBRARY)
        self._reload_tags()
        self.apply_filter()
        self.grid.setFocus()
        self.library_opened.emit(self.root)

    def _open_failed(self, kind: str, message: str) -> None:
        if self.handle is None or self.sender() not in (self.handle.worker, None):
            return
        self.stack.setCurrentIndex(PAGE_MESSAGE)
        self._message_kind = kind
        if kind == "offline":
            self.message_page.show_message(
                "This folder is offline",
                f"{message}\nConnect the drive (or check the path), then try again.",
                "Try again",
            )
        elif kind == "busy":
            self.message_page.show_message(
                "This library is in use",
                f"{message}\nClose the other program (or wait for it to finish), then try again.",
                "Try again",
            )
        else:
            self.message_page.show_message(
                "This folder cannot be opened", message, "Choose another folder\u2026"
            )

    def _message_action(self) -> None:
        if getattr(self, "_message_kind", "") in ("offline", "busy") and self.root is not None:
            self.open_folder(self.root)
        else:
            self.choose_folder()

    def _close_library(self) -> None:
        """Take the library off the screen (its worker is the caller's business)."""
        if self.reads is not None:
            self.model.set_reads(None)
            self.reads.shutdown()
            self.reads.deleteLater()
            self.reads = None
        if self.queries is not None:
            self.queries.close()
            self.queries = None
        self.loader.set_root(None)
        self._calls.clear()
        self._query = None
        self.search.blockSignals(True)
        self.search.clear()
        self.search.blockSignals(False)
        self.tags_panel.set_tags([])
        self.detail.show_nothing()
        self.job.set_paused(False)
        self.job.set_idle("")

    def _show_welcome(self) -> None:
        self.stack.setCurrentIndex(PAGE_WELCOME)

    # -- the filter and the grid --------------------------------------------------------

    def current_filter(self) -> PhotoFilter:
        order, desc = self.sort.currentData() or ("path", False)
        return self.tags_panel.photo_filter(order, desc)

    def apply_filter(self, *_: object) -> None:
        """Show what the tags panel and sort ask for (and run the search again, if any).
        The ids are read off this thread; `filter_applied` once the grid has them."""
        if self.reads is None:
            return
        if self._query is not None:
            self._submit_query()
        else:
            f = self.current_filter()
            if self._worker_idle and self.queries is not None and not self.reads.pending("ids"):
                # Nothing competes for the GIL: reading here is quicker than a round trip.
                self._ids_ready(self.queries.photo_ids(f))
            else:
                self.reads.read("ids", lambda q: q.photo_ids(f), self._ids_ready)
        self._counts_timer.start()
        self._update_chips()

    def _ids_ready(self, ids: object) -> None:
        if self._query is not None:
            return  # a search was started meanwhile; its reply shows the photos
        self._show_ids(ids)  # type: ignore[arg-type]
        self.filter_applied.emit()

    def _show_ids(self, ids: np.ndarray, scores: np.ndarray | None = None) -> None:
        selected = self.grid.selected_ids()
        current = self.grid.current_id()
        self.model.set_ids(ids, scores)
        if scores is None and not self.tags_panel.is_filtering():
            self._total = len(ids)  # every photo is shown
        self.grid.update_visible()
        self._restore_selection(selected, current)
        if self.detail.photo_ids and self.model.row_of(self.detail.photo_ids[0]) < 0:
            self._selection_changed()  # the photo shown left the grid
        self._update_empty()
        self.filter_bar.set_count(len(ids), self._total)

    def _restore_selection(self, selected: list[int], current: int | None) -> None:
        sel = self.grid.selectionModel()
        if current is not None:
            row = self.model.row_of(current)
            if row >= 0 and self.grid.currentIndex().row() != row:
                sel.setCurrentIndex(self.model.index(row), sel.SelectionFlag.NoUpdate)
        if selected and not sel.selectedIndexes():
            for pid in selected[:500]:
                row = self.model.row_of(pid)
                if row >= 0:
                    sel.select(self.model.index(row), sel.SelectionFlag.Select)

    def _update_counts(self) -> None:
        if self.reads is None:
            return
        f = self.current_filter()

        def count(q: LibraryQueries) -> tuple:
            quick = q.quick_counts(f)
            total = (
                quick.total
                if f == PhotoFilter(order=f.order, descending=f.descending)
                else (q.count(PhotoFilter()))
            )
            return q.tag_counts(f), quick, total

        self.reads.read("counts", count, self._counts_ready)

    def counts_pending(self) -> bool:
        return self.reads is not None and self.reads.pending("counts")

    def _counts_ready(self, result: object) -> None:
        tags, quick, total = result  # type: ignore[misc]
        self.tags_panel.set_counts(tags, quick)
        self._total = total
        self.filter_bar.set_count(self.model.rowCount(), self._total)
        self._update_empty()

    def _update_empty(self) -> None:
        empty = self.model.rowCount() == 0
        if not empty:
            self.grid_stack.setCurrentIndex(0)
            return
        if self._search_pending:
            self.empty.show_text("Searching\u2026")
        elif self.tags_panel.is_filtering() or self._query is not None:
            self.empty.show_text("No photo matches these filters.", "Clear the filters")
        elif self.last_progress is not None and not self.last_progress.finished:
            self.empty.show_text("Looking for photos\u2026 they appear here as they are found.")
        elif self.model_state == "unavailable":
            self.empty.show_text(
                "No photos yet: the folder is read once the model is available (see above)."
            )
        else:
            self.empty.show_text(
                f"No photos in {self.root} yet.\nCopy photos into the folder: they appear "
                "here as they are found and tagged."
            )
        self.grid_stack.setCurrentIndex(1)

    def _update_chips(self) -> None:
        chips = self.tags_panel.active()
        if self._query is not None:
            if self._query[0] == "text":
                chips.insert(0, ("search", f"\u201c{self._query[1]}\u201d", "search"))
            else:
                chips.insert(0, ("search", f"like {self._query[2]}", "search"))
        self.filter_bar.set_chips(chips)

    def _remove_filter(self, kind: str, key: object) -> None:
        if kind == "search":
            self.clear_search()
        elif kind == "quick":
            self.tags_panel.set_quick(str(key), False)
        else:
            self.tags_panel.set_tag_state(int(key), None)  # type: ignore[arg-type]

    def clear_filters(self) -> None:
        self._query = None
        self.search.blockSignals(True)
        self.search.clear()
        self.search.blockSignals(False)
        self.tags_panel.clear()  # emits changed -> apply_filter

    def _requery(self) -> None:
        """After changes from the worker: the filter's photos and the counts again."""
        if self.reads is None:
            return
        changed, self._changed_ids = self._changed_ids, set()
        # Tag changes alone leave the grid's photos as they are unless the filter looks at
        # tags: at 100k photos reading them again is a query the window can do without.
        stale, self._ids_stale = self._ids_stale, False
        if self._query is None and (stale or self.tags_panel.is_filtering()):
            f = self.current_filter()
            self.reads.read("ids", lambda q: q.photo_ids(f), self._ids_ready)
        self._update_counts()
        if changed:
            self.model.forget(changed)
            self.grid.update_visible()
        self._refresh_detail(changed)

    # -- search -------------------------------------------------------------------------

    def _search_text_changed(self, text: str) -> None:
        if not text.strip() and self._query is not None and self._query[0] == "text":
            self.clear_search()

    def run_search(self) -> None:
        text = self.search.text().strip()
        if not text:
            self.clear_search()
            return
        self._query = ("text", text)
        self._submit_query()
        self._update_chips()

    def more_like_this(self, photo_id: int) -> None:
        detail = self.queries.photo_detail(photo_id) if self.queries else None
        name = file_name(detail.path) if detail else f"photo {photo_id}"
        self._query = ("similar", int(photo_id), name)
        self.search.blockSignals(True)
        self.search.clear()
        self.search.blockSignals(False)
        self._submit_query()
        self._update_chips()

    def clear_search(self) -> None:
        if self._query is None and not self.search.text():
            return
        self._query = None
        self._search_pending = False
        self.search.blockSignals(True)
        self.search.clear()
        self.search.blockSignals(False)
        self.apply_filter()

    def _submit_query(self) -> None:
        if self.handle is None or self.reads is None or self._query is None:
            return
        self._search_token += 1
        self._search_pending = True
        self.statusBar().showMessage("Searching\u2026")
        token, query = self._search_token, self._query
        if not self.tags_panel.is_filtering():
            self._send_query(token, query, None)
            return
        f = self.current_filter()
        self.reads.read(
            "search-restrict",
            lambda q: q.photo_ids(f),
            lambda ids: self._send_query(token, query, ids),
        )

    def _send_query(self, token: int, query: tuple, restrict: object) -> None:
        if self.handle is None or token != self._search_token:
            return
        if query[0] == "text":
            req: Search | Similar = Search(token, query[1], restrict, SEARCH_TOP)  # type: ignore[arg-type]
        else:
            req = Similar(token, query[1], restrict, SEARCH_TOP)  # type: ignore[arg-type]
        self.handle.submit(req)

    def _search_reply(self, reply: Reply) -> None:
        req = reply.request
        assert isinstance(req, (Search, Similar))
        if req.token != self._search_token or self._query is None:
            return
        self._search_pending = False
        if reply.error:
            self._show_error(reply)
            self.statusBar().clearMessage()
            self._update_empty()
        else:
            ids, scores = reply.result
            self._show_ids(np.asarray(ids, dtype=np.int64), np.asarray(scores))
            self.statusBar().showMessage(
                f"{len(ids):,} photos, best match first ({reply.seconds * 1000:.0f} ms)", 8000
            )
            self.grid.scrollToTop()
            self.filter_applied.emit()
        self.search_done.emit(reply)

    # -- selection and detail -----------------------------------------------------------

    def _selection_changed(self, *_: object) -> None:
        ids = self.grid.selected_ids()
        if len(ids) > 1:
            self.detail.show_many(tuple(ids))
            return
        pid = ids[0] if ids else self.grid.current_id()
        if pid is None:
            self.detail.show_nothing()
        elif not self.detail.photo_ids or self.detail.photo_ids != (pid,):
            self._show_detail(pid)

    def _show_detail(self, pid: int, *, reload: bool = True) -> None:
        if self.queries is None:
            return
        detail = self.queries.photo_detail(pid)
        if detail is None:
            self.detail.show_nothing()
            return
        self.detail.show_photo(detail, self.queries.photo_tags(pid), self.root, reload=reload)
        if pid != self._viewed:
            self._viewed = pid
            self._view_timer.start()

    def _note_view(self) -> None:
        """A photo shown in the detail panel for a moment was looked at: the most viewed
        photos are refined first."""
        if self._viewed is not None and self.detail.photo_ids == (self._viewed,):
            self.call("note_view", self._viewed, on_reply=lambda reply: None)

    def _refresh_detail(self, changed: set[int] | None = None) -> None:
        ids = self.detail.photo_ids
        if len(ids) == 1 and (changed is None or ids[0] in changed):
            self._show_detail(ids[0], reload=False)

    def _open_photo(self, pid: int) -> None:
        sizes = self.splitter.sizes()
        if sizes[2] == 0:
            sizes[2] = 300
            self.splitter.setSizes(sizes)
        self._show_detail(pid, reload=self.detail.photo_ids != (pid,))
        self.detail.focus_chips()

    def _open_current(self) -> None:
        pid = self.grid.current_id()
        if pid is not None:
            self._open_photo(pid)

    def _similar_current(self) -> None:
        pid = self.grid.current_id()
        if pid is not None:
            self.more_like_this(pid)

    def _grid_menu(self, pos) -> None:
        from PySide6.QtWidgets import QMenu

        index = self.grid.indexAt(pos)
        if not index.isValid():
            return
        menu = QMenu(self)
        menu.addAction(self.act_similar)
        menu.addAction(self.act_add)
        menu.addAction(self.act_select_all)
        menu.exec(self.grid.viewport().mapToGlobal(pos))

    # -- corrections ----------------------------------------------------------------------

    def correct(self, photo_ids: object, tag: str, action: str) -> None:
        if self.handle is None:
            return
        ids = tuple(int(i) for i in photo_ids)  # type: ignore[union-attr]
        self.handle.submit(Correct(ids, tag, action))

    def undo(self) -> None:
        if self.handle is not None:
            self.handle.submit(Undo())

    def _correction_reply(self, reply: Reply) -> None:
        if reply.error:
            self._show_error(reply)
        else:
            result = reply.result
            if isinstance(result, list):
                if len(result) == 1:
                    self.show_notice(result[0].describe())
                elif result:
                    first = result[0]
                    verb = {
                        "accept": "Accepted",
                        "reject": "Rejected",
                        "add": "Added",
                        "remove": "Removed",
                    }.get(first.action, first.action)
                    self.show_notice(f"{verb} {first.tag!r} on {len(result):,} photos.")
            elif result is None:
                self.show_notice("Nothing to undo.")
            else:
                self.show_notice(result.describe())
        # Show the effect at once; the worker's TagsChanged events follow.
        self._refresh_detail()
        self._requery_timer.start(0)
        self.correction_done.emit(reply)

    # -- worker events ------------------------------------------------------------------

    def _event(self, ev: object) -> None:
        if self.handle is not None and self.sender() is self.handle.worker:
            self._event_from(self.handle, ev)
        elif isinstance(ev, JobProgress):
            self._update_background_status()

    def _update_background_status(self) -> None:
        """Say what the libraries behind the one on screen are doing, if anything."""
        busy = []
        for root, handle in self._background.items():
            p = handle.last_progress
            if p is not None and not p.finished and not handle.idle and p.total:
                busy.append(f"{root.name or root}: {p.done:,}/{p.total:,}")
        self.background_status.setText("Also tagging " + ", ".join(busy) if busy else "")
        self.background_status.setVisible(bool(busy))

    def _event_from(self, handle: WorkerHandle, ev: object) -> None:
        if isinstance(ev, JobProgress):
            self.last_progress = ev
            if not self.job.paused or ev.finished:
                self.job.set_progress(ev)
            if ev.finished:
                self._ids_stale = True
                self._requery_timer.start(0)
        elif isinstance(ev, (PhotosChanged, TagsChanged)):
            self._changed_ids.update(ev.ids)
            self._ids_stale |= isinstance(ev, PhotosChanged)
            if isinstance(ev, PhotosChanged) and ev.kind in ("updated", "moved", "removed"):
                self.loader.forget(ev.ids)
            if not self._requery_timer.isActive():
                self._requery_timer.start()
        elif isinstance(ev, (VocabularyChanged, ThresholdsChanged)):
            self._reload_tags()
            self._requery_timer.start()
        elif isinstance(ev, Notice):
            self.show_notice(ev.text, ev.level)
        elif isinstance(ev, ModelStatus):
            self._model_status(ev)

    def _model_status(self, ev: ModelStatus) -> None:
        self.model_state = ev.state
        if ev.state == "unavailable":
            self.banner.show_text(
                "The AI model could not be loaded: "
                + ev.text
                + "\n"
                + MODEL_HELP.format(model=DEFAULT_MODEL),
                "Choose the model folder\u2026",
            )
            self.job.set_idle("Model unavailable")
            self._update_empty()
            self.call("apply_settings", on_reply=self._offer_download)
        elif ev.state == "loading":
            self.banner.hide()
            self.statusBar().showMessage(ev.text or "Loading the model\u2026")
        elif ev.state == "ready":
            self.banner.hide()
            self.download_panel.model_ready()
            self.statusBar().showMessage(ev.text or "Model ready", 5000)

    def _offer_download(self, reply: Reply) -> None:
        """The model the open library runs with is missing: the panel offers to download
        it where the hub can be reached."""
        if not reply.error and self.model_state == "unavailable":
            self.download_panel.offer(str(reply.result["model"]), str(reply.result["revision"]))

    def _model_downloaded(self, folder: Path) -> None:
        self.banner.hide()
        self.statusBar().showMessage(f"Model downloaded to {folder}; loading it", 10000)
        self.reindex()

    def call(self, method: str, *args: object, on_reply=None, **kwargs: object) -> bool:
        """Ask the worker to run `session.method(*args, **kwargs)`; `on_reply(reply)`
        gets the `Reply` in the GUI thread (errors are shown when it is None). False when
        no library is open."""
        if self.handle is None:
            return False
        request = Call(method, tuple(args), dict(kwargs))
        self._calls[id(request)] = (request, on_reply)
        self.handle.submit(request)
        return True

    def _replied(self, reply: object) -> None:
        if self.handle is None or self.sender() is not self.handle.worker:
            return
        assert isinstance(reply, Reply)
        if isinstance(reply.request, Call):
            _, on_reply = self._calls.pop(id(reply.request), (None, None))
            if on_reply is not None:
                on_reply(reply)
            elif reply.error:
                self._show_error(reply)
            return
        if isinstance(reply.request, (Search, Similar)):
            self._search_reply(reply)
        else:
            self._correction_reply(reply)

    def _failed(self, kind: str, message: str, trace: str) -> None:
        if kind == "offline":
            self.banner.show_text(
                f"The folder is offline: {message}\nPhotos and tags stay as they are; "
                "connect it and choose Tag again (F5).",
                "",
            )
            self.job.set_idle("Offline")
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
        self._worker_idle = idle
        if idle and not self.job.paused:
            if handle.worker.flags.cancelled.is_set():
                self.job.set_idle("Stopped: Tag again (F5) goes on")
            else:
                self.job.set_idle("Watching the folder" if self._watching() else "Ready")

    def _show_error(self, reply: Reply) -> None:
        if reply.error_kind == "model":
            self._model_status(ModelStatus("unavailable", reply.error))
        self.show_notice(reply.error, "error" if reply.error_kind == "bug" else "warning")

    def show_notice(self, text: str, level: str = "info") -> None:
        self.last_notice = text
        timeout = 0 if level == "error" else 15000
        self.statusBar().showMessage(text, timeout)
        self.notice_shown.emit(text)

    def _reload_tags(self) -> None:
        if self.reads is not None:
            self.reads.read("tags", lambda q: q.tags(), self._tags_ready)

    def _tags_ready(self, tags: object) -> None:
        self.tags_panel.set_tags(tags)  # type: ignore[arg-type]
        self.detail.set_vocabulary([t.name for t in tags])  # type: ignore[attr-defined]

    def _thumbs_changed(self) -> None:
        pass

    # -- job control --------------------------------------------------------------------

    def pause(self) -> None:
        if self.handle is not None:
            self.handle.pause()
        self.job.set_paused(True)
        self.act_pause.setText("&Resume tagging")

    def resume(self) -> None:
        if self.handle is not None:
            self.handle.resume()
        self.job.set_paused(False)
        self.act_pause.setText("&Pause tagging")
        if self.last_progress is not None and not self.last_progress.finished:
            self.job.set_progress(self.last_progress)

    def toggle_pause(self) -> None:
        if self.job.paused:
            self.resume()
        else:
            self.pause()

    def cancel_job(self) -> None:
        if self.handle is not None:
            self.handle.cancel_job()
        if self.job.paused:
            self.resume()
        self.show_notice("Stopped. Photos already tagged are kept; Tag again (F5) goes on.")

    def reindex(self) -> None:
        if self.handle is not None:
            self.handle.submit(Reindex())

    def choose_model_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose the GME model folder")
        if folder:
            self.use_model(Path(folder))

    def use_model(self, folder: Path) -> None:
        """Use this model folder from now on (remembered), reopening the library."""
        self.qsettings.setValue("model/folder", str(folder))
        self.settings = replace_section(self.settings, "model", model=str(folder))
        if self.root is not None:
            self.open_folder(self.root)

    # -- view ---------------------------------------------------------------------------

    def _zoom_changed(self, value: int) -> None:
        self.grid.set_thumb_size(value)

    def _zoom_by(self, step: int) -> None:
        self.zoom.setValue(self.zoom.value() + step)

    def open_review(self) -> None:
        """Review mode over the window: yes / no on the suggestions nearest their
        thresholds (`self.review` while it is open)."""
        from albumtagger.app.review import ReviewDialog

        if self.handle is None or self.queries is None:
            self.show_notice("Open a photo folder first.")
            return
        current = getattr(self, "review", None)
        if current is not None and current.isVisible():
            current.raise_()
            return
        if current is not None:
            current.deleteLater()
        self.review = ReviewDialog(self)
        self.review.finished.connect(self._back_to_grid)
        self.review.start()

    def _back_to_grid(self, *_: object) -> None:
        """After review mode the keys go to the grid again (menus' shortcuts included)."""
        self.activateWindow()
        self.grid.setFocus()

    def open_duplicates(self) -> None:
        """The near-duplicates view beside the window (`self.duplicates`)."""
        from albumtagger.app.duplicates import DuplicatesDialog

        if self.handle is None or self.queries is None:
            self.show_notice("Open a photo folder first.")
            return
        current = getattr(self, "duplicates", None)
        if current is not None and current.isVisible():
            current.raise_()
            current.activateWindow()
            return
        if current is not None:
            current.deleteLater()
        self.duplicates = DuplicatesDialog(self)
        self.duplicates.start()

    def inspect_tag(self, name: str | None = None):  # -> TagInspector | None
        """The tag inspector of `name` (default: the tag chosen in the tags list), one
        dialog per tag beside the window."""
        from albumtagger.app.inspector import open_inspector

        return open_inspector(self, name)

    def show_vocabulary(self):  # -> VocabularyEditor | None
        """Edit > Vocabulary: add, rename and remove tags, prompts, import, defaults."""
        from albumtagger.app.vocabulary_editor import open_vocabulary_editor

        return open_vocabulary_editor(self)

    def toggle_full_screen(self) -> None:
        if self.isFullScreen():
            self.showNormal()
        else:
            self.showFullScreen()

    def _focus_search(self) -> None:
        self.search.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.search.selectAll()

    def _focus_add(self) -> None:
        self.detail.add_field.setFocus(Qt.FocusReason.ShortcutFocusReason)

    def eventFilter(self, obj, event) -> bool:
        from PySide6.QtCore import QEvent

        if (
            obj is self.search
            and event.type() == QEvent.Type.KeyPress
            and event.key() == Qt.Key.Key_Escape
        ):
            self.clear_search()
            self.grid.setFocus()
            return True
        return super().eventFilter(obj, event)

    def show_keys(self):  # -> AboutDialog
        """The keyboard map (Help > Keyboard shortcuts)."""
        from albumtagger.app.about import open_about

        return open_about(self, keys=True)

    def show_about(self):  # -> AboutDialog
        from albumtagger.app.about import open_about

        return open_about(self)

    # -- settings -------------------------------------------------------------------------

    def show_settings(self):  # -> SettingsDialog
        """Edit > Settings: OK saves them and calls `apply_settings`."""
        from albumtagger.app.settings_dialog import open_settings

        return open_settings(self)

    def _watching(self) -> bool:
        return self._watch and self.settings.watch.enabled

    def apply_settings(self, settings: Settings, *, reopen: bool = False) -> None:
        """Run with `settings` from now on. Thresholds, watching and XMP reach the open
        libraries at once (`settings_applied` follows); the model's settings apply when a
        library is next opened, at once with `reopen`."""
        model_changed = settings.model != self.settings.model
        self.settings = settings
        if reopen and self.root is not None:
            self.show_notice("Settings saved; the library is reopened with them.")
            self.open_folder(self.root)
            return
        watching = self._watching()
        for handle in (*self._background.values(), self.handle):
            if handle is not None:
                handle.worker.set_watching(watching)
        for handle in self._background.values():
            handle.submit(Call("apply_settings", (settings,)))
        self._settings_note = (
            " The model settings apply when the library is next opened." if model_changed else ""
        )
        if not self.call("apply_settings", settings, on_reply=self._settings_applied):
            self.show_notice("Settings saved." + self._settings_note)
            return
        if self._worker_idle and not self.job.paused and self.handle is not None:
            self._idle_from(self.handle, True)
        if watching and self.handle is not None:
            self._open_background()

    def _settings_applied(self, reply: Reply) -> None:
        if reply.error:
            self._show_error(reply)
            return
        changed = int(reply.result.get("redecided", 0))
        decided = f" Tags decided again: {changed:,} suggestions changed." if changed else ""
        self.show_notice("Settings saved." + decided + self._settings_note)
        self.settings_applied.emit(reply.result)

    # -- drag and drop --------------------------------------------------------------------

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        urls = event.mimeData().urls()
        if urls and urls[0].isLocalFile() and Path(urls[0].toLocalFile()).is_dir():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        urls = event.mimeData().urls()
        if urls and urls[0].isLocalFile():
            path = Path(urls[0].toLocalFile())
            if path.is_dir():
                event.acceptProposedAction()
                self.open_folder(path)

    # -- closing ------------------------------------------------------------------------

    def closeEvent(self, event: QCloseEvent) -> None:
        if not self._closing:
            self._closing = True
            self._save_state()
            t0 = time.perf_counter()
            handles = [h for h in (self.handle, *self._background.values()) if h is not None]
            self.handle = None
            self._background.clear()
            self._close_library()
            self._stop_handles(handles)
            self.loader.shutdown()
            self.detail.shutdown()
            self.download_panel.shutdown()
            log.debug("closed in %.2f s", time.perf_counter() - t0)
        event.accept()
