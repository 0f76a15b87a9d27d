"""Bad input: a generated corpus of hostile and awkward files (see `corpus.py`) indexed
with the golden model. Nothing crashes or hangs (a FIFO or /dev/zero named .jpg
included); every photo is tagged or recorded damaged with its reason, and `tags
--json` lists each; what the scan cannot take is reported; a second index has nothing
to do."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from albumtagger.config import load_settings
from albumtagger.service.session import LibrarySession
from tests.conftest import REPO, make_photo
from tests.reliability.corpus import build_corpus, kinds, restore_permissions
from tests.reliability.helpers import NO_DAC, cli_json, golden, record

ROOT_WITHOUT_SETPRIV = os.geteuid() == 0 and not Path("/usr/bin/setpriv").exists()


def _index(root: Path, env: dict[str, str]) -> dict:
    prefix = NO_DAC if os.geteuid() == 0 else []
    proc = subprocess.run(
        [*prefix, sys.executable, "-m", "albumtagger", "index", str(root), "--json"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,  # a FIFO or a device read would hang here
    )
    assert proc.returncode == 0, proc.stderr
    assert "internal error" not in proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.skipif(ROOT_WITHOUT_SETPRIV, reason="needs setpriv to drop root's override")
def test_hostile_corpus_is_indexed_without_a_crash(tmp_path: Path) -> None:
    root = tmp_path / "Corpus"
    entries = build_corpus(root, outside=tmp_path / "elsewhere")
    assert len(kinds(entries)) >= 30
    env = golden(tmp_path, ALBUMTAGGER_BATCH_SIZE="8")
    try:
        first = _index(root, env)
        second = _index(root, env)
    finally:
        restore_permissions(root)
    rows = {r["path"]: r for r in cli_json("tags", str(root), env=env)}
    problems = dict(first["scan"]["problems"])
    sidecar_problems = dict(first["keywords"]["problems"])
    for name in ("with-bad-xmp", "with-xmp-bomb", "with-fifo-xmp", "with-zero-xmp"):
        assert f"{name}.jpg" in sidecar_problems, sidecar_problems
    outcome: dict[str, int] = {}
    for e in entries:
        what = e.expect.split(":", 1)[0]
        outcome[what] = outcome.get(what, 0) + 1
        if what == "ok":
            assert e.path in rows, e
            assert rows[e.path]["status"] == "ok", (e, rows[e.path])
            assert isinstance(rows[e.path]["tags"], list)
        elif what == "damaged":
            words = e.expect.split(":", 1)[1]
            assert e.path in rows, e
            row = rows[e.path]
            assert row["status"] == "damaged" and words in row.get("error", ""), (e, row)
            assert row["tags"] == []
        elif what == "problem":
            words = e.expect.split(":", 1)[1]
            assert e.path not in rows, e
            assert words in problems.get(e.path, ""), (e, problems)
        else:  # skipped, ignored: no row, and nothing blocked on them
            assert e.path not in rows, e
    expected_rows = sum(1 for e in entries if e.expect.split(":")[0] in ("ok", "damaged"))
    assert len(rows) == expected_rows, sorted(set(rows) - {e.path for e in entries})
    tagged = sum(1 for r in rows.values() if r["status"] == "ok")
    assert first["tagging"]["tagged"] + first["tagging"]["reused"] == tagged
    # Most photos get tags (a few can have none: no score clears even the fallback).
    assert sum(1 for r in rows.values() if r["status"] == "ok" and r["tags"]) >= tagged - 3
    # A second index has nothing to do: only the unreadable file is tried again.
    assert second["scan"]["added"] == 0 and second["tagging"]["tagged"] == 0
    assert second["scan"]["changed"] == sum(
        1 for e in entries if "Permission" in e.expect and e.expect.startswith("damaged")
    )
    record(
        "bad-input",
        {
            "kinds": len(kinds(entries)),
            "entries": len(entries),
            "outcomes": outcome,
            "tagged": tagged,
        },
    )


def test_special_files_named_like_photos_are_reported(tmp_path: Path) -> None:
    root = tmp_path / "Special"
    make_photo(root / "a.jpg", 1)
    os.mkfifo(root / "pipe.jpg")
    os.symlink("/dev/zero", root / "zeros.jpg")
    summary = cli_json("index", str(root), "--scan-only", env=golden(tmp_path))
    problems = dict(summary["scan"]["problems"])
    assert "pipe.jpg" in problems and "zeros.jpg" in problems


def test_the_longest_names_do_not_stop_the_index(tmp_path: Path) -> None:
    root = tmp_path / "Long"
    make_photo(root / ("L" * 250 + ".jpg"), 1)
    make_photo(root / "b.jpg", 2)
    summary = cli_json("index", str(root), "--scan-only", env=golden(tmp_path))
    assert summary["tagging"]["damaged"] == 0


def test_files_vanishing_or_growing_between_scan_and_read(tmp_path: Path, golden_env: dict) -> None:
    root = tmp_path / "Moving"
    for i in range(6):
        make_photo(root / f"p{i}.jpg", 300 + i, size=(96, 72))
    with LibrarySession(root, load_settings(), backup=False) as session:
        job = session.index()
        for progress in job:
            if progress.phase not in ("scan", "model"):  # the scan is committed; reading next
                (root / "p1.jpg").unlink()
                with open(root / "p2.jpg", "ab") as f:
                    f.write(b"\0" * 5000)  # grows (JPEG data after the end marker)
                (root / "p3.jpg").write_bytes(b"")  # emptied
                break
        for _ in job:
            pass
        rows = {r.path: r for r in session.store.photos()}
    assert rows["p1.jpg"].status == "missing"
    assert rows["p2.jpg"].status == "ok"
    assert rows["p2.jpg"].size == (root / "p2.jpg").stat().st_size
    assert rows["p3.jpg"].status == "damaged" and "empty" in (rows["p3.jpg"].error or "")
    assert {rows[f"p{i}.jpg"].status for i in (0, 4, 5)} == {"ok"}
    with LibrarySession(root, load_settings(), backup=False) as session:
        list(session.index())
        assert session.index_summary.tagging.tagged == 0
        assert session.index_summary.scan.changed == 0
