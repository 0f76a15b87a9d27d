"""Near duplicates: groups of photos whose vectors are nearly the same (bursts, copies,
edits), largest groups first, each a row of thumbnails. The similarity is adjustable;
the groups are computed by the worker, off this thread. Clicking a photo selects it in
the main window's grid (clearing the filters when it is not shown there) and marks it
as the one of its group to keep.

Each group keeps one photo: the sharpest or the largest (measured off this thread), or
the one clicked. The others can be moved to the system's trash (after a confirmation;
never deleted, and the library forgets them) or given a tag."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDoubleSpinBox,
    QFrame,
    QHBoxLayout,
    QInputDialog,
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
from albumtagger.app.qtcompat import confirm, plain_tooltip
from albumtagger.app.thumbnails import ThumbnailLoader
from albumtagger.app.worker import Reply
from albumtagger.library.cleanup import Trashed
from albumtagger.library.db.queries import PhotoSummary
from albumtagger.library.keep import RULES, KeepFacts, pick_keep, sharpness

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
DUPLICATE_TAG = "duplicate"
"""The tag "Tag the others" offers."""


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
        self.setCheckable(True)  # checked: the photo its group keeps
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
        self.keeping = plain_label(accessible="Photo kept")
        self.keeping.setWordWrap(False)
        self.select = QPushButton("Select all in the grid")
        self.select.setToolTip("Select every photo of this group in the main window")
        head = QHBoxLayout()
        head.addWidget(self.title)
        head.addSpacing(12)
        head.addWidget(self.keeping)
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

    def show_keep(self, keep: int | None, by_hand: bool) -> None:
        """Check the kept photo's tile and name it."""
        for tile in self.tiles:
            tile.setChecked(tile.photo_id == keep)
        kept = next((t for t in self.tiles if t.photo_id == keep), None)
        if kept is None:
            self.keeping.setText("")
        else:
            how = " (your pick)" if by_hand else ""
            self.keeping.setText(f"keeping {file_name(kept.path)}{how}")


class DuplicatesDialog(QDialog):
    """The near-duplicates view, beside the main window (not modal). `groups_shown`
    once the rows of a computation are on screen (`shown_at`: its similarity)."""

    groups_shown = Signal()
    keep_chosen = Signal()  # each group's photo to keep is known
    acted = Signal()  # the others were moved to the trash or tagged (or that failed)

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
        self.facts: dict[int, KeepFacts] = {}
        """Sharpness and size of the photos on screen (measured off this thread)."""
        self.keep: dict[int, int] = {}
        """Row number -> the photo that group keeps."""
        self._by_hand: dict[int, int] = {}
        self._busy = False
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

        self.rule = QComboBox()
        self.rule.addItem("Keep the sharpest", "sharpest")
        self.rule.addItem("Keep the largest", "largest")
        self.rule.setAccessibleName("Which photo each group keeps")
        self.rule.setToolTip(
            "Sharpest: the least blurred (measured on a small grey copy); largest: the "
            "most pixels, then the biggest file. Click a photo to keep it instead."
        )
        self.rule.currentIndexChanged.connect(self._rule_changed)
        self.trash = QPushButton("Move the others to the trash\u2026")
        self.trash.setToolTip(
            "Move every photo but the kept one of each group to the system's trash "
            "(asks first; they can be restored from there)"
        )
        self.trash.clicked.connect(self.trash_others)
        self.tag = QPushButton("Tag the others\u2026")
        self.tag.setToolTip("Give every photo but the kept one of each group a tag")
        self.tag.clicked.connect(self.tag_others)
        self.outcome = plain_label(accessible="Outcome")
        actions = QHBoxLayout()
        actions.addWidget(self.rule)
        actions.addWidget(self.trash)
        actions.addWidget(self.tag)
        actions.addWidget(self.outcome, 1)

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
        hint = plain_label(
            "Click a photo to select it in the main window and keep it in its group."
        )
        hint.setEnabled(False)

        box = QVBoxLayout(self)
        box.addLayout(top)
        box.addLayout(actions)
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
        self.keep, self._by_hand = {}, {}
        self._update_actions()
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
                tile.clicked.connect(lambda _=False, p=pid, r=number - 1: self.photo_clicked(p, r))
                row.add_tile(tile)
                self._tiles.setdefault(pid, []).append(tile)
            self.list_box.insertWidget(self.list_box.count() - 1, row)
            self.rows.append(row)
        self._thumbs_arrived()
        self._measure(generation, [s for s in summaries if s is not None])
        self.shown_at = self._asked
        self.groups_shown.emit()

    def photo_clicked(self, photo_id: int, row: int | None = None) -> None:
        """Select this photo in the main window's grid (and keep it in group `row`)."""
        if row is not None and 0 <= row < len(self.rows):
            self._by_hand[row] = photo_id
            self._choose()
        self._reveal([photo_id])

    # -- which photo each group keeps ------------------------------------------------------

    def _measure(self, generation: int, summaries: list[PhotoSummary]) -> None:
        """Sharpness and size of the photos on screen, read off this thread."""
        root, reads = self._libraries.root, self._libraries.reads
        if root is None or reads is None:
            return
        wanted = [(s.id, s.path, (s.width or 0) * (s.height or 0), s.size) for s in summaries]

        def measure(_queries: object) -> dict[int, KeepFacts]:
            return {
                pid: KeepFacts(pid, pixels, size, sharpness(Path(root) / path))
                for pid, path, pixels, size in wanted
            }

        reads.read("duplicates-keep", measure, partial(self._measured, generation))

    def _measured(self, generation: int, facts: dict[int, KeepFacts]) -> None:
        if self._closed or generation != self._generation:
            return
        self.facts = facts
        self._choose()
        self.keep_chosen.emit()

    def _rule_changed(self, _index: int) -> None:
        self._by_hand.clear()
        self._choose()

    def _choose(self) -> None:
        """Each group's photo to keep: the one clicked, else by the rule chosen."""
        rule = str(self.rule.currentData() or RULES[0])
        self.keep = {}
        for number, row in enumerate(self.rows):
            facts = [self.facts[i] for i in row.ids if i in self.facts]
            if number in self._by_hand:
                self.keep[number] = self._by_hand[number]
            elif len(facts) == len(row.ids):
                self.keep[number] = pick_keep(facts, rule)
            row.show_keep(self.keep.get(number), number in self._by_hand)
        self._update_actions()

    def others(self) -> list[int]:
        """The photos of the groups on screen that are not kept (groups whose keeper is
        not known yet are left out)."""
        return [
            i
            for n, row in enumerate(self.rows)
            if n in self.keep
            for i in row.ids
            if i != self.keep[n]
        ]

    def _update_actions(self) -> None:
        n = len(self.others())
        for button in (self.trash, self.tag):
            button.setEnabled(n > 0 and not self._busy)

    # -- the others: to the trash, or tagged ----------------------------------------------

    def _confirm(self, title: str, text: str, action: str) -> bool:
        return confirm(self, title, text, action)

    def _ask_tag(self) -> str:
        """The tag for the others ("" when the person cancels)."""
        text, ok = QInputDialog.getText(
            self, "Tag the others", "Tag for the photos not kept:", text=DUPLICATE_TAG
        )
        return text.strip() if ok else ""

    def trash_others(self) -> None:
        """Move the photos not kept to the system's trash, after asking."""
        others = self.others()
        if not others or self._busy:
            return
        groups = len(self.keep)
        n = len(others)
        text = (
            f"Move {n:,} photo{'s' if n != 1 else ''} to the trash?\n\n"
            f"One photo of each of the {groups:,} group{'s' if groups != 1 else ''} is "
            "kept. The files go to the system's trash, where they can be restored; the "
            "library forgets them and their tags."
        )
        if not self._confirm("Move to the trash", text, f"Move {n:,} to the trash"):
            return
        self._busy = True
        self._update_actions()
        self.outcome.setText(f"Moving {n:,} photos to the trash\u2026")
        if not self._libraries.client.trash_photos(others, on_reply=self._trashed):
            self._busy = False
            self.outcome.setText("No library is open.")
            self._update_actions()

    def _trashed(self, reply: Reply) -> None:
        if self._closed:
            return
        self._busy = False
        if reply.error:
            self.outcome.setText(f"Nothing was moved: {reply.error}")
        else:
            result = reply.result
            assert isinstance(result, Trashed)
            moved = len(result.moved)
            text = f"{moved:,} photo{'s' if moved != 1 else ''} moved to the trash."
            if result.failed:
                text = (
                    f"The trash is not available for {result.failed} ({result.error}); "
                    f"nothing was deleted. {text}"
                    if moved
                    else f"The trash is not available for {result.failed} "
                    f"({result.error}); nothing changed."
                )
            self.outcome.setText(text)
        self.acted.emit()
        self.compute()

    def tag_others(self) -> None:
        """Give the photos not kept a tag (asked for; "duplicate" offered)."""
        others = self.others()
        if not others or self._busy:
            return
        tag = self._ask_tag()
        if not tag:
            return
        self._busy = True
        self._update_actions()
        on_reply = partial(self._tagged, tag, len(others))
        if not self._libraries.client.correct(others, tag, "add", on_reply=on_reply):
            self._busy = False
            self._update_actions()

    def _tagged(self, tag: str, n: int, reply: Reply) -> None:
        if self._closed:
            return
        self._busy = False
        self._update_actions()
        if reply.error:
            self.outcome.setText(f"Could not tag them: {reply.error}")
        else:
            self.outcome.setText(f"{n:,} photo{'s' if n != 1 else ''} tagged \u201c{tag}\u201d.")
        self.acted.emit()

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
