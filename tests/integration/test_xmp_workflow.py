"""XMP from the command line and the session: export flags, write on change, cleanup, and
the export formats' seam."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from albumtagger.config import load_settings, replace_section
from albumtagger.errors import UsageError
from albumtagger.library import export
from albumtagger.library.export import ExportReport
from albumtagger.library.folder import Library
from albumtagger.service.session import LibrarySession
from tests.conftest import cli_json, make_photo, run_cli

EXIFTOOL = shutil.which("exiftool")


@pytest.fixture
def album(tmp_path: Path, isolated_env: dict) -> Path:
    root = tmp_path / "album"
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        make_photo(root / name, hash(name) % 1000)
    run_cli("index", str(root), "--scan-only", env=isolated_env)
    return root


def test_export_flags_and_cleanup(album: Path, isolated_env: dict) -> None:
    run_cli("correct", str(album), "a.jpg", "--add", "beach", env=isolated_env)
    run_cli("correct", str(album), "b.jpg", "--add", "dog", env=isolated_env)
    report = cli_json("export-xmp", str(album), "--style", "photo.xmp", env=isolated_env)
    assert sorted(report["written"]) == ["a.xmp", "b.xmp"]  # untagged c.jpg gets none
    assert "beach" in (album / "a.xmp").read_text()
    (album / "b.jpg").unlink()
    run_cli("index", str(album), "--scan-only", env=isolated_env)
    cleaned = cli_json("cleanup", str(album), env=isolated_env)
    assert cleaned["removed"] == 1 and cleaned["sidecars_deleted"] == ["b.xmp"]
    assert not (album / "b.xmp").exists() and (album / "a.xmp").exists()


def test_write_on_change_follows_corrections_and_undo(album: Path, isolated_env: dict) -> None:
    settings = replace_section(load_settings(), "xmp", write_on_change=True)
    sidecar = album / "c.jpg.xmp"
    with LibrarySession(album, settings, backup=False) as session:
        photo = session.store.photo_by_path("c.jpg").id
        session.correct([photo], "sunset", "add")
        assert "sunset" in sidecar.read_text()
        session.correct([photo], "grandma", "add")
        session.undo()
        text = sidecar.read_text()
        assert "sunset" in text and "grandma" not in text
        session.rename_tag("sunset", "dusk")
        assert "dusk" in sidecar.read_text() and "sunset" not in sidecar.read_text()
        session.remove_tags(["dusk"])  # its last tag: our sidecar of it goes
        assert not sidecar.exists()


def test_write_on_change_follows_the_command_line_all_or_none(
    album: Path, isolated_env: dict
) -> None:
    env = {**isolated_env, "ALBUMTAGGER_XMP_WRITE_ON_CHANGE": "1"}
    run_cli("correct", str(album), "a.jpg", "--add", "beach", "--add", "dog", env=env)
    text = (album / "a.jpg.xmp").read_text()
    assert "beach" in text and "dog" in text
    run_cli("vocab", str(album), "--rename", "beach", "shore", "--rename", "dog", "hound", env=env)
    text = (album / "a.jpg.xmp").read_text()
    assert "shore" in text and "hound" in text and "beach" not in text
    bad = ("correct", str(album), "b.jpg", "--add", "kite", "--accept", "no such tag")
    assert run_cli(*bad, env=env, check=False).returncode == 2
    assert cli_json("tags", str(album), "b.jpg", env=env)[0]["tags"] == []  # kite neither
    assert not (album / "b.jpg.xmp").exists()


@dataclass(frozen=True)
class _TagList:
    """A whole export format: one text file of photos and their tags."""

    name: str = "tags.txt"

    def export(
        self,
        library: Library,
        *,
        include_suggested: bool = False,
        photo_ids: Sequence[int] | None = None,
    ) -> ExportReport:
        lines = []
        for row in library.store.photos():
            names, _ = export.base.keywords_of(
                library.store.photo_tags([row.id]), include_suggested
            )
            lines.append(f"{row.path}: {', '.join(names)}\n")
        (library.root / self.name).write_text("".join(lines))
        return ExportReport(written=[self.name])


def test_a_new_export_format_is_a_class_and_a_registry_line(
    album: Path, isolated_env: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(export.FORMATS, "list", _TagList)
    with LibrarySession(album, load_settings(), backup=False) as session:
        session.correct_photo(session.photo_id("a.jpg"), [("add", "beach")])
        report = session.export_tags(export.exporter("list", name="list.txt"))
        assert report.written == ["list.txt"]
        xmp = session.export_tags(export.exporter("xmp", style="photo.xmp"))
        assert xmp.written == ["a.xmp"]
    assert (album / "list.txt").read_text() == "a.jpg: beach\nb.jpg: \nc.jpg: \n"
    with pytest.raises(UsageError, match="no export format 'csv'"):
        export.exporter("csv")


@pytest.mark.skipif(EXIFTOOL is None, reason="exiftool is not installed")
def test_keywords_edited_elsewhere_are_taken_at_the_next_index(
    album: Path, isolated_env: dict
) -> None:
    import subprocess

    subprocess.run(
        [
            EXIFTOOL,
            "-q",
            "-o",
            str(album / "a.jpg.xmp"),
            "-XMP-dc:Subject=lighthouse",
            str(album / "a.jpg"),
        ],
        check=True,
    )
    summary = cli_json("index", str(album), "--scan-only", env=isolated_env)
    assert summary["keywords"]["accepted"] == 1
    tags = cli_json("tags", str(album), "a.jpg", env=isolated_env)[0]["tags"]
    assert {"name": "lighthouse", "state": "accepted", "source": "user"}.items() <= tags[0].items()
