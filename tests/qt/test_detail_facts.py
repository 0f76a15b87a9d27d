"""The detail panel's file facts: the date taken when the photo says, the file's date
(named as such) when it does not, and the reason of a damaged photo."""

from __future__ import annotations

import datetime as dt

from albumtagger.app.detail import DetailPanel
from albumtagger.library.db.queries import PhotoDetail


def detail(**changes) -> PhotoDetail:
    base = dict(
        id=1,
        path="trip/a.jpg",
        status="ok",
        error=None,
        width=640,
        height=480,
        size=65_000,
        content_hash="h",
        mtime_ns=int(dt.datetime(2022, 3, 4, 5, 6).timestamp() * 1e9),
        added_at=0.0,
        updated_at=0.0,
        taken_at=None,
    )
    base.update(changes)
    return PhotoDetail(**base)


def test_date_taken_or_the_files_date(qtbot) -> None:
    panel = DetailPanel()
    qtbot.addWidget(panel)
    panel.show_photo(detail(taken_at=dt.datetime(2019, 8, 1, 17, 30).timestamp()), [], None)
    assert "Taken: 2019-08-01 17:30" in panel.facts.text()
    panel.show_photo(detail(id=2), [], None)
    facts = panel.facts.text()
    assert "File date: 2022-03-04 05:06" in facts and "Taken" not in facts
    panel.show_photo(detail(id=3, status="damaged", error="truncated JPEG"), [], None)
    assert "truncated JPEG" in panel.facts.text()


def test_a_refresh_that_changed_nothing_keeps_the_chips(qtbot) -> None:
    """While photos are tagged the window refreshes the shown photo after every batch;
    rebuilding its chips each time would relayout and repaint the panel for nothing."""
    from albumtagger.library.db.queries import PhotoTagInfo

    def tag(name: str, state: str = "suggested") -> PhotoTagInfo:
        tag_id = {"dog": 1, "beach": 2}[name]
        return PhotoTagInfo(tag_id, name, 0.4, state, "auto", False, "high", 0.3)

    panel = DetailPanel()
    qtbot.addWidget(panel)
    panel.show_photo(detail(), [tag("dog"), tag("beach")], None)
    chips = panel.chip_widgets()
    panel.show_photo(detail(), [tag("dog"), tag("beach")], None, reload=False)
    assert panel.chip_widgets() == chips
    panel.show_photo(detail(), [tag("dog", "accepted"), tag("beach")], None, reload=False)
    assert panel.chip_widgets() != chips
    assert panel.chip_widgets()[0].info.state == "accepted"


def test_the_status_and_the_tags_never_disagree(qtbot) -> None:
    """A user read "Status: tagged" beside "No tags yet"."""
    from albumtagger.library.db.queries import PhotoTagInfo

    panel = DetailPanel()
    qtbot.addWidget(panel)
    panel.show()
    panel.show_photo(detail(), [], None)
    assert "Status: scored; no tag passed its threshold" in panel.facts.text()
    assert panel.no_tags.isVisible() and "passed its threshold" in panel.no_tags.text()
    panel.show_photo(detail(id=2, status="pending"), [], None)
    assert "Status: waiting to be tagged" in panel.facts.text()
    assert "waiting to be tagged" in panel.no_tags.text()
    dog = PhotoTagInfo(1, "dog", 0.4, "suggested", "auto", False, "high", 0.3)
    panel.show_photo(detail(id=3), [dog], None)
    assert "Status: tagged" in panel.facts.text() and not panel.no_tags.isVisible()
