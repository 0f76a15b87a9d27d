"""The CLI as a subprocess on real folders, without the model: scanning, listing,
finding, correcting, the vocabulary, exit codes and messages."""

from __future__ import annotations

import os
import shutil
import sqlite3
import sys
from pathlib import Path

import pytest

from tests.conftest import cli_json, make_photo, run_cli

NO_DAC = [
    "setpriv",
    "--bounding-set=-dac_override,-dac_read_search",
    "--inh-caps=-dac_override,-dac_read_search",
    "--",
]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "Photos"
    make_photo(root / "a.jpg", 1)
    make_photo(root / "beach" / "b.png", 2)
    make_photo(root / "beach" / "c.jpg", 3)
    return root


def test_index_scan_only_then_tags_json(folder: Path, isolated_env: dict) -> None:
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    out = cli_json("index", str(folder), "--scan-only", env=isolated_env)
    assert out["scan"]["added"] == 4
    rows = cli_json("tags", str(folder), env=isolated_env)
    by_path = {r["path"]: r for r in rows}
    assert set(by_path) == {"a.jpg", "beach/b.png", "beach/c.jpg", "broken.jpg"}
    assert by_path["a.jpg"]["status"] == "pending" and by_path["a.jpg"]["tags"] == []
    assert by_path["broken.jpg"]["status"] == "damaged"
    assert by_path["broken.jpg"]["error"]
    one = cli_json("tags", str(folder), "beach/b.png", env=isolated_env)
    assert [r["path"] for r in one] == ["beach/b.png"]


def test_vocab_correct_find_and_undo(folder: Path, isolated_env: dict) -> None:
    run_cli("index", str(folder), "--scan-only", env=isolated_env)
    vocab = cli_json("vocab", str(folder), "--list", env=isolated_env)
    names = {t["name"] for t in vocab}
    assert len(names) >= 200 and {"beach", "screenshot", "receipt", "dog"} <= names
    run_cli("vocab", str(folder), "--add", "Grandma: my grandmother | grandma", env=isolated_env)
    vocab = {t["name"]: t for t in cli_json("vocab", str(folder), "--list", env=isolated_env)}
    assert vocab["grandma"]["prompts"] == ["my grandmother", "grandma"]

    run_cli(
        "correct",
        str(folder),
        "beach/b.png",
        "--add",
        "beach",
        "--add",
        "grandma",
        env=isolated_env,
    )
    run_cli("correct", str(folder), "beach/c.jpg", "--add", "beach", env=isolated_env)
    run_cli("correct", str(folder), "a.jpg", "--reject", "beach", env=isolated_env)
    found = cli_json("find", str(folder), "--tag", "beach", env=isolated_env)
    assert [r["path"] for r in found] == ["beach/b.png", "beach/c.jpg"]
    found = cli_json("find", str(folder), "--tag", "beach", "--not", "grandma", env=isolated_env)
    assert [r["path"] for r in found] == ["beach/c.jpg"]
    found = cli_json("find", str(folder), "--not", "beach", env=isolated_env)
    assert [r["path"] for r in found] == ["a.jpg"]  # rejected is not carried

    tags = {r["path"]: r["tags"] for r in cli_json("tags", str(folder), env=isolated_env)}
    assert {(t["name"], t["state"], t["source"]) for t in tags["a.jpg"]} == {
        ("beach", "rejected", "user")
    }
    run_cli("correct", str(folder), "--undo", env=isolated_env)
    tags = {r["path"]: r["tags"] for r in cli_json("tags", str(folder), env=isolated_env)}
    assert tags["a.jpg"] == []

    run_cli("vocab", str(folder), "--remove", "grandma", env=isolated_env)
    assert proc_error("find", str(folder), "--tag", "grandma", env=isolated_env)[0] == 2
    found = cli_json("find", str(folder), "--tag", "beach", env=isolated_env)
    assert [r["path"] for r in found] == ["beach/b.png", "beach/c.jpg"]


def proc_error(*args: str, env: dict) -> tuple[int, str]:
    proc = run_cli(*args, env=env, check=False)
    return proc.returncode, proc.stderr


def test_usage_errors_exit_2_and_other_errors_exit_1(
    folder: Path, isolated_env: dict, tmp_path: Path
) -> None:
    code, err = proc_error("find", str(folder), "--bogus", env=isolated_env)
    assert code == 2 and "unrecognized arguments" in err
    code, err = proc_error("nonsense-command", env=isolated_env)
    assert code == 2
    run_cli("index", str(folder), "--scan-only", env=isolated_env)
    code, err = proc_error("find", str(folder), env=isolated_env)
    assert code == 2 and "--tag" in err
    code, err = proc_error("find", str(folder), "--tag", "no such tag", env=isolated_env)
    assert code == 2 and "no tag 'no such tag'" in err and "vocab" in err
    assert len(err.strip().splitlines()) == 1
    code, err = proc_error("vocab", str(folder), "--add", "x" * 81, env=isolated_env)
    assert code == 2 and "at most 80 characters" in err
    code, err = proc_error("tags", str(folder / "a.jpg"), env=isolated_env)
    assert code == 2 and "is a file, not a folder" in err
    code, err = proc_error("tags", str(tmp_path / "nowhere"), env=isolated_env)
    assert code == 1 and "not there" in err
    code, err = proc_error("correct", str(folder), "zzz.jpg", "--add", "dog", env=isolated_env)
    assert code == 1 and "zzz.jpg is not in the library" in err
    code, err = proc_error("search", str(folder), "a dog", env=isolated_env)
    assert code == 1 and "index" in err


def test_newer_sidecar_is_refused_by_the_cli(folder: Path, isolated_env: dict) -> None:
    run_cli("index", str(folder), "--scan-only", env=isolated_env)
    db = folder / ".albumtagger" / "library.sqlite"
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA user_version = 300")
    conn.close()
    code, err = proc_error("tags", str(folder), env=isolated_env)
    assert code == 1 and "newer albumtagger" in err and "Update albumtagger" in err
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 300  # untouched


def test_offline_root_changes_nothing(folder: Path, isolated_env: dict) -> None:
    run_cli("index", str(folder), "--scan-only", env=isolated_env)
    run_cli("correct", str(folder), "a.jpg", "--add", "dog", env=isolated_env)
    db = folder / ".albumtagger" / "library.sqlite"
    away = folder.with_name("elsewhere")
    os.rename(folder, away)
    code, err = proc_error("index", str(folder), "--scan-only", env=isolated_env)
    assert code == 1 and "not there" in err
    assert not folder.exists()
    os.rename(away, folder)
    rows = {r["path"]: r for r in cli_json("tags", str(folder), env=isolated_env)}
    assert all(r["status"] != "missing" for r in rows.values())
    assert [t["name"] for t in rows["a.jpg"]["tags"]] == ["dog"]
    assert db.is_file()


@pytest.mark.skipif(
    shutil.which("setpriv") is None and os.geteuid() == 0,
    reason="needs setpriv to drop root's permission override",
)
def test_permission_denied_files_and_folders_are_recorded(
    folder: Path, isolated_env: dict, tmp_path: Path
) -> None:
    make_photo(folder / "locked" / "d.jpg", 4)
    make_photo(folder / "e.jpg", 5)
    run_cli("index", str(folder), "--scan-only", env=isolated_env)
    os.chmod(folder / "e.jpg", 0)
    os.chmod(folder / "locked", 0)
    try:
        cmd = [*NO_DAC] if os.geteuid() == 0 else []
        import subprocess

        proc = subprocess.run(
            [
                *cmd,
                sys.executable,
                "-m",
                "albumtagger",
                "index",
                str(folder),
                "--scan-only",
                "--json",
            ],
            capture_output=True,
            text=True,
            env={**os.environ, **isolated_env},
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        import json

        out = json.loads(proc.stdout)
        problems = {p[0]: p[1] for p in out["scan"]["problems"]}
        assert "locked" in problems and "Permission denied" in problems["locked"]
        # e.jpg was read before; touch it so it is read again and fails.
        os.utime(folder / "e.jpg", ns=(1, 1))
        proc = subprocess.run(
            [*cmd, sys.executable, "-m", "albumtagger", "index", str(folder), "--scan-only"],
            capture_output=True,
            text=True,
            env={**os.environ, **isolated_env},
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
    finally:
        os.chmod(folder / "locked", 0o755)
        os.chmod(folder / "e.jpg", 0o644)
    rows = {r["path"]: r for r in cli_json("tags", str(folder), env=isolated_env)}
    # The locked folder's photo is not marked missing: we could not look. (It was still
    # pending, so reading it was tried, and it is recorded as unreadable.)
    assert rows["locked/d.jpg"]["status"] != "missing"
    assert "unreadable" in rows["locked/d.jpg"]["error"]
    assert rows["e.jpg"]["status"] == "damaged"
    assert "unreadable" in rows["e.jpg"]["error"] and "Permission denied" in rows["e.jpg"]["error"]
    # Readable again: the next index reads it.
    run_cli("index", str(folder), "--scan-only", env=isolated_env)
    rows = {r["path"]: r for r in cli_json("tags", str(folder), env=isolated_env)}
    for name in ("e.jpg", "locked/d.jpg"):
        assert rows[name]["status"] == "pending" and "error" not in rows[name]


def test_export_xmp_writes_keywords_and_respects_other_programs(
    folder: Path, isolated_env: dict
) -> None:
    run_cli("index", str(folder), "--scan-only", env=isolated_env)
    run_cli("correct", str(folder), "a.jpg", "--add", "dog", "--add", "beach", env=isolated_env)
    run_cli("correct", str(folder), "beach/b.png", "--add", "beach", env=isolated_env)
    run_cli("correct", str(folder), "beach/b.png", "--reject", "dog", env=isolated_env)
    foreign = folder / "beach" / "c.jpg.xmp"
    foreign.write_text("<x:xmpmeta>written by another program</x:xmpmeta>")
    written = cli_json("export-xmp", str(folder), env=isolated_env)
    assert sorted(written["written"]) == ["a.jpg.xmp", "beach/b.png.xmp"]
    assert written["skipped"] and written["skipped"][0]["path"] == "beach/c.jpg.xmp"
    text = (folder / "a.jpg.xmp").read_text("utf-8")
    assert "<rdf:li>beach</rdf:li>" in text and "<rdf:li>dog</rdf:li>" in text
    text = (folder / "beach" / "b.png.xmp").read_text("utf-8")
    assert "<rdf:li>beach</rdf:li>" in text and "dog" not in text
    assert foreign.read_text() == "<x:xmpmeta>written by another program</x:xmpmeta>"
    # Exporting again overwrites our own files and leaves no temporary files.
    run_cli("correct", str(folder), "a.jpg", "--remove", "dog", env=isolated_env)
    cli_json("export-xmp", str(folder), env=isolated_env)
    assert "dog" not in (folder / "a.jpg.xmp").read_text("utf-8")
    assert not list(folder.rglob("*albumtagger-tmp"))
    # XMP files are not photos: a scan does not pick them up.
    out = cli_json("index", str(folder), "--scan-only", env=isolated_env)
    assert out["scan"]["added"] == 0


def test_cleanup_forgets_missing_photos_only(folder: Path, isolated_env: dict) -> None:
    run_cli("index", str(folder), "--scan-only", env=isolated_env)
    (folder / "a.jpg").unlink()
    run_cli("index", str(folder), "--scan-only", env=isolated_env)
    rows = {r["path"]: r["status"] for r in cli_json("tags", str(folder), env=isolated_env)}
    assert rows["a.jpg"] == "missing"
    assert "Forgot 1" in run_cli("cleanup", str(folder), env=isolated_env).stdout
    rows = {r["path"]: r["status"] for r in cli_json("tags", str(folder), env=isolated_env)}
    assert set(rows) == {"beach/b.png", "beach/c.jpg"}
