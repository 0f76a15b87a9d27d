"""Match descriptions in the detail panel, over a real sidecar indexed with the golden
model: rankings and confidence levels as the session gives them, re-ranked when the photo
changes, empty input, errors."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PySide6.QtCore import QItemSelectionModel, Qt

from albumtagger.app.match_panel import MAX_CANDIDATES, MatchPanel, candidates
from albumtagger.config import load_settings
from albumtagger.library.db.store import sidecar_path
from albumtagger.service.session import LibrarySession
from albumtagger.tagging.decision_state import IMAGE_MODEL_ID_KEY, MODEL_ID_KEY
from tests.qt.test_window import open_indexed


def select_row(qtbot, window, row: int) -> int:
    window.grid.selectionModel().setCurrentIndex(
        window.model.index(row), QItemSelectionModel.SelectionFlag.ClearAndSelect
    )
    pid = window.grid.current_id()
    assert pid is not None
    qtbot.waitUntil(lambda: window.detail.photo_ids == (pid,), timeout=10_000)
    return pid


def type_and_match(qtbot, panel: MatchPanel, lines: list[str]) -> None:
    panel.set_expanded(True)
    panel.edit.setPlainText("\n".join(lines))
    with qtbot.waitSignal(panel.matched, timeout=60_000, check_params_cb=lambda asked: asked):
        qtbot.keyClick(panel.edit, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)


def expected_matches(folder: Path, pid: int, texts: list[str]) -> tuple[list[dict], dict]:
    """What the core gives (a read-only session on the same sidecar), and each free
    text's cosine with the photo's stored vector."""
    with LibrarySession(folder, load_settings(), write=False, backup=False) as session:
        matches = session.match(pid, texts)
        store = session.store
        image_id = store.get_setting(IMAGE_MODEL_ID_KEY) or store.get_setting(MODEL_ID_KEY)
        ids, matrix = store.photo_vectors(image_id, statuses=("ok",))
        vector = matrix[list(ids).index(pid)]
        cosines = {
            m["text"]: float(vector @ session.text_vector(m["text"]))
            for m in matches
            if m["rule"] != "tag"
        }
    return matches, cosines


def shown(panel: MatchPanel) -> list[tuple[str, str, str]]:
    return [(r.text.text(), r.score.text(), r.confidence.text()) for r in panel.rows]


def check_rows(panel: MatchPanel, matches: list[dict], cosines: dict) -> None:
    assert [r.text.text() for r in panel.rows] == [m["text"] for m in matches]
    for row, m in zip(panel.rows, matches, strict=True):
        assert row.match["score"] == pytest.approx(m["score"], abs=1e-4)
        assert row.score.text() == f"{row.match['score']:.3f}"
        assert row.confidence.text() == m["confidence"]
        if m["text"] in cosines:
            assert row.match["score"] == pytest.approx(cosines[m["text"]], abs=1e-4)
    scores = [r.match["score"] for r in panel.rows]
    assert scores == sorted(scores, reverse=True)


def test_descriptions_rank_as_the_session_does_and_follow_the_photo(
    qtbot, make_window, indexed_folder: Path
) -> None:
    window = open_indexed(qtbot, make_window, indexed_folder)
    tag = window.libraries.queries.tags()[0].name
    texts = [tag, "a red bicycle in the snow", "  ", "a plate of <b>pasta</b>"]
    first = select_row(qtbot, window, 0)
    panel = window.detail.match
    assert panel.isVisible() and not panel.is_expanded()

    type_and_match(qtbot, panel, texts)
    assert not panel.message.property("error")
    given = [t.strip() for t in texts if t.strip()]
    matches, cosines = expected_matches(indexed_folder, first, given)
    assert len(cosines) == 2
    check_rows(panel, matches, cosines)
    assert {m["rule"] for m in matches} == {"tag", "new tag"}
    assert f"\u201c{tag}\u201d is a tag of this library" in panel.rule.text()
    assert "The others: judged by the threshold a new tag" in panel.rule.text()
    assert panel.rule.isVisible()
    assert panel.rows[0].bar.fraction == pytest.approx(1.0)
    assert window.detail.photo_ids == (first,)  # Ctrl+Enter did not open the photo
    qtbot.waitUntil(lambda: not panel.rows[-1].visibleRegion().isEmpty())  # scrolled to
    before = shown(panel)

    with qtbot.waitSignal(panel.matched, timeout=60_000, check_params_cb=lambda a: not a):
        second = select_row(qtbot, window, 5)
    assert second != first
    matches, cosines = expected_matches(indexed_folder, second, given)
    check_rows(panel, matches, cosines)
    assert shown(panel) != before


def test_empty_input_does_nothing(qtbot, make_window, indexed_folder: Path) -> None:
    window = open_indexed(qtbot, make_window, indexed_folder)
    select_row(qtbot, window, 0)
    panel = window.detail.match
    asked: list[tuple] = []
    panel.set_client(SimpleNamespace(match=lambda *args, **kwargs: asked.append(args) or True))
    panel.set_expanded(True)
    panel.edit.setPlainText("\n   \n\t\n")
    assert not panel.button.isEnabled()
    qtbot.keyClick(panel.edit, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    assert not panel.run_match()
    assert asked == [] and panel.rows == [] and not panel.message.isVisible()
    select_row(qtbot, window, 2)
    assert not panel.timer.isActive() and asked == []


def test_an_untagged_photo_shows_why(qtbot, make_window, indexed_folder: Path) -> None:
    with sqlite3.connect(sidecar_path(indexed_folder)) as db:
        pid = db.execute("SELECT min(id) FROM photos").fetchone()[0]
        db.execute("UPDATE photos SET status = 'pending' WHERE id = ?", (pid,))
    db.close()
    window = open_indexed(qtbot, make_window, indexed_folder, auto_index=False, watch=False)
    row = window.model.row_of(pid)
    assert row >= 0
    select_row(qtbot, window, row)
    panel = window.detail.match
    type_and_match(qtbot, panel, ["a dog"])
    assert panel.rows == []
    assert panel.message.property("error")
    assert "not tagged" in panel.message.text()


def test_candidates_are_cut_and_the_panel_says_so(qtbot) -> None:
    texts, given = candidates("\n".join(f"text {i}" for i in range(MAX_CANDIDATES + 7)) + "\n")
    assert len(texts) == MAX_CANDIDATES and given == MAX_CANDIDATES + 7
    assert candidates(" a \n\n a\nb ") == (["a", "b"], 2)

    panel = MatchPanel()
    qtbot.addWidget(panel)
    panel.resize(280, 600)
    panel.set_expanded(True)
    panel.show()
    results = [
        {"text": f"text {i} " * 20, "score": 0.3 - i / 1000, "confidence": c, "threshold": 0.25}
        | {"rule": "new tag"}
        for i, c in enumerate(["high", "medium", "low", "no match"])
    ]
    panel.show_results(results, cut=7)
    assert "7 left out" in panel.message.text()
    assert panel.minimumSizeHint().width() <= 280
    qtbot.waitUntil(lambda: panel.rows[0].text.width() > 0)
    elided = panel.rows[0].text.shown_text()
    assert elided.endswith("\u2026") and len(elided) < len(results[0]["text"])
    fractions = [r.bar.fraction for r in panel.rows]
    assert fractions == sorted(fractions, reverse=True) and 0 < fractions[-1] < 0.2
    words = [r.confidence.text() for r in panel.rows]
    assert words == ["high", "medium", "low", "no match"]
    colours = {
        r.confidence.palette().color(r.confidence.foregroundRole()).name() for r in panel.rows
    }
    assert len(colours) == 4
    assert np.isfinite([r.match["score"] for r in panel.rows]).all()
