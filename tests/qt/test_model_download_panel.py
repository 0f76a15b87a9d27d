"""The model download panel, with the real huggingface_hub against a local fake hub:
offer with the size, progress, cancel, resume, done; the window offers nothing when the
hub cannot be reached, and loads the model and tags once it is downloaded."""

from __future__ import annotations

from pathlib import Path

import pytest

from albumtagger.app.download_panel import ModelDownloadPanel
from albumtagger.model.download import size_text
from tests.conftest import GOLDEN_MODEL
from tests.fake_hub import COMMIT, HubFile, point_hub_at, repo_from_folder, serve
from tests.qt.conftest import PHOTOS, wait_indexed

REPO = "tests/gme-golden"


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    fake = repo_from_folder(REPO, GOLDEN_MODEL)
    with serve(fake):
        point_hub_at(fake, tmp_path / "hf-cache", monkeypatch)
        yield fake


def test_panel_offers_downloads_cancels_resumes_and_completes(qtbot, hub, tmp_path: Path) -> None:
    big = HubFile("model-extra.safetensors", bytes(range(256)) * 6144)  # 1.5 MiB
    hub.files[big.name] = big
    total = sum(len(f.data) for f in hub.files.values() if f.name != "README.md")
    hub.rate = 512 << 10  # slow enough to see progress and cancel half-way
    panel = ModelDownloadPanel()
    qtbot.addWidget(panel)
    panel.show()

    panel.offer("not/a-folder-but-a-hub-id-of-another-model-that-is-missing", "main")
    qtbot.waitUntil(lambda: panel.state in ("offer", "unavailable"), timeout=10_000)
    assert panel.state == "unavailable" and not panel.isVisible()  # not on this hub

    panel.offer(REPO, "main")
    qtbot.waitUntil(lambda: panel.state == "offer", timeout=10_000)
    assert panel.isVisible() and panel.plan is not None and panel.plan.total == total
    assert panel.download_button.text() == f"Download the model ({size_text(total)})"
    assert "not on this computer" in panel.text.text()

    panel.download_button.click()
    assert panel.state == "downloading" and panel.cancel_button.isVisible()
    qtbot.waitUntil(
        lambda: panel.last_progress is not None and panel.last_progress.done > total // 3,
        timeout=10_000,
    )
    assert panel.bar.value() > 0 and " of " in panel.detail.text()
    qtbot.waitUntil(lambda: panel.last_progress.speed is not None, timeout=5_000)
    assert "/s" in panel.detail.text() and "left" in panel.detail.text()
    with qtbot.waitSignal(panel.state_changed, timeout=2_000, check_params_cb="stopped".__eq__):
        panel.cancel_button.click()
    done_at_cancel = panel.last_progress.done
    assert done_at_cancel < total
    assert panel.download_button.text() == "Resume download" and panel.download_button.isVisible()
    assert "kept" in panel.text.text()

    hub.rate = 0
    with qtbot.waitSignal(panel.downloaded, timeout=10_000) as blocker:
        panel.download_button.click()
    folder = blocker.args[0]
    assert folder.name == COMMIT and (folder / big.name).read_bytes() == big.data
    assert panel.state == "done" and panel.bar.value() == panel.bar.maximum()
    resumed = hub.gets(big.name)[-1]
    assert resumed.range.startswith("bytes=") and resumed.sent < len(big.data)
    panel.model_ready()
    assert not panel.isVisible()
    panel.shutdown()


def test_offline_the_window_offers_no_download_and_says_what_to_do(
    qtbot, make_window, photo_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("ALBUMTAGGER_MODEL", REPO)
    window = make_window()
    window.open_folder(photo_folder)
    qtbot.waitUntil(lambda: window.download_panel.state == "offline", timeout=20_000)
    assert not window.download_panel.isVisible()
    assert window.banner.isVisible()
    text = window.banner.text.text()
    assert "not downloaded" in text and "Offline?" in text and "--local-dir" in text
    assert window.banner.button.text() == "Choose the model folder\u2026"


def test_window_downloads_the_model_then_tags(
    qtbot, make_window, photo_folder: Path, hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALBUMTAGGER_MODEL", REPO)
    window = make_window()
    window.open_folder(photo_folder)
    panel = window.download_panel
    qtbot.waitUntil(lambda: panel.state == "offer", timeout=20_000)
    assert panel.isVisible() and window.libraries.model_state == "unavailable"
    assert hub.sent() == 0  # nothing was downloaded before the person asked
    with qtbot.waitSignal(panel.downloaded, timeout=20_000):
        panel.download_button.click()
    wait_indexed(qtbot, window, PHOTOS, timeout=60_000)
    assert window.libraries.model_state == "ready" and not panel.isVisible()
