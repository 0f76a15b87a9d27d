"""The library page's three panes side by side (tags list, grid, detail) in a splitter
that keeps the grid the largest part at any width: as the window narrows, the side
panes give way first (in proportion, down to their minimum widths; then the tags list
folds, then the detail pane, which shows the tags the keyboard corrects), and as it
widens again they come back to the widths the user gave them."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QSplitter

GRID_SHARE = 0.5
"""The grid's least share of the width while the side panes are shown."""
SIDE_MINIMUM = (150, 200)
"""The narrowest the tags list and the detail pane get before they fold (or their
widgets' own least width, when larger)."""


def balance(wanted: Sequence[int], total: int, minimum: Sequence[int] = SIDE_MINIMUM) -> list[int]:
    """Widths of (tags, grid, detail) for `total` pixels: the side panes as `wanted`
    while the grid keeps `GRID_SHARE` of the width; past that they narrow in
    proportion down to `minimum`, then fold (0): the tags list first, then the detail
    pane (the tags that A / R / Delete correct are there)."""
    left, right = max(0, int(wanted[0])), max(0, int(wanted[2]))
    room = int(total * (1 - GRID_SHARE))
    if left + right > room:
        scale = room / (left + right)
        left = max(int(left * scale), min(left, minimum[0])) if left else 0
        right = max(int(right * scale), min(right, minimum[1])) if right else 0
        if left + right > room:  # the tags list folds first: the detail pane holds
            left = 0  # the tags the keyboard corrects
            right = min(int(wanted[2]), room) if room >= minimum[1] else 0
            if not right and wanted[0]:
                left = min(int(wanted[0]), room) if room >= minimum[0] else 0
    return [left, max(0, total - left - right), right]


class PaneSplitter(QSplitter):
    """A horizontal splitter of (tags, grid, detail) that re-balances on every resize
    (`balance`). The widths the user gave (a drag, `setSizes`, a restored state) are
    what it comes back to."""

    def __init__(self, parent=None) -> None:
        super().__init__(Qt.Orientation.Horizontal, parent)
        self._wanted: list[int] | None = None
        self._balancing = False
        self.splitterMoved.connect(self._user_moved)

    def wanted(self) -> list[int]:
        """The widths the user asked for (what the panes come back to)."""
        return list(self._wanted) if self._wanted is not None else self.sizes()

    def setSizes(self, sizes: Sequence[int]) -> None:
        self._wanted = [int(s) for s in sizes]
        self._balance()

    def restoreState(self, state) -> bool:
        done = super().restoreState(state)
        if done:
            self._wanted = self.sizes()
            self._balance()
        return done

    def saveState(self):
        """The state with the widths the user gave, not those squeezed to fit now (a
        window closed narrow would otherwise open wide with its panes folded)."""
        if self._wanted is None or len(self._wanted) != self.count():
            return super().saveState()
        shown = self.sizes()
        super().setSizes(self._wanted)
        state = super().saveState()
        super().setSizes(shown)
        return state

    def _user_moved(self, *_: object) -> None:
        if not self._balancing:
            self._wanted = self.sizes()

    def _balance(self) -> None:
        if self.count() != 3:
            return
        total = sum(self.sizes()) or max(0, self.width() - 2 * self.handleWidth())
        if total <= 0:
            super().setSizes(self._wanted or [])
            return
        least = [
            max(floor, self.widget(i).minimumSizeHint().width())
            for i, floor in ((0, SIDE_MINIMUM[0]), (2, SIDE_MINIMUM[1]))
        ]
        self._balancing = True
        try:
            super().setSizes(balance(self.wanted(), total, least))
        finally:
            self._balancing = False

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._balance()
