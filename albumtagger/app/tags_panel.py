"""The tags panel: every tag with its count under the current filter, a filter box, per
tag include / exclude / off, all/any, and the quick filters (untagged, needs review,
damaged, missing, pending)."""

from __future__ import annotations

import time

from PySide6.QtCore import (
    QEvent,
    QModelIndex,
    QObject,
    QSortFilterProxyModel,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QAction, QFont, QMouseEvent, QPalette, QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from albumtagger.app.numbers import fixed
from albumtagger.app.qtcompat import plain_tooltip
from albumtagger.library.db.queries import PhotoFilter, QuickCounts, TagInfo

INCLUDE, EXCLUDE = "include", "exclude"
NAME_ROLE = Qt.ItemDataRole.UserRole + 10
TAG_ID_ROLE = Qt.ItemDataRole.UserRole + 12

QUICK = (
    ("untagged", "Untagged", "Photos that carry no tag"),
    ("needs_review", "Needs review", "Photos with a suggestion the tagger is unsure of"),
    ("damaged", "Damaged", "Files that could not be read"),
    ("missing", "Missing", "Photos whose file is gone (their tags are kept)"),
    ("pending", "Waiting", "Photos not tagged yet"),
)
_STATUS_QUICK = ("damaged", "missing", "pending")

_MARK = {INCLUDE: "+", EXCLUDE: "\u2212"}
_FONT = int(Qt.ItemDataRole.FontRole)
_FOREGROUND = int(Qt.ItemDataRole.ForegroundRole)
_DISPLAY = int(Qt.ItemDataRole.DisplayRole)
_TOOLTIP = int(Qt.ItemDataRole.ToolTipRole)
_SPOKEN = int(Qt.ItemDataRole.AccessibleTextRole)
_RIGHT = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
_CELL_PADDING = 6
SORT_ROLE = Qt.ItemDataRole.UserRole + 13
_MAX_COUNT = 10**12
SETTLE_MS = 1500
"""How long the rows stay still after a click on the list (or its menu) when the pointer
is not over the panel (a tap, the keyboard): long enough for the next click of a
sequence, short enough to catch up soon after it."""


class TagTableModel(QStandardItemModel):
    """Rows are tags; column 0 the name (with its filter mark), column 1 the count.

    The cells are Qt's own items and the proxy sorts them by `SORT_ROLE`, so painting,
    laying out and sorting the list never call into Python. (A Python model is asked for
    thousands of cells, row and column counts per repaint; while the worker tags photos
    each such call waits for the interpreter lock, which froze the window for tens of
    milliseconds at every count update.) The rows stay in the order the tags came in.

    While `freeze()` holds, the sort keys stay those shown (a tag that comes in sorts
    after the rest), so whatever sorts the proxy again (a new tag list, the text filter)
    keeps the rows where they are; `thaw()` gives every row its key of now."""

    def __init__(self, parent=None) -> None:
        super().__init__(0, 2, parent)
        self.setHorizontalHeaderLabels(["Tag", "Photos"])
        self._tags: list[TagInfo] = []
        self._row: dict[int, int] = {}
        self._counts: dict[int, int] = {}
        self._states: dict[int, str] = {}
        self._order: list[int] = []
        self._frozen: dict[int, str] | None = None
        """While frozen, each tag's sort key as shown."""
        self._shown: list[tuple[dict[int, object], dict[int, object]]] = []
        """Per row, the values each item holds (role: value), to set only what changed."""
        self._bold = QFont()
        self._bold.setBold(True)
        self._struck = QFont(self._bold)
        self._struck.setStrikeOut(True)
        self._dim = QPalette().brush(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text)

    def set_tags(self, tags: list[TagInfo]) -> None:
        old = self._tags
        self._tags = list(tags)
        self._row = {t.id: r for r, t in enumerate(self._tags)}
        self._states = {k: v for k, v in self._states.items() if k in self._row}
        if self._frozen is not None:
            self._frozen = {k: v for k, v in self._frozen.items() if k in self._row}
        if [t.id for t in old] == [t.id for t in self._tags]:  # thresholds moved, say
            self._refill([r for r, t in enumerate(self._tags) if t != old[r]])
            return
        self.beginResetModel()
        self.blockSignals(True)  # one reset instead of a signal per cell
        try:
            self.setRowCount(len(self._tags))
            self._shown = [({}, {}) for _ in self._tags]
            for row in range(len(self._tags)):
                self.setItem(row, 0, QStandardItem())
                count = QStandardItem()
                count.setTextAlignment(_RIGHT)
                count.setEditable(False)
                self.item(row, 0).setEditable(False)
                self.setItem(row, 1, count)
                self._fill(row)
        finally:
            self.blockSignals(False)
        self.endResetModel()

    def _fill(self, row: int) -> None:
        """Put a tag's name, count, filter state and tooltip in its row's items (only
        the values that changed: each is a call into Qt)."""
        tag = self._tags[row]
        state = self._states.get(tag.id)
        n = self._counts.get(tag.id, 0)
        what = {
            INCLUDE: "Showing only photos with this tag",
            EXCLUDE: "Hiding photos with this tag",
        }.get(state or "", "Not filtering")
        if tag.threshold is None:
            th = "no threshold yet"
        elif tag.pinned:
            th = f"threshold {fixed(tag.threshold)}, pinned by hand"
        else:
            th = f"threshold {fixed(tag.threshold)}, learnt from {tag.events} corrections"
        both = {
            _FOREGROUND: self._dim if not state and n == 0 else None,
            _TOOLTIP: plain_tooltip(
                f"{tag.name}: {n:,} photos under the current filter\n{what}. Click to cycle "
                f"include / exclude / off.\n{th}"
            ),
            _SPOKEN: f"{tag.name}, {n} photos" + (f", {state}d" if state else ""),
        }
        name = {
            TAG_ID_ROLE: tag.id,
            NAME_ROLE: tag.name,
            _DISPLAY: f"{_MARK[state]} {tag.name}" if state else f"   {tag.name}",
            SORT_ROLE: self._shown_key(tag),
            _FONT: None if not state else (self._struck if state == EXCLUDE else self._bold),
            **both,
        }
        count = {_DISPLAY: f"{n:,}", **both}
        for column, values in enumerate((name, count)):
            item, shown = self.item(row, column), self._shown[row][column]
            for role, value in values.items():
                if role not in shown or shown[role] != value:
                    item.setData(value, role)
                    shown[role] = value

    def _refill(self, rows: list[int]) -> None:
        """Refill these rows and tell the views once (one signal, not one per cell)."""
        if not rows:
            return
        self.blockSignals(True)
        try:
            for row in rows:
                self._fill(row)
        finally:
            self.blockSignals(False)
        self.dataChanged.emit(self.index(min(rows), 0), self.index(max(rows), 1))

    def _sort_key(self, tag: TagInfo) -> str:
        """What the proxy sorts by: filtered tags first, then by count, then by name."""
        n = self._counts.get(tag.id, 0)
        return f"{0 if tag.id in self._states else 1}{_MAX_COUNT - n:013d}{tag.name.casefold()}"

    def _shown_key(self, tag: TagInfo) -> str:
        """The sort key the row holds: while frozen, the one it had (a new tag's sorts
        after all of those); otherwise the key of now."""
        if self._frozen is None:
            return self._sort_key(tag)
        return self._frozen.setdefault(tag.id, "2" + self._sort_key(tag))

    def freeze(self) -> None:
        """Keep the rows in the order shown until `thaw` (counts and marks still change)."""
        if self._frozen is None:
            self._frozen = {t.id: self._shown[r][0][SORT_ROLE] for r, t in enumerate(self._tags)}

    def thaw(self) -> None:
        """Give every row its sort key of now (the caller sorts the proxy again)."""
        if self._frozen is None:
            return
        self._frozen = None
        rows = [
            r
            for r, t in enumerate(self._tags)
            if self._shown[r][0].get(SORT_ROLE) != self._sort_key(t)
        ]
        if rows:
            self._order = []  # the proxy may have sorted by the old keys since: sort it
        self._refill(rows)

    def frozen(self) -> bool:
        return self._frozen is not None

    def order_changed(self) -> bool:
        """Whether the sorted order differs from the last time this was asked (sorting
        the proxy again would relayout the list even when nothing moved)."""
        order = [t.id for t in sorted(self._tags, key=self._sort_key)]
        changed, self._order = order != self._order, order
        return changed

    def tags(self) -> list[TagInfo]:
        return self._tags

    def set_counts(self, counts: dict[int, int]) -> None:
        old, self._counts = self._counts, dict(counts)
        self._refill(
            [r for r, t in enumerate(self._tags) if old.get(t.id, 0) != counts.get(t.id, 0)]
        )

    def count(self, tag_id: int) -> int:
        return self._counts.get(tag_id, 0)

    def state(self, tag_id: int) -> str | None:
        return self._states.get(tag_id)

    def states(self) -> dict[int, str]:
        return dict(self._states)

    def set_state(self, tag_id: int, state: str | None) -> None:
        if state is None:
            self._states.pop(tag_id, None)
        else:
            self._states[tag_id] = state
        if tag_id in self._row:
            self._refill([self._row[tag_id]])

    def clear_states(self) -> None:
        rows = [self._row[t] for t in self._states if t in self._row]
        self._states.clear()
        self._refill(rows)


class TagsPanel(QWidget):
    """Emits `changed` whenever the filter it describes changes, and
    `inspect_requested(name)` on a double click or the menu's "Inspect tag…".

    The list is sorted by count under the current filter, but it never re-orders while
    the pointer is over the panel, its menu is open or a click on it is less than
    `SETTLE_MS` old: a click changes the counts, and a list that re-sorted between two
    clicks on one row would give the second click to another tag. Meanwhile the counts
    and marks change in place, a new tag comes in at the end and a removed one leaves
    its row; the order catches up when the pointer leaves the panel (or, when it is not
    over it, once the clicks have settled)."""

    changed = Signal()
    inspect_requested = Signal(str)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.model = TagTableModel(self)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setFilterRole(NAME_ROLE)
        self.proxy.setFilterKeyColumn(0)
        self.proxy.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.proxy.setDynamicSortFilter(False)  # sorted once per change (`_resort`)
        self.proxy.setSortRole(SORT_ROLE)

        title = QLabel("<b>Tags</b>")
        self.filter_box = QLineEdit()
        self.filter_box.setPlaceholderText("Filter tags\u2026")
        self.filter_box.setClearButtonEnabled(True)
        self.filter_box.setAccessibleName("Filter the tag list")
        self.filter_box.textChanged.connect(self._filter_text)

        self.match = QComboBox()
        self.match.addItem("all of the + tags", False)
        self.match.addItem("any of the + tags", True)
        self.match.setToolTip("Show photos with all of the included tags, or any of them")
        self.match.setAccessibleName("Match all or any included tag")
        self.match.currentIndexChanged.connect(self._emit_changed)
        match_row = QHBoxLayout()
        match_row.addWidget(QLabel("Photos with"))
        match_row.addWidget(self.match, 1)

        self.view = QTreeView()
        self.view.setModel(self.proxy)
        self.view.setRootIsDecorated(False)
        self.view.setUniformRowHeights(True)
        self.view.setAllColumnsShowFocus(True)
        self.view.setSortingEnabled(False)
        self.view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setAccessibleName("Tags with their photo counts")
        self.view.setToolTip("Click a tag to show only photos with it; again to hide them")
        header = self.view.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        # A fixed width, fitted to the largest count so far (sizing to contents would
        # measure every row each time the counts change); it only ever grows, so the
        # names beside it do not jump as a filter changes the counts.
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Fixed)
        self._largest_count = 0
        self._fit_count_column(999)
        self.view.clicked.connect(self._clicked)
        self.view.viewport().installEventFilter(self)
        # The first click may show the filter bar, which moves the list under the mouse.
        self.view.header().viewport().installEventFilter(self)
        self._last_click: tuple[int, str | None, float] | None = None
        self._ignore_clicks_until = 0.0
        self._pointer_over = False
        self._menu_open = False
        self._settle = QTimer(self)
        self._settle.setSingleShot(True)
        self._settle.setInterval(SETTLE_MS)
        self._settle.timeout.connect(self._catch_up)
        self.view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.view.customContextMenuRequested.connect(self._menu)

        quick_title = QLabel("<b>Quick filters</b>")
        self.quick: dict[str, QCheckBox] = {}
        quick_layout = QVBoxLayout()
        quick_layout.setSpacing(2)
        for key, label, tip in QUICK:
            box = QCheckBox(label)
            box.setToolTip(tip)
            box.setAccessibleName(label)
            box.toggled.connect(self._emit_changed)
            self.quick[key] = box
            quick_layout.addWidget(box)
        self._quick_labels = {key: label for key, label, _ in QUICK}

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(title)
        layout.addWidget(self.filter_box)
        layout.addLayout(match_row)
        layout.addWidget(self.view, 1)
        layout.addWidget(quick_title)
        layout.addLayout(quick_layout)
        self._silent = False

    # -- content ----------------------------------------------------------------------

    def set_tags(self, tags: list[TagInfo]) -> None:
        self.model.set_tags(tags)
        self._resort()

    def set_counts(self, counts: dict[int, int], quick: QuickCounts | None) -> None:
        self.model.set_counts(counts)
        self._fit_count_column(max(counts.values(), default=0))
        if quick is not None:
            values = quick.as_dict()
            for key, box in self.quick.items():
                box.setText(f"{self._quick_labels[key]}  ({values.get(key, 0):,})")
        self._resort()

    def _fit_count_column(self, largest: int) -> None:
        """Make the count column wide enough for `largest` (and every count before)."""
        if largest <= self._largest_count:
            return
        self._largest_count = largest
        text = f"  {largest:,}  "
        width = self.view.fontMetrics().horizontalAdvance(text) + 2 * _CELL_PADDING
        self.view.header().resizeSection(1, width)

    def _resort(self) -> None:
        if not self.model.frozen() and self.model.order_changed():
            self.proxy.sort(0)

    # -- keeping the rows still -------------------------------------------------------

    def _still(self) -> bool:
        return self._pointer_over or self._menu_open or self._settle.isActive()

    def _hold(self) -> None:
        """A click sequence is under way: keep the rows still until it settles."""
        self._settle.start()
        self.model.freeze()

    def _catch_up(self) -> None:
        """Sort the rows by their counts of now, unless they must stay still."""
        if not self._still():
            self.model.thaw()
            self._resort()

    def enterEvent(self, event: QEvent) -> None:
        self._pointer_over = True
        self.model.freeze()
        super().enterEvent(event)

    def leaveEvent(self, event: QEvent) -> None:
        self._pointer_over = False
        self._settle.stop()  # the pointer is gone: no click of the sequence is to come
        self._catch_up()
        super().leaveEvent(event)

    def tag_by_name(self, name: str) -> TagInfo | None:
        folded = name.casefold()
        for t in self.model.tags():
            if t.name.casefold() == folded:
                return t
        return None

    def tag_name(self, tag_id: int) -> str:
        for t in self.model.tags():
            if t.id == tag_id:
                return t.name
        return f"tag {tag_id}"

    # -- the filter -------------------------------------------------------------------

    def set_tag_state(self, tag_id: int, state: str | None) -> None:
        self.model.set_state(tag_id, state)
        self._resort()
        self._emit_changed()

    def cycle(self, tag_id: int) -> None:
        state = self.model.state(tag_id)
        nxt = {None: INCLUDE, INCLUDE: EXCLUDE, EXCLUDE: None}[state]
        self.set_tag_state(tag_id, nxt)

    def set_match_any(self, any_: bool) -> None:
        self.match.setCurrentIndex(1 if any_ else 0)

    def match_any(self) -> bool:
        return bool(self.match.currentData())

    def set_quick(self, key: str, on: bool) -> None:
        self.quick[key].setChecked(on)

    def clear(self) -> None:
        self._silent = True
        try:
            self.model.clear_states()
            for box in self.quick.values():
                box.setChecked(False)
        finally:
            self._silent = False
        self._resort()
        self._emit_changed()

    def is_filtering(self) -> bool:
        return bool(self.model.states()) or any(b.isChecked() for b in self.quick.values())

    def photo_filter(self, order: str = "path", descending: bool = False) -> PhotoFilter:
        states = self.model.states()
        statuses = tuple(k for k in _STATUS_QUICK if self.quick[k].isChecked())
        return PhotoFilter(
            tags=tuple(sorted(t for t, s in states.items() if s == INCLUDE)),
            exclude=tuple(sorted(t for t, s in states.items() if s == EXCLUDE)),
            match_any=self.match_any(),
            statuses=statuses,
            untagged=self.quick["untagged"].isChecked(),
            needs_review=self.quick["needs_review"].isChecked(),
            order=order,
            descending=descending,
        )

    def active(self) -> list[tuple[str, str, object]]:
        """(kind, label, key) of each active filter, for the chips bar."""
        out: list[tuple[str, str, object]] = []
        for tag_id, state in self.model.states().items():
            out.append((state, self.tag_name(tag_id), tag_id))
        for key, box in self.quick.items():
            if box.isChecked():
                out.append(("quick", self._quick_labels[key], key))
        return out

    # -- events -----------------------------------------------------------------------

    def _filter_text(self, text: str) -> None:
        self.proxy.setFilterFixedString(text.strip())

    def _clicked(self, index: QModelIndex) -> None:
        tag_id = index.data(TAG_ID_ROLE)
        if tag_id is None:
            return
        now = time.monotonic()
        if now < self._ignore_clicks_until:
            return  # the release that ends a double click
        self._last_click = (int(tag_id), self.model.state(int(tag_id)), now)
        self._hold()
        self.cycle(int(tag_id))

    @staticmethod
    def _double_click_s() -> float:
        return QApplication.doubleClickInterval() / 1000

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if obj is self.view.viewport() and event.type() in (
            QEvent.Type.MouseButtonPress,
            QEvent.Type.MouseButtonDblClick,
        ):
            self._hold()  # from the press: the row must stay under it until the release
        if (
            obj in (self.view.viewport(), self.view.header().viewport())
            and event.type() == QEvent.Type.MouseButtonDblClick
            and isinstance(event, QMouseEvent)
            and event.button() == Qt.MouseButton.LeftButton
        ):
            on_rows = obj is self.view.viewport()
            index = self.view.indexAt(event.position().toPoint()) if on_rows else QModelIndex()
            if self._double_clicked(index):
                return True
        return super().eventFilter(obj, event)

    def _double_clicked(self, index: QModelIndex) -> bool:
        """Inspect the tag double-clicked, leaving its filter as it was before. The tag
        is the one the first click hit: the list may have moved since (the first click
        filters, which may show the filter bar above it)."""
        now = time.monotonic()
        last, self._last_click = self._last_click, None
        if last is not None and now - last[2] <= self._double_click_s():
            tag_id = last[0]
            self.set_tag_state(tag_id, last[1])
        elif index.isValid() and index.data(TAG_ID_ROLE) is not None:
            tag_id = int(index.data(TAG_ID_ROLE))
        else:
            return False
        self._ignore_clicks_until = now + self._double_click_s()
        self.inspect_requested.emit(self.tag_name(tag_id))
        return True

    def _menu(self, pos) -> None:
        index = self.view.indexAt(pos)
        if not index.isValid():
            return
        tag_id = int(index.data(TAG_ID_ROLE))
        name = str(index.data(NAME_ROLE)).replace("&", "&&")
        menu = QMenu(self)
        for label, state in (
            (f"Only photos with \u201c{name}\u201d", INCLUDE),
            (f"Hide photos with \u201c{name}\u201d", EXCLUDE),
            ("Don't filter on this tag", None),
        ):
            action = QAction(label, menu)
            action.triggered.connect(
                lambda _=False, s=state: self.set_tag_state(tag_id, s)  # GUI thread only
            )
            menu.addAction(action)
        menu.addSeparator()
        inspect = QAction("Inspect tag\u2026", menu)
        inspect.setToolTip("Its threshold, score histogram and the photos either side")
        tag_name = str(index.data(NAME_ROLE))
        inspect.triggered.connect(lambda _=False: self.inspect_requested.emit(tag_name))
        menu.addAction(inspect)
        self._menu_open = True
        self.model.freeze()
        try:
            menu.exec(self.view.viewport().mapToGlobal(pos))
        finally:
            self._menu_open = False
            self._hold()  # the pointer may come back over the list: let it settle

    def _emit_changed(self, *_: object) -> None:
        if not self._silent:
            self.changed.emit()
