"""A photo whose file is gone (marked missing) is neither shown nor counted anywhere in the
window until the Missing quick filter is on: the grid, "N photos", the tags panel's
counts, the quick filters' counts and the folder tree agree."""

from __future__ import annotations

from pathlib import Path

from albumtagger.library.db.queries import PhotoFilter
from tests.qt.conftest import PHOTOS


def test_a_missing_photo_is_not_counted_until_the_missing_filter_is_on(
    qtbot, make_window, indexed_folder: Path
) -> None:
    window = make_window()
    window.act_folders.trigger()
    with qtbot.waitSignal(window.libraries.library_opened, timeout=30_000):
        window.open_folder(indexed_folder)
    qtbot.waitUntil(lambda: window.job.label.text() == "Watching the folder", timeout=60_000)
    queries = window.libraries.queries
    assert queries is not None
    ids = queries.photo_ids(PhotoFilter(folder="trip"))
    gone = int(ids[0])
    detail = queries.photo_detail(gone)
    assert detail is not None
    carried = [t.tag_id for t in queries.photo_tags(gone) if t.carried]
    assert carried
    tag = carried[0]
    every_before = queries.tag_counts(PhotoFilter())[tag]

    (indexed_folder / detail.path).unlink()
    qtbot.waitUntil(
        lambda: queries.quick_counts().missing == 1 and window.model.rowCount() == PHOTOS - 1,
        timeout=60_000,
    )
    qtbot.waitUntil(lambda: not window.browsing.counts_pending(), timeout=30_000)
    shown = PHOTOS - 1

    def settled() -> bool:
        return (
            window.filter_bar.count.text() == f"{shown} photos"
            and window.tags_panel.model.count(tag) == every_before - 1
            and window.folder_tree.model.count("trip") == 3
            and window.folder_tree.model.count("") == shown
        )

    qtbot.waitUntil(settled, timeout=30_000)
    assert gone not in [int(i) for i in window.model.ids]
    assert window.browsing.total == shown
    # the tags panel counts what the grid shows; the sidecar still has the tag on it
    assert queries.tag_counts(PhotoFilter())[tag] == every_before
    # the quick filters count within what is shown, and say how many are missing
    quick = window.tags_panel.quick
    assert quick["missing"].text() == "Missing  (1)"
    assert quick["untagged"].text() == "Untagged  (0)"

    with qtbot.waitSignal(window.browsing.filter_applied, timeout=30_000):
        window.tags_panel.set_quick("missing", True)
    assert [int(i) for i in window.model.ids] == [gone]
    assert window.filter_bar.count.text() == f"1 of {shown} photos"
    qtbot.waitUntil(lambda: window.tags_panel.model.count(tag) == 1, timeout=30_000)
    qtbot.waitUntil(lambda: window.folder_tree.model.count("trip") == 1, timeout=30_000)

    with qtbot.waitSignal(window.browsing.filter_applied, timeout=30_000):
        window.tags_panel.set_quick("missing", False)
    assert window.model.rowCount() == shown
    qtbot.waitUntil(settled, timeout=30_000)
