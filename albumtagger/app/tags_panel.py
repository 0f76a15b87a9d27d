"""The tags panel: every tag with its count under the current filter, a filter box, per
tag include / exclude / off, all/any, and the quick filters (untagged, needs review,
damaged, missing, pending)."""

from __future__ import annotations

import time

from PySide6.QtCore import (
    QAbstractTableModel,
    QEvent,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
    Signal,
)
from PySide6.QtGui import QAction, QFont, QMouseEvent, QPalette
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
_ALIGN = int(Qt.ItemDataRole.TextAlignmentRole)
_FONT = int(Qt.ItemDataRole.FontRole)
_FOREGROUND = int(Qt.ItemDataRole.ForegroundRole)
_RIGHT = int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
_CELL_PADDING = 6
_ROLES = frozenset(
    int(r)
    for r in (
        TAG_ID_ROLE,
        NAME_ROLE,
        Qt.ItemDataRole.DisplayRole,
        Qt.ItemDataRole.TextAlignmentRole,
        Qt.ItemDataRole.FontRole,
        Qt.ItemDataRole.ForegroundRole,
        Qt.ItemDataRole.ToolTipRole,
        Qt.ItemDataRole.AccessibleTextRole,
    )
)


def _count_text(n: int) -> str:
    return f"{n:,}"


class TagTableModel(QAbstractTableModel):
    """Rows are tags; column 0 the name (with its filter mark), column 1 the count."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._tags: list[TagInfo] = []
        self._counts: dict[int, int] = {}
        self._states: dict[int, str] = {}
        self._bold = QFont()
        self._bold.setBold(True)
        self._struck = QFont(self._bold)
        self._struck.setStrikeOut(True)
        self._dim = QPalette().brush(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text)

    def set_tags(self, tags: list[TagInfo]) -> None:
        self.beginResetModel()
        self._tags = sorted(tags, key=self._key)
        known = {t.id for t in tags}
        self._states = {k: v for k, v in self._states.items() if k in known}
        self.endResetModel()

    def _key(self, tag: TagInfo) -> tuple:
        """Filtered tags first, then by count, then by name (sorted here, in one go: a
        proxy's per-comparison Python calls would cost far more)."""
        return (
            0 if tag.id in self._states else 1,
            -self._counts.get(tag.id, 0),
            tag.name.casefold(),
        )

    def resort(self) -> None:
        order = sorted(self._tags, key=self._key)
        if [t.id for t in order] == [t.id for t in self._tags]:
            return
        self.layoutAboutToBeChanged.emit()
        old = self.persistentIndexList()
        old_ids = [self._tags[i.row()].id for i in old]
        self._tags = order
        row_of = {t.id: r for r, t in enumerate(order)}
        self.changePersistentIndexList(
            old, [self.index(row_of[t], i.column()) for t, i in zip(old_ids, old, strict=True)]
        )
        self.layoutChanged.emit()

    def tags(self) -> list[TagInfo]:
        return self._tags

    def set_counts(self, counts: dict[int, int]) -> None:
        old, self._counts = self._counts, dict(counts)
        rows = [r for r, t in enumerate(self._tags) if old.get(t.id, 0) != counts.get(t.id, 0)]
        if rows:  # only the rows whose count changed (a view re-reads every cell it is told of)
            self.dataChanged.emit(self.index(rows[0], 0), self.index(rows[-1], 1))

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
        for row, t in enumerate(self._tags):
            if t.id == tag_id:
                self.dataChanged.emit(self.index(row, 0), self.index(row, 1))
                break

    def clear_states(self) -> None:
        self._states.clear()
        if self._tags:
            self.dataChanged.emit(self.index(0, 0), self.index(len(self._tags) - 1, 1))

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._tags)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else 2

    def headerData(self, section: int, orientation, role: int = Qt.ItemDataRole.DisplayRole):
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return ("Tag", "Photos")[section]
        return None

    def data(self, index, role: int = Qt.ItemDataRole.DisplayRole):
        # Called thousands of times per repaint: plain ints, nothing built per call.
        role = int(role)
        if role not in _ROLES or not index.isValid():
            return None
        tag = self._tags[index.row()]
        state = self._states.get(tag.id)
        n = self._counts.get(tag.id, 0)
        col = index.column()
        if role == TAG_ID_ROLE:
            return tag.id
        if role == NAME_ROLE:
            return tag.name
        if role == Qt.ItemDataRole.DisplayRole:
            if col == 0:
                return f"{_MARK[state]} {tag.name}" if state else f"   {tag.name}"
            return _count_text(n)
        if role == _ALIGN:
            return _RIGHT if col == 1 else None
        if role == _FONT:
            return None if not state else (self._struck if state == EXCLUDE else self._bold)
        if role == _FOREGROUND:
            return self._dim if not state and n == 0 else None
        if role == Qt.ItemDataRole.ToolTipRole:
            what = {
                INCLUDE: "Showing only photos with this tag",
                EXCLUDE: "Hiding photos with this tag",
            }.get(state or "", "Not filtering")
            if tag.threshold is None:
                th = "no threshold yet"
            elif tag.pinned:
                th = f"threshold {tag.threshold:.3f}, pinned by hand"
            else:
                th = f"threshold {tag.threshold:.3f}, learnt from {tag.events} corrections"
            return plain_tooltip(
                f"{tag.name}: {n:,} photos under the current filter\n{what}. Click to cycle "
                f"include / exclude / off.\n{th}"
            )
        if role == Qt.ItemDataRole.AccessibleTextRole:
            return f"{tag.name}, {n} photos" + (f", {state}d" if state else "")
        return None


class TagsPanel(QWidget):
    """Emits `changed` whenever the filter it describes changes, and
    `inspect_requested(name)` on a double click or the menu's "Inspect tag…"."""

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
        self.proxy.setDynamicSortFilter(False)

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
        # A fixed width wide enough for any count: sizing to contents would measure
        # every row again each time the counts change.
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Fixed)
        header.resizeSection(
            1, self.view.fontMetrics().horizontalAdvance("  1,000,000  ") + 2 * _CELL_PADDING
        )
        self.view.clicked.connect(self._clicked)
        self.view.viewport().installEventFilter(self)
        # The first click may show the filter bar, which moves the list under the mouse.
        self.view.header().viewport().installEventFilter(self)
        self._last_click: tuple[int, str | None, float] | None = None
        self._ignore_clicks_until = 0.0
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
        if quick is not None:
            values = quick.as_dict()
            for key, box in self.quick.items():
                box.setText(f"{self._quick_labels[key]}  ({values.get(key, 0):,})")
        self._resort()

    def _resort(self) -> None:
        self.model.resort()

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
        self.cycle(int(tag_id))

    @staticmethod
    def _double_click_s() -> float:
        return QApplication.doubleClickInterval() / 1000

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
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
        is the one the first click hit: the rows may have moved since (the first click
        filters, which re-sorts the list and shows the filter bar above it)."""
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
        menu.exec(self.view.viewport().mapToGlobal(pos))

    def _emit_changed(self, *_: object) -> None:
        if not self._silent:
            self.changed.emit()
