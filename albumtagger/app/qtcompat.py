"""Work-arounds for the Qt binding in use."""

from __future__ import annotations

import ctypes
import gc
import logging
import sys

from albumtagger import priority

log = logging.getLogger(__name__)

_GUARD = 1 << 40
_guarded = False


def needs_guard() -> bool:
    """True where the binding returns singletons without a reference and Python counts
    references to them (before 3.12, PEP 683)."""
    if sys.version_info >= (3, 12):
        return False
    try:
        import shiboken6
    except ImportError:
        return False
    return tuple(shiboken6.__version_info__[:2]) >= (6, 12)


def guard_singletons() -> None:
    """Give None, True, False, Ellipsis and NotImplemented so many references that the
    binding's missing ones can never bring them to zero (they are never freed anyway)."""
    global _guarded
    if _guarded or not needs_guard():
        return
    for obj in (None, True, False, Ellipsis, NotImplemented):
        refcnt = ctypes.c_ssize_t.from_address(id(obj))
        refcnt.value += _GUARD
    _guarded = True
    log.debug("Guarded Python singletons against PySide6 %s on Python %s", _version(), sys.version)


def _version() -> str:
    import shiboken6

    return str(shiboken6.__version__)


SWITCH_INTERVAL_S = 0.0002


def tune_app_process() -> None:
    """Settings of the app's process that keep the window answering while it works.

    A shorter GIL switch interval (default 5 ms): while the worker thread runs Python,
    the GUI thread waits for the GIL at every call from Qt into Python (a paint, a slot),
    and with the worker and a reader both running Python it may wait several intervals
    in a row; 0.2 ms keeps those waits short (no loss of tagging throughput measured). The objects
    loaded by now (Qt's wrappers, numpy, every module) are moved out of the cyclic
    garbage collector's sight: a full collection walks every tracked object while holding
    the GIL, and with them it froze the window for tens of milliseconds. And the model
    process and the photo readers run under the idle scheduling policy (`priority`):
    with them at a mere lower nice value the window's thread, woken after every event,
    still waited milliseconds for a CPU each time."""
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    gc.freeze()
    priority.use_idle_policy()


def plain_tooltip(text: str) -> str:
    """A tooltip that shows `text` (file and tag names) as it is. Qt guesses whether a
    tooltip is rich text (a name like `<b>x</b>` would turn bold), so the text is escaped
    and given as rich text on purpose."""
    import html

    body = html.escape(text, quote=False).replace("\n", "<br>")
    return f"<p style='white-space:pre'>{body}</p>"


def confirm(parent, title: str, text: str, action: str) -> bool:
    """Ask before something that cannot be taken back: `action` names the button that
    does it; Cancel is the default."""
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QMessageBox

    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Question)
    box.setWindowTitle(title)
    box.setTextFormat(Qt.TextFormat.PlainText)
    box.setText(text)
    yes = box.addButton(action, QMessageBox.ButtonRole.DestructiveRole)
    box.addButton(QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(QMessageBox.StandardButton.Cancel)
    box.exec()
    return box.clickedButton() is yes
