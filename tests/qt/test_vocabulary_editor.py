"""The vocabulary editor over a real sidecar with the golden model: add, prompts, rename,
remove, import and restore do what they say in the sidecar, re-scoring from the stored
photo vectors (no photo encoded again: counted)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from albumtagger.app.vocabulary_editor import VocabularyEditor, remove_text
from albumtagger.model.encoder import GmeEncoder
from albumtagger.tagging.vocabulary import default_vocabulary
from tests.qt.conftest import PHOTOS
from tests.qt.test_window import open_indexed


def db(folder: Path) -> sqlite3.Connection:
    return sqlite3.connect(folder / ".albumtagger" / "library.sqlite")


def tags(folder: Path) -> dict[str, tuple[int, list[str]]]:
    """name -> (id, prompts), read afresh from the sidecar."""
    conn = db(folder)
    try:
        rows = conn.execute("SELECT id, name, prompts FROM tags").fetchall()
    finally:
        conn.close()
    return {r[1]: (r[0], json.loads(r[2])) for r in rows}


def count(folder: Path, sql: str, *args: object) -> int:
    conn = db(folder)
    try:
        return int(conn.execute(sql, args).fetchone()[0])
    finally:
        conn.close()


@pytest.fixture
def image_encodes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Photos that go through the model (from any thread)."""
    seen: list[int] = []
    for name in ("embed_images", "embed_prepared"):
        original = getattr(GmeEncoder, name)

        def counting(self, items, *args, _original=original, **kwargs):
            seen.append(len(items))
            return _original(self, items, *args, **kwargs)

        monkeypatch.setattr(GmeEncoder, name, counting)
    return seen


def open_editor(qtbot, window) -> VocabularyEditor:
    window.act_vocabulary.trigger()
    editor = window.vocabulary
    assert isinstance(editor, VocabularyEditor)
    qtbot.waitUntil(lambda: editor.list.count() > 0, timeout=30_000)
    return editor


def choose(qtbot, editor: VocabularyEditor, name: str) -> None:
    """Select a tag in the list and wait for its prompts."""
    if editor.selected == name and editor.loaded_prompts is not None:
        return
    with qtbot.waitSignal(editor.prompts_loaded, timeout=30_000):
        editor.select(name)
    assert editor.selected == name


def edit(qtbot, editor: VocabularyEditor, action) -> object:
    """Run an edit; returns the worker's reply (after the list is read again)."""
    with qtbot.waitSignal(editor.edited, timeout=60_000) as blocker:
        action()
    qtbot.waitUntil(lambda: not editor.loading, timeout=30_000)
    return blocker.args[0]


def test_add_prompts_rename_remove(
    qtbot, make_window, indexed_folder: Path, image_encodes: list[int], monkeypatch
) -> None:
    window = open_indexed(qtbot, make_window, indexed_folder)
    editor = open_editor(qtbot, window)
    before = tags(indexed_folder)
    assert sorted(editor.names(), key=str.casefold) == sorted(before, key=str.casefold)
    assert editor.count.text() == f"{len(before):,} tags"
    vectors = count(indexed_folder, "SELECT COUNT(*) FROM embeddings")

    # The filter narrows the list by name.
    editor.filter.setText("photo")
    shown = [editor.list.item(i) for i in range(editor.list.count())]
    visible = [i.data(Qt.ItemDataRole.UserRole + 1) for i in shown if not i.isHidden()]
    assert visible and all("photo" in n for n in visible)
    assert editor.count.text() == f"{len(visible):,} of {len(before):,} tags"
    editor.filter.clear()

    # Add: the new tag is scored on every photo from stored vectors, and says so.
    editor.new_name.setText("Harbour Lights")
    editor.new_prompts.setPlainText("boats in a harbour at night\n\n  harbour lights  ")
    reply = edit(qtbot, editor, editor.add_button.click)
    assert not reply.error, reply.error
    after = tags(indexed_folder)
    tag_id, prompts = after["harbour lights"]
    assert prompts == ["boats in a harbour at night", "harbour lights"]
    assert count(indexed_folder, "SELECT COUNT(*) FROM photo_tags WHERE tag_id = ?", tag_id) > 0
    change = editor.last_change
    assert change.added == ["harbour lights"] and change.photos_scored == PHOTOS
    assert "no photo was encoded again" in editor.result.text()
    assert editor.result.text().startswith("Added 'harbour lights'.")
    qtbot.waitUntil(lambda: editor.selected == "harbour lights", timeout=30_000)
    assert "harbour lights" in editor.names()
    assert editor.new_name.text() == ""

    # Prompts: several, averaged; the tag is scored again.
    choose(qtbot, editor, "harbour lights")
    assert editor.prompts_edit.toPlainText() == "boats in a harbour at night\nharbour lights"
    editor.prompts_edit.setPlainText("a harbour at dusk\nboats with lights\nquay at night")
    reply = edit(qtbot, editor, editor.save_button.click)
    assert not reply.error, reply.error
    assert tags(indexed_folder)["harbour lights"][1] == [
        "a harbour at dusk",
        "boats with lights",
        "quay at night",
    ]
    assert editor.last_change.reprompted == ["harbour lights"]
    assert editor.last_change.photos_scored == PHOTOS
    qtbot.waitUntil(lambda: editor.loaded_prompts is not None, timeout=30_000)
    assert editor.loaded_prompts == ("a harbour at dusk", "boats with lights", "quay at night")

    # Rename: the same tag (same id, same prompts) by another name.
    editor.name_edit.setText("Night Harbour")
    reply = edit(qtbot, editor, editor.rename_button.click)
    assert not reply.error, reply.error
    renamed = tags(indexed_folder)
    assert "harbour lights" not in renamed
    assert renamed["night harbour"][0] == tag_id
    assert editor.result.text().startswith("Renamed 'harbour lights' to 'night harbour'.")
    qtbot.waitUntil(lambda: editor.selected == "night harbour", timeout=30_000)

    # An error is shown beside the form: a name another tag has.
    other = next(n for n in renamed if n != "night harbour")
    editor.name_edit.setText(other)
    reply = edit(qtbot, editor, editor.rename_button.click)
    assert reply.error and editor.error.isVisible()
    assert editor.error.text().startswith("There is already a tag")
    assert tags(indexed_folder)["night harbour"][0] == tag_id

    # Remove, after a confirmation that says what goes, user-accepted tags included.
    pid = int(window.libraries.queries.photo_ids()[0])
    with qtbot.waitSignal(window.libraries.correction_done, timeout=30_000):
        window.libraries.correct([pid], "night harbour", "add")
    assert count(
        indexed_folder,
        "SELECT COUNT(*) FROM photo_tags WHERE tag_id = ? AND source = 'user'",
        tag_id,
    )
    asked: list[str] = []

    def confirm(title: str, text: str, action: str) -> bool:
        asked.append(text)
        return True

    monkeypatch.setattr(editor, "_confirm", confirm)
    choose(qtbot, editor, "night harbour")
    reply = edit(qtbot, editor, editor.remove_button.click)
    assert not reply.error, reply.error
    assert asked == [remove_text("night harbour")]
    assert "accepted or added it yourself" in asked[0]
    assert "night harbour" not in tags(indexed_folder)
    assert count(indexed_folder, "SELECT COUNT(*) FROM photo_tags WHERE tag_id = ?", tag_id) == 0
    assert editor.last_change.removed == ["night harbour"]
    qtbot.waitUntil(lambda: "night harbour" not in editor.names(), timeout=30_000)
    assert editor.selected is None

    # No photo went through the model, and no photo vector was written.
    assert image_encodes == []
    assert count(indexed_folder, "SELECT COUNT(*) FROM embeddings") == vectors
    editor.reject()


def test_import_and_restore_defaults(
    qtbot, make_window, indexed_folder: Path, tmp_path: Path, image_encodes: list[int], monkeypatch
) -> None:
    window = open_indexed(qtbot, make_window, indexed_folder)
    editor = open_editor(qtbot, window)
    vectors = count(indexed_folder, "SELECT COUNT(*) FROM embeddings")
    defaults = default_vocabulary()

    # Import: one tag a line, "name" or "name: prompt | prompt"; known names are kept.
    listing = tmp_path / "tags.txt"
    known = defaults[0].name
    assert not {"sunset glow", "pier lamp"} & {d.name for d in defaults}
    listing.write_text(
        f"# my tags\nsunset glow: golden hour | orange evening sky\n\npier lamp\n{known}\n",
        "utf-8",
    )
    reply = edit(qtbot, editor, lambda: editor.import_file(listing))
    assert not reply.error, reply.error
    now = tags(indexed_folder)
    assert now["sunset glow"][1] == ["golden hour", "orange evening sky"]
    assert now["pier lamp"][1] == ["pier lamp", "a photo of pier lamp"]
    assert editor.last_change.added == ["sunset glow", "pier lamp"]
    assert editor.last_change.existing == [known]
    assert editor.last_change.photos_scored == PHOTOS
    qtbot.waitUntil(lambda: "pier lamp" in editor.names(), timeout=30_000)

    # A file that is not a vocabulary: the error is shown.
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xff\xfe\x00bad")
    reply = edit(qtbot, editor, lambda: editor.import_file(bad))
    assert reply.error and editor.error.isVisible() and "UTF-8" in editor.error.text()

    # Restore: a removed default tag comes back, changed default prompts are shipped again;
    # the user's own tags stay.
    gone, changed = defaults[1], defaults[2]
    monkeypatch.setattr(editor, "_confirm", lambda *args: True)
    choose(qtbot, editor, gone.name)
    assert not edit(qtbot, editor, editor.remove_button.click).error
    choose(qtbot, editor, changed.name)
    editor.prompts_edit.setPlainText("something else entirely")
    assert not edit(qtbot, editor, editor.save_button.click).error
    assert gone.name not in tags(indexed_folder)
    reply = edit(qtbot, editor, editor.restore_button.click)
    assert not reply.error, reply.error
    now = tags(indexed_folder)
    assert now[gone.name][1] == list(gone.prompts)
    assert now[changed.name][1] == list(changed.prompts)
    assert "sunset glow" in now and "pier lamp" in now
    assert editor.last_change.added == [gone.name]
    assert editor.last_change.reprompted == [changed.name]
    assert f"Added '{gone.name}'." in editor.result.text()

    assert image_encodes == []
    assert count(indexed_folder, "SELECT COUNT(*) FROM embeddings") == vectors
    editor.reject()


def test_the_editor_needs_a_library(make_window) -> None:
    window = make_window()
    window.act_vocabulary.trigger()
    assert getattr(window, "vocabulary", None) is None
    assert window.libraries.last_notice == "Open a photo folder first."
