"""The settings dialog: saved through the settings file and read back the same, Cancel
writes nothing, refused values are shown and not saved, the model check runs in a process
of its own (ended after, or when the dialog closes); in the window, thresholds re-decide
the open library and watching stops at once."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from PySide6.QtCore import QCoreApplication, QEvent, Qt
from PySide6.QtWidgets import QDialogButtonBox

from albumtagger.app.settings_dialog import SettingsDialog
from albumtagger.config import Settings, config_path, load_settings, replace_section
from albumtagger.library.db.queries import LibraryQueries, PhotoFilter
from tests.conftest import GOLDEN_MODEL, make_photo
from tests.qt.conftest import PHOTOS


def dialog_for(qtbot, path: Path, settings: Settings | None = None, **kwargs) -> SettingsDialog:
    dialog = SettingsDialog(settings or Settings(), path, environ={}, **kwargs)
    qtbot.addWidget(dialog)
    dialog.show()
    return dialog


def press(dialog: SettingsDialog, which: QDialogButtonBox.StandardButton) -> None:
    dialog.buttons.button(which).click()


OK = QDialogButtonBox.StandardButton.Ok
CANCEL = QDialogButtonBox.StandardButton.Cancel


def test_settings_round_trip_through_the_file(qtbot, tmp_path: Path) -> None:
    path = tmp_path / "config" / "config.toml"
    dialog = dialog_for(qtbot, path)
    dialog.model_edit.setText(str(GOLDEN_MODEL))
    dialog.device.setCurrentIndex(dialog.device.findData("cpu"))
    dialog.dtype.setCurrentIndex(dialog.dtype.findData("int8"))
    dialog.min_tokens.setValue(64)
    dialog.max_tokens.setValue(512)
    dialog.coarse.setCurrentIndex(dialog.coarse.findData("off"))
    dialog.first_pass.setValue(32)
    dialog.preference.setCurrentIndex(dialog.preference.findData("recall"))
    dialog.base.setValue(0.3)
    dialog.max_tags.setValue(7)
    dialog.min_tags.setValue(2)
    dialog.fallback_factor.setValue(0.7)
    dialog.fallback_tags.setValue(4)
    dialog.watch.setChecked(False)
    dialog.xmp.setChecked(True)
    dialog.xmp_suggested.setChecked(True)
    dialog.follow_links.setChecked(True)
    assert dialog.advance.isChecked()
    dialog.advance.setChecked(False)
    with qtbot.waitSignal(dialog.saved) as saved:
        press(dialog, OK)
    assert not dialog.isVisible()

    expected = replace_section(
        Settings(),
        "model",
        model=str(GOLDEN_MODEL),
        device="cpu",
        dtype="int8",
        min_image_tokens=64,
        max_image_tokens=512,
        coarse_first="off",
        first_pass_tokens=32,
    )
    expected = replace_section(
        expected,
        "thresholds",
        preference="recall",
        base_threshold=0.3,
        max_tags=7,
        min_tags=2,
        fallback_factor=0.7,
        fallback_tags=4,
    )
    expected = replace_section(expected, "watch", enabled=False)
    expected = replace_section(expected, "xmp", write_on_change=True, include_suggested=True)
    expected = replace_section(expected, "library", follow_links_outside=True)
    expected = replace_section(expected, "corrections", advance_after_last=False)
    assert saved.args[0] == expected
    assert load_settings(path, environ={}) == expected

    again = dialog_for(qtbot, path, load_settings(path, environ={}))
    assert again.values() == expected
    assert again.model_edit.text() == str(GOLDEN_MODEL)
    assert again.dtype.currentData() == "int8"
    assert again.max_tokens.value() == 512
    assert again.preference.currentData() == "recall"
    assert not again.watch.isChecked()
    assert again.follow_links.isChecked()
    assert not again.advance.isChecked()
    # OK without a change writes the same settings back
    press(again, OK)
    assert load_settings(path, environ={}) == expected


def test_fields_the_dialog_does_not_show_are_kept(qtbot, tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[thresholds]\nprior = 'robust'\nbase_threshold = 0.2345\n[watch]\n")
    dialog = dialog_for(qtbot, path, load_settings(path, environ={}))
    dialog.max_tags.setValue(4)
    press(dialog, OK)
    settings = load_settings(path, environ={})
    assert settings.thresholds.prior == "robust"
    assert settings.thresholds.base_threshold == 0.2345  # untouched: not rounded
    assert settings.thresholds.max_tags == 4


def test_cancel_writes_nothing(qtbot, tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    dialog = dialog_for(qtbot, path)
    dialog.max_tags.setValue(3)
    dialog.watch.setChecked(False)
    with qtbot.assertNotEmitted(dialog.saved):
        press(dialog, CANCEL)
    assert not path.exists()
    path.write_text("[thresholds]\nmax_tags = 8\n")
    before = path.read_bytes()
    dialog = dialog_for(qtbot, path, load_settings(path, environ={}))
    dialog.max_tags.setValue(2)
    press(dialog, CANCEL)
    assert path.read_bytes() == before


def test_a_refused_value_is_shown_by_its_field_and_nothing_is_saved(qtbot, tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    dialog = dialog_for(qtbot, path)
    dialog.tabs.setCurrentIndex(2)
    dialog.max_tags.setValue(5)
    dialog.min_tokens.setValue(600)
    dialog.max_tokens.setValue(500)
    with qtbot.assertNotEmitted(dialog.saved):
        press(dialog, OK)
    assert dialog.isVisible()
    assert not path.exists()
    message = dialog.error_text("model.min_image_tokens")
    assert "min_image_tokens" in message and "max_image_tokens" in message
    assert dialog.errors["model.min_image_tokens"].isVisible()
    assert dialog.tabs.currentIndex() == 0  # the page of the refused field
    assert dialog.error_text("thresholds.max_tags") == ""
    # fixed, it saves, and the message goes
    dialog.max_tokens.setValue(1024)
    press(dialog, OK)
    assert dialog.error_text("model.min_image_tokens") == ""
    assert load_settings(path, environ={}).model.max_image_tokens == 1024


def test_an_unwritable_settings_file_says_so(qtbot, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    dialog = dialog_for(qtbot, blocker / "config.toml")
    press(dialog, OK)
    assert dialog.isVisible()
    assert "Cannot write the settings file" in dialog.general_error.text()


def test_restore_defaults_fills_the_defaults(qtbot, tmp_path: Path) -> None:
    changed = replace_section(Settings(), "thresholds", max_tags=2, preference="recall")
    dialog = dialog_for(qtbot, tmp_path / "config.toml", changed)
    dialog.buttons.button(QDialogButtonBox.StandardButton.RestoreDefaults).click()
    assert dialog.values() == Settings()


def test_the_environment_overrides_are_named(qtbot, tmp_path: Path) -> None:
    dialog = SettingsDialog(
        Settings(), tmp_path / "config.toml", environ={"ALBUMTAGGER_DEVICE": "cpu"}
    )
    qtbot.addWidget(dialog)
    assert "ALBUMTAGGER_DEVICE" in dialog.device.toolTip()
    note = dialog.findChild(type(dialog.check_result), "environment_note")
    assert note is not None and "ALBUMTAGGER_DEVICE" in note.text()


def test_model_check_loads_the_golden_checkpoint(qtbot, tmp_path: Path) -> None:
    settings = replace_section(Settings(), "model", device="cpu", dtype="float32")
    dialog = dialog_for(qtbot, tmp_path / "config.toml", settings)
    dialog.model_edit.setText(str(GOLDEN_MODEL))
    with qtbot.waitSignal(dialog.check_finished, timeout=180_000) as result:
        dialog.check_button.click()
        assert not dialog.check_button.isEnabled()  # while it loads, off this thread
    ok, message = result.args
    assert ok, message
    assert "loads" in message and "cpu" in message
    assert dialog.check_result.text().endswith(message)
    assert dialog.check_button.isEnabled()
    assert not (tmp_path / "config.toml").exists()  # a check saves nothing


def test_model_check_loads_in_a_process_of_its_own(
    qtbot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The model is never built in the window's process, and its process ends after."""
    from albumtagger.model import loading
    from albumtagger.model.encoder import GmeEncoder

    built: list[str] = []

    def not_here(*_args: object, **_kwargs: object) -> None:
        built.append("model")
        raise AssertionError("the model was loaded in the window's process")

    monkeypatch.setattr(GmeEncoder, "__init__", not_here)
    monkeypatch.setattr(loading, "load_encoder", not_here)
    torch_before = "torch" in sys.modules
    settings = replace_section(Settings(), "model", device="cpu", dtype="float32")
    dialog = dialog_for(qtbot, tmp_path / "config.toml", settings)
    dialog.model_edit.setText(str(GOLDEN_MODEL))
    with qtbot.waitSignal(dialog.check_finished, timeout=180_000) as result:
        dialog.check_button.click()
        check = dialog.model_check
        assert check is not None and check.process.is_alive()
    ok, message = result.args
    assert ok, message
    assert not built
    if not torch_before:
        assert "torch" not in sys.modules
    assert check.process.exitcode is not None  # it ended: the model is freed
    assert dialog.model_check is None


def test_closing_the_dialog_mid_check_ends_it_cleanly(
    qtbot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    errors: list[object] = []
    monkeypatch.setattr(sys, "excepthook", lambda *args: errors.append(args))
    monkeypatch.setattr(sys, "unraisablehook", errors.append)
    settings = replace_section(Settings(), "model", device="cpu", dtype="float32")
    dialog = SettingsDialog(settings, tmp_path / "config.toml", environ={})
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dialog.show()
    dialog.model_edit.setText(str(GOLDEN_MODEL))
    finished: list[object] = []
    dialog.check_finished.connect(lambda *args: finished.append(args))
    dialog.check_button.click()
    check = dialog.model_check
    assert check is not None and check.process.is_alive()
    dialog.close()
    assert not check.process.is_alive()
    assert check.process.exitcode != 0  # ended before it had loaded the model
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    QCoreApplication.processEvents()
    assert not finished  # the check's process is gone: no reply can come any more
    assert not errors


def test_model_check_fails_on_an_empty_folder(qtbot, tmp_path: Path) -> None:
    empty = tmp_path / "empty model"
    empty.mkdir()
    dialog = dialog_for(qtbot, tmp_path / "config.toml")
    dialog.model_edit.setText(str(empty))
    with qtbot.waitSignal(dialog.check_finished, timeout=180_000) as result:
        dialog.check_button.click()
    ok, message = result.args
    assert not ok
    assert "config.json" in message
    assert "does not load" in dialog.check_result.text()


# -- in the window, over a real sidecar ------------------------------------------------------


def open_indexed(qtbot, make_window, folder: Path, **kwargs):
    window = make_window(**kwargs)
    with qtbot.waitSignal(window.libraries.library_opened, timeout=30_000):
        window.open_folder(folder)
    qtbot.waitUntil(
        lambda: window.model.rowCount() == PHOTOS and not window.browsing.counts_pending(),
        timeout=30_000,
    )
    return window


def suggestions(db_path: Path) -> tuple[int, dict[str, float | None]]:
    """Tags on photos in the sidecar, and each tag's stored threshold."""
    with LibraryQueries(db_path) as q:
        return sum(q.tag_counts(PhotoFilter()).values()), {t.name: t.threshold for t in q.tags()}


def test_threshold_settings_decide_the_open_library_again(
    qtbot, make_window, indexed_folder: Path
) -> None:
    window = open_indexed(qtbot, make_window, indexed_folder)
    db_path = Path(window.libraries.queries.db_path)
    before, thresholds = suggestions(db_path)
    dialog = window.show_settings()
    assert "at once" in dialog.tabs.widget(1).findChild(type(dialog.check_result), "applies").text()
    dialog.preference.setCurrentIndex(dialog.preference.findData("precision"))
    dialog.base.setValue(0.4)
    with qtbot.waitSignal(window.libraries.settings_applied, timeout=30_000) as applied:
        press(dialog, OK)
    assert applied.args[0]["redecided"] > 0
    after, new_thresholds = suggestions(db_path)
    assert after < before  # a higher base: fewer tags, in the sidecar itself
    assert new_thresholds != thresholds
    assert window.libraries.settings.thresholds.preference == "precision"
    assert load_settings(config_path(), environ={}).thresholds.base_threshold == 0.4
    # at most two tags on a photo, with no fallback beyond them
    dialog = window.show_settings()
    dialog.max_tags.setValue(2)
    dialog.min_tags.setValue(1)
    dialog.fallback_tags.setValue(1)
    with qtbot.waitSignal(window.libraries.settings_applied, timeout=30_000):
        press(dialog, OK)
    with LibraryQueries(db_path) as q:
        ids = q.photo_ids(PhotoFilter())
        assert all(s.tag_count <= 2 for s in q.summaries(ids))


def test_watching_off_stops_watch_steps_at_once(qtbot, make_window, indexed_folder: Path) -> None:
    window = open_indexed(qtbot, make_window, indexed_folder)
    qtbot.waitUntil(lambda: window.job.label.text() == "Watching the folder", timeout=30_000)
    session = window.libraries.handle.worker._session
    steps: list[bool] = []
    real_step = session.watch_step

    def counted(*args, **kwargs):
        steps.append(True)
        return real_step(*args, **kwargs)

    session.watch_step = counted
    qtbot.waitUntil(lambda: len(steps) >= 2, timeout=10_000)

    dialog = window.show_settings()
    assert dialog.watch.isChecked()
    dialog.watch.setChecked(False)
    with qtbot.waitSignal(window.libraries.settings_applied, timeout=30_000) as applied:
        press(dialog, OK)
    assert applied.args[0]["watching"] is False
    assert window.job.label.text() == "Ready"
    assert session._keeper is None  # the folder watcher is stopped
    seen = len(steps)
    make_photo(indexed_folder / "new" / "arrived.jpg", seed=900, size=(120, 80))
    # Watching is off: the new photo stays unknown, and no watch step runs (the loop is
    # given the time a watch step would need to notice it).
    qtbot.wait(1500)
    assert len(steps) == seen
    assert window.libraries.queries.count(PhotoFilter(name="arrived")) == 0
    assert not load_settings(config_path(), environ={}).watch.enabled

    # on again: the photo is found and tagged without a restart
    dialog = window.show_settings()
    assert not dialog.watch.isChecked()
    dialog.watch.setChecked(True)
    with qtbot.waitSignal(window.libraries.settings_applied, timeout=30_000):
        press(dialog, OK)
    qtbot.waitUntil(
        lambda: window.libraries.queries.count(PhotoFilter(name="arrived")) == 1, timeout=60_000
    )
    assert len(steps) > seen


def test_a_library_opened_with_watching_off_is_not_watched(
    qtbot, make_window, indexed_folder: Path, tmp_path: Path
) -> None:
    config_path().parent.mkdir(parents=True, exist_ok=True)
    config_path().write_text("[watch]\nenabled = false\n")
    window = open_indexed(qtbot, make_window, indexed_folder)
    assert not window.libraries.settings.watch.enabled
    qtbot.waitUntil(lambda: window.job.label.text() == "Ready", timeout=30_000)
    assert window.libraries.handle.worker._session._keeper is None


def test_model_settings_say_when_they_apply_and_can_reopen(
    qtbot, make_window, indexed_folder: Path
) -> None:
    window = open_indexed(qtbot, make_window, indexed_folder)
    dialog = window.show_settings()
    note = dialog.tabs.widget(0).findChild(type(dialog.check_result), "applies").text()
    assert "next opened" in note and "keeps the model" in note
    assert dialog.reopen.isVisible()
    dialog.dtype.setCurrentIndex(dialog.dtype.findData("bfloat16"))
    dialog.reopen.setChecked(True)
    old = window.libraries.handle
    with qtbot.waitSignal(window.libraries.library_opened, timeout=30_000):
        press(dialog, OK)
    assert window.libraries.handle is not old
    assert load_settings(config_path(), environ={}).model.dtype == "bfloat16"
    assert "reopened" in window.libraries.last_notice
