"""Near duplicates: each group keeps one photo (the sharpest, the largest, or the one
clicked); the others go to the system's trash after a confirmation, or get a tag."""

from __future__ import annotations

from pathlib import Path

import pytest
import send2trash
import send2trash.plat_other
from PIL import Image, ImageFilter
from PySide6.QtCore import Qt

from albumtagger.app.duplicates import DuplicatesDialog
from albumtagger.library.db.queries import LibraryQueries, PhotoFilter
from albumtagger.library.keep import KeepFacts, pick_keep, sharpness
from tests.conftest import make_photo
from tests.qt.conftest import wait_indexed

SHARP, BLURRED, BIG = "k_sharp.jpg", "k_blurred.jpg", "k_big_blurred.jpg"
DISTINCT = [f"d_{i}.jpg" for i in range(4)]


@pytest.fixture
def copies(tmp_path: Path) -> Path:
    """Four distinct photos and a group of three: a sharp photo, a blurred copy and a
    larger blurred copy."""
    folder = tmp_path / "copies"
    for i, name in enumerate(DISTINCT):
        make_photo(folder / name, seed=100 + i, size=(128, 96))
    sharp = Image.open(make_photo(folder / SHARP, seed=7, size=(128, 96))).convert("RGB")
    blurred = sharp.filter(ImageFilter.GaussianBlur(1.2))
    blurred.save(folder / BLURRED, quality=95)
    blurred.resize((160, 120), Image.Resampling.BICUBIC).save(folder / BIG, quality=95)
    return folder


@pytest.fixture
def trash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The system's trash in a temporary folder (send2trash reads XDG_DATA_HOME once)."""
    data = tmp_path / "xdg-data"
    data.mkdir()
    monkeypatch.setenv("XDG_DATA_HOME", str(data))
    monkeypatch.setenv("HOME", str(tmp_path))
    po = send2trash.plat_other
    monkeypatch.setattr(po, "XDG_DATA_HOME", bytes(data))
    monkeypatch.setattr(po, "HOMETRASH_B", bytes(data / "Trash"))
    monkeypatch.setattr(po, "HOMETRASH", str(data / "Trash"))
    return data / "Trash"


def test_sharpness_and_the_keep_rules(copies: Path) -> None:
    s = {n: sharpness(copies / n) for n in (SHARP, BLURRED, BIG)}
    assert s[SHARP] > s[BLURRED] > 0
    assert sharpness(copies / "nothing.jpg") == -1.0
    facts = [
        KeepFacts(1, 128 * 96, 9000, s[SHARP]),
        KeepFacts(2, 128 * 96, 4000, s[BLURRED]),
        KeepFacts(3, 160 * 120, 5000, s[BIG]),
    ]
    assert pick_keep(facts, "sharpest") == 1
    assert pick_keep(facts, "largest") == 3
    same = [KeepFacts(5, 10, 10, 1.0), KeepFacts(4, 10, 10, 1.0)]
    assert pick_keep(same, "largest") == 4  # ties: the lower id


def open_group(qtbot, make_window, folder: Path) -> tuple[object, DuplicatesDialog]:
    window = make_window()
    window.open_folder(folder)
    wait_indexed(qtbot, window, len(DISTINCT) + 3)
    window.act_duplicates.trigger()
    dialog = window.duplicates
    assert isinstance(dialog, DuplicatesDialog)
    with qtbot.waitSignal(dialog.keep_chosen, timeout=30_000):
        dialog.similarity.setValue(0.98)
    assert [set(r) for r in dialog.tile_names()] == [{SHARP, BLURRED, BIG}]
    return window, dialog


def ids_by_name(dialog: DuplicatesDialog) -> dict[str, int]:
    return {Path(t.path).name: t.photo_id for t in dialog.rows[0].tiles}


def test_keep_sharpest_largest_or_by_hand(qtbot, make_window, copies: Path) -> None:
    window, dialog = open_group(qtbot, make_window, copies)
    ids = ids_by_name(dialog)
    row = dialog.rows[0]
    assert dialog.keep == {0: ids[SHARP]}
    assert [t.isChecked() for t in row.tiles] == [t.photo_id == ids[SHARP] for t in row.tiles]
    assert row.keeping.text() == f"keeping {SHARP}"
    assert sorted(dialog.others()) == sorted([ids[BLURRED], ids[BIG]])

    dialog.rule.setCurrentIndex(dialog.rule.findData("largest"))
    assert dialog.keep == {0: ids[BIG]}

    blurred = next(t for t in row.tiles if t.photo_id == ids[BLURRED])
    qtbot.mouseClick(blurred, Qt.MouseButton.LeftButton)
    assert dialog.keep == {0: ids[BLURRED]}
    assert blurred.isChecked()
    assert row.keeping.text() == f"keeping {BLURRED} (your pick)"
    assert window.grid.selected_ids() == [ids[BLURRED]]  # and selected in the grid
    dialog.reject()


def test_the_others_go_to_the_trash_after_asking(
    qtbot, make_window, copies: Path, trash: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    window, dialog = open_group(qtbot, make_window, copies)
    ids = ids_by_name(dialog)
    asked: list[str] = []

    # Cancel: nothing changes.
    monkeypatch.setattr(dialog, "_confirm", lambda title, text, action: asked.append(text))
    dialog.trash.click()
    assert asked and asked[0].startswith("Move 2 photos to the trash?")
    assert all((copies / n).exists() for n in (SHARP, BLURRED, BIG))
    assert not trash.exists()
    assert window.libraries.queries.count(PhotoFilter()) == len(DISTINCT) + 3

    monkeypatch.setattr(dialog, "_confirm", lambda title, text, action: True)
    with qtbot.waitSignal(dialog.acted, timeout=30_000):
        dialog.trash.click()
    assert dialog.outcome.text() == "2 photos moved to the trash."
    assert (copies / SHARP).exists()
    for name in (BLURRED, BIG):
        assert not (copies / name).exists()
        assert (trash / "files" / name).is_file()
    with LibraryQueries(copies / ".albumtagger" / "library.sqlite") as q:
        paths = {s.path for s in q.summaries(q.photo_ids(PhotoFilter()))}
    assert paths == {SHARP, *DISTINCT}
    qtbot.waitUntil(lambda: window.model.rowCount() == len(DISTINCT) + 1, timeout=30_000)
    assert ids[BLURRED] not in window.model.ids.tolist()
    qtbot.waitUntil(lambda: dialog.groups == [], timeout=30_000)
    dialog.reject()


def test_no_trash_changes_nothing(
    qtbot, make_window, copies: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    window, dialog = open_group(qtbot, make_window, copies)

    def refuse(path: str) -> None:
        raise send2trash.TrashPermissionError(path)

    monkeypatch.setattr(send2trash, "send2trash", refuse)
    monkeypatch.setattr(dialog, "_confirm", lambda title, text, action: True)
    with qtbot.waitSignal(dialog.acted, timeout=30_000):
        dialog.trash.click()
    assert "The trash is not available" in dialog.outcome.text()
    assert dialog.outcome.text().endswith("nothing changed.")
    assert all((copies / n).exists() for n in (SHARP, BLURRED, BIG))
    assert window.libraries.queries.count(PhotoFilter()) == len(DISTINCT) + 3
    dialog.reject()


def test_tag_the_others(qtbot, make_window, copies: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    window, dialog = open_group(qtbot, make_window, copies)
    ids = ids_by_name(dialog)
    monkeypatch.setattr(dialog, "_ask_tag", lambda: "duplicate")
    with qtbot.waitSignal(dialog.acted, timeout=30_000):
        dialog.tag.click()
    assert dialog.outcome.text() == "2 photos tagged \u201cduplicate\u201d."
    q = window.libraries.queries
    for name, tagged in ((SHARP, False), (BLURRED, True), (BIG, True)):
        tags = {t.name: t.state for t in q.photo_tags(ids[name])}
        assert (tags.get("duplicate") == "accepted") == tagged, (name, tags)
    dialog.reject()
