"""Scanning real folders: moves, changes, missing vs offline, bad files, odd names."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from albumtagger.library.folder import Library, open_library
from albumtagger.library.scanner import run_to_end, scan
from tests.conftest import accept_tag, make_photo, scan_and_read


def _open(root: Path, tmp_path: Path) -> Library:
    return open_library(root, tmp_path / "data")


_index = scan_and_read
_tag = accept_tag


def _tags_of(library: Library, path: str) -> list[tuple[str, str]]:
    row = library.store.photo_by_path(path)
    return [(t.name, t.state) for t in library.store.photo_tags([row.id])]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "Photos"
    make_photo(folder / "a.jpg", 1)
    make_photo(folder / "trip" / "b.png", 2)
    make_photo(folder / "trip" / "deep" / "c.jpg", 3)
    return folder


def test_scan_finds_photos_and_skips_hidden_and_sidecar(root: Path, tmp_path: Path) -> None:
    make_photo(root / ".hidden" / "x.jpg", 9)
    make_photo(root / ".dotfile.jpg", 10)
    (root / "notes.txt").write_text("not a photo")
    with _open(root, tmp_path) as lib:
        report = _index(lib)
        assert report.added == 3
        assert sorted(lib.store.photo_index()) == ["a.jpg", "trip/b.png", "trip/deep/c.jpg"]
        assert (root / ".albumtagger" / "library.sqlite").is_file()
        # A second scan sees nothing new.
        again = _index(lib)
        assert (again.added, again.changed, again.unchanged) == (0, 0, 3)


def test_move_and_rename_keep_tags_and_identity(root: Path, tmp_path: Path) -> None:
    with _open(root, tmp_path) as lib:
        _index(lib)
        _tag(lib, "a.jpg")
        old = lib.store.photo_by_path("a.jpg")
        (root / "moved").mkdir()
        os.rename(root / "a.jpg", root / "moved" / "renamed a.jpg")
        report = _index(lib)
        assert report.missing == 1 and report.added == 1
        new = lib.store.photo_by_path("moved/renamed a.jpg")
        assert new.id == old.id and new.content_hash == old.content_hash
        assert new.status == "ok"
        assert lib.store.photo_by_path("a.jpg") is None
        assert _tags_of(lib, "moved/renamed a.jpg") == [("dog", "accepted")]


def test_changed_content_is_read_again(root: Path, tmp_path: Path) -> None:
    with _open(root, tmp_path) as lib:
        _index(lib)
        before = lib.store.photo_by_path("a.jpg")
        make_photo(root / "a.jpg", 42, size=(120, 80))
        os.utime(root / "a.jpg", ns=(before.mtime_ns + 10**9, before.mtime_ns + 10**9))
        report = run_to_end(scan(lib))
        assert report.changed == 1
        assert lib.store.photo_by_path("a.jpg").status == "pending"
        _index(lib)
        after = lib.store.photo_by_path("a.jpg")
        assert after.id == before.id
        assert after.content_hash != before.content_hash
        assert (after.width, after.height) == (120, 80)


def test_deleted_photo_is_marked_missing_and_kept(root: Path, tmp_path: Path) -> None:
    with _open(root, tmp_path) as lib:
        _index(lib)
        _tag(lib, "trip/b.png")
        (root / "trip" / "b.png").unlink()
        report = _index(lib)
        assert report.missing == 1
        row = lib.store.photo_by_path("trip/b.png")
        assert row.status == "missing"
        assert _tags_of(lib, "trip/b.png") == [("dog", "accepted")]
        # It comes back: found again, tags intact.
        make_photo(root / "trip" / "b.png", 2)
        report = _index(lib)
        assert report.returned == 1
        assert lib.store.photo_by_path("trip/b.png").status == "ok"
        assert _tags_of(lib, "trip/b.png") == [("dog", "accepted")]


def test_root_renamed_away_is_offline_and_nothing_is_lost(root: Path, tmp_path: Path) -> None:
    with _open(root, tmp_path) as lib:
        _index(lib)
        _tag(lib, "a.jpg")
        before = lib.store.photo_index()
        away = root.with_name("Photos-unplugged")
        os.rename(root, away)
        try:
            assert not lib.is_online()
            report = run_to_end(scan(lib))
            assert report.offline
        finally:
            os.rename(away, root)
        assert lib.is_online()
        assert lib.store.photo_index() == before
        report = _index(lib)
        assert not report.offline and report.missing == 0 and report.unchanged == 3
        assert _tags_of(lib, "a.jpg") == [("dog", "accepted")]


def test_empty_mount_point_is_offline(root: Path, tmp_path: Path) -> None:
    """A drive unplugged leaves an empty mount folder: that is offline, not 'all gone'."""
    with _open(root, tmp_path) as lib:
        _index(lib)
        hidden = tmp_path / "drive-contents"
        shutil.move(str(root), hidden)
        root.mkdir()
        report = run_to_end(scan(lib))
        assert report.offline
        assert lib.store.count_photos()["missing"] == 0


def test_symlink_loop_is_survived_and_reported(root: Path, tmp_path: Path) -> None:
    os.symlink(root, root / "trip" / "loop")
    os.symlink(root / "nowhere", root / "broken.jpg")
    with _open(root, tmp_path) as lib:
        report = _index(lib)
        assert report.added == 3
        problems = dict(report.problems)
        assert "symbolic link loop" in problems["trip/loop"]
        assert problems["broken.jpg"] == "broken symbolic link"


def test_unicode_and_odd_names(root: Path, tmp_path: Path) -> None:
    names = ["Föto 日本 😀.jpg", "-dash.jpg", "100% #1 'q'.png", "sp  aces .jpg", "ü/ñ.jpg"]
    for i, name in enumerate(names):
        make_photo(root / name, 100 + i)
    with _open(root, tmp_path) as lib:
        _index(lib)
        rows = lib.store.photo_index()
        for name in names:
            assert rows[name].status == "ok", name


def test_names_that_are_not_utf8_are_reported_not_fatal(root: Path, tmp_path: Path) -> None:
    data = (root / "a.jpg").read_bytes()
    bad = os.fsencode(root) + b"/caf\xe9 latin-1.jpg"
    with open(bad, "wb") as f:
        f.write(data)
    with _open(root, tmp_path) as lib:
        report = _index(lib)
        assert report.added == 3
        assert any("not valid UTF-8" in why for _, why in report.problems)


def test_bad_files_are_recorded_damaged_with_a_reason(root: Path, tmp_path: Path) -> None:
    good = (root / "a.jpg").read_bytes()
    (root / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (root / "empty.jpg").write_bytes(b"")
    (root / "text.png").write_text("<html>not an image</html>")
    (root / "random.webp").write_bytes(os.urandom(2000))
    with _open(root, tmp_path) as lib:
        _index(lib)
        rows = lib.store.photo_index()
        for name in ("truncated.jpg", "empty.jpg", "text.png", "random.webp"):
            assert rows[name].status == "damaged", name
            assert rows[name].error, name
        assert "truncated" in rows["truncated.jpg"].error
        assert rows["a.jpg"].status == "ok"
        # Damaged files are not read again until they change.
        assert _index(lib).changed == 0


def test_read_only_folder_keeps_its_library_in_the_data_dir(
    root: Path, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setattr("albumtagger.library.folder._writable", lambda folder: False)
    with _open(root, tmp_path) as lib:
        assert not lib.sidecar_in_folder
        assert str(lib.store.db_path).startswith(str(tmp_path / "data"))
        report = _index(lib)
        assert report.added == 3
    assert not (root / ".albumtagger").exists()
