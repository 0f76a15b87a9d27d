"""XMP sidecars both ways, checked with exiftool as the independent reader: what we
write, merging with other programs' files, and keywords imported as accepted tags."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from albumtagger.library import keywords
from albumtagger.library.db.store import AutoTag
from albumtagger.library.export import xmp_sidecars as xmp
from albumtagger.library.folder import Library, open_library
from albumtagger.library.scanner import run_to_end, scan
from tests.conftest import REPO, accept_tag, make_photo, read_as_tagged, scan_and_read

EXIFTOOL = shutil.which("exiftool")
needs_exiftool = pytest.mark.skipif(
    EXIFTOOL is None,
    reason="exiftool is not installed (bash packaging/install-system-deps.sh installs it)",
)
NO_DAC = [
    "setpriv",
    "--bounding-set=-dac_override,-dac_read_search",
    "--inh-caps=-dac_override,-dac_read_search",
    "--",
]


def exiftool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    assert EXIFTOOL is not None
    proc = subprocess.run([EXIFTOOL, *map(str, args)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc


def read_tags(path: Path, *tags: str) -> dict:
    """exiftool's reading of a file, as {group:tag: value}, lists always lists."""
    out = json.loads(exiftool("-j", "-G1", "-struct", *[f"-{t}" for t in tags], path).stdout)[0]
    return {
        k: v if isinstance(v, list) else [v] if k.startswith("XMP") else v for k, v in out.items()
    }


def words(path: Path) -> dict[str, list[str]]:
    got = read_tags(path, "XMP-dc:Subject", "XMP-digiKam:TagsList", "XMP-lr:HierarchicalSubject")
    return {
        "subject": sorted(got.get("XMP-dc:Subject", [])),
        "tagslist": sorted(got.get("XMP-digiKam:TagsList", [])),
        "hierarchical": sorted(got.get("XMP-lr:HierarchicalSubject", [])),
    }


def states(library: Library, path: str) -> dict[str, str]:
    row = library.store.photo_by_path(path)
    assert row is not None
    return {t.name: t.state for t in library.store.photo_tags([row.id])}


def decide(library: Library, path: str, name: str, state: str) -> None:
    store = library.store
    with store.transaction():
        store.add_tags([(name, [name])])
        tag = store.tag_by_name(name)
        row = store.photo_by_path(path)
        assert tag is not None and row is not None
        store.set_user_decision(row.id, tag.id, state, "user", None)


@pytest.fixture
def library(tmp_path: Path):
    root = tmp_path / "Photos"
    make_photo(root / "a.jpg", 1)
    make_photo(root / "b.png", 2)
    make_photo(root / "sub" / "c.jpg", 3)
    lib = open_library(root, tmp_path / "data")
    scan_and_read(lib)
    yield lib
    lib.close()


@needs_exiftool
def test_exiftool_reads_our_three_keyword_lists(library: Library) -> None:
    accept_tag(library, "a.jpg", "dog")
    accept_tag(library, "a.jpg", "beach")
    decide(library, "a.jpg", "cat", "rejected")
    accept_tag(library, "sub/c.jpg", "snow")
    store = library.store
    with store.transaction():
        store.add_tags([("sunset", ["sunset"])])
    sunset = store.tag_by_name("sunset")
    a = store.photo_by_path("a.jpg")
    assert sunset is not None and a is not None
    store.replace_suggestions({a.id: [AutoTag(sunset.id, 0.31, False, "medium")]})

    report = xmp.export_xmp(library)
    assert sorted(report.written) == ["a.jpg.xmp", "sub/c.jpg.xmp"]
    root = library.root
    assert not (root / "b.png.xmp").exists()  # untagged: no file
    assert words(root / "a.jpg.xmp") == {
        "subject": ["beach", "dog"],
        "tagslist": ["beach", "dog"],
        "hierarchical": ["beach", "dog"],
    }
    assert words(root / "sub" / "c.jpg.xmp")["subject"] == ["snow"]

    # Suggestions only when asked, marked in our namespace with their score.
    xmp.export_xmp(library, include_suggested=True)
    assert words(root / "a.jpg.xmp")["subject"] == ["beach", "dog", "sunset"]
    got = read_tags(root / "a.jpg.xmp", "XMP-albumtagger:all")
    assert got["XMP-albumtagger:Suggestions"] == [
        {"Confidence": "medium", "Score": 0.31, "Tag": "sunset"}
    ]
    # ... and taken out again when not asked; the accepted ones stay.
    xmp.export_xmp(library)
    assert words(root / "a.jpg.xmp")["subject"] == ["beach", "dog"]
    assert "XMP-albumtagger:Suggestions" not in read_tags(root / "a.jpg.xmp", "XMP-albumtagger:all")
    # Exporting again with nothing changed leaves the files alone.
    again = xmp.export_xmp(library)
    assert again.written == [] and sorted(again.unchanged) == ["a.jpg.xmp", "sub/c.jpg.xmp"]


@needs_exiftool
def test_sidecar_written_by_exiftool_is_merged(library: Library) -> None:
    root = library.root
    exiftool(
        "-o", root / "a.jpg.xmp",
        "-XMP-dc:Subject=Holiday", "-XMP-dc:Title=At the lake", "-XMP-xmp:Rating=4",
        "-XMP-lr:HierarchicalSubject=Places|France|Paris",
        root / "a.jpg",
    )  # fmt: skip
    accept_tag(library, "a.jpg", "dog")
    accept_tag(library, "a.jpg", "paris")
    report = xmp.export_xmp(library)
    assert report.written == ["a.jpg.xmp"]
    got = read_tags(root / "a.jpg.xmp", "XMP:all")
    assert got["XMP-dc:Title"] == ["At the lake"] and got["XMP-xmp:Rating"] == [4]
    assert sorted(got["XMP-dc:Subject"]) == ["Holiday", "dog"]
    # Paris is already there, as a leaf of the user's hierarchy: not added flat.
    assert sorted(got["XMP-lr:HierarchicalSubject"]) == ["Places|France|Paris", "dog"]
    # The keywords added elsewhere became the user's accepted tags.
    assert states(library, "a.jpg") == {
        "dog": "accepted",
        "paris": "accepted",
        "holiday": "accepted",
    }
    assert sorted(report.adopted) == [("a.jpg", "holiday")]
    # Removing our tag takes out only what we wrote.
    decide(library, "a.jpg", "dog", "rejected")
    decide(library, "a.jpg", "holiday", "rejected")
    xmp.export_xmp(library)
    got = read_tags(root / "a.jpg.xmp", "XMP:all")
    assert got["XMP-dc:Subject"] == ["Holiday"]  # theirs: kept, and it stays rejected here
    assert got["XMP-dc:Title"] == ["At the lake"]
    assert states(library, "a.jpg")["holiday"] == "rejected"


@needs_exiftool
def test_user_edit_after_our_export_is_merged(library: Library) -> None:
    root = library.root
    accept_tag(library, "a.jpg", "dog")
    accept_tag(library, "a.jpg", "beach")
    xmp.export_xmp(library)
    sidecar = root / "a.jpg.xmp"
    # The user edits the sidecar in another program: a keyword and a caption added, one
    # of ours removed everywhere.
    exiftool(
        "-overwrite_original",
        "-XMP-dc:Subject+=Sunset", "-XMP-dc:Description=Evening walk",
        "-XMP-dc:Subject-=dog", "-XMP-digiKam:TagsList-=dog", "-XMP-lr:HierarchicalSubject-=dog",
        sidecar,
    )  # fmt: skip
    # ... and in albumtagger the user drops beach and adds snow.
    decide(library, "a.jpg", "beach", "rejected")
    accept_tag(library, "a.jpg", "snow")
    report = xmp.export_xmp(library)
    got = read_tags(sidecar, "XMP:all")
    assert got["XMP-dc:Description"] == ["Evening walk"]
    assert sorted(got["XMP-dc:Subject"]) == ["Sunset", "snow"]
    assert sorted(got["XMP-digiKam:TagsList"]) == ["snow"]
    assert states(library, "a.jpg") == {
        "beach": "rejected",
        "dog": "rejected",  # removed in the other program: not written back
        "snow": "accepted",
        "sunset": "accepted",
    }
    assert report.rejected_elsewhere == [("a.jpg", "dog")]


def test_control_characters_never_break_the_xml(library: Library) -> None:
    store = library.store
    row = store.photo_by_path("a.jpg")
    assert row is not None
    with store.transaction():
        tid = store.add_tag("bad\x01na\x07me\x1b", ["x"])
        tid2 = store.add_tag("fine & <ok>", ["y"])
        store.set_user_decision(row.id, tid, "accepted", "user", None)
        store.set_user_decision(row.id, tid2, "accepted", "user", None)
    xmp.export_xmp(library)
    data = (library.root / "a.jpg.xmp").read_bytes()
    root = ET.fromstring(data)  # parses
    subject = [li.text for li in root.iter(f"{{{keywords.RDF_NS}}}li")][:2]
    assert subject == ["bad na me", "fine & <ok>"]
    if EXIFTOOL:
        assert words(library.root / "a.jpg.xmp")["subject"] == ["bad na me", "fine & <ok>"]


def test_unreadable_foreign_file_is_left_alone(library: Library) -> None:
    accept_tag(library, "a.jpg", "dog")
    sidecar = library.root / "a.jpg.xmp"
    sidecar.write_text("<x:xmpmeta>not namespaced</x:xmpmeta>")
    report = xmp.export_xmp(library)
    assert report.skipped and report.skipped[0][0] == "a.jpg.xmp"
    assert sidecar.read_text() == "<x:xmpmeta>not namespaced</x:xmpmeta>"


def test_photo_xmp_convention_and_permissions_are_kept(library: Library) -> None:
    root = library.root
    accept_tag(library, "sub/c.jpg", "snow")
    accept_tag(library, "a.jpg", "dog")
    lightroom = root / "sub" / "c.xmp"
    lightroom.write_bytes(xmp.serialize(xmp.new_packet()))
    os.chmod(lightroom, 0o640)
    xmp.export_xmp(library)
    assert not (root / "sub" / "c.jpg.xmp").exists()
    assert keywords.read_sidecar(lightroom)[0] == []  # ours, so not read back as the user's
    assert "<rdf:li>snow</rdf:li>" in lightroom.read_text("utf-8")
    assert stat.S_IMODE(lightroom.stat().st_mode) == 0o640
    assert not list(root.rglob("*albumtagger-tmp"))
    # Asked for photo.xmp: a new file takes the stem's name.
    decide(library, "a.jpg", "dog", "rejected")
    (root / "a.jpg.xmp").unlink(missing_ok=True)
    accept_tag(library, "b.png", "cat")
    xmp.export_xmp(library, style="photo.xmp")
    assert (root / "b.xmp").is_file() and not (root / "b.png.xmp").exists()


def test_read_only_file_gives_a_clear_message_and_others_are_written(library: Library) -> None:
    accept_tag(library, "a.jpg", "dog")
    accept_tag(library, "b.png", "cat")
    locked = library.root / "a.jpg.xmp"
    locked.write_bytes(xmp.serialize(xmp.new_packet()))
    os.chmod(locked, 0o444)
    with pytest.raises(xmp.XmpWriteError) as info:
        xmp.export_xmp(library)
    message = str(info.value)
    assert "a.jpg.xmp is read-only" in message and "chmod u+w" in message
    assert "\n" not in message
    assert info.value.report.written == ["b.png.xmp"]
    assert "dog" not in locked.read_text("utf-8")


@pytest.mark.skipif(
    shutil.which("setpriv") is None and os.geteuid() == 0,
    reason="as root, a read-only folder needs setpriv to drop the override",
)
def test_read_only_folder_message_from_the_cli(library: Library, isolated_env: dict) -> None:
    accept_tag(library, "a.jpg", "dog")
    accept_tag(library, "sub/c.jpg", "snow")
    library.close()
    folder = library.root / "sub"
    os.chmod(folder, 0o555)
    try:
        cmd = [*NO_DAC] if os.geteuid() == 0 else []
        cmd += [sys.executable, "-m", "albumtagger", "export-xmp", str(library.root)]
        env = {**os.environ, **isolated_env,
               "ALBUMTAGGER_DATA_DIR": str(library.root.parent / "data")}  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    finally:
        os.chmod(folder, 0o755)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr
    assert "read-only" in proc.stderr and "chmod u+w" in proc.stderr
    assert (library.root / "a.jpg.xmp").is_file()
    assert not (folder / "c.jpg.xmp").exists()


def test_cleanup_removes_only_our_sidecars(library: Library) -> None:
    root = library.root
    accept_tag(library, "a.jpg", "dog")
    accept_tag(library, "sub/c.jpg", "snow")
    xmp.export_xmp(library)
    # c's sidecar also carries another program's caption.
    theirs = root / "sub" / "c.jpg.xmp"
    packet, prefixes = keywords.parse_packet(theirs.read_bytes())
    desc = keywords.descriptions(packet)[0]
    desc.set(f"{{{keywords.XMP_NS}}}Label", "Red")
    theirs.write_bytes(xmp.serialize(packet, prefixes))
    # A sidecar of another program for a photo that goes too.
    make_photo(root / "d.jpg", 4)
    run_to_end(scan(library))
    (root / "d.jpg.xmp").write_bytes(b"<x:xmpmeta xmlns:x='adobe:ns:meta/'/>")
    for name in ("a.jpg", "sub/c.jpg", "d.jpg"):
        (root / name).unlink()
    run_to_end(scan(library))
    missing = [r.path for r in library.store.photos(statuses=("missing",))]
    assert sorted(missing) == ["a.jpg", "d.jpg", "sub/c.jpg"]
    report = xmp.remove_sidecars(library, missing)
    assert report.deleted == ["a.jpg.xmp"] and report.stripped == ["sub/c.jpg.xmp"]
    assert not (root / "a.jpg.xmp").exists()
    assert (root / "d.jpg.xmp").read_bytes() == b"<x:xmpmeta xmlns:x='adobe:ns:meta/'/>"
    left, _ = keywords.parse_packet(theirs.read_bytes())
    assert keywords.packet_keywords(left, include_ours=True) == []
    assert keywords.descriptions(left)[0].get(f"{{{keywords.XMP_NS}}}Label") == "Red"


# -- import ----------------------------------------------------------------------------


@pytest.fixture
def fresh(tmp_path: Path):
    """A folder whose photos are not scanned yet."""
    root = tmp_path / "Album"
    root.mkdir()
    lib = open_library(root, tmp_path / "data")
    yield lib
    lib.close()


def scan_then_read(lib: Library) -> None:
    run_to_end(scan(lib))
    for row in lib.store.pending_photos():
        read_as_tagged(lib, row)


@needs_exiftool
def test_first_read_imports_sidecar_embedded_and_iptc_keywords(fresh: Library) -> None:
    root = fresh.root
    for name, seed in (("s.jpg", 1), ("x.jpg", 2), ("p.png", 3), ("w.webp", 4), ("t.tif", 5),
                       ("i.jpg", 6), ("n.jpg", 7)):  # fmt: skip
        make_photo(root / name, seed)
    exiftool(
        "-o", root / "s.jpg.xmp", "-XMP-dc:Subject=Holiday",
        "-XMP-lr:HierarchicalSubject=Places|France|Paris", "-XMP-digiKam:TagsList=People/Ann",
        root / "s.jpg",
    )  # fmt: skip
    for name in ("x.jpg", "p.png", "w.webp", "t.tif"):
        exiftool("-q", "-overwrite_original", f"-XMP-dc:Subject=Kw {name}", "-XMP-dc:Subject=Dog",
                 root / name)  # fmt: skip
    exiftool("-q", "-overwrite_original", "-codedcharacterset=utf8", "-IPTC:Keywords=Café",
             "-IPTC:Keywords=Beach", root / "i.jpg")  # fmt: skip
    # A rejection the user made before the photo was read wins over its keywords.
    run_to_end(scan(fresh))
    decide(fresh, "s.jpg", "holiday", "rejected")
    scan_then_read(fresh)

    assert states(fresh, "s.jpg") == {"holiday": "rejected", "paris": "accepted", "ann": "accepted"}
    for name in ("x.jpg", "p.png", "w.webp", "t.tif"):
        assert states(fresh, name) == {f"kw {name}": "accepted", "dog": "accepted"}, name
    assert states(fresh, "i.jpg") == {"café": "accepted", "beach": "accepted"}
    assert states(fresh, "n.jpg") == {}
    row = fresh.store.photo_by_path("x.jpg")
    assert row is not None
    assert {t.source for t in fresh.store.photo_tags([row.id])} == {"user"}
    tag = fresh.store.tag_by_name("paris")
    # a name from another program: learned from the photos that carry it, not read as text
    assert tag is not None and tag.prompts == ()


@needs_exiftool
def test_changed_sidecar_is_imported_again_and_deleted_tags_stay_gone(fresh: Library) -> None:
    root = fresh.root
    make_photo(root / "a.jpg", 1)
    exiftool("-o", root / "a.jpg.xmp", "-XMP-dc:Subject=Lake", root / "a.jpg")
    scan_then_read(fresh)
    assert states(fresh, "a.jpg") == {"lake": "accepted"}
    # Nothing changed: nothing to do.
    assert keywords.import_changed_sidecars(fresh).accepted == 0
    # The user removes the tag from the vocabulary; a re-read does not bring it back.
    store = fresh.store
    lake = store.tag_by_name("lake")
    assert lake is not None
    with store.transaction():
        store.remove_tag(lake.id)
        row = store.photo_by_path("a.jpg")
        assert row is not None
        store.set_status([row.id], "pending")
    read_as_tagged(fresh, store.photo_by_path("a.jpg"))
    assert states(fresh, "a.jpg") == {}
    # The sidecar is edited elsewhere: its keywords are imported again.
    exiftool("-overwrite_original", "-XMP-dc:Subject+=Boat", root / "a.jpg.xmp")
    os.utime(root / "a.jpg.xmp", ns=(1, 2_000_000_000_000_000_000))
    report = keywords.import_changed_sidecars(fresh)
    assert report.accepted == 2 and sorted(report.created) == ["boat", "lake"]
    assert states(fresh, "a.jpg") == {"lake": "accepted", "boat": "accepted"}
    # Our own export does not count as a change to import.
    xmp.export_xmp(fresh)
    assert keywords.import_changed_sidecars(fresh).accepted == 0


def test_import_keywords_reads_the_given_photos(fresh: Library) -> None:
    root = fresh.root
    make_photo(root / "a.jpg", 1)
    scan_then_read(fresh)
    packet = xmp.new_packet()
    xmp.merge(packet, ["mountain"])
    # Not ours: take our marks out so the keyword reads as the user's.
    xmp._drop_our_namespace(packet)
    for desc in keywords.descriptions(packet):
        desc.attrib.pop(keywords.CREATOR_TOOL, None)
    (root / "a.jpg.xmp").write_bytes(xmp.serialize(packet))
    report = keywords.import_keywords(fresh, fresh.store.photos())
    assert report.photos == 1 and report.with_keywords == 1 and report.created == ["mountain"]
    assert states(fresh, "a.jpg") == {"mountain": "accepted"}
