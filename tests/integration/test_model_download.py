"""Downloading the model on purpose, with the real huggingface_hub against a local fake
hub: the size, a full download, cancel and a resume that fetches only what is missing,
and plain errors."""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path

import pytest

from albumtagger.errors import ModelError
from albumtagger.model import files as model_files
from albumtagger.model.download import (
    Cancelled,
    DownloadInterrupted,
    DownloadProgress,
    Meter,
    download_model,
    plan_download,
    size_text,
)
from tests.conftest import GOLDEN_MODEL
from tests.fake_hub import COMMIT, FakeHub, HubFile, point_hub_at, repo_from_folder, serve

REPO = "tests/gme-golden"


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    fake = repo_from_folder(REPO, GOLDEN_MODEL)
    with serve(fake):
        point_hub_at(fake, tmp_path / "hf-cache", monkeypatch)
        yield fake


def _needed() -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in GOLDEN_MODEL.iterdir()}


def test_size_is_that_of_the_needed_files(hub: FakeHub) -> None:
    plan = plan_download(REPO, "main")
    assert plan.commit == COMMIT
    assert {f.name for f in plan.files} == set(_needed())  # README.md is not needed
    assert plan.total == sum(len(b) for b in _needed().values())
    assert plan.have == 0 and not plan.cached
    assert model_files.hub_reachable(1.0)


def test_download_completes_with_the_original_files(hub: FakeHub) -> None:
    seen: list[DownloadProgress] = []
    folder = download_model(REPO, "main", progress=seen.append)
    assert folder.name == COMMIT
    for name, data in _needed().items():
        assert (folder / name).read_bytes() == data, name
    assert not (folder / "README.md").exists()
    assert seen[-1].done == seen[-1].total == sum(len(b) for b in _needed().values())
    assert all(a.done <= b.done for a, b in itertools.pairwise(seen))
    # Now cached: found offline, as the app loads it, and a second call fetches nothing.
    model_files.set_downloads_allowed(False)
    try:
        found, model_id = model_files.locate_model(REPO, "main")
    finally:
        model_files.set_downloads_allowed(True)
    assert found == folder and model_id == f"{REPO}@{COMMIT}"
    assert plan_download(REPO, "main").cached
    before = hub.sent()
    download_model(REPO, COMMIT)
    assert hub.sent() == before


def test_cancel_stops_promptly_and_resume_fetches_only_the_rest(
    hub: FakeHub, tmp_path: Path
) -> None:
    big = HubFile("model.safetensors", bytes(range(256)) * 8192)  # 2 MiB
    hub.files[big.name] = big
    hub.rate = 1 << 20  # 1 MiB/s: about two seconds for the weights
    cancel = threading.Event()
    seen: list[DownloadProgress] = []
    cancelled_at: list[float] = []

    def progress(p: DownloadProgress) -> None:
        seen.append(p)
        if p.file == big.name and p.done > p.total // 3 and not cancel.is_set():
            cancelled_at.append(time.monotonic())
            cancel.set()

    with pytest.raises(Cancelled):
        download_model(REPO, "main", progress=progress, cancel=cancel)
    assert time.monotonic() - cancelled_at[0] < 1.0
    stopped_at = hub.sent()
    time.sleep(0.3)
    assert hub.sent() - stopped_at < 64 << 10  # nothing more goes on in the background
    partial = list((tmp_path / "hf-cache").rglob(f"{big.etag}.incomplete"))
    assert len(partial) == 1 and 0 < partial[0].stat().st_size < len(big.data)
    kept = partial[0].stat().st_size

    plan = plan_download(REPO, "main")
    assert plan.have >= kept  # the part counts as already here
    hub.rate = 0
    sent_before = hub.sent()
    seen.clear()
    folder = download_model(REPO, "main", progress=seen.append)
    assert (folder / big.name).read_bytes() == big.data
    gets = hub.gets(big.name)
    assert gets[-1].range == f"bytes={kept}-"
    assert gets[-1].sent == len(big.data) - kept
    assert hub.sent() - sent_before == plan.remaining  # nothing fetched twice
    assert seen[0].done == plan.have and seen[-1].done == plan.total
    assert not list((tmp_path / "hf-cache").rglob("*.incomplete"))


def test_errors_say_what_is_wrong(hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ModelError, match="no revision"):
        plan_download(REPO, "f" * 40)
    with pytest.raises(ModelError, match="not found on the hub"):
        plan_download("tests/nothing-here", "main")
    hub.gated = True
    with pytest.raises(ModelError, match="gated"):
        download_model(REPO, "main")
    hub.gated = False

    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens
    with pytest.raises(DownloadInterrupted, match="connection to the model hub was lost"):
        plan_download(REPO, "main", timeout=2)
    assert not model_files.hub_reachable(1.0)


def test_a_full_disk_is_said_before_anything_is_fetched(
    hub: FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda _p: usage(1 << 30, 1 << 30, 1024))
    with pytest.raises(DownloadInterrupted, match="free disk space"):
        download_model(REPO, "main")
    assert hub.sent() == 0


def test_the_app_never_downloads_silently(hub: FakeHub) -> None:
    model_files.set_downloads_allowed(False)
    try:
        with pytest.raises(ModelError, match="not downloaded on this computer"):
            model_files.locate_model(REPO, "main")
    finally:
        model_files.set_downloads_allowed(True)
    assert hub.sent() == 0 and not hub.log


def test_speed_and_time_left() -> None:
    now = [0.0]
    meter = Meter(total=10_000_000, done=1_000_000, clock=lambda: now[0])
    assert meter.snapshot().speed is None and meter.snapshot().eta_s is None
    for _ in range(10):
        now[0] += 0.5
        meter.add(500_000)  # 1 MB/s
    p = meter.snapshot()
    assert p.done == 6_000_000 and p.speed == pytest.approx(1e6, rel=0.01)
    assert p.eta_s == pytest.approx(4.0, rel=0.01)
    assert size_text(4_412_000_000) == "4.41 GB" and size_text(3_400_000) == "3.4 MB"
