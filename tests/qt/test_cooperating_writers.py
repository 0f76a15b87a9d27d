"""The open app and the CLI write the same library in turns: a CLI correction made while
the app's worker watches the folder goes through within seconds, and the window shows
it (the worker notices the other process's commit and says what changed)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from albumtagger.events import TagsChanged
from tests.conftest import run_cli
from tests.qt.test_window import first_photo, open_indexed


def test_a_cli_correction_beside_the_app_is_shown(
    qtbot, make_window, indexed_folder: Path, app_env: dict[str, str]
) -> None:
    window = open_indexed(qtbot, make_window, indexed_folder)
    qtbot.waitUntil(lambda: window.job.label.text() == "Watching the folder", timeout=30_000)
    pid = first_photo(window)
    path = window.libraries.queries.photo_detail(pid).path
    assert "lighthouse keeper" not in {c.info.name for c in window.detail.chip_widgets()}
    events: list[object] = []
    window.libraries.handle.worker.event.connect(events.append)

    began = time.monotonic()
    run_cli("correct", str(indexed_folder), path, "--add", "lighthouse keeper", env=app_env)
    assert time.monotonic() - began < 5.0

    def shown() -> bool:
        chips = {c.info.name: c.info.state for c in window.detail.chip_widgets()}
        return chips.get("lighthouse keeper") == "accepted"

    qtbot.waitUntil(shown, timeout=10_000)
    assert any(isinstance(e, TagsChanged) and pid in e.ids for e in events)

    # The app's own next correction starts from what the CLI wrote.
    window.libraries.client.correct([pid], "lighthouse keeper", "remove")
    qtbot.waitUntil(lambda: not shown(), timeout=10_000)
    out = run_cli("tags", str(indexed_folder), path, "--json", env=app_env).stdout
    states = {t["name"]: t["state"] for t in json.loads(out)[0]["tags"]}
    assert states["lighthouse keeper"] == "rejected"  # removed by the user, for good
