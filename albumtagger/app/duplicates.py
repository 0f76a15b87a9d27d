"""Near duplicates: groups of photos whose vectors are nearly the same (bursts, copies,
edits), largest groups first, each a row of thumbnails. The similarity is adjustable;
the groups are computed by the worker, off this thread. Clicking a photo selects it in
the main window's grid (clearing the filters when it is not shown there)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import (
    QDialog,
    QDoubleSpinBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from albumtagger.app.detail import plain_label
from albumtagger.app.photo_model import file_name
from albumtagger.app.qtcompat import plain_tooltip
from albumtagger.app.thumbnails import ThumbnailLoader
from albumtagger.app.worker import Reply
from albumtagger.library.db.queries import PhotoSummary

if TYPE_CHECKING:
    from albumtagger.app.libraries import Libraries

Reveal = Callable[[Sequence[int]], None]
"""Selects photos in the main window's grid (clearing its filters when they hide them)."""

MIN_COSINE, MAX_COSINE, DEFAULT_COSINE = 0.80, 0.999, 0.95
STEP = 0.005
DEBOUNCE_MS = 300
"""Spin-box changes are gathered this long before the groups are computed again."""
MAX_GROUPS = 200
"""Groups shown (the largest); the counts cover all of them."""
TILE = 112
"""Thumbnail size in the rows, in pixels."""


def largest_first(groups: Sequence[np.ndarray]) -> list[list[int]]:
    """Groups as id lists, largest first (ties: the group with the smallest id first)."""
    out = [[int(i) for i in g] for g in groups]
    out.sort(key=lambda g: (-len(g), min(g)))
    return out


class PhotoTile(QToolButton):
    """One photo of a group: its thumbnail over its file name."""

    def __init__(self, photo_id: int, path: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.photo_id = photo_id
        self.path = path
        name = file_name(path)
        self.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextUnderIcon)
        self.setIconSize(QSize(TILE, TILE))
        self.setFixedWidth(TILE + 24)
        self.setAutoRaise(True)
        # "&" would be read as a mnemonic marker.
        shown = self.fontMetrics().elidedText(name, Qt.TextElideMode.ElideMiddle, TILE + 16)
        self.setText(shown.replace("&", "&&"))
        self.setToolTip(plain_tooltip(path))
        self.setAccessibleName(name)


class GroupRow(QFrame):
    """One group: how many photos, a button to select them all, then the photos."""

    def __init__(self, number: int, ids: list[int], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ids = ids
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.title = plain_label(f"Group {number}: {len(ids)} photos", accessible="Group")
        self.title.setWordWrap(False)
        self.select = QPushButton("Select all in the grid")
        self.select.setToolTip("Select every photo of this group in the main window")
        head = QHBoxLayout()
        head.addWidget(self.title)
        head.addStretch(1)
        head.addWidget(self.select)
        self.strip = QHBoxLayout()
        self.strip.setSpacing(4)
        self.strip.addStretch(1)
        inner = QWidget()
        inner.setLayout(self.strip)
        scroll = QScrollArea()
        scroll.setWidget(inner)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setFixedHeight(TILE + 64)
        box = QVBoxLayout(self)
        box.addLayout(head)
        box.addWidget(scroll)
        self.tiles: list[PhotoTile] = []

    def add_tile(self, tile: PhotoTile) -> None:
        self.strip.insertWidget(self.strip.count() - 1, tile)
        self.tiles.append(tile)


class DuplicatesDialog(QDialog):
    """The near-duplicates view, beside the main window (not modal). `groups_shown`
    once the rows of a computation are on screen (`shown_at`: its similarity)."""

    groups_shown = Signal()

    def __init__(self, libraries: Libraries, reveal: Reveal, parent: QWidget) -> None:
        super().__init__(parent)
        self._libraries = libraries
        self._reveal = reveal
        self.setWindowTitle("Near duplicates \u2013 albumtagger")
        self.resize(960, 640)
        self.groups: list[list[int]] = []
        """Every group of the last computation, largest first."""
        self.rows: list[GroupRow] = []
        self.shown_at: float | None = None
        """The similarity of the groups on screen."""
        self._asked: float | None = None
        self._generation = 0
        self._closed = False
        self._tiles: dict[int, list[PhotoTile]] = {}
        self._summaries: dict[int, PhotoSummary] = {}
        self.loader = ThumbnailLoader(libraries.root, size=TILE, parent=self)
        self.loader.changed.connect(self._thumbs_arrived)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(DEBOUNCE_MS)
        self._timer.timeout.connect(self.compute)
        self._build()
        libraries.library_opened.connect(self._library_changed)

    def _build(self) -> None:
        self.similarity = QDoubleSpinBox()
        self.similarity.setRange(MIN_COSINE, MAX_COSINE)
        self.similarity.setDecimals(3)
        self.similarity.setSingleStep(STEP)
        self.similarity.setValue(DEFAULT_COSINE)
        self.similarity.setAccessibleName("Similarity")
        self.similarity.setToolTip(
            "How alike two photos must be (cosine of their vectors) to count as near "
            "duplicates: 0.999 finds only copies, 0.90 also bursts and light edits"
        )
        self.similarity.valueChanged.connect(self._similarity_changed)
        label = QLabel("Similarity at least")
        label.setBuddy(self.similarity)
        self.summary = plain_label(accessible="Groups found")
        top = QHBoxLayout()
        top.addWidget(label)
        top.addWidget(self.similarity)
        top.addSpacing(16)
        top.addWidget(self.summary, 1)

        self.list = QWidget()
        self.list_box = QVBoxLayout(self.list)
        self.list_box.addStretch(1)
        self.scroll = QScrollArea()
        self.scroll.setWidget(self.list)
        self.scroll.setWidgetResizable(True)
        self.empty = plain_label(accessible="No groups")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.empty.hide()
        hint = plain_label("Click a photo to select it in the main window.")
        hint.setEnabled(False)

        box = QVBoxLayout(self)
        box.addLayout(top)
        box.addWidget(self.scroll, 1)
        box.addWidget(self.empty, 1)
        box.addWidget(hint)

    # -- opening and closing ------------------------------------------------------------

    def start(self) -> None:
        """Show beside the main window and compute the groups."""
        self.show()
        self.compute()

    def done(self, result: int) -> None:
        if not self._closed:
            self._closed = True
            self._timer.stop()
            self._libraries.library_opened.disconnect(self._library_changed)
            self.loader.shutdown()
        super().done(result)

    def _library_changed(self, *_: object) -> None:
        self.reject()

    # -- computing ------------------------------------------------------------------------

    def _similarity_changed(self, _value: float) -> None:
        self._timer.start()

    def compute(self) -> None:
        """Ask the worker for the groups at the similarity shown."""
        if self._closed:
            return
        self._timer.stop()
        value = round(float(self.similarity.value()), 4)
        self._asked = value
        self.summary.setText(f"Looking for photos at least {value:.3f} alike\u2026")
        on_reply = partial(self._groups_ready, value)
        if not self._libraries.client.near_duplicates(value, on_reply=on_reply):
            self.summary.setText("No library is open.")

    def _groups_ready(self, asked: float, reply: Reply) -> None:
        if self._closed:
            return
        if asked != self._asked:
            return  # a newer computation is on its way
        if reply.error:
            self.summary.setText(reply.error)
            self._show_groups([])
            return
        self._show_groups(largest_first(reply.result or []))

    def _show_groups(self, groups: list[list[int]]) -> None:
        self.groups = groups
        self._generation += 1
        for row in self.rows:
            self.list_box.removeWidget(row)
            row.deleteLater()
        self.rows = []
        self._tiles = {}
        shown = groups[:MAX_GROUPS]
        photos = sum(len(g) for g in groups)
        value = self._asked or DEFAULT_COSINE
        if not groups:
            self.summary.setText(f"No near duplicates at {value:.3f}.")
            self.empty.setText(
                f"No photos are at least {value:.3f} alike.\nLower the similarity to find "
                "looser matches (bursts, edits)."
            )
            self.scroll.hide()
            self.empty.show()
            self.shown_at = self._asked
            self.groups_shown.emit()
            return
        self.empty.hide()
        self.scroll.show()
        text = f"{len(groups):,} group{'s' if len(groups) != 1 else ''}, {photos:,} photos"
        if len(groups) > len(shown):
            text += f" (the {len(shown):,} largest shown)"
        self.summary.setText(text)
        ids = [i for g in shown for i in g]
        generation = self._generation
        reads = self._libraries.reads
        if reads is None:
            return
        reads.read(
            "duplicates",
            lambda q: q.summaries(ids),
            lambda summaries: self._summaries_ready(generation, shown, summaries),
        )

    def _summaries_ready(self, generation: int, groups: list[list[int]], summaries) -> None:
        if self._closed or generation != self._generation:
            return
        self._summaries = {s.id: s for s in summaries}
        for number, ids in enumerate(groups, 1):
            row = GroupRow(number, ids)
            row.select.clicked.connect(lambda _=False, g=ids: self._reveal(g))
            for pid in ids:
                summary = self._summaries.get(pid)
                tile = PhotoTile(pid, summary.path if summary else f"photo {pid}")
                tile.clicked.connect(lambda _=False, p=pid: self.photo_clicked(p))
                row.add_tile(tile)
                self._tiles.setdefault(pid, []).append(tile)
            self.list_box.insertWidget(self.list_box.count() - 1, row)
            self.rows.append(row)
        self._thumbs_arrived()
        self.shown_at = self._asked
        self.groups_shown.emit()

    def photo_clicked(self, photo_id: int) -> None:
        """Select this photo in the main window's grid."""
        self._reveal([photo_id])

    def tile_names(self) -> list[list[str]]:
        """The file names shown, row by row."""
        return [[file_name(t.path) for t in row.tiles] for row in self.rows]

    def _thumbs_arrived(self) -> None:
        for pid, tiles in self._tiles.items():
            if tiles[0].icon().isNull():
                summary = self._summaries.get(pid)
                pixmap = self.loader.pixmap(summary) if summary is not None else None
                if pixmap is not None:
                    icon = QIcon(pixmap)
                    for tile in tiles:
                        tile.setIcon(icon)
