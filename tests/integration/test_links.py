"""Symbolic links in a photo folder: the scan (and the watcher) stay inside the folder
unless told to follow links out of it, and never go into /proc, /sys or /dev."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from albumtagger.library.folder import Library, open_library
from albumtagger.library.fs_events import FolderWatcher
from albumtagger.library.scanner import (
    OUTSIDE_LINK,
    SYSTEM_FOLDERS,
    ScanReport,
    link_refusal,
    run_to_end,
    scan,
)
from tests.conftest import cli_json, make_photo
from tests.integration.test_watcher import QUIET, SMALL, collect, settled


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "Photos"
    make_photo(folder / "a.jpg", 1, SMALL)
    make_photo(folder / "trip" / "b.jpg", 2, SMALL)
    return folder


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder beside the photo folder, with photos of its own."""
    folder = tmp_path / "Elsewhere"
    make_photo(folder / "x.jpg", 11, SMALL)
    make_photo(folder / "sub" / "y.jpg", 12, SMALL)
    return folder


@pytest.fixture
def library(root: Path, tmp_path: Path) -> Iterator[Library]:
    with open_library(root, tmp_path / "data") as lib:
        yield lib


@pytest.fixture
def scanned(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The real paths of the folders listed while the test runs."""
    seen: list[str] = []
    real_scandir = os.scandir

    def spy(path=".") -> Iterator[os.DirEntry]:
        seen.append(os.path.realpath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", spy)
    return seen


def _scan(library: Library, follow: bool = False) -> ScanReport:
    return run_to_end(scan(library, follow_links_outside=follow))


def test_links_out_of_the_folder_are_reported_not_followed(
    library: Library, root: Path, outside: Path
) -> None:
    (root / "elsewhere").symlink_to(outside, target_is_directory=True)
    (root / "out.jpg").symlink_to(outside / "x.jpg")
    report = _scan(library)
    assert sorted(library.store.photo_index()) == ["a.jpg", "trip/b.jpg"]
    problems = dict(report.problems)
    assert problems["elsewhere"] == OUTSIDE_LINK
    assert problems["out.jpg"] == OUTSIDE_LINK
    assert "--follow-links" in OUTSIDE_LINK


def test_links_out_of_the_folder_are_followed_when_asked(
    library: Library, root: Path, outside: Path
) -> None:
    (root / "elsewhere").symlink_to(outside, target_is_directory=True)
    (root / "out.jpg").symlink_to(outside / "x.jpg")
    report = _scan(library, follow=True)
    assert sorted(library.store.photo_index()) == [
        "a.jpg",
        "elsewhere/sub/y.jpg",
        "elsewhere/x.jpg",
        "out.jpg",
        "trip/b.jpg",
    ]
    assert report.problems == []
    # Turned off again: what lay behind the links is missing (kept, with its tags).
    again = _scan(library)
    assert again.missing == 3
    assert dict(again.problems)["elsewhere"] == OUTSIDE_LINK


def test_a_link_to_the_filesystem_root_is_not_walked(
    library: Library, root: Path, scanned: list[str]
) -> None:
    (root / "everything").symlink_to("/", target_is_directory=True)
    began = time.monotonic()
    report = _scan(library)
    assert time.monotonic() - began < 5
    assert dict(report.problems)["everything"] == OUTSIDE_LINK
    assert "/" not in scanned
    assert sorted(library.store.photo_index()) == ["a.jpg", "trip/b.jpg"]


def test_system_folders_are_never_walked_even_when_following(
    library: Library, root: Path, tmp_path: Path, scanned: list[str]
) -> None:
    system = tmp_path / "links-to-system"
    system.mkdir()
    for name in ("proc", "sys", "dev"):
        (system / name).symlink_to(f"/{name}", target_is_directory=True)
    (system / "zeros.jpg").symlink_to("/dev/zero")
    (root / "system").symlink_to(system, target_is_directory=True)
    began = time.monotonic()
    report = _scan(library, follow=True)
    assert time.monotonic() - began < 5
    assert sorted(library.store.photo_index()) == ["a.jpg", "trip/b.jpg"]
    assert not [p for p in scanned if p.startswith(("/proc", "/sys", "/dev"))]
    problems = dict(report.problems)
    for name in ("proc", "sys", "dev"):
        assert problems[f"system/{name}"] == f"leads into /{name}, a system folder: never followed"
    assert "system folder" in problems["system/zeros.jpg"]


def test_system_folders_under_a_followed_root_link() -> None:
    # A link to / followed: its folders proc, sys, dev are refused by their real paths.
    for system in SYSTEM_FOLDERS:
        assert link_refusal(system, "/home/me/Photos", True)
        assert link_refusal(system + "/self", "/home/me/Photos", True)
    assert link_refusal("/usr/share", "/home/me/Photos", True) is None
    assert link_refusal("/usr/share", "/home/me/Photos", False) == OUTSIDE_LINK
    assert link_refusal("/home/me/Photos2", "/home/me/Photos", False) == OUTSIDE_LINK
    # A library that lives in one of them (a tmpfs under /dev/shm) is walked.
    assert link_refusal("/dev/shm/Photos/a", "/dev/shm/Photos", False) is None


def test_a_link_to_a_folder_inside_is_walked_once_by_its_real_path(
    library: Library, root: Path
) -> None:
    # "shortcut" sorts before "trip": the real folder still wins.
    (root / "shortcut").symlink_to(root / "trip", target_is_directory=True)
    (root / "also-a.jpg").symlink_to("a.jpg")
    report = _scan(library)
    assert sorted(library.store.photo_index()) == ["a.jpg", "also-a.jpg", "trip/b.jpg"]
    assert "already scanned" in dict(report.problems)["shortcut"]


def test_the_watcher_takes_only_links_the_scan_follows(root: Path, outside: Path) -> None:
    (root / "inside-target.jpg").write_bytes((root / "a.jpg").read_bytes())
    with FolderWatcher(root, quiet_seconds=QUIET) as watcher:
        (root / "out.jpg").symlink_to(outside / "x.jpg")
        (root / "in.jpg").symlink_to(root / "inside-target.jpg")
        sets = collect(watcher, lambda s: "in.jpg" in settled(s))
        sets.append(watcher.poll_changes(QUIET * 2))
    assert "out.jpg" not in settled(sets)
    with FolderWatcher(root, quiet_seconds=QUIET, follow_links_outside=True) as watcher:
        (root / "out2.jpg").symlink_to(outside / "sub" / "y.jpg")
        sets = collect(watcher, lambda s: "out2.jpg" in settled(s))


def test_polling_does_not_walk_a_link_to_the_filesystem_root(
    root: Path, scanned: list[str]
) -> None:
    (root / "everything").symlink_to("/", target_is_directory=True)
    with FolderWatcher(root, quiet_seconds=QUIET, force_polling=True, poll_seconds=0.2) as w:
        make_photo(root / "new.jpg", 30, SMALL)
        sets = collect(w, lambda s: "new.jpg" in settled(s), timeout=10)
    assert settled(sets) == ["new.jpg"]
    assert not [p for p in scanned if p.startswith(("/proc", "/usr"))]


def test_cli_index_follows_links_only_with_the_option(
    root: Path, outside: Path, isolated_env: dict[str, str]
) -> None:
    (root / "elsewhere").symlink_to(outside, target_is_directory=True)
    first = cli_json("index", str(root), "--scan-only", env=isolated_env)
    assert first["scan"]["added"] == 2
    assert ["elsewhere", OUTSIDE_LINK] in first["scan"]["problems"]
    second = cli_json("index", str(root), "--scan-only", "--follow-links", env=isolated_env)
    assert second["scan"]["added"] == 2 and second["scan"]["problems"] == []
    paths = {r["path"] for r in cli_json("tags", str(root), env=isolated_env)}
    assert paths == {"a.jpg", "trip/b.jpg", "elsewhere/x.jpg", "elsewhere/sub/y.jpg"}
