"""Match descriptions: a collapsible section of the detail panel where the user types
candidate descriptions (one per line) and sees them ranked for the photo shown, each with
a bar, its score and a confidence level judged as the thresholds judge tags."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, Protocol

from PySide6.QtCore import QEvent, QRectF, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QFont, QKeyEvent, QPainter, QPalette
from PySide6.QtWidgets import (
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from albumtagger.app.numbers import fixed
from albumtagger.app.qtcompat import plain_tooltip

MAX_CANDIDATES = 50
"""Descriptions matched at once; the rest are left out (and the user is told)."""
REMATCH_DELAY_MS = 250
"""After the photo changes, wait this long before matching again (browsing stays light)."""

CONFIDENCE_COLOURS = {
    "high": QColor("#2f9e44"),
    "medium": QColor("#d08c00"),
    "low": QColor("#e8590c"),
}
CONFIDENCE_HELP = (
    "high / medium / low: the score passes the text's threshold, by how far (as for "
    "suggested tags); no match: the score is below the threshold"
)
RULE_HELP = {
    "tag": "a tag of this library: judged by that tag's threshold",
    "new tag": (
        "judged by the threshold a new tag of that text would start with (from its "
        "scores over this library's photos)"
    ),
    "base": "no scores to go by, judged by the base threshold",
}


class Matcher(Protocol):
    """What the panel asks: `SessionClient.match` (False when no library is open)."""

    def match(
        self, photo_id: int, texts: Sequence[str], *, on_reply: Callable[[Any], None]
    ) -> bool: ...


def candidates(text: str) -> tuple[list[str], int]:
    """The descriptions in `text`: one per non-empty line, stripped, duplicates once, at
    most `MAX_CANDIDATES`; and how many there were before the cut."""
    lines = list(dict.fromkeys(line.strip() for line in text.splitlines() if line.strip()))
    return lines[:MAX_CANDIDATES], len(lines)


def confidence_colour(confidence: str, palette: QPalette) -> QColor:
    return CONFIDENCE_COLOURS.get(confidence, palette.color(QPalette.ColorRole.PlaceholderText))


def rule_text(matches: Sequence[dict[str, Any]]) -> str:
    """How the shown texts were judged (the "rule" of each match), in a line or two."""
    tags = [str(m["text"]) for m in matches if m.get("rule") == "tag"]
    others = list(dict.fromkeys(str(m.get("rule", "")) for m in matches if m.get("rule") != "tag"))
    lines = []
    if tags:
        if not others:
            lines.append("All are tags of this library: each judged by its tag's threshold.")
        else:
            verb = "are tags" if len(tags) > 1 else "is a tag"
            lines.append(f"{_names(tags)} {verb} of this library: judged by the tag's threshold.")
    for rule in others:
        how = RULE_HELP.get(rule, f"judged by rule {rule!r}")
        lines.append(f"{'The others' if tags else 'All'}: {how}.")
    return "\n".join(lines)


def _names(texts: Sequence[str], most: int = 3, width: int = 24) -> str:
    def short(t: str) -> str:
        return t if len(t) <= width else t[: width - 1] + "\u2026"

    quoted = ", ".join(f"\u201c{short(t)}\u201d" for t in texts[:most])
    return quoted + (f" and {len(texts) - most} more" if len(texts) > most else "")


# -- widgets ------------------------------------------------------------------------------


class DescriptionsEdit(QPlainTextEdit):
    """The candidates box: Ctrl+Enter asks for a match (before the window's own
    Ctrl+Enter shortcut can take it)."""

    submitted = Signal()

    _ENTER = (Qt.Key.Key_Return, Qt.Key.Key_Enter)

    def _is_submit(self, event: QKeyEvent) -> bool:
        mods = event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier
        return event.key() in self._ENTER and mods == Qt.KeyboardModifier.ControlModifier

    def event(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.ShortcutOverride and self._is_submit(event):  # type: ignore[arg-type]
            event.accept()
            return True
        return super().event(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if self._is_submit(event):
            event.accept()
            self.submitted.emit()
            return
        super().keyPressEvent(event)


class ElidedLabel(QWidget):
    """One line of plain text, elided on the right to the width it gets; the whole text
    in its tooltip."""

    def __init__(self, text: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._text = text
        self.setToolTip(plain_tooltip(text))
        self.setAccessibleName(text)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def text(self) -> str:
        return self._text

    def shown_text(self) -> str:
        """The text as drawn at the current width."""
        return self.fontMetrics().elidedText(self._text, Qt.TextElideMode.ElideRight, self.width())

    def sizeHint(self) -> QSize:
        fm = self.fontMetrics()
        return QSize(min(fm.horizontalAdvance(self._text), 400), fm.height())

    def minimumSizeHint(self) -> QSize:
        fm = self.fontMetrics()
        return QSize(fm.horizontalAdvance("M\u2026"), fm.height())

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        painter.setPen(self.palette().color(QPalette.ColorRole.WindowText))
        align = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter
        painter.drawText(self.rect(), int(align), self.shown_text())


class ScoreBar(QWidget):
    """A horizontal bar: `fraction` of its width filled in `colour`, with a tick at
    `mark` (the text's threshold, on the same scale) when it falls on the bar."""

    def __init__(
        self, fraction: float, colour: QColor, mark: float | None, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.fraction = min(max(fraction, 0.0), 1.0)
        self.colour = colour
        self.mark = mark if mark is not None and 0.0 <= mark <= 1.0 else None
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def sizeHint(self) -> QSize:
        return QSize(120, 12)

    def minimumSizeHint(self) -> QSize:
        return QSize(30, 12)

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        palette = self.palette()
        r = QRectF(self.rect()).adjusted(0.5, 2.5, -0.5, -2.5)
        painter.setPen(palette.color(QPalette.ColorRole.Mid))
        painter.setBrush(palette.color(QPalette.ColorRole.Base))
        painter.drawRoundedRect(r, 2, 2)
        if self.fraction > 0:
            fill = QRectF(r.x(), r.y(), max(r.width() * self.fraction, 2.0), r.height())
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(self.colour)
            painter.drawRoundedRect(fill, 2, 2)
        if self.mark is not None:
            x = round(r.x() + r.width() * self.mark)
            painter.setPen(palette.color(QPalette.ColorRole.WindowText))
            painter.drawLine(x, 0, x, self.height())


class MatchRow(QWidget):
    """One ranked description: its text on the first line; its bar, score and confidence
    on the second (so the row fits a narrow panel)."""

    def __init__(
        self,
        rank: int,
        match: dict[str, Any],
        scale: tuple[float, float],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.match = match
        score = float(match["score"])
        threshold = float(match["threshold"])
        lo, hi = scale
        colour = confidence_colour(match["confidence"], self.palette())

        grid = QGridLayout(self)
        grid.setContentsMargins(0, 2, 0, 2)
        grid.setHorizontalSpacing(6)
        grid.setVerticalSpacing(1)
        self.rank = QLabel(f"{rank}.")
        self.rank.setTextFormat(Qt.TextFormat.PlainText)
        self.text = ElidedLabel(match["text"])
        how = RULE_HELP.get(match["rule"], f"rule {match['rule']!r}")
        self.text.setToolTip(plain_tooltip(f"{match['text']}\n{how[0].upper()}{how[1:]}."))
        grid.addWidget(self.rank, 0, 0)
        grid.addWidget(self.text, 0, 1, 1, 3)

        mark = _position(threshold, lo, hi) if hi - lo >= 1e-9 else None
        self.bar = ScoreBar(_position(score, lo, hi), colour, mark)
        self.bar.setToolTip(
            f"Score {fixed(score)}\nThe bars run from the lowest ({fixed(lo)})\nto the highest "
            f"({fixed(hi)}) score shown.\nThe tick: this text's threshold ({fixed(threshold)})."
        )
        self.score = QLabel(f"{fixed(score)}")
        self.score.setTextFormat(Qt.TextFormat.PlainText)
        self.score.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.score.setMinimumWidth(self.score.fontMetrics().horizontalAdvance("-0.000"))
        self.score.setToolTip(f"Cosine score; threshold {fixed(threshold)} (rule: {match['rule']})")
        self.confidence = QLabel(match["confidence"])
        self.confidence.setTextFormat(Qt.TextFormat.PlainText)
        self.confidence.setMinimumWidth(
            self.confidence.fontMetrics().horizontalAdvance("no match") + 4
        )
        self.confidence.setToolTip(CONFIDENCE_HELP)
        font = QFont(self.confidence.font())
        font.setBold(match["confidence"] != "no match")
        self.confidence.setFont(font)
        palette = self.confidence.palette()
        palette.setColor(QPalette.ColorRole.WindowText, colour)
        self.confidence.setPalette(palette)
        grid.addWidget(self.bar, 1, 1)
        grid.addWidget(self.score, 1, 2)
        grid.addWidget(self.confidence, 1, 3)
        grid.setColumnStretch(1, 1)
        self.setAccessibleName(
            f"{rank}. {match['text']}: score {fixed(score)}, {match['confidence']}"
        )


BAR_FLOOR = 0.08
"""The lowest score shown keeps this much of its bar (a stub, not nothing)."""


def _position(value: float, lo: float, hi: float) -> float:
    """Where `value` falls on the bars' scale: `lo` at `BAR_FLOOR`, `hi` at 1 (all of it
    when every score is the same)."""
    if hi - lo < 1e-9:
        return 1.0
    return BAR_FLOOR + (1.0 - BAR_FLOOR) * (value - lo) / (hi - lo)


# -- the section --------------------------------------------------------------------------


class MatchPanel(QWidget):
    """The "Match descriptions" section. `set_photo` tells it which photo is shown; it
    asks the session through the client given to `set_client` and drops replies
    that are no longer wanted (a token per request)."""

    matched = Signal(bool)
    """A reply was shown (results or an error); True when the user asked for it (Match,
    Ctrl+Enter), False for a re-match after the photo changed."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._client: Matcher | None = None
        self.photo_id: int | None = None
        self._photo_key: tuple[int, str] | None = None
        self._token = 0
        self._in_flight: int | None = None
        self._again = False
        self._stale = False
        self.results: list[dict[str, Any]] = []
        self.rows: list[MatchRow] = []

        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 4, 0, 0)
        outer.setSpacing(4)
        self.header = QToolButton()
        self.header.setText("Match descriptions")
        self.header.setCheckable(True)
        self.header.setAutoRaise(True)
        self.header.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.header.setArrowType(Qt.ArrowType.RightArrow)
        self.header.setToolTip("Rank descriptions you type by how well they fit this photo")
        font = QFont(self.header.font())
        font.setBold(True)
        self.header.setFont(font)
        self.header.toggled.connect(self.set_expanded)
        outer.addWidget(self.header)

        self.body = QWidget()
        body = QVBoxLayout(self.body)
        body.setContentsMargins(0, 0, 0, 0)
        body.setSpacing(4)
        self.edit = DescriptionsEdit()
        self.edit.setAccessibleName("Descriptions to match, one per line")
        self.edit.setPlaceholderText("One description per line, e.g.\na dog on a beach\na cake")
        self.edit.setToolTip(
            f"One description per line (at most {MAX_CANDIDATES}); Ctrl+Enter matches them"
        )
        self.edit.setTabChangesFocus(True)
        lines = self.edit.fontMetrics().lineSpacing()
        self.edit.setFixedHeight(lines * 4 + 2 * self.edit.frameWidth() + 10)
        self.edit.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.edit.submitted.connect(self._ask)
        self.edit.textChanged.connect(self._text_changed)
        body.addWidget(self.edit)

        buttons = QHBoxLayout()
        self.button = QPushButton("Match")
        self.button.setToolTip("Rank the descriptions for this photo (Ctrl+Enter in the box)")
        self.button.clicked.connect(self._ask)
        self.button.setEnabled(False)
        buttons.addWidget(self.button)
        buttons.addStretch(1)
        body.addLayout(buttons)

        self.message = _plain_label("", "Match status")
        body.addWidget(self.message)
        self.list = QWidget()
        self.list.setAccessibleName("Descriptions ranked for this photo")
        self.list_layout = QVBoxLayout(self.list)
        self.list_layout.setContentsMargins(0, 0, 0, 0)
        self.list_layout.setSpacing(0)
        body.addWidget(self.list)
        self.rule = _plain_label("", "How the descriptions were judged")
        dim = self.rule.palette()
        dim.setColor(QPalette.ColorRole.WindowText, dim.color(QPalette.ColorRole.PlaceholderText))
        self.rule.setPalette(dim)
        body.addWidget(self.rule)
        outer.addWidget(self.body)

        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.setInterval(REMATCH_DELAY_MS)
        self.timer.timeout.connect(self._rematch)
        self._asked = False
        self.set_expanded(False)
        self._show_message("")

    # -- wiring -------------------------------------------------------------------------

    def set_client(self, client: Matcher | None) -> None:
        """What the panel asks (the session of the library on screen)."""
        self._client = client

    def is_expanded(self) -> bool:
        return self.body.isVisibleTo(self)

    def set_expanded(self, expanded: bool) -> None:
        if self.header.isChecked() != expanded:
            self.header.setChecked(expanded)  # comes back here through toggled
            return
        self.header.setArrowType(Qt.ArrowType.DownArrow if expanded else Qt.ArrowType.RightArrow)
        self.body.setVisible(expanded)
        if expanded and self._stale:
            self.timer.start()

    def set_photo(self, photo_id: int | None, status: str = "") -> None:
        """The photo shown (None: none, or several). A new one (or a new status of the same
        one: it may have been tagged since) is matched again after a short delay when the
        box has text."""
        key = None if photo_id is None else (int(photo_id), status)
        if key == self._photo_key:
            return
        self._photo_key = key
        self.photo_id = None if photo_id is None else int(photo_id)
        self._token += 1  # replies for the previous photo are no longer wanted
        self._again = False
        self.timer.stop()
        if self.photo_id is None:
            self._stale = False
            self._in_flight = None  # its reply, if any comes, is dropped by its token
            self._clear_results()
            self._show_message("")
            return
        if candidates(self.edit.toPlainText())[0]:
            self._stale = True
            self.list.setEnabled(False)  # dimmed until the new ranking arrives
            if self.is_expanded():
                self._show_message("Matching\u2026")
                self.timer.start()
        else:
            self._clear_results()
            self._show_message("")

    # -- matching -----------------------------------------------------------------------

    def run_match(self) -> bool:
        """Match the box's descriptions against the photo now; False when nothing was
        asked (no text, no photo, no library)."""
        texts, given = candidates(self.edit.toPlainText())
        self.timer.stop()
        if not texts:
            self._token += 1
            self._stale = False
            self._clear_results()
            self._show_message("")
            return False
        if self.photo_id is None or self._client is None:
            return False
        if self._in_flight is not None:
            # One request at a time: ask again when the one under way answers.
            self._token += 1
            self._again = True
            self._show_message("Matching\u2026")
            return True
        self._token += 1
        token = self._token
        cut = given - len(texts)
        on_reply = partial(self._replied, token, cut)
        ok = self._client.match(self.photo_id, texts, on_reply=on_reply)
        if not ok:
            self._show_message("No library is open.", error=True)
            return False
        self._in_flight = token
        self._stale = False
        self._show_message("Matching\u2026")
        return True

    def _ask(self) -> None:
        self._asked = True
        self.run_match()

    def _rematch(self) -> None:
        if self.photo_id is not None and self.is_expanded():
            self._asked = False
            self.run_match()

    def _replied(self, token: int, cut: int, reply: Any) -> None:
        if self._in_flight == token:
            self._in_flight = None
        if self._again:
            self._again = False
            self.run_match()
            return
        if token != self._token:
            return  # another photo or other texts since
        if reply.error:
            self._clear_results()
            self._show_message(reply.error, error=True)
        else:
            self.show_results(list(reply.result or []), cut)
        asked, self._asked = self._asked, False
        self.matched.emit(asked)

    def show_results(self, results: list[dict[str, Any]], cut: int = 0) -> None:
        """Show `results` (best first, as `LibrarySession.match` gives them)."""
        self._clear_results()
        self.results = results
        self.list.setEnabled(True)
        if not results:
            self._show_message("Nothing to match.")
            return
        scores = [float(m["score"]) for m in results]
        scale = (min(scores), max(scores))
        for rank, match in enumerate(results, 1):
            row = MatchRow(rank, match, scale, self.list)
            self.list_layout.addWidget(row)
            self.rows.append(row)
        note = f" Only the first {MAX_CANDIDATES} were matched ({cut} left out)." if cut else ""
        n = len(results)
        self._show_message(f"{n} description{'s' if n != 1 else ''}, best first.{note}")
        self.rule.setText(rule_text(results))
        self.rule.setVisible(bool(self.rule.text()))

    def _clear_results(self) -> None:
        for row in self.rows:
            self.list_layout.removeWidget(row)
            row.hide()
            row.deleteLater()
        self.rows = []
        self.results = []
        self.list.setEnabled(True)
        self.rule.setText("")
        self.rule.hide()

    def _show_message(self, text: str, *, error: bool = False) -> None:
        self.message.setText(text)
        self.message.setVisible(bool(text))
        palette = self.palette()
        if error:
            palette.setColor(QPalette.ColorRole.WindowText, CONFIDENCE_COLOURS["low"])
        self.message.setPalette(palette)
        self.message.setProperty("error", error)

    def _text_changed(self) -> None:
        self.button.setEnabled(bool(candidates(self.edit.toPlainText())[0]))


def _plain_label(text: str, accessible: str) -> QLabel:
    label = QLabel(text)
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    label.setAccessibleName(accessible)
    return label
