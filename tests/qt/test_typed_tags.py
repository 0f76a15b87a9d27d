"""A tag typed into the detail panel that the vocabulary does not have yet: with the model
loaded it is scored across the library at once from the stored photo vectors (as the
vocabulary editor's "Add tag" does) and the status bar says so; without it, it waits and
is scored as soon as the model is loaded, with no re-tag either way."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt

from albumtagger.library.db.queries import PhotoFilter
from albumtagger.tagging.results import TagInspection
from tests.qt.conftest import PHOTOS
from tests.qt.test_vocabulary_editor import image_encodes  # noqa: F401 (a fixture)
from tests.qt.test_window import first_photo, open_indexed


def type_tag(qtbot, window, name: str):
    """Type `name` into the detail panel's add field and press Enter; the reply."""
    window.detail.add_field.setText(name)
    with qtbot.waitSignal(window.libraries.correction_done, timeout=60_000) as blocker:
        qtbot.keyClick(window.detail.add_field, Qt.Key.Key_Return)
    reply = blocker.args[0]
    assert not reply.error, reply.error
    return reply


def ask(qtbot, call, *args):
    """A call of the session client, run in the worker; its result."""
    replies: list = []
    assert call(*args, on_reply=replies.append)
    qtbot.waitUntil(lambda: bool(replies), timeout=30_000)
    assert not replies[0].error, replies[0].error
    return replies[0].result


def tag_report(qtbot, window, name: str) -> TagInspection:
    """The inspector's report of a tag, from the worker."""
    return ask(qtbot, window.libraries.client.tag_report, name)


def load_the_model(qtbot, window) -> None:
    """A search loads the model (the library is indexed: nothing else needs it)."""
    window.search.setText("a dog on the beach")
    with qtbot.waitSignal(window.browsing.search_done, timeout=60_000) as blocker:
        window.search.returnPressed.emit()
    assert not blocker.args[0].error, blocker.args[0].error
    qtbot.waitUntil(lambda: window.libraries.model_state == "ready", timeout=30_000)


def test_a_typed_tag_is_scored_at_once_when_the_model_is_loaded(
    qtbot,
    make_window,
    indexed_folder: Path,
    image_encodes: list[int],  # noqa: F811
) -> None:
    window = open_indexed(qtbot, make_window, indexed_folder)
    load_the_model(qtbot, window)
    pid = first_photo(window)
    path = window.libraries.queries.photo_detail(pid).path
    assert window.detail.photo_ids == (pid,)

    reply = type_tag(qtbot, window, "purple backdrop")
    status = window.statusBar().currentMessage()
    assert status == window.libraries.last_notice
    assert status.startswith(f"Added 'purple backdrop' on {path}; scored {PHOTOS} photos")
    assert "from their stored vectors" in status and "no photo was encoded again" in status
    [added] = reply.result
    assert added.new_tag and added.photos_scored == PHOTOS
    assert image_encodes == []  # no photo went through the model

    # Every photo has its score for it, without a re-tag: the inspector shows them all,
    # and another photo's match panel judges it as a scored tag (not a new text).
    report = tag_report(qtbot, window, "purple backdrop")
    assert report.source != "not_scored" and report.threshold is not None
    assert report.scores.size == PHOTOS and len(set(report.scores.tolist())) == PHOTOS
    other = next(int(p) for p, _ in report.above + report.below if int(p) != pid)
    match = ask(qtbot, window.libraries.client.match, other, ["purple backdrop"])[0]
    assert match["rule"] == "tag" and match["threshold"] == report.threshold
    score = dict(report.above + report.below)[other]
    assert abs(match["score"] - score) < 1e-5
    # Those it was suggested to (none, or a few) carry it with their score.
    tag_id = next(t.id for t in window.libraries.queries.tags() if t.name == "purple backdrop")
    carriers = set(window.libraries.queries.photo_ids(PhotoFilter(tags=(tag_id,))).tolist())
    assert pid in carriers and len(carriers - {pid}) == added.added
    for carrier in carriers - {pid}:
        cell = {t.name: t for t in window.libraries.queries.photo_tags(carrier)}
        assert cell["purple backdrop"].state == "suggested"
        assert cell["purple backdrop"].score is not None
    chips = {c.info.name: c.info for c in window.detail.chip_widgets()}
    assert chips["purple backdrop"].state == "accepted"
    assert chips["purple backdrop"].score is not None

    # Undo takes the tag out again, as it does a tag added without the model.
    with qtbot.waitSignal(window.libraries.correction_done, timeout=30_000):
        window.act_undo.trigger()
    assert "Undid" in window.libraries.last_notice
    assert "purple backdrop" not in {c.info.name for c in window.detail.chip_widgets()}
    assert "purple backdrop" not in {t.name for t in window.libraries.queries.tags()}


def test_a_typed_tag_waits_for_the_model_and_is_scored_once_it_is_loaded(
    qtbot, make_window, indexed_folder: Path
) -> None:
    window = open_indexed(qtbot, make_window, indexed_folder)
    qtbot.waitUntil(lambda: window.job.label.text() == "Watching the folder", timeout=30_000)
    assert window.libraries.model_state != "ready"
    notices: list[str] = []
    window.libraries.notice_shown.connect(lambda text, _level: notices.append(text))
    first_photo(window)

    reply = type_tag(qtbot, window, "purple backdrop")
    status = window.statusBar().currentMessage()
    assert status.endswith("a new tag, not scored yet; it will be scored when the model is loaded.")
    [added] = reply.result
    assert added.new_tag and added.photos_scored == 0
    assert window.libraries.model_state != "ready"  # a correction does not load the model
    assert tag_report(qtbot, window, "purple backdrop").source == "not_scored"

    load_the_model(qtbot, window)
    qtbot.waitUntil(
        lambda: any("'purple backdrop' was waiting for it" in n for n in notices),
        timeout=30_000,
    )
    report = tag_report(qtbot, window, "purple backdrop")
    assert report.source != "not_scored" and report.scores.size == PHOTOS


def test_a_new_name_asks_words_or_photos(
    qtbot, make_window, indexed_folder: Path, monkeypatch
) -> None:
    """A name new to the vocabulary asks how it is to be found: learned from the photo
    (a tag without prompts), by its words, or not added at all; a known one does not."""
    from albumtagger.app import photo_menu

    window = open_indexed(qtbot, make_window, indexed_folder)
    pid = first_photo(window)
    asked: list[str] = []
    answer = {"now": photo_menu.LEARN_FROM_PHOTOS}

    def ask_how(name, photos, parent):
        asked.append(name)
        return answer["now"]

    monkeypatch.setattr(photo_menu, "ask_how_to_learn", ask_how)
    type_tag(qtbot, window, "Grandma")
    assert asked == ["Grandma"]
    tags = {t.name: t for t in window.libraries.queries.photo_tags(pid)}
    assert tags["grandma"].state == "accepted"
    report = tag_report(qtbot, window, "grandma")
    assert report.prompts == ()  # learned from photos, never from its name
    answer["now"] = None  # cancelled: nothing happens
    window.detail.add_field.setText("Uncle Bob")
    qtbot.keyClick(window.detail.add_field, Qt.Key.Key_Return)
    assert asked == ["Grandma", "Uncle Bob"]
    assert "uncle bob" not in {t.name for t in window.libraries.queries.tags()}
    type_tag(qtbot, window, "grandma")  # known now: no question
    assert asked == ["Grandma", "Uncle Bob"]
