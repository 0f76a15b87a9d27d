"""Hostile files in a photo folder someone else can write to: FIFOs and devices where a
sidecar or a photo should be, links planted at the names of files albumtagger writes, a
linked `.albumtagger` folder, sidecars with thousands of keywords, XMP in UTF-16, bad
embedded metadata. Each runs the real CLI in a child with a timeout where a hang is the
failure, or the library on real files."""

from __future__ import annotations

import codecs
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from albumtagger import safe_io
from albumtagger.config import Settings, load_settings, save_settings
from albumtagger.library import keywords
from albumtagger.library.export import xmp_sidecars as xmp
from albumtagger.library.folder import open_library
from albumtagger.library.scanner import run_to_end, scan
from albumtagger.library.thumbnails import ThumbnailCache
from tests.conftest import REPO, accept_tag, make_photo, scan_and_read
from tests.reliability.helpers import golden

TIMEOUT = 60
"""Each of these finishes in a few seconds; a hang (a FIFO read) runs into this."""


def _packet(words: list[str]) -> str:
    items = "".join(f"<rdf:li>{w}</rdf:li>" for w in words)
    return (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
        'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
        'rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:subject><rdf:Bag>'
        f"{items}</rdf:Bag></dc:subject></rdf:Description></rdf:RDF></x:xmpmeta>\n"
    )


def _measured(
    *args: str, env: dict[str, str], timeout: float = TIMEOUT
) -> tuple[subprocess.CompletedProcess[str], float, int]:
    """Run `albumtagger ARGS` through a small parent that reports its peak memory:
    (the process, seconds, peak resident set in KiB)."""
    wrapper = (
        "import resource, subprocess, sys\n"
        "p = subprocess.run([sys.executable, '-m', 'albumtagger', *sys.argv[1:]])\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)\n"
        "sys.exit(p.returncode)\n"
    )
    command = [sys.executable, "-c", wrapper, *args]
    start = time.monotonic()
    with subprocess.Popen(
        command,
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # so a hung albumtagger can be ended with its parent
    ) as child:
        try:
            out, err = child.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.communicate()
            raise
    seconds = time.monotonic() - start
    *rest, peak = err.rstrip().rsplit("\n", 1)
    proc = subprocess.CompletedProcess(command, child.returncode, out, rest[0] if rest else "")
    return proc, seconds, int(peak)


def _index_json(root: Path, env: dict[str, str], *extra: str) -> dict:
    proc, _, _ = _measured("index", str(root), "--json", *extra, env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _keyword_problems(summary: dict) -> dict[str, str]:
    problems: dict[str, str] = {}
    for path, why in summary["keywords"]["problems"]:
        problems[path] = problems.get(path, "") + why + "\n"
    return problems


# -- special files where a sidecar or a photo should be ------------------------------


def test_fifo_and_dev_zero_sidecars_do_not_hang_or_grow_the_index(tmp_path: Path) -> None:
    root = tmp_path / "Photos"
    make_photo(root / "a.jpg", 1)
    make_photo(root / "b.jpg", 2)
    make_photo(root / "c.jpg", 3)
    os.mkfifo(root / "a.jpg.xmp")  # nobody ever writes to it: a read blocks forever
    os.symlink("/dev/zero", root / "b.jpg.xmp")  # endless, and stat() says 0 bytes
    (root / "c.jpg.xmp").write_text(_packet(["harbour"]), encoding="utf-8")
    env = golden(tmp_path)
    proc, seconds, peak_kib = _measured("index", str(root), "--scan-only", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    assert seconds < 30
    assert peak_kib < 600 * 1024  # reading /dev/zero grew past 1 GB before
    problems = _keyword_problems(json.loads(proc.stdout))
    assert "a.jpg.xmp: not a regular file (a pipe, socket or device); not read" in problems["a.jpg"]
    assert "b.jpg.xmp: a symbolic link" in problems["b.jpg"]
    assert "c.jpg" not in problems
    tags = json.loads(
        subprocess.run(
            [sys.executable, "-m", "albumtagger", "tags", str(root), "c.jpg", "--json"],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=True,
        ).stdout
    )
    assert [t["name"] for t in tags[0]["tags"]] == ["harbour"]


def test_special_files_named_like_photos_are_reported_and_never_read(tmp_path: Path) -> None:
    root = tmp_path / "Special"
    make_photo(root / "a.jpg", 1)
    os.mkfifo(root / "pipe.jpg")
    os.symlink("/dev/zero", root / "zeros.jpg")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(root / "socket.jpg"))
        summary = _index_json(root, golden(tmp_path), "--scan-only")
    finally:
        sock.close()
    problems = dict(summary["scan"]["problems"])
    assert "not a file (a pipe, socket or device)" in problems["pipe.jpg"]
    assert "not a file (a pipe, socket or device)" in problems["socket.jpg"]
    assert "zeros.jpg" in problems  # a link into /dev
    assert summary["tagging"]["damaged"] == 0


def test_bounded_read_counts_while_reading(tmp_path: Path) -> None:
    # /proc files are regular files whose stat() says 0 bytes, like a device does.
    maps = Path("/proc/self/maps")
    assert maps.stat().st_size == 0 and len(maps.read_bytes()) > 10
    with pytest.raises(safe_io.FileTooLargeError):
        safe_io.read_regular(maps, 10)
    with pytest.raises(safe_io.NotRegularFileError):
        safe_io.read_regular("/dev/zero", 10)
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(safe_io.NotRegularFileError):
        safe_io.read_regular(tmp_path / "fifo", 10)  # returns at once, no writer needed
    (tmp_path / "real").write_bytes(b"12345")
    os.symlink(tmp_path / "real", tmp_path / "link")
    assert safe_io.read_regular(tmp_path / "link", 5) == b"12345"
    with pytest.raises(OSError):
        safe_io.read_regular(tmp_path / "link", 5, follow_links=False)


def test_vocabulary_import_refuses_a_fifo_and_dev_zero(tmp_path: Path) -> None:
    root = tmp_path / "Photos"
    make_photo(root / "a.jpg", 1)
    env = golden(tmp_path)
    _index_json(root, env, "--scan-only")
    os.mkfifo(tmp_path / "tags.txt")
    for source in (tmp_path / "tags.txt", Path("/dev/zero")):
        proc, seconds, _ = _measured("vocab", str(root), "--import", str(source), env=env)
        assert proc.returncode != 0 and seconds < 30
        assert "not a regular file" in proc.stderr, proc.stderr
        assert "internal error" not in proc.stderr


# -- links planted at the names of files albumtagger writes ----------------------------


def test_a_link_planted_at_a_sidecar_name_is_not_written_through(tmp_path: Path) -> None:
    root = tmp_path / "Photos"
    make_photo(root / "a.jpg", 1)
    make_photo(root / "b.jpg", 2)
    victim = tmp_path / "victim.xmp"
    victim.write_text(_packet(["private"]), encoding="utf-8")
    before = victim.read_bytes()
    os.symlink(victim, root / "a.jpg.xmp")
    with open_library(root, tmp_path / "data") as library:
        scan_and_read(library)
        accept_tag(library, "a.jpg", "dog")
        accept_tag(library, "b.jpg", "cat")
        with pytest.raises(xmp.XmpWriteError) as caught:
            xmp.export_xmp(library)
        tags = {t.name for t in library.store.photo_tags([library.store.photo_by_path("a.jpg").id])}
    assert victim.read_bytes() == before
    assert (root / "a.jpg.xmp").is_symlink()
    assert "private" not in tags  # the linked file was not read either
    report = caught.value.report
    assert report.written == ["b.jpg.xmp"]
    assert "a symbolic link" in dict(report.failed)["a.jpg.xmp"]


def test_a_link_planted_in_the_thumbnail_cache_is_neither_read_nor_followed(
    tmp_path: Path,
) -> None:
    cache = ThumbnailCache(tmp_path / "thumbs")
    content_hash = "ab" * 32
    victim = tmp_path / "victim"
    victim.write_bytes(b"secret")
    cache.path(content_hash).parent.mkdir(parents=True)
    os.symlink(victim, cache.path(content_hash))
    assert cache.get(content_hash) is None
    assert content_hash not in cache
    cache.put_image(content_hash, Image.new("RGB", (40, 30), "red"))
    assert victim.read_bytes() == b"secret"
    assert not cache.path(content_hash).is_symlink()
    assert cache.get(content_hash) is not None


def test_a_link_planted_beside_the_settings_file_is_not_written_through(
    tmp_path: Path,
) -> None:
    path = tmp_path / "config" / "config.toml"
    path.parent.mkdir()
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    for name in ("config.partial", "config.toml.partial", "config.toml.tmp"):
        os.symlink(victim, path.with_name(name))
    settings = Settings()
    settings.watch.quiet_seconds = 3.0
    save_settings(settings, path)
    assert victim.read_text() == "keep me"
    assert load_settings(path, environ={}).watch.quiet_seconds == 3.0


def test_a_sidecar_folder_linked_out_of_the_photo_folder_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "Photos"
    make_photo(root / "a.jpg", 1)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(elsewhere, root / ".albumtagger")
    env = golden(tmp_path)
    proc, _, _ = _measured("index", str(root), "--scan-only", env=env)
    assert proc.returncode != 0
    assert "outside the photo folder" in proc.stderr
    assert safe_io.LINKED_SIDECAR_ENV in proc.stderr
    assert "internal error" not in proc.stderr
    assert list(elsewhere.iterdir()) == []
    # The user made the link on purpose and says so.
    env[safe_io.LINKED_SIDECAR_ENV] = "1"
    _index_json(root, env, "--scan-only")
    assert (elsewhere / "library.sqlite").is_file()


def test_a_sidecar_folder_linked_within_the_photo_folder_is_used(tmp_path: Path) -> None:
    root = tmp_path / "Photos"
    make_photo(root / "a.jpg", 1)
    (root / ".library-here").mkdir()
    os.symlink(".library-here", root / ".albumtagger")
    _index_json(root, golden(tmp_path), "--scan-only")
    assert (root / ".library-here" / "library.sqlite").is_file()


# -- keyword caps ----------------------------------------------------------------------


def test_a_sidecar_with_20000_keywords_is_capped_and_reported_quickly(tmp_path: Path) -> None:
    root = tmp_path / "Photos"
    for i in range(3):
        make_photo(root / f"p{i}.jpg", i)
    words = [f"keyword {i:05d}" for i in range(20_000)]
    (root / "p0.jpg.xmp").write_text(_packet(words), encoding="utf-8")
    assert (root / "p0.jpg.xmp").stat().st_size > 400_000
    env = golden(tmp_path)
    proc, seconds, _ = _measured("index", str(root), "--scan-only", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    assert seconds < 30
    summary = json.loads(proc.stdout)
    assert len(summary["keywords"]["created"]) == keywords.MAX_KEYWORDS
    assert summary["keywords"]["created"][:2] == ["keyword 00000", "keyword 00001"]
    assert (
        "holds 20,000 keywords; only the first 500 were taken"
        in (_keyword_problems(summary)["p0.jpg"])
    )


def test_one_import_makes_a_bounded_number_of_new_tags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(keywords, "MAX_NEW_TAGS", 25)
    root = tmp_path / "Photos"
    for i in range(3):
        make_photo(root / f"p{i}.jpg", i)
        words = [f"p{i} word {n}" for n in range(10)] + ["shared"]
        (root / f"p{i}.jpg.xmp").write_text(_packet(words), encoding="utf-8")
    with open_library(root, tmp_path / "data") as library:
        run_to_end(scan(library))
        report = keywords.import_changed_sidecars(library)
        names = {t.name for t in library.store.tags()}
    assert len(report.created) == 25
    # p0 makes 11 (its 10 and "shared"), p1 10, p2 the 4 left; its "shared" is taken.
    assert "p2 word 3" in names and "p2 word 4" not in names
    assert report.accepted == 11 + 11 + 5
    assert dict(report.problems)["p2.jpg"] == (
        "6 keywords not taken: one index makes at most 25 new tags from keywords"
    )


# -- XMP encodings and embedded metadata -----------------------------------------------


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_utf16_sidecars_with_a_byte_order_mark_are_read(tmp_path: Path, codec: str) -> None:
    sidecar = tmp_path / "a.jpg.xmp"
    text = '<?xml version="1.0" encoding="UTF-16"?>\n' + _packet(["été", "plage"])
    sidecar.write_bytes("\ufeff".encode(codec) + text.encode(codec) + b"\x00" * 4)
    assert keywords.read_sidecar(sidecar)[0] == ["été", "plage"]


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_a_dtd_in_utf16_is_refused(codec: str) -> None:
    bomb = (
        '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE x [<!ENTITY a "aaaaaaaa">'
        '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">&b;</x:xmpmeta>'
    )
    for data in (bomb.encode(codec), "\ufeff".encode(codec) + bomb.encode(codec)):
        with pytest.raises(keywords.XmpParseError, match="DTD"):
            keywords.parse_packet(data)


def test_utf32_is_refused_with_a_reason() -> None:
    with pytest.raises(keywords.XmpParseError, match="UTF-32"):
        keywords.parse_packet(codecs.BOM_UTF32_LE + _packet(["x"]).encode("utf-32-le"))


def test_bad_embedded_xmp_and_bad_sidecars_are_named_in_the_index_output(
    tmp_path: Path,
) -> None:
    root = tmp_path / "Photos"
    make_photo(root / "plain.jpg", 1)
    Image.new("RGB", (64, 48), "navy").save(root / "embedded.jpg", xmp=b"<x:xmpmeta <<< broken")
    make_photo(root / "sidecar.jpg", 2)
    (root / "sidecar.jpg.xmp").write_bytes(b"\x89 not xml at all")
    env = golden(tmp_path)
    summary = _index_json(root, env, "--scan-only")
    problems = _keyword_problems(summary)
    assert "embedded metadata: not read as XMP" in problems["embedded.jpg"]
    assert problems["sidecar.jpg"].count("sidecar.jpg.xmp: not read as XMP") == 1
    assert "plain.jpg" not in problems
    # The plain-text output names them too (a second run reads the sidecar again).
    proc, _, _ = _measured("index", str(root), "--scan-only", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "Keywords of sidecar.jpg: sidecar.jpg.xmp: not read as XMP" in proc.stdout
