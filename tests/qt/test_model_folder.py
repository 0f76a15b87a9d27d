"""File > Choose the model folder checks the folder: one that holds no GME checkpoint is
refused with a message that says what is missing and what the folder holds instead;
the checkpoint's own folder is taken as before."""

from __future__ import annotations

from pathlib import Path

import pytest

import albumtagger.app.window as window_module
from albumtagger.errors import ModelError
from albumtagger.model.loading import check_model_folder
from tests.conftest import GOLDEN, GOLDEN_MODEL, make_photo


def choosing(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """The folder dialog answers `folder`."""

    class Chooser:
        @staticmethod
        def getExistingDirectory(*_args: object) -> str:
            return str(folder)

    monkeypatch.setattr(window_module, "QFileDialog", Chooser)


def test_a_folder_of_photos_is_refused_with_what_it_holds(
    qtbot, make_window, qsettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    photos = tmp_path / "Pictures"
    for i in range(12):
        make_photo(photos / f"p{i:02d}.jpg", seed=i)
    window = make_window(auto_index=False, watch=False)
    model_before = window.libraries.settings.model.model
    choosing(monkeypatch, photos)
    window.act_model.trigger()
    box = window.model_folder_box
    assert box is not None
    qtbot.waitUntil(box.isVisible)
    assert "no config.json" in box.text()
    assert "12 JPEG files" in box.text()
    assert "choose the folder you downloaded the model into" in box.text()
    assert qsettings.value("model/folder") is None  # nothing changed
    assert window.libraries.settings.model.model == model_before
    box.close()


def test_the_checkpoint_folder_is_taken(
    qtbot, make_window, qsettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    window = make_window(auto_index=False, watch=False)
    choosing(monkeypatch, GOLDEN_MODEL)
    window.act_model.trigger()
    assert window.model_folder_box is None
    assert qsettings.value("model/folder") == str(GOLDEN_MODEL)
    assert window.libraries.settings.model.model == str(GOLDEN_MODEL)


def test_the_folder_above_a_checkpoint_points_to_it() -> None:
    with pytest.raises(ModelError) as refused:
        check_model_folder(GOLDEN)
    assert "\u201cmodel\u201d has a config.json" in str(refused.value)


def test_a_checkpoint_without_weights_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "half"
    folder.mkdir()
    (folder / "config.json").write_text((GOLDEN_MODEL / "config.json").read_text())
    with pytest.raises(ModelError) as refused:
        check_model_folder(folder)
    assert "no .safetensors weights" in str(refused.value)
    assert "It holds 1 JSON file" in str(refused.value)
