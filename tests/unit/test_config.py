"""Settings: saved as TOML, read back the same, validated when loaded."""

from __future__ import annotations

from pathlib import Path

import pytest

from albumtagger.config import (
    Settings,
    keep_section,
    load_settings,
    replace_section,
    save_settings,
)
from albumtagger.errors import UserError


def test_saved_settings_load_back_the_same(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    settings = replace_section(Settings(), "model", model='C:\\models\\"gme"', max_image_tokens=512)
    settings = replace_section(settings, "thresholds", preference="recall", max_tags=7)
    settings = replace_section(settings, "watch", force_polling=True)
    save_settings(settings, path)
    assert load_settings(path, environ={}) == settings
    assert "device" not in path.read_text()  # defaults are not written


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[model]\nmin_image_tokens = 600\nmax_image_tokens = 500\n", "min_image_tokens"),
        ('[model]\ndevice = "gpu"\n', "model.device"),
        ('[thresholds]\npreference = "sometimes"\n', "preference"),
        ("[watch]\npoll_seconds = 0\n", "watch.poll_seconds"),
    ],
)
def test_bad_settings_are_refused_when_loaded(tmp_path: Path, text: str, words: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(UserError, match=words):
        load_settings(path, environ={})


def test_saving_refuses_what_loading_would(tmp_path: Path) -> None:
    bad = replace_section(Settings(), "model", dtype="int3")
    with pytest.raises(UserError, match="dtype"):
        save_settings(bad, tmp_path / "config.toml")
    assert not (tmp_path / "config.toml").exists()


def test_watching_can_be_turned_off_in_the_file_or_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    assert Settings().watch.enabled
    save_settings(replace_section(Settings(), "watch", enabled=False), path)
    assert "enabled = false" in path.read_text()
    assert not load_settings(path, environ={}).watch.enabled
    assert load_settings(path, environ={"ALBUMTAGGER_WATCH_ENABLED": "yes"}).watch.enabled


def test_keep_section_takes_one_section_from_another(tmp_path: Path) -> None:
    mine = replace_section(Settings(), "model", model="/models/gme", device="cpu")
    theirs = replace_section(Settings(), "thresholds", max_tags=4)
    theirs = replace_section(theirs, "model", device="cuda")
    merged = keep_section(theirs, "model", mine)
    assert merged.model == mine.model
    assert merged.thresholds.max_tags == 4
    assert theirs.model.device == "cuda"  # the sources are left as they were
