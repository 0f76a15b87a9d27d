"""Light or dark, from the system or from Settings."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QApplication, QLabel

from albumtagger.app.appearance import Appearance, wants_dark


def test_the_scheme_chosen_or_the_systems() -> None:
    assert wants_dark("dark", Qt.ColorScheme.Light)
    assert not wants_dark("light", Qt.ColorScheme.Dark)
    assert wants_dark("system", Qt.ColorScheme.Dark)
    assert not wants_dark("system", Qt.ColorScheme.Light)
    assert not wants_dark("system", Qt.ColorScheme.Unknown)  # a system that does not say


def test_dark_colours_reach_the_widgets_and_go_back(qtbot) -> None:
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    before = app.palette().color(QPalette.ColorRole.Window)
    appearance = Appearance(app, "dark")
    try:
        label = QLabel("beach")
        qtbot.addWidget(label)
        window = label.palette().color(QPalette.ColorRole.Window)
        text = label.palette().color(QPalette.ColorRole.WindowText)
        assert window.lightness() < 80 < 180 < text.lightness()
        appearance.apply("light")  # the widgets hear of it from the event loop
        qtbot.waitUntil(lambda: label.palette().color(QPalette.ColorRole.Window) == before)
    finally:
        appearance.apply("light")


def test_the_window_keeps_the_colours_chosen(qtbot, make_window, qsettings) -> None:
    window = make_window()
    assert window.scheme_actions["system"].isChecked()  # the system's, at first
    try:
        window.scheme_actions["dark"].trigger()
        qtbot.waitUntil(lambda: window.palette().color(QPalette.ColorRole.Window).lightness() < 80)
        assert qsettings.value("view/scheme") == "dark"
        again = make_window()  # the next window starts dark
        assert again.scheme_actions["dark"].isChecked()
    finally:
        window.set_color_scheme("system")
    qtbot.waitUntil(lambda: window.palette().color(QPalette.ColorRole.Window).lightness() > 180)
