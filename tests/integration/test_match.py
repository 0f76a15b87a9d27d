"""`albumtagger match` and the vocabulary edits of `albumtagger vocab`, from the CLI with
the golden checkpoint: scores as the `embed` command's vectors give them."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from albumtagger.tagging import thresholds as th
from tests.conftest import cli_json, make_photo, run_cli


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 photos indexed once from the CLI (copied per test)."""
    from tests.integration.test_tag_editing import GOLDEN_ENV

    base = tmp_path_factory.mktemp("indexed-cli")
    root = base / "album"
    for i in range(12):
        make_photo(root / "sub" / f"p{i:02d}.jpg", 500 + i, size=(120, 90))
    env = {
        **GOLDEN_ENV,
        "ALBUMTAGGER_CONFIG": str(base / "config.toml"),
        "ALBUMTAGGER_DATA_DIR": str(base / "data"),
        "ALBUMTAGGER_CACHE_DIR": str(base / "cache"),
    }
    run_cli("index", str(root), env=env)
    return root


@pytest.fixture
def album(indexed: Path, tmp_path: Path, golden_env: dict) -> Path:
    root = tmp_path / "album"
    shutil.copytree(indexed, root)
    return root


def _embedded(image: Path, texts: list[str], env: dict) -> dict[str, float]:
    args = ["embed", "--image", str(image)]
    for t in texts:
        args += ["--text", t]
    data = cli_json(*args, env=env)
    vector = np.array(data["images"][0]["vector"])
    return {t["text"]: float(np.dot(vector, t["vector"])) for t in data["texts"]}


def _match(image: Path, texts: list[str], env: dict, *extra: str) -> dict:
    args = ["match", str(image), *extra]
    for t in texts:
        args += ["--text", t]
    return cli_json(*args, env=env)


def test_match_outside_a_library_scores_as_embed_does(tmp_path: Path, golden_env: dict) -> None:
    image = make_photo(tmp_path / "loose" / "photo.png", 42, size=(150, 100))
    texts = ["a beach at sunset", "a dog", "a receipt", "snow"]
    data = _match(image, texts, golden_env)
    expected = _embedded(image, texts, golden_env)
    assert data["image"] == str(image) and data["library"] is None
    matches = data["matches"]
    assert [m["text"] for m in matches] == sorted(texts, key=lambda t: -expected[t])
    for m in matches:
        assert m["score"] == pytest.approx(expected[m["text"]], abs=1e-4)
        assert m["rule"] == "base"
        threshold, median, scale = th.standalone_policy(th.ThresholdSettings())
        assert m["confidence"] == th.match_confidence(
            m["score"], threshold, median, scale, th.ThresholdSettings()
        )
    text = run_cli("match", str(image), "--text", "a dog", "--text", "snow", env=golden_env)
    lines = text.stdout.splitlines()
    assert lines[0] == str(image) and len(lines) == 3
    assert all("[" in line and "#" in line for line in lines[1:])


def test_match_inside_a_library_uses_its_thresholds(album: Path, golden_env: dict) -> None:
    image = album / "sub" / "p03.jpg"
    vocab = {t["name"]: t for t in cli_json("vocab", str(album), "--list", env=golden_env)}
    texts = ["beach", "dog", "a purple elephant on a skateboard"]
    assert "beach" in vocab and "dog" in vocab
    data = _match(image, texts, golden_env)
    expected = _embedded(image, texts, golden_env)
    assert Path(data["library"]) == album
    by_text = {m["text"]: m for m in data["matches"]}
    for t in texts:
        assert by_text[t]["score"] == pytest.approx(expected[t], abs=1e-4)
    assert by_text["beach"]["rule"] == "tag"
    assert by_text["beach"]["threshold"] == pytest.approx(vocab["beach"]["threshold"])
    assert by_text["a purple elephant on a skateboard"]["rule"] == "new tag"
    scores = [m["score"] for m in data["matches"]]
    assert scores == sorted(scores, reverse=True)
    levels = {"high", "medium", "low", "no match"}
    assert {m["confidence"] for m in data["matches"]} <= levels
    # the same image outside the library is judged by the base
    loose = album.parent / "loose.jpg"
    shutil.copy(image, loose)
    outside = _match(loose, texts, golden_env)
    assert outside["library"] is None
    assert {m["text"]: m["score"] for m in outside["matches"]} == pytest.approx(
        {m["text"]: m["score"] for m in data["matches"]}, abs=1e-6
    )


def test_match_usage_errors(tmp_path: Path, golden_env: dict) -> None:
    image = make_photo(tmp_path / "a.jpg", 1)
    assert run_cli("match", str(image), env=golden_env, check=False).returncode == 2
    missing = run_cli("match", str(tmp_path / "nope.jpg"), "--text", "x", check=False)
    assert missing.returncode == 1 and "no image file" in missing.stderr


# -- vocab edits from the CLI ----------------------------------------------------------


def _tags(root: Path, env: dict) -> dict[str, dict]:
    return {t["name"]: t for t in cli_json("vocab", str(root), "--list", env=env)}


def _tag_cells(root: Path) -> dict[str, int]:
    conn = sqlite3.connect(root / ".albumtagger" / "library.sqlite")
    rows = conn.execute(
        "SELECT t.name, COUNT(*) FROM photo_tags pt JOIN tags t ON t.id = pt.tag_id GROUP BY t.name"
    )
    out = dict(rows.fetchall())
    conn.close()
    return out


def test_vocab_rename_prompts_import_and_restore(
    album: Path, tmp_path: Path, golden_env: dict
) -> None:
    before = _tags(album, golden_env)
    cells = _tag_cells(album)
    busy = max(cells, key=lambda n: cells[n])
    out = run_cli("vocab", str(album), "--rename", busy, "Renamed One", env=golden_env)
    assert f"Renamed {busy!r} to 'renamed one'." in out.stdout
    after = _tags(album, golden_env)
    assert busy not in after and after["renamed one"]["prompts"] == before[busy]["prompts"]
    assert _tag_cells(album)["renamed one"] == cells[busy]

    # a clash, an unknown tag, a bad spec: usage errors, and nothing done
    other = next(n for n in after if n != "renamed one")
    for args in (
        ["--rename", "renamed one", "x2", "--rename", "renamed one", other],
        ["--rename", "no such tag", "x3"],
        ["--prompts", "renamed one"],
        ["--prompts", "no such tag: a | b"],
    ):
        proc = run_cli("vocab", str(album), *args, env=golden_env, check=False)
        assert proc.returncode == 2, (args, proc.stderr)
        assert proc.stderr.count("\n") == 1
    assert "x2" not in _tags(album, golden_env)

    out = run_cli(
        "vocab", str(album), "--prompts", "renamed one: a sunny day | clear sky", env=golden_env
    )
    assert "no photo was encoded again" in out.stdout and "2 prompts went through" in out.stdout
    assert _tags(album, golden_env)["renamed one"]["prompts"] == ["a sunny day", "clear sky"]

    listing = tmp_path / "mine.txt"
    listing.write_text("# mine\n\nkayak: a kayak on a lake\nbeach\n", "utf-8")
    out = run_cli("vocab", str(album), "--import", str(listing), env=golden_env)
    assert "Added 'kayak'." in out.stdout and "Already in the vocabulary: 'beach'" in out.stdout
    assert _tags(album, golden_env)["kayak"]["scored"]

    data = json.loads(
        run_cli("vocab", str(album), "--restore-defaults", "--json", env=golden_env).stdout
    )
    names = {t["name"] for t in data}
    assert busy in names and "renamed one" in names and "kayak" in names
    out = run_cli("vocab", str(album), "--restore-defaults", env=golden_env)
    assert "Nothing changed." in out.stdout
