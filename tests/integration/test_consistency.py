"""Tags a person can trust: the same decisions however a library was built, corrections
that undo exactly, commands that are all or nothing, manual work without the model."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from albumtagger.config import load_settings
from albumtagger.library.folder import open_library
from albumtagger.library.scanner import CancelToken
from albumtagger.service.indexing import index_folder
from tests.conftest import GOLDEN_MODEL, REPO, cli_json, index_killed_after, make_photo, run_cli

N_PHOTOS = 24


def _make_photos(root: Path, indices: range) -> None:
    for i in indices:
        make_photo(root / f"p{i:02d}.jpg", 500 + i, size=(96 + 4 * (i % 5), 80))


def _index(root: Path, data_dir: Path, cancel: CancelToken | None = None, on_progress=None):
    with open_library(root, data_dir) as library:
        return index_folder(library, load_settings(), cancel=cancel, on_progress=on_progress)


def _decisions(root: Path) -> dict[str, set[tuple]]:
    """Every photo's tag cells (name, state, fallback, confidence), by path."""
    conn = sqlite3.connect(root / ".albumtagger" / "library.sqlite")
    rows = conn.execute(
        "SELECT p.path, t.name, pt.state, pt.fallback, pt.confidence FROM photo_tags pt "
        "JOIN photos p ON p.id = pt.photo_id JOIN tags t ON t.id = pt.tag_id"
    ).fetchall()
    conn.close()
    out: dict[str, set[tuple]] = {}
    for path, *cell in rows:
        out.setdefault(path, set()).add(tuple(cell))
    return out


def _thresholds(root: Path) -> dict[str, tuple]:
    conn = sqlite3.connect(root / ".albumtagger" / "library.sqlite")
    rows = conn.execute("SELECT name, threshold, score_median, score_scale FROM tags").fetchall()
    conn.close()
    return {r[0]: r[1:] for r in rows}


def _flat(thresholds: dict[str, tuple]) -> dict[tuple[str, int], float]:
    """One number per key, as `pytest.approx` compares dictionaries (it refuses nested ones)."""
    return {(name, i): v for name, row in thresholds.items() for i, v in enumerate(row)}


def _state(db: Path) -> tuple[list, list]:
    """The cells and the thresholds exactly as stored."""
    conn = sqlite3.connect(db)
    cells = conn.execute("SELECT * FROM photo_tags ORDER BY photo_id, tag_id").fetchall()
    tags = conn.execute(
        "SELECT id, name, threshold, events, score_median, score_scale FROM tags ORDER BY id"
    ).fetchall()
    conn.close()
    return cells, tags


def _fingerprint(db: Path) -> str:
    """The whole database's content (what a byte-for-byte comparison means in WAL mode)."""
    conn = sqlite3.connect(db)
    dump = (
        "\n".join(conn.iterdump())
        + f"\nuser_version={conn.execute('PRAGMA user_version').fetchone()[0]}"
    )
    conn.close()
    return dump


@pytest.fixture
def one_run(tmp_path: Path, golden_env: dict) -> Path:
    root = tmp_path / "one"
    _make_photos(root, range(N_PHOTOS))
    _index(root, Path(golden_env["ALBUMTAGGER_DATA_DIR"]))
    return root


def test_a_first_index_fits_every_threshold(one_run: Path) -> None:
    thresholds = _thresholds(one_run)
    values = {round(t[0], 6) for t in thresholds.values()}
    assert len(values) > len(thresholds) // 2, "per-tag thresholds, not one flat base"
    assert all(t[1] != 0.0 and t[2] > 1e-4 for t in thresholds.values()), "fitted statistics"


def test_decisions_do_not_depend_on_how_the_library_was_built(
    one_run: Path, tmp_path: Path, golden_env: dict
) -> None:
    data = Path(golden_env["ALBUMTAGGER_DATA_DIR"])
    expected, expected_th = _decisions(one_run), _thresholds(one_run)
    assert sum(map(len, expected.values())) >= 3 * N_PHOTOS

    halves = tmp_path / "halves"
    _make_photos(halves, range(N_PHOTOS // 2))
    _index(halves, data)
    _make_photos(halves, range(N_PHOTOS // 2, N_PHOTOS))
    _index(halves, data)
    assert _decisions(halves) == expected
    assert _flat(_thresholds(halves)) == pytest.approx(_flat(expected_th))

    interrupted = tmp_path / "interrupted"
    _make_photos(interrupted, range(N_PHOTOS))
    cancel = CancelToken()

    def stop_after_a_few(progress) -> None:
        if progress.phase == "tag" and progress.done >= 6:
            cancel.cancel()

    first = _index(interrupted, data, cancel, stop_after_a_few)
    assert first.tagging.cancelled and 0 < first.tagging.tagged < N_PHOTOS
    _index(interrupted, data)
    assert _decisions(interrupted) == expected
    assert _flat(_thresholds(interrupted)) == pytest.approx(_flat(expected_th))


def test_killed_after_tagging_then_resumed_gives_the_same_decisions(
    one_run: Path, tmp_path: Path, golden_env: dict
) -> None:
    root = tmp_path / "killed"
    _make_photos(root, range(N_PHOTOS))
    assert 0 < index_killed_after(root, golden_env, 8) < N_PHOTOS
    run_cli("index", str(root), env=golden_env)
    assert _decisions(root) == _decisions(one_run)


def test_undo_restores_cells_and_thresholds_exactly(one_run: Path, golden_env: dict) -> None:
    db = one_run / ".albumtagger" / "library.sqlite"
    rows = {r["path"]: r for r in cli_json("tags", str(one_run), env=golden_env)}
    path, row = next(iter(sorted(rows.items())))
    suggested = [t["name"] for t in row["tags"] if t["state"] == "suggested"]
    absent = next(name for name in ("dog", "beach", "snow", "car", "tree") if name not in suggested)
    for args in (
        ("--accept", suggested[0]),
        ("--reject", suggested[1]),
        ("--add", absent),
        ("--remove", suggested[2]),
        ("--add", "a brand new tag"),
    ):
        before = _state(db)
        result = cli_json("correct", str(one_run), path, *args, env=golden_env)
        assert result[0]["photos_changed"] >= 0
        assert _state(db) != before
        undone = cli_json("correct", str(one_run), "--undo", env=golden_env)
        assert undone[0]["action"] == "undo"
        assert _state(db) == before, args


def test_correction_message_counts_the_other_photos(one_run: Path, golden_env: dict) -> None:
    rows = cli_json("tags", str(one_run), env=golden_env)
    path = rows[0]["path"]
    name = rows[0]["tags"][0]["name"]
    before = {r["path"]: {t["name"] for t in r["tags"] if t["state"] != "rejected"} for r in rows}
    result = cli_json("correct", str(one_run), path, "--reject", name, env=golden_env)[0]
    after_rows = cli_json("tags", str(one_run), env=golden_env)
    after = {
        r["path"]: {t["name"] for t in r["tags"] if t["state"] != "rejected"} for r in after_rows
    }
    others = [p for p in before if p != path and before[p] != after[p]]
    assert result["photos_changed"] == len(others)
    lost = [p for p in others if name in before[p] - after[p]]
    gained = [p for p in others if name in after[p] - before[p]]
    assert (result["tag_removed_from"], result["tag_added_to"]) == (len(lost), len(gained))
    again = cli_json("correct", str(one_run), path, "--reject", name, env=golden_env)[0]
    assert "already rejected" in again["note"]
    conn = sqlite3.connect(one_run / ".albumtagger" / "library.sqlite")
    assert conn.execute("SELECT COUNT(*) FROM feedback").fetchone()[0] == 1
    conn.close()


@pytest.fixture
def model_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "model"
    shutil.copytree(GOLDEN_MODEL, copy)
    return copy


@pytest.fixture
def library_without_model(tmp_path: Path, golden_env: dict, model_copy: Path):
    """An indexed library whose model folder is then taken away."""
    root = tmp_path / "lib"
    _make_photos(root, range(12))
    env = {**golden_env, "ALBUMTAGGER_MODEL": str(model_copy)}
    run_cli("index", str(root), env=env)
    # Later commands name no model: the library's own is used (and is gone).
    plain = {k: v for k, v in golden_env.items() if k != "ALBUMTAGGER_MODEL"}
    hidden = model_copy.with_name("model-away")
    model_copy.rename(hidden)
    return root, plain, hidden, model_copy


def _without_model_env(env: dict) -> dict:
    return {k: v for k, v in os.environ.items() if not k.startswith("ALBUMTAGGER_")} | env


def _run(*args: str, env: dict) -> subprocess.CompletedProcess[str]:
    """The CLI with exactly `env` (the test's own environment names the golden model)."""
    proc = subprocess.run(
        [sys.executable, "-m", "albumtagger", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 0, (args, proc.stderr)
    return proc


def _json(*args: str, env: dict):
    return json.loads(_run(*args, "--json", env=env).stdout)


def test_failed_commands_leave_the_sidecar_unchanged(library_without_model) -> None:
    root, env, _, _ = library_without_model
    full_env = _without_model_env(env)
    db = root / ".albumtagger" / "library.sqlite"
    photo = "p00.jpg"
    make_photo(root / "new.jpg", 9999)  # work for index, which needs the model
    failing = [
        (["index", str(root)], 1),
        (["search", str(root), "a red car"], 1),
        (["correct", str(root), photo, "--reject", "no such tag"], 2),
        (["correct", str(root), photo, "--add", "dog", "--reject", "no such tag"], 2),
        (["correct", str(root), photo, "--add", "x" * 81], 2),
        (["correct", str(root), "--undo"], 1),
        (["vocab", str(root), "--remove", "dog", "--remove", "no such tag"], 2),
        (["find", str(root), "--tag", "no such tag"], 2),
        (["review", str(root), "--answer", photo, "dog", "yes", "--answer", photo, "zzz", "no"], 2),
    ]
    for args, code in failing:
        before = _fingerprint(db)
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "albumtagger", *args],
            capture_output=True,
            text=True,
            env=full_env,
            cwd=REPO,
            timeout=120,
        )
        assert proc.returncode == code, (args, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) <= 2, proc.stderr  # usage line + message
        assert time.monotonic() - started < 15
        assert _fingerprint(db) == before, args


def test_manual_work_needs_no_model_and_new_tags_wait_for_it(library_without_model) -> None:
    root, env, hidden, model_dir = library_without_model
    full_env = _without_model_env(env)
    photo = "p03.jpg"
    tags = _json("tags", str(root), photo, env=full_env)[0]["tags"]
    first, second = tags[0]["name"], tags[1]["name"]
    for args in (
        ("--accept", first),
        ("--reject", second),
        ("--add", "uncle bob"),
        ("--remove", first),
    ):
        _run("correct", str(root), photo, *args, env=full_env)
    _run("correct", str(root), "--undo", env=full_env)
    _run("vocab", str(root), "--remove", "snow", env=full_env)
    started = time.monotonic()
    added = _run("vocab", str(root), "--add", "sunset glow", env=full_env)
    assert time.monotonic() - started < 15
    assert "Not scored yet" in added.stdout
    vocab = {t["name"]: t for t in _json("vocab", str(root), "--list", env=full_env)}
    assert not vocab["sunset glow"]["scored"] and not vocab["uncle bob"]["scored"]
    assert vocab["dog"]["scored"] and "snow" not in vocab
    cells = {t["name"]: t for t in _json("tags", str(root), photo, env=full_env)[0]["tags"]}
    assert cells["uncle bob"]["state"] == "accepted" and cells[second]["state"] == "rejected"

    hidden.rename(model_dir)  # the model is back: index scores the waiting tags
    _run("index", str(root), env=full_env)
    vocab = {t["name"]: t for t in _json("vocab", str(root), "--list", env=full_env)}
    assert vocab["sunset glow"]["scored"] and vocab["sunset glow"]["threshold"] is not None
    assert vocab["uncle bob"]["scored"]
    cells = {t["name"]: t for t in _json("tags", str(root), photo, env=full_env)[0]["tags"]}
    assert cells["uncle bob"]["state"] == "accepted" and cells[second]["state"] == "rejected"


def test_a_model_that_cannot_be_had_fails_fast_once(tmp_path: Path, isolated_env: dict) -> None:
    root = tmp_path / "album"
    _make_photos(root, range(2))
    env = {k: v for k, v in isolated_env.items() if k != "HF_HUB_OFFLINE"}
    env["HF_HOME"] = str(tmp_path / "hf")
    base = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE",)}
    for offline in ("1", None):
        run_env = {**base, **env}
        if offline:
            run_env["HF_HUB_OFFLINE"] = offline
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "albumtagger", "index", str(root), "--model", "nobody/no-model"],
            capture_output=True,
            text=True,
            env=run_env,
            cwd=REPO,
            timeout=60,
        )
        assert time.monotonic() - started < 5, proc.stderr
        assert proc.returncode == 1
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "no-model" in lines[0], proc.stderr
    assert not (root / ".albumtagger" / "library.sqlite").exists() or not cli_json(
        "tags", str(root), env=env
    )
