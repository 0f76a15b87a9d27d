"""The folder tree (View > Folders): the library's sub-folders, each with the photos in it
and below under the current filter; a click shows only that folder, a click again (or on
"All photos") every folder."""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, Qt, Signal
from PySide6.QtGui import QFont, QPalette, QStandardItem, QStandardItemModel
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTreeView, QVBoxLayout, QWidget

from albumtagger.app.qtcompat import plain_tooltip
from albumtagger.library.db.queries import folder_totals

PATH_ROLE = Qt.ItemDataRole.UserRole + 20
"""The folder's relative path ("" for All photos)."""
ALL_PHOTOS = "All photos"

_DISPLAY = int(Qt.ItemDataRole.DisplayRole)
_TOOLTIP = int(Qt.ItemDataRole.ToolTipRole)
_SPOKEN = int(Qt.ItemDataRole.AccessibleTextRole)
_FONT = int(Qt.ItemDataRole.FontRole)
_FOREGROUND = int(Qt.ItemDataRole.ForegroundRole)
_RIGHT = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
_CELL_PADDING = 6


class FolderTreeModel(QStandardItemModel):
    """Column 0 the folder's name, column 1 its count (in it and below). Qt's own items,
    so painting never calls into Python; rebuilt only when the folders change, the
    counts otherwise set in place."""

    def __init__(self, parent=None) -> None:
        super().__init__(0, 2, parent)
        self.setHorizontalHeaderLabels(["Folder", "Photos"])
        self._items: dict[str, tuple[QStandardItem, QStandardItem]] = {}
        self._counts: dict[str, int] = {}
        self.current = ""
        self._bold = QFont()
        self._bold.setBold(True)
        self._dim = QPalette().brush(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text)

    def folders(self) -> list[str]:
        """Every folder listed (not "" for All photos), in tree order."""
        return [p for p in self._items if p]

    def count(self, folder: str) -> int:
        return self._counts.get(folder, 0)

    def set_counts(self, shown: dict[str, int], every: dict[str, int]) -> bool:
        """`shown`: photos the filter matches directly in each folder; `every`: the same
        without the filter's tags and quick filters, so folders with nothing matching
        stay listed. True when the folders changed (the rows were rebuilt)."""
        counts = folder_totals(shown)
        folders = set(folder_totals(every)) | set(counts)
        if self.current:
            folders.add(self.current)  # a folder chosen that went away: still clearable
        self._counts = counts
        if folders != set(self._items):
            self._rebuild(folders)
            return True
        for folder in self._items:
            self._fill(folder)
        return False

    def set_current(self, folder: str) -> None:
        old, self.current = self.current, folder
        for f in {old, folder}:
            if f in self._items:
                self._fill(f)

    def index_of(self, folder: str) -> QModelIndex:
        items = self._items.get(folder)
        return items[0].index() if items else QModelIndex()

    def _rebuild(self, folders: set[str]) -> None:
        self.beginResetModel()
        self.blockSignals(True)  # one reset instead of a signal per cell
        try:
            self.removeRows(0, self.rowCount())
            self._items = {}
            self._add("", self.invisibleRootItem())
            for folder in sorted(folders - {""}, key=lambda f: f.casefold().split("/")):
                self._add_path(folder)
        finally:
            self.blockSignals(False)
        self.endResetModel()

    def _add_path(self, folder: str) -> None:
        """Add `folder` under its parent (and the parent first, where it is not listed)."""
        if folder in self._items:
            return
        parent, _, _ = folder.rpartition("/")
        self._add_path(parent)
        self._add(folder, self._items[parent][0])

    def _add(self, folder: str, parent: QStandardItem) -> None:
        name = QStandardItem(folder.rpartition("/")[2] if folder else ALL_PHOTOS)
        count = QStandardItem()
        count.setTextAlignment(_RIGHT)
        for item in (name, count):
            item.setEditable(False)
            item.setData(folder, PATH_ROLE)
        parent.appendRow([name, count])
        self._items[folder] = (name, count)
        self._fill(folder)

    def _fill(self, folder: str) -> None:
        name, count = self._items[folder]
        n = self._counts.get(folder, 0)
        label = folder or ALL_PHOTOS
        chosen = folder == self.current
        if chosen and folder:
            what = "Showing only this folder; click again to show every folder."
        elif folder:
            what = "Click to show only the photos in this folder and below."
        else:
            what = "Click to show the photos of every folder."
        values = {
            _TOOLTIP: plain_tooltip(f"{label}: {n:,} photos under the current filter\n{what}"),
            _SPOKEN: f"{label}, {n} photos" + (", chosen" if chosen and folder else ""),
            _FOREGROUND: self._dim if n == 0 else None,
        }
        for item, extra in (
            (name, {_FONT: self._bold if chosen else None}),
            (count, {_DISPLAY: f"{n:,}"}),
        ):
            for role, value in {**values, **extra}.items():
                if item.data(role) != value:
                    item.setData(value, role)


class FolderTree(QWidget):
    """Emits `chosen(folder)` when a folder is clicked ("" to show every folder)."""

    chosen = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = FolderTreeModel(self)
        self.view = QTreeView()
        self.view.setModel(self.model)
        self.view.setUniformRowHeights(True)
        self.view.setAllColumnsShowFocus(True)
        self.view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setAccessibleName("Folders with their photo counts")
        header = self.view.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Fixed)
        header.resizeSection(
            1, self.view.fontMetrics().horizontalAdvance("  1,000,000  ") + 2 * _CELL_PADDING
        )
        self.view.clicked.connect(self._clicked)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.view)

    @property
    def current(self) -> str:
        return self.model.current

    def set_counts(self, shown: dict[str, int], every: dict[str, int]) -> None:
        """Counts from `LibraryQueries.folder_counts` (see `FolderTreeModel.set_counts`);
        the folders open and the one chosen stay so."""
        listed = ["", *self.model.folders()]
        expanded = {f for f in listed if self.view.isExpanded(self.model.index_of(f))}
        if self.model.set_counts(shown, every):
            expanded.add("")
            for folder in expanded:
                self.view.setExpanded(self.model.index_of(folder), True)
            self._select(self.model.current)

    def set_current(self, folder: str) -> None:
        """Mark `folder` as the one shown ("" every folder), without saying so."""
        self.model.set_current(folder)
        self._select(folder)

    def _select(self, folder: str) -> None:
        index = self.model.index_of(folder)
        if not index.isValid():
            return
        parent = index.parent()
        while parent.isValid():
            self.view.setExpanded(parent, True)
            parent = parent.parent()
        self.view.setCurrentIndex(index)
        self.view.scrollTo(index)

    def _clicked(self, index: QModelIndex) -> None:
        folder = index.data(PATH_ROLE)
        if folder is None:
            return
        self.chosen.emit("" if folder == self.model.current else str(folder))
