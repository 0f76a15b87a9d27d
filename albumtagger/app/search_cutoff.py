"""The line above the grid while a text search is shown: how many photos pass its
relevance cutoff, buttons to make the cutoff stricter or looser (or go back to the
learned one), and "Show all (N more)" to go on with the photos under it."""

from __future__ import annotations

from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QToolButton, QWidget

from albumtagger.app.browsing import Browsing


class SearchCutoffBar(QWidget):
    """Follows `Browsing`'s text search; hidden while there is none."""

    def __init__(self, browsing: Browsing, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._browsing = browsing
        self.label = QLabel()
        self.label.setAccessibleName("Search matches")
        self.stricter = self._tool("+", "Stricter: a higher cutoff, fewer photos", 1)
        self.looser = self._tool("\u2212", "Looser: a lower cutoff, more photos", -1)
        self.learned = QToolButton()
        self.learned.setText("Reset")
        self.learned.setToolTip("Back to the cutoff learned from this search's scores")
        self.learned.clicked.connect(lambda: browsing.set_cutoff(None))
        self.more = QPushButton()
        self.more.setToolTip(
            "Show the photos under the cutoff too, best first (kept for later searches)"
        )
        self.more.clicked.connect(self._toggle_all)
        row = QHBoxLayout(self)
        row.setContentsMargins(6, 0, 6, 0)
        row.addWidget(self.looser)  # the buttons first: they stay put as the text changes
        row.addWidget(self.stricter)
        row.addWidget(self.learned)
        row.addWidget(self.label)
        row.addStretch(1)
        row.addWidget(self.more)
        browsing.results_changed.connect(self.refresh)
        self.refresh()

    def _tool(self, text: str, tip: str, steps: int) -> QToolButton:
        button = QToolButton()
        button.setText(text)
        button.setToolTip(tip)
        button.setAccessibleName(tip.partition(":")[0])
        button.clicked.connect(lambda: self._browsing.nudge_cutoff(steps))
        return button

    def _toggle_all(self) -> None:
        self._browsing.set_show_all(not self._browsing.show_all)

    def refresh(self) -> None:
        b = self._browsing
        if b.results is None or b.cutoff is None:
            self.hide()
            return
        passed, below = b.passed, b.below
        text = f"{passed:,} photo{'s' if passed != 1 else ''} score {b.cutoff:.2f} or more"
        if b.learned_cutoff is not None and abs(b.cutoff - b.learned_cutoff) > 1e-6:
            text += f" (learned cutoff {b.learned_cutoff:.2f})"
        self.label.setText(text)
        self.learned.setEnabled(b.learned_cutoff is not None and b.cutoff != b.learned_cutoff)
        if b.show_all:
            self.more.setText("Show matches only")
            self.more.setEnabled(True)
        else:
            self.more.setText(f"Show all ({below:,} more)")
            self.more.setEnabled(below > 0)
        self.show()
