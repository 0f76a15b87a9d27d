"""Hostile strings (quotes, SQL, control characters, markup, right-to-left text,
emoji) in tag names, prompts and file names: stored as given, shown as text, escaped
in every output (CLI text, JSON, XMP)."""

from __future__ import annotations

import json
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from albumtagger.library.db.store import AutoTag
from albumtagger.library.folder import open_library
from albumtagger.tagging.vocabulary import clean_name
from tests.conftest import make_photo, run_cli, scan_and_read

SQL = "'); DROP TABLE tags;--"
HOSTILE_TAGS = [
    SQL,
    "\"quoted\" 'single' `back`",
    "<b>x</b>",
    "<img src=x onerror=alert(1)>",
    "&amp; &lt;not an entity&gt; ]]> <!-- c --> <?pi?>",
    "שלום עולם",  # right-to-left
    "abc\u202edcba",  # a right-to-left override
    "bell\x07 esc\x1b[31mred\x1b[0m nul\x00",
    "emoji 🐶👩\u200d👩\u200d👧 🇫🇷",
    "back\\slash %s {0} $(rm -rf ~)",
]
HOSTILE_PROMPTS = ["a photo of <i>it</i>", SQL, "tab\there \x1b[2J"]
HOSTILE_FILES = [  # "<b>bold</b>.jpg": a folder `<b>bold<` holding `b>.jpg`
    "'); DROP TABLE photos;--.jpg",
    "<b>bold</b>.jpg",
    "<img src=x>.jpg",
    "quo\"te's.jpg",
    "שלום.jpg",
    "x\u202egpj.exe.jpg",
    "emoji 🐶.jpg",
    "esc\x1b[31m.jpg",
    "new\nline.jpg",
    "amp&amp;.jpg",
]
# Characters that must never reach a terminal as they are.
TERMINAL_UNSAFE = ["\x00", "\x07", "\x1b", "\u202e"]


def _stored(name: str) -> str:
    return clean_name(name)


@pytest.fixture
def hostile_library(tmp_path: Path, isolated_env: dict[str, str]) -> tuple[Path, dict]:
    folder = tmp_path / "photos"
    for i, name in enumerate(HOSTILE_FILES):
        make_photo(folder / name, seed=i, size=(48, 32))
    library = open_library(folder, tmp_path / "data")
    try:
        scan_and_read(library)
        store = library.store
        with store.transaction():
            store.add_tags([(_stored(n), [*HOSTILE_PROMPTS, n]) for n in HOSTILE_TAGS])
        rows = sorted(store.photos(), key=lambda r: r.path)
        for i, row in enumerate(rows):
            names = [HOSTILE_TAGS[i % len(HOSTILE_TAGS)], HOSTILE_TAGS[(i + 3) % len(HOSTILE_TAGS)]]
            tags = [store.tag_by_name(_stored(n)) for n in names]
            store.replace_suggestions({row.id: [AutoTag(t.id, 0.4, False, "high") for t in tags]})
            for t in tags:
                store.set_user_decision(row.id, t.id, "accepted", "auto", 0.4)
        stored_tags = sorted(t.name for t in store.tags())
        stored_paths = sorted(r.path for r in store.photos())
    finally:
        library.close()
    return folder, {
        "env": isolated_env,
        "tags": stored_tags,
        "paths": stored_paths,
    }


def test_stored_exactly_as_given(hostile_library) -> None:
    folder, info = hostile_library
    assert info["tags"] == sorted(_stored(n) for n in HOSTILE_TAGS)
    assert info["paths"] == sorted(HOSTILE_FILES)
    # The SQL did nothing: every table is still there and holds what it should.
    library = open_library(folder, folder.parent / "data", create=False)
    try:
        assert len(library.store.tags()) == len(HOSTILE_TAGS)
        assert set(library.store.tag_by_name(_stored(SQL)).prompts) == {*HOSTILE_PROMPTS, SQL}
    finally:
        library.close()


def test_json_round_trips_exactly(hostile_library) -> None:
    folder, info = hostile_library
    env = info["env"]
    tags = json.loads(run_cli("tags", str(folder), "--json", env=env).stdout)
    assert sorted(item["path"] for item in tags) == sorted(HOSTILE_FILES)
    seen = {t["name"] for item in tags for t in item["tags"]}
    assert seen == {_stored(n) for n in HOSTILE_TAGS}
    vocab = json.loads(run_cli("vocab", str(folder), "--list", "--json", env=env).stdout)
    by_name = {t["name"]: t["prompts"] for t in vocab}
    assert set(by_name) == {_stored(n) for n in HOSTILE_TAGS}
    assert set(by_name[_stored(SQL)]) == {*HOSTILE_PROMPTS, SQL}
    found = json.loads(run_cli("find", str(folder), "--tag", SQL, "--json", env=env).stdout)
    assert found and all(f["path"] in HOSTILE_FILES for f in found)


def test_cli_text_shows_names_escaped(hostile_library) -> None:
    folder, info = hostile_library
    env = info["env"]
    outputs = [
        run_cli("tags", str(folder), env=env).stdout,
        run_cli("vocab", str(folder), "--list", env=env).stdout,
        run_cli("find", str(folder), "--tag", "<b>x</b>", env=env).stdout,
    ]
    for out in outputs:
        for ch in TERMINAL_UNSAFE:
            assert ch not in out, (ch, out)
    tags_out, vocab_out, find_out = outputs
    # One line a photo, the names there as text (a newline in a name shown as \n).
    assert len(tags_out.splitlines()) == len(HOSTILE_FILES)
    assert "new\\nline.jpg" in tags_out and "<b>bold</b>.jpg" in tags_out
    assert SQL.lower() in vocab_out and "<img src=x onerror=alert(1)>" in vocab_out
    assert "\\x1b[31m" in vocab_out and "\\u202e" in vocab_out
    assert "emoji 🐶👩\u200d👩\u200d👧 🇫🇷" in vocab_out and "שלום עולם" in vocab_out
    assert len(vocab_out.splitlines()) == len(HOSTILE_TAGS)
    assert find_out.strip()


def _keywords(sidecar: Path) -> set[str]:
    root = ET.parse(sidecar).getroot()  # well-formed XML, or this raises
    ns = {
        "dc": "http://purl.org/dc/elements/1.1/",
        "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    }
    return {li.text or "" for li in root.iterfind(".//dc:subject/rdf:Bag/rdf:li", ns)}


def test_xmp_sidecars_are_well_formed_and_hold_the_names(hostile_library) -> None:
    folder, info = hostile_library
    env = info["env"]
    report = json.loads(run_cli("export-xmp", str(folder), "--json", env=env).stdout)
    assert len(report["written"]) == len(HOSTILE_FILES), report
    sidecars = sorted(folder.rglob("*.xmp"))
    assert len(sidecars) == len(HOSTILE_FILES)
    keywords: set[str] = set()
    for sidecar in sidecars:
        text = sidecar.read_text(encoding="utf-8")
        assert "<b>" not in text and "<img" not in text  # markup only as &lt;b&gt;
        keywords |= _keywords(sidecar)
    # Every name is there as text, except what XML 1.0 cannot hold at all (NUL, bell,
    # escape), which must not break the file.
    for name in HOSTILE_TAGS:
        stored = _stored(name)
        if any(ord(c) < 0x20 for c in stored):
            assert any("bell" in k and "red" in k for k in keywords), keywords
        else:
            assert stored in keywords, (stored, keywords)
    # A second export reads them back: no tag adopted from "another program", nothing
    # rejected, nothing skipped.
    again = json.loads(run_cli("export-xmp", str(folder), "--json", env=env).stdout)
    assert not again.get("adopted") and not again.get("rejected_elsewhere"), again
    assert not again.get("skipped"), again
    exiftool = shutil.which("exiftool")
    if exiftool:
        for sidecar in sidecars:
            proc = subprocess.run(
                [exiftool, "-j", "-XMP-dc:Subject", str(sidecar)],
                capture_output=True,
                text=True,
                check=True,
            )
            assert json.loads(proc.stdout)[0].get("Subject"), proc.stdout
