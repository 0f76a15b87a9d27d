"""The status bar's job controls hold still while a job runs: progress, rate and time left,
estimate, Pause and Cancel each keep their slot, whatever the texts say, shown or hidden,
paused or not."""

from __future__ import annotations

from PySide6.QtCore import QPoint, QRect

from albumtagger.events import JobProgress


def tagging(done: int, rate: float | None = None, eta: float | None = None, **kw) -> JobProgress:
    return JobProgress("index", "tag", done, 1000, rate, eta, **kw)


def test_the_job_controls_never_move(qtbot, make_window) -> None:
    window = make_window()
    qtbot.waitExposed(window)
    job, lib = window.job, window.libraries
    parts = {
        "pause": job.pause_button,
        "cancel": job.cancel_button,
        "bar": job.bar,
        "rate": job.rate,
        "estimate": job.estimate,
    }

    def places() -> dict[str, QRect]:
        window.statusBar().layout().activate()
        job.layout().activate()
        job.controls.layout().activate()
        return {name: QRect(w.mapTo(window, QPoint(0, 0)), w.size()) for name, w in parts.items()}

    lib.event.emit(JobProgress("index", "scan", 0, 0))  # no count, no rate yet
    assert job.pause_button.isVisible() and job.cancel_button.isVisible()
    first = places()
    steps = [
        lambda: lib.event.emit(tagging(10)),
        lambda: lib.event.emit(tagging(20, 2.5, 352.0)),  # rate and time left appear
        lambda: lib.event.emit(tagging(30, 12.5, 56_000.0)),
        lambda: lib.event.emit(tagging(40, 2.5, 300.0, tags_eta_s=9.0, refined_eta_s=7200.0)),
        lambda: lib.event.emit(tagging(50)),  # and go again
        lambda: lib.event.emit(JobProgress("index", "model", 0, 0)),
        lib.pause,
        lambda: lib.event.emit(tagging(50, paused=True)),
        lib.resume,
        lambda: lib.event.emit(tagging(60, 2.5, 400.0)),
        lambda: lib.background_status.emit("Also tagging Holidays 2019: 1,234/56,789"),
        lambda: window.statusBar().showMessage("A long notice " * 12),
        lambda: lib.event.emit(tagging(70)),
        lib.pause,
        lambda: lib.job_idle.emit("Watching the folder"),  # paused and idle: Pause stays
        lib.resume,
        lambda: lib.event.emit(tagging(80, 99.9, 359_999.0)),
    ]
    for step in steps:
        step()
        assert job.pause_button.isVisible()
        assert places() == first
    assert job.rate.text() == "99.9 photos/s"
    assert job.estimate.text() == "about 99 h 59 min left"
    lib.pause()
    assert job.pause_button.text() == "Resume" and job.cancel_button.isVisible()
    assert places() == first
