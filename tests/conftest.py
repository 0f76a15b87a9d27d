"""Shared test helpers: photos made on the spot, the golden checkpoint, the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

TESTS = Path(__file__).resolve().parent
GOLDEN = TESTS / "data" / "gme-golden"
GOLDEN_MODEL = GOLDEN / "model"
GOLDEN_SETTINGS_ENV = {
    "ALBUMTAGGER_MODEL": str(GOLDEN_MODEL),
    "ALBUMTAGGER_DEVICE": "cpu",
    "ALBUMTAGGER_DTYPE": "float32",
    "ALBUMTAGGER_MIN_IMAGE_TOKENS": "4",
    "ALBUMTAGGER_MAX_IMAGE_TOKENS": "16",
    "ALBUMTAGGER_BATCH_SIZE": "8",
}
"""The golden checkpoint, float32 on the CPU, a small image budget: fast tests."""
REPO = TESTS.parent


def read_as_tagged(library, row):  # -> int | None
    """Read one pending photo and mark it ok, as tagging would, without a model.
    Returns its photo id, or None when it is damaged or gone."""
    from albumtagger.library.scanner import apply_read, read_file

    result = read_file(library.root, row, target_pixels=64 * 64)
    with library.store.transaction():
        pid = apply_read(library.store, result)
        if pid is not None:
            library.store.set_status([pid], "ok")
    return pid


def scan_and_read(library):  # -> ScanReport
    """Scan, then read every pending photo (an `index` without the model)."""
    from albumtagger.library.scanner import run_to_end, scan

    report = run_to_end(scan(library))
    for row in library.store.pending_photos():
        read_as_tagged(library, row)
    return report


def accept_tag(library, path: str, name: str = "dog") -> None:
    """Give a photo a suggested tag that the user then accepted."""
    from albumtagger.library.db.store import AutoTag

    store = library.store
    with store.transaction():
        store.add_tags([(name, [name])])
    tag = store.tag_by_name(name)
    row = store.photo_by_path(path)
    assert tag is not None and row is not None
    store.replace_suggestions({row.id: [AutoTag(tag.id, 0.4, False, "high")]})
    store.set_user_decision(row.id, tag.id, "accepted", "auto", 0.4)


def index_golden(root: Path, base: Path) -> Path:
    """Index `root` in this process with the golden checkpoint, settings and data dirs
    under `base` (a module fixture's folder, copied per test); returns `root`."""
    from albumtagger.config import load_settings
    from albumtagger.service.session import LibrarySession

    env = {
        **GOLDEN_SETTINGS_ENV,
        "HF_HUB_OFFLINE": "1",
        "ALBUMTAGGER_CONFIG": str(base / "config.toml"),
        "ALBUMTAGGER_DATA_DIR": str(base / "data"),
        "ALBUMTAGGER_CACHE_DIR": str(base / "cache"),
    }
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        with LibrarySession(root, load_settings(), backup=False) as session:
            list(session.index())
    return root


def make_photo(path: Path, seed: int = 0, size: tuple[int, int] = (96, 64)) -> Path:
    """Write a small photo with content unique to `seed` (format from the suffix)."""
    rng = np.random.default_rng(seed)
    w, h = size
    base = rng.integers(0, 255, size=3)
    grad = np.linspace(0, 1, w)[None, :, None] * rng.integers(0, 120, size=3)
    noise = rng.integers(0, 60, size=(h, w, 3))
    pixels = np.clip(base + grad + noise, 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels, "RGB").save(path)
    return path


@pytest.fixture
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Settings and data dirs of our own, so tests never touch the user's."""
    env = {
        "ALBUMTAGGER_CONFIG": str(tmp_path / "config" / "config.toml"),
        "ALBUMTAGGER_DATA_DIR": str(tmp_path / "data"),
        "ALBUMTAGGER_CACHE_DIR": str(tmp_path / "cache"),
        "HF_HUB_OFFLINE": "1",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
def golden_env(isolated_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Environment that points albumtagger at the golden checkpoint, fp32 on the CPU,
    with a small token budget so tests stay fast."""
    for key, value in GOLDEN_SETTINGS_ENV.items():
        monkeypatch.setenv(key, value)
    return {**isolated_env, **GOLDEN_SETTINGS_ENV}


def run_cli(
    *args: str,
    env: dict[str, str] | None = None,
    check: bool = True,
    timeout: float = 300,
    user: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `python -m albumtagger ARGS` in a subprocess, as a user would."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", "albumtagger", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        cwd=REPO,
        user=user,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"albumtagger {' '.join(args)} exited {proc.returncode}\n"
            f"stdout: {proc.stdout}\nstderr: {proc.stderr}"
        )
    return proc


def cli_json(*args: str, env: dict[str, str] | None = None) -> object:
    return json.loads(run_cli(*args, "--json", env=env).stdout)


@pytest.fixture
def watch_fake_tagging(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Replace the model: 'tagging' reads the file and marks it ok. Returns the paths
    tagged, in order (a path twice means tagged twice)."""
    from albumtagger.service import watching
    from albumtagger.service.indexing import Progress, TaggingReport, model_source

    tagged: list[str] = []

    def fake_tag_pending(
        library,
        settings,
        encoder: object,
        decisions: object,
        cancel=None,
        settle: bool = True,
        thumbnails: object = None,
    ):
        report = TaggingReport()
        store = library.store
        for row in store.pending_photos():
            if cancel is not None and cancel.cancelled:
                report.cancelled = True
                break
            if read_as_tagged(library, row) is not None:
                tagged.append(row.path)
                report.tagged += 1
            yield Progress("tag", report.tagged, 0)
        with store.transaction():
            store.set_setting("model_source", json.dumps(model_source(settings)))
        return report

    monkeypatch.setattr(watching, "tag_pending", fake_tag_pending)
    monkeypatch.setattr(watching, "load_encoder", lambda settings: object())
    return tagged


def photos_ok(db: Path) -> int:
    """Photos marked ok in a sidecar another process may be writing (0 if unreadable)."""
    import sqlite3

    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return conn.execute("SELECT COUNT(*) FROM photos WHERE status = 'ok'").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


def index_killed_after(root: Path, env: dict[str, str], ok: int) -> int:
    """Run `index ROOT` in a child process (batches of 2) and SIGKILL it once `ok`
    photos are tagged; returns how many were."""
    import signal
    import time

    full_env = {**os.environ, **env, "ALBUMTAGGER_BATCH_SIZE": "2"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "albumtagger", "index", str(root)],
        env=full_env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    db = root / ".albumtagger" / "library.sqlite"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and photos_ok(db) < ok and proc.poll() is None:
        time.sleep(0.005)  # a batch of 2 takes tens of ms: look more often than that
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return photos_ok(db)
