"""The status bar's job part: progress, and when every photo will have tags and be refined,
in a slot that keeps its width."""

from __future__ import annotations

from albumtagger.app.pages import JobStatus, time_to_tags_text
from albumtagger.events import JobProgress


def progress(tags: float | None, refined: float | None, phase: str = "first pass") -> JobProgress:
    return JobProgress(
        "index", phase, 120, 1000, 2.5, 352.0, tags_eta_s=tags, refined_eta_s=refined
    )


def test_the_estimate_texts() -> None:
    assert (
        time_to_tags_text(progress(720, 7200 + 720))
        == "Tags for all photos in about 12 min; refined in about 2 h 12 min"
    )
    assert time_to_tags_text(progress(720, 720)) == "Tags for all photos in about 12 min"
    assert time_to_tags_text(progress(720, None)) == "Tags for all photos in about 12 min"
    assert (
        time_to_tags_text(progress(0.0, 5400, "refine"))
        == "All photos have tags; refined in about 1 h 30 min"
    )
    assert time_to_tags_text(progress(None, None)) == ""
    assert time_to_tags_text(progress(0.0, 0.0, "refine")) == ""


def test_the_estimate_keeps_its_place(qtbot) -> None:
    status = JobStatus()
    qtbot.addWidget(status)
    status.show()
    status.set_progress(progress(None, None))  # the job's own time left, for now
    qtbot.waitExposed(status)
    width, bar_x = status.estimate.width(), status.bar.x()
    assert status.estimate.isVisible() and status.estimate.text() == "about 5 min left"
    for tags, refined in ((9.0, 40.0), (720, 7200 + 720), (0.0, 50_000)):
        status.set_progress(progress(tags, refined))
        status.layout().activate()
        assert status.estimate.text() == time_to_tags_text(progress(tags, refined))
        assert (status.estimate.width(), status.bar.x()) == (width, bar_x)
    # the progress text stays; the time left is the estimate's to say
    assert status.label.text() == "First pass 120 / 1,000"
    assert status.rate.text() == "2.5 photos/s"
    status.set_progress(progress(None, None))
    assert status.rate.text() == "2.5 photos/s"
    assert status.estimate.text() == "about 5 min left"
    status.set_idle("Watching the folder")
    assert not status.estimate.isVisible()
