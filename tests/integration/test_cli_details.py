"""Small things a person notices at the terminal: messages, escapes, plurals, exit codes."""

from __future__ import annotations

import io
import struct
from pathlib import Path

from PIL import Image

from albumtagger.library.images import PhotoDecodeError, read_photo
from tests.conftest import cli_json, make_photo, run_cli


def _tiff_with_compression(path: Path, code: int) -> Path:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 10, 10)).save(buffer, "TIFF")
    data = bytearray(buffer.getvalue())
    offset = struct.unpack("<I", data[4:8])[0]
    for i in range(struct.unpack("<H", data[offset : offset + 2])[0]):
        entry = offset + 2 + 12 * i
        if struct.unpack("<H", data[entry : entry + 2])[0] == 259:
            data[entry + 8 : entry + 10] = struct.pack("<H", code)
    path.write_bytes(bytes(data))
    return path


def test_a_tiff_pillow_cannot_decode_is_unsupported_not_corrupt(tmp_path: Path) -> None:
    path = _tiff_with_compression(tmp_path / "scan.tif", 34712)  # JPEG 2000 in TIFF
    try:
        read_photo(path)
    except PhotoDecodeError as exc:
        assert exc.reason.startswith("not supported (TIFF compression 34712")
    else:
        raise AssertionError("Pillow decoded it after all")


def test_text_output_escapes_names_and_says_damage_once(tmp_path: Path, isolated_env) -> None:
    root = tmp_path / "album"
    make_photo(root / "line\nbreak.jpg", 1)
    make_photo(root / "fine.jpg", 2)
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    run_cli("index", str(root), "--scan-only", env=isolated_env)
    run_cli("correct", str(root), "line\nbreak.jpg", "--add", "dog", env=isolated_env)
    out = run_cli("tags", str(root), env=isolated_env).stdout
    assert "line\\nbreak.jpg: dog" in out and "line\nbreak" not in out
    broken = next(line for line in out.splitlines() if line.startswith("broken.jpg"))
    assert broken.count("damaged") == 1, broken
    found = run_cli("find", str(root), "--tag", "dog", env=isolated_env).stdout
    assert found == "line\\nbreak.jpg\n"


def test_vocab_add_says_what_it_did(tmp_path: Path, isolated_env) -> None:
    root = tmp_path / "album"
    make_photo(root / "a.jpg", 1)
    run_cli("index", str(root), "--scan-only", env=isolated_env)
    out = run_cli("vocab", str(root), "--add", "Rock Pool", "--add", "DOG", env=isolated_env)
    assert "Added 'rock pool'." in out.stdout
    assert "Already in the vocabulary: 'dog'" in out.stdout


def test_plurals_and_cleanup_json(tmp_path: Path, isolated_env) -> None:
    root = tmp_path / "album"
    make_photo(root / "a.jpg", 1)
    make_photo(root / "b.jpg", 2)
    run_cli("index", str(root), "--scan-only", env=isolated_env)
    (root / "a.jpg").unlink()
    run_cli("index", str(root), "--scan-only", env=isolated_env)
    assert run_cli("cleanup", str(root), env=isolated_env).stdout == "Forgot 1 missing photo.\n"
    assert cli_json("cleanup", str(root), env=isolated_env)["removed"] == 0


def test_review_marks_only_suggestions_with_a_question(tmp_path: Path, golden_env) -> None:
    root = tmp_path / "album"
    for i in range(8):
        make_photo(root / f"p{i}.jpg", 40 + i)
    run_cli("index", str(root), env=golden_env)
    items = cli_json("review", str(root), "--limit", "40", env=golden_env)
    lines = run_cli("review", str(root), "--limit", "40", env=golden_env).stdout.splitlines()
    assert len(lines) == len(items) and any(not i["suggested"] for i in items)
    for item, line in zip(items, lines, strict=True):
        marked = f"{item['tag']}?" in line
        assert marked == item["suggested"], line
        assert ("(not suggested" in line) == (not item["suggested"])
