"""`albumtagger index` end to end with the golden GME checkpoint, as a subprocess:
tags every photo, answers tags/find/search, survives being killed halfway."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.conftest import REPO, cli_json, index_killed_after, make_photo, run_cli


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    root = tmp_path / "Album"
    for i in range(10):
        make_photo(root / f"day{i % 2}" / f"img_{i:02d}.jpg", i, size=(160 + 8 * i, 120))
    make_photo(root / "wide.png", 99, size=(400, 90))
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    return root


def test_index_tags_every_photo_and_the_queries_answer(photos: Path, golden_env: dict) -> None:
    summary = cli_json("index", str(photos), env=golden_env)
    assert summary["scan"]["added"] == 12
    assert summary["tagging"]["tagged"] == 11 and summary["tagging"]["damaged"] == 1
    rows = {r["path"]: r for r in cli_json("tags", str(photos), env=golden_env)}
    assert rows["broken.jpg"]["status"] == "damaged"
    tagged = [r for p, r in rows.items() if p != "broken.jpg"]
    for r in tagged:
        assert r["status"] == "ok"
        assert 3 <= len(r["tags"]) <= 10, r
        scores = [t["score"] for t in r["tags"]]
        assert all(t["state"] == "suggested" and t["source"] == "auto" for t in r["tags"])
        assert all(t["confidence"] in ("low", "medium", "high") for t in r["tags"])
        assert all(isinstance(s, float) for s in scores)

    # find agrees with tags
    some_tag = tagged[0]["tags"][0]["name"]
    expected = sorted(p for p, r in rows.items() if some_tag in {t["name"] for t in r["tags"]})
    found = cli_json("find", str(photos), "--tag", some_tag, env=golden_env)
    assert [f["path"] for f in found] == expected

    # search ranks all tagged photos, best first, scores are cosines
    hits = cli_json("search", str(photos), "a dog on the beach", "--top", "5", env=golden_env)
    assert len(hits) == 5
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    assert all(-1.0 <= h["score"] <= 1.0 for h in hits)

    # A second index has nothing to do and does not load the model.
    again = cli_json("index", str(photos), env=golden_env)
    assert again["scan"]["unchanged"] == 12 and again["tagging"]["tagged"] == 0


def test_corrections_survive_reindexing(photos: Path, golden_env: dict) -> None:
    run_cli("index", str(photos), env=golden_env)
    rows = {r["path"]: r for r in cli_json("tags", str(photos), env=golden_env)}
    path = "day0/img_00.jpg"
    first = rows[path]["tags"][0]["name"]
    run_cli("correct", str(photos), path, "--reject", first, "--add", "grandma", env=golden_env)
    # The photo changes on disk: it is read and tagged again, decisions stay.
    make_photo(photos / path, 1234, size=(170, 120))
    run_cli("index", str(photos), env=golden_env)
    tags = {t["name"]: t for t in cli_json("tags", str(photos), path, env=golden_env)[0]["tags"]}
    assert tags[first]["state"] == "rejected"
    assert tags["grandma"]["state"] == "accepted" and tags["grandma"]["source"] == "user"
    review = cli_json("review", str(photos), env=golden_env)
    assert review and all({"path", "tag", "score", "threshold"} <= set(r) for r in review)
    first_q = review[0]
    answered = cli_json(
        "review", str(photos), "--answer", first_q["path"], first_q["tag"], "no", env=golden_env
    )
    assert answered[0]["action"] == "reject"
    tags = cli_json("tags", str(photos), first_q["path"], env=golden_env)[0]["tags"]
    assert {"name": first_q["tag"], "state": "rejected"}.items() <= next(
        t for t in tags if t["name"] == first_q["tag"]
    ).items()
    conn = sqlite3.connect(photos / ".albumtagger" / "library.sqlite")
    assert conn.execute("SELECT review FROM feedback ORDER BY id DESC LIMIT 1").fetchone() == (1,)
    conn.close()
    later = cli_json("review", str(photos), env=golden_env)
    assert (first_q["path"], first_q["tag"]) not in {(r["path"], r["tag"]) for r in later}


def test_killed_halfway_then_rerun_finishes_without_duplicates(
    tmp_path: Path, golden_env: dict
) -> None:
    root = tmp_path / "Big"
    n = 40
    for i in range(n):
        make_photo(root / f"p{i:03d}.jpg", 1000 + i, size=(120, 96))
    done_before = index_killed_after(root, golden_env, 6)
    db = root / ".albumtagger" / "library.sqlite"
    assert 0 < done_before < n, "the run should have been killed halfway"

    summary = cli_json("index", str(root), env=golden_env)
    assert summary["tagging"]["tagged"] + summary["tagging"]["reused"] == n - done_before
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("SELECT COUNT(*), COUNT(DISTINCT path) FROM photos").fetchone() == (n, n)
    assert conn.execute("SELECT COUNT(*) FROM photos WHERE status = 'ok'").fetchone()[0] == n
    assert conn.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0] == n
    untagged = conn.execute(
        "SELECT COUNT(*) FROM photos p WHERE NOT EXISTS "
        "(SELECT 1 FROM photo_tags t WHERE t.photo_id = p.id)"
    ).fetchone()[0]
    assert untagged == 0
    conn.close()


def test_embed_json_prints_normalised_vectors(golden_env: dict) -> None:
    golden = REPO / "tests" / "data" / "gme-golden"
    out = cli_json(
        "embed",
        "--model",
        str(golden / "model"),
        "--text",
        "a dog",
        "--image",
        str(golden / "images" / "square.png"),
        env=golden_env,
    )
    assert [t["text"] for t in out["texts"]] == ["a dog"]
    assert out["images"][0]["path"].endswith("square.png")
    for item in out["texts"] + out["images"]:
        norm = sum(x * x for x in item["vector"]) ** 0.5
        assert abs(norm - 1.0) < 1e-4


def test_missing_model_folder_is_a_clear_error(
    photos: Path, golden_env: dict, tmp_path: Path
) -> None:
    proc = run_cli(
        "index", str(photos), "--model", str(tmp_path / "no-model"), env=golden_env, check=False
    )
    assert proc.returncode == 1
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_progress_covers_tag_prompts_then_photos(photos: Path, golden_env: dict) -> None:
    from albumtagger.config import load_settings
    from albumtagger.library.folder import open_library
    from albumtagger.library.scanner import CancelToken
    from albumtagger.service.indexing import index_folder

    settings = load_settings()
    seen = []
    cancel = CancelToken()

    def on_progress(p) -> None:
        seen.append((p.phase, p.done, p.total))
        if p.phase == "vocabulary" and p.done >= 64:
            cancel.cancel()  # stop during the prompts: what was embedded is kept

    with open_library(photos, Path(golden_env["ALBUMTAGGER_DATA_DIR"])) as library:
        first = index_folder(library, settings, cancel=cancel, on_progress=on_progress)
        assert first.tagging.cancelled
        kept = library.store.conn.execute("SELECT COUNT(*) FROM tag_embeddings").fetchone()[0]
        assert kept == 64
        seen.clear()
        index_folder(library, settings, on_progress=on_progress)
    # What comes before any count: the scan, the model loading (no lock held), and the
    # scan again under the lock (another process may have changed the folder meanwhile).
    before = [s[0] for s in seen[:3]]
    assert before == ["scan", "model", "scan"]
    seen = seen[3:]
    phases = [s[0] for s in seen]
    assert phases[0] == "vocabulary" and seen[0][2] > 300  # the rest of the prompts
    assert phases[-1] == "tag" and seen[-1][1:] == (12, 12)  # damaged ones count too
    assert phases.index("tag") > max(i for i, ph in enumerate(phases) if ph == "vocabulary")
