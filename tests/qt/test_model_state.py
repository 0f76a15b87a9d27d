"""The model's state is said in one place and every visible part of the window agrees with
it: no banner saying it could not be loaded while the status bar says it is loading, no
"ready" on one side of the status bar and "loading" on the other. The download hint names
the command the installed huggingface_hub ships."""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path

from albumtagger.app.worker import Call, Reply
from albumtagger.events import JobProgress, ModelStatus
from albumtagger.model.download import download_hint

SAYS = {
    "loading": ("loading the", "loading it"),
    "unavailable": ("could not be loaded",),
    "ready": ("model ready",),
}


def visible_texts(window) -> dict[str, str]:
    """What the window shows now, by where."""
    parts = {
        "banner": window.banner.text,
        "download panel": window.download_panel.text,
        "job": window.job.label,
        "rate": window.job.rate,
        "estimate": window.job.estimate,
        "background": window.background_status,
    }
    texts = {name: w.text() for name, w in parts.items() if w.isVisible() and w.text()}
    texts["status bar"] = window.statusBar().currentMessage()
    return texts


def states_said(window) -> dict[str, set[str]]:
    """Which model states each visible part speaks of."""
    said = {}
    for where, text in visible_texts(window).items():
        states = {s for s, words in SAYS.items() if any(w in text.lower() for w in words)}
        if states:
            said[where] = states
    return said


def test_every_part_of_the_window_tells_the_same_model_state(
    qtbot, make_window, indexed_folder: Path
) -> None:
    window = make_window(auto_index=False, watch=False)
    with qtbot.waitSignal(window.libraries.library_opened, timeout=30_000):
        window.open_folder(indexed_folder)
    lib = window.libraries
    reason = "The model folder /nowhere has no config.json"

    def step(*events) -> dict[str, set[str]]:
        for ev in events:
            lib._event_from(ev)
        return states_said(window)

    # the index job starts by loading the model
    said = step(JobProgress("index", "model", 0, 0), ModelStatus("loading", "Loading the model X"))
    assert said == {"banner": {"loading"}}
    said = step(ModelStatus("unavailable", reason))
    assert said == {"banner": {"unavailable"}}
    assert reason in window.banner.text.text()
    # a search that needs the model fails: the banner says why, not a notice beside it
    window.statusBar().clearMessage()
    lib.show_error(Reply(Call("search", lambda s: None), error=reason, error_kind="model"))
    assert window.statusBar().currentMessage() == ""
    assert states_said(window) == {"banner": {"unavailable"}}
    said = step(ModelStatus("loading", "Loading the model X"))
    assert said == {"banner": {"loading"}}
    said = step(JobProgress("index", "tag", 0, 12), ModelStatus("ready", "Model ready (cpu)"))
    assert said == {} and not window.banner.isVisible()
    # a failure after all: the job said nothing of the model, the banner says why
    said = step(ModelStatus("unavailable", reason))
    assert said == {"banner": {"unavailable"}}
    # closed by the person, it stays closed until the state changes
    window.banner.closed.emit()
    window.banner.hide()
    assert step(ModelStatus("unavailable", reason)) == {}
    assert step(ModelStatus("loading", "Loading the model X")) == {"banner": {"loading"}}


def test_the_download_hint_names_the_hf_command() -> None:
    hint = download_hint("Alibaba-NLP/gme-Qwen2-VL-2B-Instruct", "main")
    assert "`hf download Alibaba-NLP/gme-Qwen2-VL-2B-Instruct --local-dir FOLDER`" in hint
    assert "huggingface-cli" not in hint
    scripts = {e.name: e.value for e in entry_points(group="console_scripts")}
    assert scripts.get("hf", "").startswith("huggingface_hub")
