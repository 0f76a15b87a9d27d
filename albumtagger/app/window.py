"""The main window: library selector, search, filter chips, tags panel, photo grid,
detail panel and job status, over one library at a time.

Layout and wiring: `Libraries` (the libraries, their workers, calls and replies) and
`Browsing` (the filter, the search, the selection) hold the state; the window shows what
their signals say and turns what the person does into their calls.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QEvent, QObject, QSettings, Qt
from PySide6.QtGui import (
    QAction,
    QActionGroup,
    QCloseEvent,
    QDragEnterEvent,
    QDropEvent,
    QKeyEvent,
    QKeySequence,
)
from PySide6.QtWidgets import (
    QApplication,
    QDialog,
    QDockWidget,
    QFileDialog,
    QMainWindow,
    QMenu,
    QMessageBox,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from albumtagger.app.activity import ActivityPanel
from albumtagger.app.appearance import Appearance
from albumtagger.app.browsing import Browsing, FilterState
from albumtagger.app.detail import DetailPanel
from albumtagger.app.download_panel import ModelDownloadPanel
from albumtagger.app.folder_tree import FolderTree
from albumtagger.app.grid import DEFAULT_SIZE, PhotoGrid
from albumtagger.app.libraries import OFFLINE_STATUS, Libraries
from albumtagger.app.pages import (
    BackgroundStatus,
    Banner,
    EmptyGrid,
    FilterBar,
    JobStatus,
    LibraryBar,
    MessagePage,
    WelcomePage,
)
from albumtagger.app.panes import PaneSplitter
from albumtagger.app.photo_menu import PhotoMenu, add_tag_by_hand, new_tag_from_photos
from albumtagger.app.photo_model import PhotoListModel
from albumtagger.app.search_cutoff import SearchCutoffBar
from albumtagger.app.tags_panel import NAME_ROLE, TagsPanel
from albumtagger.app.thumbnails import ThumbnailLoader
from albumtagger.app.viewer import PhotoViewer
from albumtagger.app.worker import SessionFactory
from albumtagger.config import Settings
from albumtagger.errors import UserError
from albumtagger.events import JobProgress, ModelStatus, PhotosChanged
from albumtagger.library.db.queries import PhotoFilter
from albumtagger.library.thumbnails import ThumbnailCache
from albumtagger.model.files import set_downloads_allowed

if TYPE_CHECKING:
    from albumtagger.app.about import AboutDialog
    from albumtagger.app.duplicates import DuplicatesDialog
    from albumtagger.app.inspector import TagInspector
    from albumtagger.app.review import ReviewDialog
    from albumtagger.app.settings_dialog import SettingsDialog
    from albumtagger.app.vocabulary_editor import VocabularyEditor

log = logging.getLogger(__name__)

PAGE_WELCOME, PAGE_LIBRARY, PAGE_MESSAGE, PAGE_VIEWER = 0, 1, 2, 3


class MainWindow(QMainWindow):
    """`qsettings`: where window state and recent folders are kept (tests pass their own).
    `session_factory`, `auto_index` and `watch` are for tests and benchmarks."""

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
        self.qsettings = qsettings if qsettings is not None else QSettings()
        self.libraries = Libraries(
            settings,
            self.qsettings,
            session_factory=session_factory,
            auto_index=auto_index,
            watch=watch,
            parent=self,
        )
        self.browsing = Browsing(self.libraries, self)
        self.review: ReviewDialog | None = None
        self.duplicates: DuplicatesDialog | None = None
        self.vocabulary: VocabularyEditor | None = None
        self.model_folder_box: QMessageBox | None = None
        self._message_kind = ""
        self._closing = False
        self._filters_root: Path | None = None
        """The library whose filters are on screen (saved as they change)."""
        self._pending_tags: tuple[list[int], list[int]] | None = None
        """Tag filters to restore once the library's tags are listed."""
        self._shown_filter: object = None
        """The filter and search whose photos the grid shows."""
        self.setWindowTitle("albumtagger")
        self.setAcceptDrops(True)
        self.resize(1280, 820)

        self.loader = ThumbnailLoader(
            None, thumbnail_cache, size=int(self.qsettings.value("view/thumb_size", DEFAULT_SIZE))
        )
        self.model = PhotoListModel(None, self)
        self._build()
        self._build_menus()
        self._connect()
        self._restore_state()
        self._sync_filter()
        self.stack.setCurrentIndex(PAGE_WELCOME)

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
        self.bar = LibraryBar(self.loader.size)
        self.library_box, self.search = self.bar.library_box, self.bar.search
        self.zoom, self.sort = self.bar.zoom, self.bar.sort
        self.library_box.activated.connect(self._library_chosen)
        self.search.returnPressed.connect(self.run_search)
        self.search.textChanged.connect(self._search_text_changed)
        self.search.installEventFilter(self)
        self.zoom.valueChanged.connect(self._zoom_changed)
        self.sort.currentIndexChanged.connect(self._filter_changed)

        self.filter_bar = FilterBar()
        self.filter_bar.remove.connect(self._remove_filter)
        self.filter_bar.clear.connect(self.clear_filters)
        self.cutoff_bar = SearchCutoffBar(self.browsing)
        self.banner = Banner()
        self.banner.action.connect(self.choose_model_folder)
        self.offline_banner = Banner()
        self.offline_banner.text.setAccessibleName("Folder offline")
        self.location_banner = Banner()
        self.location_banner.text.setAccessibleName("Where the library is kept")
        self.download_panel = ModelDownloadPanel()
        self.download_panel.downloaded.connect(self._model_downloaded)
        self.download_panel.state_changed.connect(self._show_model_state)
        self._model_closed: tuple[str, str] | None = None
        """The model's state when the person closed its banner (it stays closed)."""
        self.banner.closed.connect(self._model_banner_closed)

        self.tags_panel = TagsPanel()
        self.tags_panel.changed.connect(self._filter_changed)
        self.tags_panel.inspect_requested.connect(self.inspect_tag)
        self.grid = PhotoGrid(self.model, self.loader)
        self.grid.opened.connect(self.view_photo)
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
        self.detail.correct.connect(self._correct_by_hand)
        self.detail.more_like_this.connect(self.browsing.more_like_this)
        self.detail.shown.connect(self.browsing.set_shown)
        self.detail.answered_all.connect(self._answered_all)
        self.detail.set_client(self.libraries.client)

        self.splitter = PaneSplitter()
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
        box.addWidget(self.bar)
        box.addWidget(self.filter_bar)
        box.addWidget(self.cutoff_bar)
        box.addWidget(self.banner)
        box.addWidget(self.offline_banner)
        box.addWidget(self.location_banner)
        box.addWidget(self.download_panel)
        box.addWidget(self.splitter, 1)

        self.stack.addWidget(self.welcome)
        self.stack.addWidget(library)
        self.stack.addWidget(self.message_page)
        self.viewer = PhotoViewer(self.libraries, self.model)
        self.viewer.correct.connect(self._correct_by_hand)
        self.viewer.shown.connect(self._viewer_moved)
        self.viewer.closed.connect(self.close_viewer)
        self.stack.addWidget(self.viewer)

        self.folder_tree = FolderTree()
        self.folder_tree.chosen.connect(self.show_folder)
        self.folders_dock = QDockWidget("Folders", self)
        self.folders_dock.setObjectName("folders")
        self.folders_dock.setWidget(self.folder_tree)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, self.folders_dock)
        self.folders_dock.hide()
        self.folders_dock.visibilityChanged.connect(self.browsing.set_want_folders)

        self.job = JobStatus()
        self.job.pause.connect(self.libraries.pause)
        self.job.resume.connect(self.libraries.resume)
        self.job.cancel.connect(self.libraries.cancel_job)
        self.background_status = BackgroundStatus()
        self.statusBar().addWidget(self.background_status, 1)  # the room the job leaves
        self.statusBar().addPermanentWidget(self.job)
        self.activity = ActivityPanel(self.libraries, self)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.activity)
        self.activity.hide()

    def _action(
        self, menu: QMenu, text: str, keys=None, slot=None, tip: str = "", fallback: str = ""
    ) -> QAction:
        """An action of the window, in `menu`: `keys` (a standard key or a sequence; where
        the platform has none for a standard key, `fallback`) run `slot`."""
        action = QAction(text, self)
        if keys is not None:
            action.setShortcut(QKeySequence(keys))
        if fallback and action.shortcut().isEmpty():
            action.setShortcut(QKeySequence(fallback))
        if tip:
            action.setToolTip(tip)
            action.setStatusTip(tip)
        if slot is not None:
            action.triggered.connect(slot)
        self.addAction(action)
        menu.addAction(action)
        return action

    def _build_menus(self) -> None:
        bar, a = self.menuBar(), self._action
        K = QKeySequence.StandardKey
        m = bar.addMenu("&File")
        self.act_open = a(m, "&Open folder\u2026", K.Open, self.choose_folder)
        self.recent_menu = m.addMenu("Open &recent")
        m.addSeparator()
        self.act_pause = a(m, "&Pause tagging", "Ctrl+P", self.libraries.toggle_pause)
        self.act_cancel = a(m, "&Cancel tagging", None, self.libraries.cancel_job)
        self.act_reindex = a(
            m, "&Tag again", "F5", self.libraries.reindex, "Scan the folder and tag what is new"
        )
        self.act_model = a(m, "Choose the &model folder\u2026", None, self.choose_model_folder)
        m.addSeparator()
        self.act_quit = a(m, "&Quit", K.Quit, self.close)

        m = bar.addMenu("&Edit")
        self.act_undo = a(m, "&Undo correction", K.Undo, self.libraries.undo)
        self.act_redo = a(
            m,
            "Re&do correction",
            "Ctrl+Shift+Z",
            self.libraries.redo,
            "Put back the correction undone last",
        )
        m.addSeparator()
        self.act_accept = a(
            m,
            "&Accept tag",
            "A",
            lambda: self._tags_on_screen().act_on_current("accept"),
            "Accept the framed tag, then frame the next suggestion",
        )
        self.act_reject = a(
            m,
            "&Reject tag",
            "R",
            lambda: self._tags_on_screen().act_on_current("reject"),
            "Reject the framed tag, then frame the next suggestion",
        )
        self.act_remove = a(
            m,
            "Re&move tag",
            K.Delete,
            lambda: self._tags_on_screen().act_on_current("remove"),
            "Remove the framed tag, then frame the next suggestion",
        )
        self.act_add = a(m, "A&dd tag\u2026", "Ctrl+T", self._focus_add, "Add a tag")
        self.act_learn = a(
            m,
            "&New tag from selected photos\u2026",
            None,
            lambda: new_tag_from_photos(self.libraries, self.grid.selected_ids(), self),
            "A tag learned from how the selected photos look, not from its name",
        )
        m.addSeparator()
        self.act_find = a(m, "&Search\u2026", K.Find, self._focus_search)
        self.act_similar = a(m, "More &like this", "Ctrl+L", self._similar_current)
        self.act_select_all = a(m, "Select &all", K.SelectAll, self.grid.selectAll)
        self.act_clear = a(m, "&Clear filters", "Ctrl+Shift+C", self.clear_filters)
        m.addSeparator()
        self.act_vocabulary = a(
            m,
            "&Vocabulary\u2026",
            "Ctrl+Shift+V",
            self.show_vocabulary,
            "Add, rename and remove tags, edit their prompts, import a list",
        )
        self.act_settings = a(
            m, "&Settings\u2026", K.Preferences, self.show_settings, fallback="Ctrl+,"
        )
        self.act_settings.setMenuRole(QAction.MenuRole.PreferencesRole)

        m = bar.addMenu("&View")
        self.act_zoom_in = a(m, "Zoom &in", K.ZoomIn, lambda: self._zoom_by(24))
        self.act_zoom_out = a(m, "Zoom &out", K.ZoomOut, lambda: self._zoom_by(-24))
        self.act_detail = a(m, "Show &details", "Ctrl+Return", self._open_current)
        self.act_full = a(m, "&Full screen", K.FullScreen, self.toggle_full_screen, fallback="F11")
        colours = m.addMenu("&Colours")
        group = QActionGroup(self)
        self.scheme_actions: dict[str, QAction] = {}
        for scheme, text in (("system", "As the &system"), ("light", "&Light"), ("dark", "&Dark")):
            action = QAction(text, self, checkable=True)
            action.triggered.connect(lambda _=False, s=scheme: self.set_color_scheme(s))
            group.addAction(action)
            colours.addAction(action)
            self.scheme_actions[scheme] = action
        m.addSeparator()
        self.act_review = a(
            m,
            "&Review suggestions\u2026",
            "Ctrl+R",
            self.open_review,
            "Answer yes or no to the suggestions nearest their tag's threshold",
        )
        self.act_duplicates = a(
            m,
            "Near &duplicates\u2026",
            "Ctrl+Shift+D",
            self.open_duplicates,
            "Groups of photos that are nearly the same: bursts, copies, edits",
        )
        self.act_inspect = a(
            m,
            "&Inspect tag\u2026",
            "Ctrl+I",
            lambda: self.inspect_tag(None),
            "The threshold, score histogram and nearest photos of the tag chosen in the tags list",
        )
        m.addSeparator()
        self.act_folders = self.folders_dock.toggleViewAction()
        self.act_folders.setText("Fo&lders")
        self.act_folders.setShortcut(QKeySequence("Ctrl+Shift+F"))
        self.act_folders.setStatusTip("The library's folders: click one to show only its photos")
        m.addAction(self.act_folders)
        self.act_activity = self.activity.toggleViewAction()
        self.act_activity.setShortcut(QKeySequence("Ctrl+Shift+A"))
        self.act_activity.setText("&Activity")
        self.act_activity.setStatusTip("What changed lately: corrections and re-decisions")
        m.addAction(self.act_activity)

        m = bar.addMenu("&Help")
        self.act_keys = a(m, "&Keyboard shortcuts", K.HelpContents, self.show_keys, fallback="F1")
        self.act_about = a(m, "&About albumtagger", None, self.show_about)
        self.act_about.setMenuRole(QAction.MenuRole.AboutRole)
        self._update_recent_menu()

    def _connect(self) -> None:
        """Show what the libraries and the grid's state say."""
        lib, browsing = self.libraries, self.browsing
        lib.opening.connect(self._opening)
        lib.attached.connect(self._attached)
        lib.open_failed.connect(self._open_failed)
        lib.library_closed.connect(self._library_closed)
        lib.recent_changed.connect(self._update_recent_menu)
        lib.event.connect(self._event)
        lib.model_status.connect(self._model_status)
        lib.download_offered.connect(self.download_panel.offer)
        lib.offline.connect(self._offline)
        lib.folder_back.connect(self.offline_banner.hide)
        lib.job_idle.connect(self.job.set_idle)
        lib.paused_changed.connect(self._paused_changed)
        lib.background_status.connect(self.background_status.set_text)
        lib.notice_shown.connect(self._show_notice)
        lib.correction_done.connect(self._corrected)
        browsing.ids_ready.connect(self._show_ids)
        browsing.counts_ready.connect(self._counts_ready)
        browsing.folders_ready.connect(self.folder_tree.set_counts)
        browsing.tags_ready.connect(self._tags_ready)
        browsing.photos_changed.connect(self._photos_changed)
        browsing.query_changed.connect(self._query_changed)
        browsing.status.connect(self._status)
        browsing.search_done.connect(self._update_empty)

    # -- state --------------------------------------------------------------------------

    def _restore_state(self) -> None:
        self.set_color_scheme(str(self.qsettings.value("view/scheme", "system")))
        geometry = self.qsettings.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        splitter = self.qsettings.value("window/splitter")
        if splitter is not None:
            self.splitter.restoreState(splitter)
        sort = self.qsettings.value("view/sort")
        if sort is not None:
            self.bar.set_sort_index(int(sort))
        self.folders_dock.setVisible(self.qsettings.value("view/folders") in (True, "true"))

    def _save_state(self) -> None:
        self.qsettings.setValue("window/geometry", self.saveGeometry())
        self.qsettings.setValue("window/splitter", self.splitter.saveState())
        self.qsettings.setValue("view/thumb_size", self.loader.size)
        self.qsettings.setValue("view/sort", self.sort.currentIndex())
        self.qsettings.setValue("view/folders", not self.folders_dock.isHidden())
        self._save_filters()
        self.qsettings.sync()

    def _update_recent_menu(self) -> None:
        folders = self.libraries.recent_folders()
        self.recent_menu.clear()
        for folder in folders:
            action = self.recent_menu.addAction(folder.replace("&", "&&"))
            action.triggered.connect(lambda _=False, f=folder: self.open_folder(Path(f)))
        self.recent_menu.setEnabled(bool(folders))
        self.welcome.set_recent(folders)
        self.bar.set_folders(folders, self.libraries.root)

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
        elif Path(folder) != self.libraries.root:
            self.open_folder(Path(folder))

    def open_folder(self, folder: Path) -> None:
        """Show this folder's library (see `Libraries.open_folder`)."""
        self.libraries.open_folder(folder)

    def open_from_launch(self, folder: Path | None) -> None:
        """Another launch of the app asked for `folder` (None: only the window): the
        window comes to the front and shows it (the library on screen is not opened again)."""
        self.setWindowState(self.windowState() & ~Qt.WindowState.WindowMinimized)
        self.show()
        self.raise_()
        self.activateWindow()
        if folder is None:
            return
        root, shown = Path(folder).expanduser().absolute(), self.libraries.root
        if shown is None or root.resolve() != shown.resolve() or self._message_kind:
            log.info("Opening %s for another launch", root)
            self.open_folder(root)

    def _opening(self, root: Path) -> None:
        self.setWindowTitle(f"{root.name} \u2013 albumtagger")
        self.stack.setCurrentIndex(PAGE_MESSAGE)
        self.message_page.show_message("Opening\u2026", str(root))
        self._message_kind = ""
        self.banner.hide()
        self._model_closed = None
        self.offline_banner.hide()
        self.location_banner.hide()

    def _attached(self, root: Path) -> None:
        self.model.set_reads(self.libraries.reads)
        self.loader.set_root(root)
        self.stack.setCurrentIndex(PAGE_LIBRARY)
        if self.libraries.library_in_folder() is False:
            self._say_library_elsewhere(root)
        self._restore_filters(root)
        self._update_chips()
        self.grid.setFocus()

    def _say_library_elsewhere(self, root: Path) -> None:
        """The photo folder is read-only: its library is kept in the data folder."""
        queries = self.libraries.queries
        where = queries.db_path.parent if queries is not None else "the data folder"
        self.location_banner.show_text(
            f"{root} is read-only, so its library (tags, corrections) is kept in {where}, "
            "not inside the photo folder. Everything works as usual; copying the folder "
            "elsewhere does not take its tags along."
        )

    def _open_failed(self, kind: str, message: str) -> None:
        self.stack.setCurrentIndex(PAGE_MESSAGE)
        self._message_kind = kind
        self.message_page.show_open_failure(kind, message)

    def _message_action(self) -> None:
        if self._message_kind in ("offline", "busy") and self.libraries.root is not None:
            self.libraries.reopen()
        else:
            self.choose_folder()

    def _library_closed(self) -> None:
        # (its filters were saved as they changed; the browsing state has let them go)
        self._filters_root, self._pending_tags, self._shown_filter = None, None, None
        self.model.set_reads(None)
        self.loader.set_root(None)
        self._set_search_text("")
        self.tags_panel.set_tags([])
        self.folder_tree.set_current("")
        self.folder_tree.set_counts({}, {})
        self._sync_filter()
        self.detail.show_nothing()
        self.viewer.clear()
        self.job.set_paused(False)
        self.job.set_idle("")

    # -- the filter and the grid --------------------------------------------------------

    def current_filter(self) -> PhotoFilter:
        """The filter of the tags panel, the folder tree and the sort, as the grid shows
        it (photos whose file is gone only under the Missing quick filter)."""
        f = self.tags_panel.photo_filter(*self.bar.sort_order())
        return replace(f, folder=self.browsing.folder, hide_missing=True)

    def _sync_filter(self, *, apply: bool = False) -> None:
        """Give the browsing state the filter of the tags panel, the folder and the sort."""
        f, filtering = self.current_filter(), self.tags_panel.is_filtering()
        self.browsing.set_filter(f, filtering, apply=apply)

    def _filter_changed(self, *_: object) -> None:
        """Show what the tags panel and the sort ask for (and run the search again)."""
        self._sync_filter(apply=True)
        self._update_chips()

    def _show_ids(self, ids: np.ndarray, scores: np.ndarray | None) -> None:
        selected = self.grid.selected_ids()
        current = self.grid.current_id()
        shown = (self.browsing.filter, self.browsing.query)
        filter_changed, self._shown_filter = shown != self._shown_filter, shown
        self.model.set_ids(ids, scores)
        self.grid.update_visible()
        self.grid.restore_selection(selected, current)
        if self.detail.photo_ids and self.model.row_of(self.detail.photo_ids[0]) < 0:
            self._selection_changed()  # the photo shown left the grid
        self._update_empty()
        self.filter_bar.set_count(len(ids), self.browsing.total)
        if scores is not None:
            self.grid.scrollToTop()  # a search's best match first
        elif filter_changed:
            self._scroll_to_selection()

    def _scroll_to_selection(self) -> None:
        """After a filter change: the photo selected in view where it is still shown,
        else the top of the grid."""
        index = self.grid.currentIndex()
        if not index.isValid() or not self.grid.selectionModel().isSelected(index):
            selected = self.grid.selectionModel().selectedIndexes()
            index = min(selected, key=lambda i: i.row()) if selected else index
        if index.isValid():
            self.grid.scrollTo(index)
        else:
            self.grid.scrollToTop()

    def _counts_ready(self, tags: dict[int, int], quick: object) -> None:
        self.tags_panel.set_counts(tags, quick)  # type: ignore[arg-type]
        self.filter_bar.set_count(self.model.rowCount(), self.browsing.total)
        self._update_empty()

    def _tags_ready(self, tags: list) -> None:
        self.tags_panel.set_tags(tags)
        self.detail.set_vocabulary([t.name for t in tags])
        if self._pending_tags is not None:
            self._restore_tags(tags)
            return
        self._sync_filter()  # the tags panel forgets the states of tags that are gone

    def _photos_changed(self, changed: set[int]) -> None:
        self.model.forget(changed)
        self.grid.update_visible()
        self._refresh_detail(changed)
        self.viewer.refresh(changed)

    def _update_empty(self, *_: object) -> None:
        empty = self.model.rowCount() == 0
        if empty:
            self.empty.show_text(*self.browsing.empty_text())
        self.grid_stack.setCurrentIndex(1 if empty else 0)

    def _update_chips(self) -> None:
        chips = self.tags_panel.active()
        if self.browsing.folder:
            chips.insert(0, ("folder", self.browsing.folder, self.browsing.folder))
        query = self.browsing.query
        if query is not None:
            if query[0] == "text":
                chips.insert(0, ("search", f"\u201c{query[1]}\u201d", "search"))
            else:
                chips.insert(0, ("search", f"like {query[2]}", "search"))
        self.filter_bar.set_chips(chips)
        self._save_filters()

    def show_folder(self, folder: str) -> None:
        """Show only the photos in `folder` and below ("" every folder)."""
        self.browsing.folder = folder
        self.folder_tree.set_current(folder)
        self._filter_changed()

    def _remove_filter(self, kind: str, key: object) -> None:
        if kind == "search":
            self.clear_search()
        elif kind == "folder":
            self.show_folder("")
        elif kind == "quick":
            self.tags_panel.set_quick(str(key), False)
        else:
            self.tags_panel.set_tag_state(int(key), None)  # type: ignore[arg-type]

    def clear_filters(self) -> None:
        self.browsing.drop_query()
        self.browsing.folder = ""
        self.folder_tree.set_current("")
        self.tags_panel.clear()  # emits changed: the filter's photos are shown

    # -- filters kept per library -------------------------------------------------------

    def filter_state(self) -> FilterState:
        """The filters on screen, as they are kept for the library."""
        states = self.tags_panel.model.states()
        query = self.browsing.query
        return FilterState(
            include=sorted(t for t, s in states.items() if s == "include"),
            exclude=sorted(t for t, s in states.items() if s == "exclude"),
            match_any=self.tags_panel.match_any(),
            quick=[k for k, box in self.tags_panel.quick.items() if box.isChecked()],
            folder=self.browsing.folder,
            search=query[1] if query is not None and query[0] == "text" else "",
        )

    def _save_filters(self) -> None:
        """Keep the filters of the library on screen (not while they are being restored)."""
        if self._filters_root is not None and self._pending_tags is None:
            self.browsing.save_filters(self._filters_root, self.filter_state())

    def _restore_filters(self, root: Path) -> None:
        """The filters `root` was left with: all/any, quick filters, the folder and the
        search now (the library's first reading shows them); its tags once listed."""
        state = self.browsing.saved_filters(root)
        panel = self.tags_panel
        panel.blockSignals(True)  # one reading of the grid, not one per box
        try:
            panel.clear()
            panel.set_match_any(state.match_any)
            for key in state.quick:
                if key in panel.quick:
                    panel.set_quick(key, True)
        finally:
            panel.blockSignals(False)
        self.browsing.folder = state.folder
        self.folder_tree.set_current(state.folder)
        self._set_search_text(state.search)
        self.browsing.restore_search(state.search)
        self._sync_filter()
        self._filters_root = root
        self._pending_tags = (
            (state.include, state.exclude) if state.include or state.exclude else None
        )

    def _restore_tags(self, tags: list) -> None:
        """The tag filters kept for the library, of the tags it still has."""
        pending, self._pending_tags = self._pending_tags, None
        if pending is None:
            return
        known = {t.id for t in tags}
        panel = self.tags_panel
        panel.blockSignals(True)
        try:
            for state, ids in zip(("include", "exclude"), pending, strict=True):
                for tag_id in ids:
                    if tag_id in known:
                        panel.set_tag_state(tag_id, state)
        finally:
            panel.blockSignals(False)
        self._filter_changed()

    def reveal(self, photo_ids: Sequence[int]) -> None:
        """Select these photos in the grid (the first one current, scrolled to). When
        the grid does not show them all, the filters and search are cleared first."""
        ids = [int(i) for i in photo_ids]
        if not ids:
            return
        if self.grid.shows(ids):
            self.grid.select_photos(ids)
            return

        def shown() -> None:
            self.browsing.filter_applied.disconnect(shown)
            self.grid.select_photos(ids)

        self.browsing.filter_applied.connect(shown)
        self.clear_filters()

    # -- search -------------------------------------------------------------------------

    def _set_search_text(self, text: str) -> None:
        self.search.blockSignals(True)
        self.search.setText(text)
        self.search.blockSignals(False)

    def _search_text_changed(self, text: str) -> None:
        query = self.browsing.query
        if not text.strip() and query is not None and query[0] == "text":
            self.clear_search()

    def run_search(self) -> None:
        self.browsing.search(self.search.text())

    def clear_search(self) -> None:
        if self.browsing.query is None and not self.search.text():
            return
        self.browsing.clear_search()

    def _query_changed(self) -> None:
        query = self.browsing.query
        if query is None or query[0] != "text":
            self._set_search_text("")
        self._update_chips()

    def _status(self, text: str, timeout: int) -> None:
        if text:
            self.statusBar().showMessage(text, timeout)
        else:
            self.statusBar().clearMessage()

    # -- selection and detail -----------------------------------------------------------

    def _selection_changed(self, *_: object) -> None:
        ids = self.grid.selected_ids()
        if len(ids) > 1:
            self.detail.show_many(tuple(ids))
            self._read_shared()
            return
        pid = ids[0] if ids else self.grid.current_id()
        if pid is None:
            self.detail.show_nothing()
        elif self.detail.photo_ids != (pid,):
            self._show_detail(pid)

    def _show_detail(self, pid: int, *, reload: bool = True) -> None:
        queries = self.libraries.queries
        if queries is None:
            return
        detail = queries.photo_detail(pid)
        if detail is None:
            self.detail.show_nothing()
            return
        root = self.libraries.root
        self.detail.show_photo(detail, queries.photo_tags(pid), root, reload=reload)

    def _refresh_detail(self, changed: set[int] | None = None) -> None:
        ids = self.detail.photo_ids
        if len(ids) == 1 and (changed is None or ids[0] in changed):
            self._show_detail(ids[0], reload=False)
        elif len(ids) > 1 and (changed is None or not changed.isdisjoint(ids)):
            self._read_shared()

    def _read_shared(self) -> None:
        """The tags of the photos selected together, for the detail panel."""
        ids, reads = self.detail.photo_ids, self.libraries.reads
        if reads is not None and len(ids) > 1:
            reads.read(
                "shared_tags",
                lambda q: q.shared_tags(ids),
                lambda counts: self.detail.set_shared(ids, counts),
            )

    def _answered_all(self, pid: int) -> None:
        """Every suggestion of the photo shown is answered: on to the next photo."""
        row = self.model.row_of(pid)
        if not self.libraries.settings.corrections.advance_after_last or row < 0:
            return
        if self.detail.photo_ids == (pid,) and row + 1 < self.model.rowCount():
            self.grid.select_photos([self.model.photo_id(row + 1)])

    def _correct_by_hand(self, photo_ids: Sequence[int], name: str, action: str) -> None:
        """A correction from the detail panel or the viewer; a tag added that is new to
        the vocabulary asks first how it is to be found (`add_tag_by_hand`)."""
        if action == "add":
            add_tag_by_hand(self.libraries, photo_ids, name, self)
        else:
            self.libraries.correct(photo_ids, name, action)

    def _corrected(self, _reply: object) -> None:
        self._refresh_detail()  # at once; the worker's TagsChanged events follow
        self.viewer.refresh()

    def _open_photo(self, pid: int) -> None:
        sizes = self.splitter.wanted()
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
            self.browsing.more_like_this(pid)

    def photo_menu(self, pos) -> PhotoMenu | None:
        """The context menu of the grid at `pos`: for the selection, or for the photo
        there when it is not selected."""
        index = self.grid.indexAt(pos)
        if not index.isValid():
            return None
        pid = self.model.photo_id(index.row())
        selected = self.grid.selected_ids()
        ids = sorted(selected, key=self.model.row_of) if pid in selected else [pid]
        return PhotoMenu(self.libraries, self.browsing, ids, self)

    def _grid_menu(self, pos) -> None:
        menu = self.photo_menu(pos)
        if menu is not None:
            menu.exec(self.grid.viewport().mapToGlobal(pos))
            menu.deleteLater()

    # -- the full-size viewer -----------------------------------------------------------

    def view_photo(self, pid: int) -> None:
        """Show this photo full size over the window (Enter or a double click)."""
        self.stack.setCurrentIndex(PAGE_VIEWER)
        self.viewer.open(pid)

    def close_viewer(self, pid: int | None = None) -> None:
        """Back to the grid, with the photo last viewed selected and scrolled to."""
        if self.stack.currentIndex() != PAGE_VIEWER:
            return
        self.stack.setCurrentIndex(PAGE_LIBRARY)
        pid = pid if pid is not None else self.viewer.photo_id
        if pid is not None:
            self.grid.select_photos([pid])
        self.grid.setFocus()

    def _viewer_moved(self, pid: int) -> None:
        """The grid follows the viewer (the detail panel and Edit's tag actions too)."""
        if self.grid.current_id() != pid and self.grid.shows([pid]):
            self.grid.select_photos([pid])

    def _tags_on_screen(self) -> DetailPanel | PhotoViewer:
        """Where A / R / Delete act: the viewer while it shows, else the detail panel."""
        return self.viewer if self.stack.currentIndex() == PAGE_VIEWER else self.detail

    # -- what the libraries say ---------------------------------------------------------

    def _event(self, ev: object) -> None:
        if isinstance(ev, JobProgress):
            if not self.libraries.paused or ev.finished:
                self.job.set_progress(ev)
        elif isinstance(ev, PhotosChanged) and ev.kind in ("updated", "moved", "removed"):
            self.loader.forget(ev.ids)

    def _model_status(self, ev: ModelStatus) -> None:
        if ev.state == "ready":
            self.download_panel.model_ready()
        self._show_model_state()
        if ev.state == "unavailable":
            self._update_empty()

    def _show_model_state(self, *_: object) -> None:
        """The model's state, said in one place: the model banner while it loads or when it
        could not be loaded (why, and what to do), the download panel while that offers or
        runs a download; nothing once it is ready. A banner closed by the person stays
        closed until the state changes."""
        lib = self.libraries
        if (
            lib.model_state not in ("loading", "unavailable")
            or not self.download_panel.isHidden()
            or self._model_closed == (lib.model_state, lib.model_text)
        ):
            self.banner.hide()
        elif lib.model_state == "loading":
            self.banner.show_model_loading(lib.model_text)
        else:
            self.banner.show_model_unavailable(lib.model_text)

    def _model_banner_closed(self) -> None:
        self._model_closed = (self.libraries.model_state, self.libraries.model_text)

    def _model_downloaded(self, folder: Path) -> None:
        self.libraries.reindex()  # the download panel says it is loading

    def _offline(self, message: str) -> None:
        self.offline_banner.show_text(message)
        self.job.set_idle(OFFLINE_STATUS)

    def _paused_changed(self, paused: bool) -> None:
        self.job.set_paused(paused)
        self.act_pause.setText("&Resume tagging" if paused else "&Pause tagging")
        progress = self.libraries.last_progress
        if not paused and progress is not None and not progress.finished:
            self.job.set_progress(progress)

    def _show_notice(self, text: str, level: str) -> None:
        self.statusBar().showMessage(text, 0 if level == "error" else 15000)

    def choose_model_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose the GME model folder")
        if folder:
            self.use_model_folder(Path(folder))

    def use_model_folder(self, folder: Path) -> bool:
        """Use `folder` as the model from now on when it holds a GME checkpoint; else a
        message (`model_folder_box`) says what is wrong with it, and nothing changes."""
        from albumtagger.model.loading import check_model_folder

        try:
            check_model_folder(folder)
        except UserError as exc:
            if self.model_folder_box is not None:
                self.model_folder_box.deleteLater()
            box = self.model_folder_box = QMessageBox(self)
            box.setIcon(QMessageBox.Icon.Warning)
            box.setWindowTitle("Not a model folder")
            box.setTextFormat(Qt.TextFormat.PlainText)
            box.setText(str(exc))
            again = box.addButton("Choose &another folder\u2026", QMessageBox.ButtonRole.AcceptRole)
            again.clicked.connect(self.choose_model_folder)
            box.addButton(QMessageBox.StandardButton.Close)
            box.open()
            return False
        self.libraries.use_model(folder)
        return True

    # -- view ---------------------------------------------------------------------------

    def _zoom_changed(self, value: int) -> None:
        self.grid.set_thumb_size(value)

    def _zoom_by(self, step: int) -> None:
        self.zoom.setValue(self.zoom.value() + step)

    def set_color_scheme(self, scheme: str) -> None:
        """Light, dark or as the system says (`appearance.SCHEMES`), kept for next time."""
        app = QApplication.instance()
        assert isinstance(app, QApplication)
        appearance = Appearance.of(app)
        appearance.apply(scheme)
        self.scheme_actions[appearance.scheme].setChecked(True)
        self.qsettings.setValue("view/scheme", appearance.scheme)

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

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if (
            obj is self.search
            and isinstance(event, QKeyEvent)
            and event.type() == QEvent.Type.KeyPress
            and event.key() == Qt.Key.Key_Escape
        ):
            self.clear_search()
            self.grid.setFocus()
            return True
        return super().eventFilter(obj, event)

    # -- dialogs ------------------------------------------------------------------------

    def open_review(self) -> None:
        """Review mode over the window: yes / no on the suggestions nearest their
        thresholds (`self.review` while it is open)."""
        from albumtagger.app.review import ReviewDialog

        if not self.libraries.need_library() or self._bring_back(self.review):
            return
        self.review = ReviewDialog(self.libraries, self)
        self.review.finished.connect(self._back_to_grid)
        self.review.start()

    def _back_to_grid(self, *_: object) -> None:
        """After review mode the keys go to the grid again (menus' shortcuts included)."""
        self.activateWindow()
        self.grid.setFocus()

    def open_duplicates(self) -> None:
        """The near-duplicates view beside the window (`self.duplicates`)."""
        from albumtagger.app.duplicates import DuplicatesDialog

        if not self.libraries.need_library() or self._bring_back(self.duplicates):
            return
        self.duplicates = DuplicatesDialog(self.libraries, self.reveal, self)
        self.duplicates.start()

    def inspect_tag(self, name: str | None = None) -> TagInspector | None:
        """The tag inspector of `name` (default: the tag chosen in the tags list), one
        dialog per tag beside the window."""
        from albumtagger.app.inspector import open_inspector

        if name is None:
            index = self.tags_panel.view.currentIndex()
            name = (index.data(NAME_ROLE) if index.isValid() else None) or None
        return open_inspector(self.libraries, self.reveal, self, name)

    def show_vocabulary(self) -> VocabularyEditor | None:
        """Edit > Vocabulary: add, rename and remove tags, prompts, import, defaults
        (`self.vocabulary`)."""
        from albumtagger.app.vocabulary_editor import VocabularyEditor

        if not self.libraries.need_library():
            return None
        if not self._bring_back(self.vocabulary):
            self.vocabulary = VocabularyEditor(self.libraries, self)
            self.vocabulary.start()
        return self.vocabulary

    @staticmethod
    def _bring_back(dialog: QDialog | None) -> bool:
        """True when `dialog` is open: it is brought to the front (a closed one goes)."""
        if dialog is not None and dialog.isVisible():
            dialog.raise_()
            dialog.activateWindow()
            return True
        if dialog is not None:
            dialog.deleteLater()
        return False

    def show_keys(self) -> AboutDialog:
        """The keyboard map (Help > Keyboard shortcuts)."""
        from albumtagger.app.about import open_about

        return open_about(self.libraries, self, keys=True)

    def show_about(self) -> AboutDialog:
        from albumtagger.app.about import open_about

        return open_about(self.libraries, self)

    def show_settings(self) -> SettingsDialog:
        """Edit > Settings: OK saves them and hands them to `Libraries.apply_settings`."""
        from albumtagger.app.settings_dialog import open_settings

        return open_settings(self.libraries, self)

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
            self.libraries.close()
            self.loader.shutdown()
            self.detail.shutdown()
            self.viewer.shutdown()
            self.download_panel.shutdown()
            log.debug("closed in %.2f s", time.perf_counter() - t0)
        event.accept()
