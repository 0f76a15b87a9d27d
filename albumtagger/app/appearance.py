"""Light or dark: the system's colour scheme followed (and followed when it changes), or
the one chosen in Settings. Every colour the window paints comes from the palette, so
one palette switches all of it."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

SCHEMES = ("system", "light", "dark")


def wants_dark(scheme: str, system: Qt.ColorScheme) -> bool:
    """Whether `scheme` (one of `SCHEMES`) means dark colours on a system in `system`
    (a system that does not say is light)."""
    if scheme == "system":
        return system == Qt.ColorScheme.Dark
    return scheme == "dark"


def dark_palette() -> QPalette:
    """Fusion's colours, dark: light text on dark grey, a blue selection."""
    p = QPalette()
    R, G = QPalette.ColorRole, QPalette.ColorGroup
    base, window, text = QColor(30, 30, 30), QColor(45, 45, 45), QColor(225, 225, 225)
    for role, color in (
        (R.Window, window),
        (R.WindowText, text),
        (R.Base, base),
        (R.AlternateBase, QColor(38, 38, 38)),
        (R.ToolTipBase, QColor(55, 55, 55)),
        (R.ToolTipText, text),
        (R.PlaceholderText, QColor(150, 150, 150)),
        (R.Text, text),
        (R.Button, window),
        (R.ButtonText, text),
        (R.BrightText, QColor(255, 90, 90)),
        (R.Light, QColor(70, 70, 70)),
        (R.Midlight, QColor(58, 58, 58)),
        (R.Mid, QColor(40, 40, 40)),
        (R.Dark, QColor(20, 20, 20)),
        (R.Shadow, QColor(0, 0, 0)),
        (R.Highlight, QColor(42, 110, 190)),
        (R.HighlightedText, QColor(255, 255, 255)),
        (R.Link, QColor(110, 170, 255)),
        (R.LinkVisited, QColor(170, 140, 255)),
    ):
        p.setColor(role, color)
    dim = QColor(120, 120, 120)
    for role in (R.WindowText, R.Text, R.ButtonText):
        p.setColor(G.Disabled, role, dim)
    return p


class Appearance:
    """Applies a scheme to the application, and again whenever the system's changes
    while the scheme is "system". One per application: `Appearance.of(app)`."""

    _current: Appearance | None = None

    @classmethod
    def of(cls, app: QApplication) -> Appearance:
        if cls._current is None or cls._current._app is not app:
            cls._current = cls(app)
        return cls._current

    def __init__(self, app: QApplication, scheme: str = "system") -> None:
        self._app = app
        self._light = app.palette()
        self.scheme = "system"
        self.dark = False
        app.styleHints().colorSchemeChanged.connect(self._system_changed)
        self.apply(scheme)

    def apply(self, scheme: str) -> None:
        self.scheme = scheme if scheme in SCHEMES else "system"
        dark = wants_dark(self.scheme, self._app.styleHints().colorScheme())
        if dark != self.dark:
            self.dark = dark
            self._app.setPalette(dark_palette() if dark else self._light)

    def _system_changed(self, *_: object) -> None:
        if self.scheme == "system":
            self.apply("system")
