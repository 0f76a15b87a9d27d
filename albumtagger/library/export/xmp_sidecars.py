"""XMP sidecars: tags written where digiKam, darktable and Lightroom read them.

The "xmp" export format (`XmpSidecars`); reading keywords back in is `keywords.py`.

A photo's sidecar is `photo.jpg.xmp` (digiKam, darktable), or `photo.xmp` where that
one already exists (Lightroom). Tags go into `dc:subject`, `digiKam:TagsList` and
`lr:hierarchicalSubject` (flat: albumtagger's tags have no hierarchy). Machine
suggestions are written only when asked, and are marked in albumtagger's own namespace
with their score and confidence; rejected tags are never written.

Existing files are merged, never replaced: every field of every program is kept, and
keywords added elsewhere stay (and become the user's accepted tags). albumtagger lists
the keywords it added in `albumtagger:written`, so a keyword it wrote and the user has
since removed in albumtagger is taken out of the bags, and one the user removed in
another program is not written back (it becomes a rejection in the library).

Writes are atomic (a temporary file in the same folder, then a rename), keep the old
file's permissions, and leave read-only files and folders alone with a clear message.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Literal

from albumtagger import __version__, safe_io
from albumtagger.errors import LibraryOfflineError, UserError
from albumtagger.library import keywords as kw
from albumtagger.library.db.store import PhotoRow, PhotoTag, Store
from albumtagger.library.export.base import ExportError, ExportReport, failure_message, keywords_of
from albumtagger.library.folder import Library
from albumtagger.library.keywords import (
    CREATOR,
    CREATOR_TOOL,
    DESCRIPTION,
    HIERARCHICAL,
    KEYWORD_BAGS,
    LI,
    NAMESPACES,
    OUR_NS,
    RDF_NS,
    SUBJECT,
    TAGS_LIST,
    WRITTEN,
    XMP_NS,
    XmpParseError,
    clean_keyword,
    fold,
)

log = logging.getLogger(__name__)

SUGGESTIONS = f"{{{OUR_NS}}}suggestions"
"""Bag of structs (tag, score, confidence): the machine suggestions written."""
EXPORTED = f"{{{OUR_NS}}}exported"
METADATA_DATE = f"{{{XMP_NS}}}MetadataDate"
ABOUT = f"{{{RDF_NS}}}about"
BAG = f"{{{RDF_NS}}}Bag"
SEQ = f"{{{RDF_NS}}}Seq"
PARSE_TYPE = f"{{{RDF_NS}}}parseType"
_ARRAY_KIND = {SUBJECT: BAG, HIERARCHICAL: BAG, TAGS_LIST: SEQ, WRITTEN: BAG, SUGGESTIONS: BAG}

Style = Literal["auto", "photo.jpg.xmp", "photo.xmp"]

_PACKET_BEGIN = '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
_PACKET_END = '\n<?xpacket end="w"?>\n'
TMP_SUFFIX = ".albumtagger-tmp"


class XmpWriteError(ExportError):
    """Some sidecars could not be written by an export; the message says which and what
    to do, `report` what the export did (the other photos were written)."""


class SidecarCleanupError(UserError):
    """Some sidecars of photos that are gone could not be cleaned up; `report` holds
    what the cleanup did."""

    def __init__(self, message: str, report: SidecarCleanup) -> None:
        super().__init__(message)
        self.report = report


for _prefix, _uri in NAMESPACES.items():
    ET.register_namespace(_prefix, _uri)


# -- the packet ------------------------------------------------------------------------


def new_packet() -> ET.Element:
    """An empty packet with one rdf:Description, created by albumtagger."""
    toolkit = f"{CREATOR} {__version__}"
    root = ET.Element(f"{{{kw.X_NS}}}xmpmeta", {f"{{{kw.X_NS}}}xmptk": toolkit})
    rdf = ET.SubElement(root, f"{{{RDF_NS}}}RDF")
    ET.SubElement(rdf, DESCRIPTION, {ABOUT: "", CREATOR_TOOL: CREATOR})
    return root


def _main_description(root: ET.Element, prop: str | None = None) -> ET.Element:
    """The rdf:Description holding `prop`, else the first one (made if there is none)."""
    descs = kw.descriptions(root)
    if prop is not None:
        for desc in descs:
            if desc.find(prop) is not None:
                return desc
    if descs:
        return descs[0]
    rdf = root if root.tag == f"{{{RDF_NS}}}RDF" else root.find(f"{{{RDF_NS}}}RDF")
    if rdf is None:
        rdf = ET.SubElement(root, f"{{{RDF_NS}}}RDF")
    return ET.SubElement(rdf, DESCRIPTION, {ABOUT: ""})


def _array(root: ET.Element, prop: str, *, create: bool) -> ET.Element | None:
    """The container (Bag/Seq) of an array property, made when `create`."""
    for desc in kw.descriptions(root):
        for el in desc.findall(prop):
            box = kw.container(el)
            if box is not None:
                return box
            if el.text and el.text.strip():  # a literal where an array belongs: make it one
                value, el.text = el.text, None
                box = ET.SubElement(el, _ARRAY_KIND[prop])
                ET.SubElement(box, LI).text = value
                return box
            box = ET.SubElement(el, _ARRAY_KIND[prop])
            return box
    if not create:
        return None
    el = ET.SubElement(_main_description(root), prop)
    return ET.SubElement(el, _ARRAY_KIND[prop])


def _drop_property(root: ET.Element, prop: str) -> None:
    for desc in kw.descriptions(root):
        for el in desc.findall(prop):
            desc.remove(el)
        desc.attrib.pop(prop, None)


def _drop_empty_arrays(root: ET.Element, props: Iterable[str]) -> None:
    for desc in kw.descriptions(root):
        for prop in props:
            for el in desc.findall(prop):
                box = kw.container(el)
                if box is not None and box.find(LI) is None:
                    desc.remove(el)


def _set_simple(root: ET.Element, prop: str, value: str) -> None:
    """Set a simple property, where it is (attribute or element), else as an attribute."""
    for desc in kw.descriptions(root):
        if prop in desc.attrib:
            desc.set(prop, value)
            return
        el = desc.find(prop)
        if el is not None:
            el.text = value
            return
    _main_description(root).set(prop, value)


@dataclass
class KeywordState:
    """The parts of a packet albumtagger reads and writes, comparable between runs."""

    bags: dict[str, list[str]]
    written: list[str]
    suggestions: list[tuple[str, str, str]]

    @classmethod
    def of(cls, root: ET.Element) -> KeywordState:
        suggestions = []
        for desc in kw.descriptions(root):
            for el in desc.findall(SUGGESTIONS):
                box = kw.container(el)
                for li in [] if box is None else box.findall(LI):
                    suggestions.append(
                        tuple(li.findtext(f"{{{OUR_NS}}}{k}", "") for k in _SUGGESTION_FIELDS)
                    )
        return cls(
            {prop: kw.items(root, prop) for prop in KEYWORD_BAGS},
            kw.items(root, WRITTEN),
            sorted(suggestions),  # type: ignore[arg-type]
        )


_SUGGESTION_FIELDS = ("tag", "score", "confidence")


@dataclass
class Merge:
    """The outcome of merging one photo's tags into its packet."""

    root: ET.Element
    foreign: list[str]
    """Keywords in the file that albumtagger did not write (to become accepted tags; the
    first `MAX_KEYWORDS`, as when importing)."""
    removed_elsewhere: list[str]
    """Keywords albumtagger wrote that are gone from the file (removed in another program)."""
    changed: bool
    ours_only: bool
    """Nothing is left in the packet but albumtagger's own housekeeping."""


def merge(
    root: ET.Element,
    wanted: Sequence[str],
    suggestions: Sequence[tuple[str, float | None, str | None]] = (),
    *,
    now: str | None = None,
) -> Merge:
    """Bring a packet's keywords in line with `wanted`, keeping everything else.

    `wanted`: the photo's keywords now (accepted, and suggested if asked), of which
    `suggestions` (name, score, confidence) are the machine's. Keywords the file has
    that albumtagger did not write are kept; ones it wrote that are no longer wanted
    are removed; ones it wrote that the file lost are not written back.
    """
    before = KeywordState.of(root)
    present = {
        fold(kw.leaf(entry, sep))
        for prop, sep in KEYWORD_BAGS.items()
        for entry in before.bags[prop]
    }
    written_before = {fold(k): clean_keyword(k) for k in kw.written_by_us(root)}
    foreign = kw.packet_keywords(root)[: kw.MAX_KEYWORDS]
    removed_elsewhere = [k for f, k in written_before.items() if f and f not in present]
    gone = {fold(k) for k in removed_elsewhere}
    want: dict[str, str] = {}
    for name in wanted:
        word = clean_keyword(name)
        if word and fold(word) not in gone:
            want.setdefault(fold(word), word)
    drop = {f for f in written_before if f not in want}

    for prop, separator in KEYWORD_BAGS.items():
        box = _array(root, prop, create=False)
        if box is not None:
            for li in list(box.findall(LI)):
                entry = li.text or ""
                if fold(entry) in drop and (separator is None or separator not in entry):
                    box.remove(li)
    added: list[str] = []
    for f, word in want.items():
        if f in written_before:  # still there from last time
            added.append(word)
            continue
        if f in present:  # the user's own keyword from elsewhere: theirs, not ours
            continue
        added.append(word)
        for prop, separator in KEYWORD_BAGS.items():
            if separator is not None and separator in word:
                # A flat tag such as "<b>x</b>" would read back as a hierarchy ("b>"):
                # it goes into dc:subject only.
                continue
            box = _array(root, prop, create=True)
            assert box is not None
            if not any(fold(kw.leaf(li.text or "", separator)) == f for li in box.findall(LI)):
                ET.SubElement(box, LI).text = word

    _drop_property(root, WRITTEN)
    if added:
        box = _array(root, WRITTEN, create=True)
        assert box is not None
        for word in sorted(added, key=str.casefold):
            ET.SubElement(box, LI).text = word
    _drop_property(root, SUGGESTIONS)
    kept_suggestions = [s for s in suggestions if fold(s[0]) in want]
    if kept_suggestions:
        box = _array(root, SUGGESTIONS, create=True)
        assert box is not None
        for name, score, confidence in sorted(kept_suggestions, key=lambda s: fold(s[0])):
            li = ET.SubElement(box, LI, {PARSE_TYPE: "Resource"})
            values = (
                clean_keyword(name),
                "" if score is None else f"{score:.4f}",
                confidence or "",
            )
            for key, value in zip(_SUGGESTION_FIELDS, values, strict=True):
                ET.SubElement(li, f"{{{OUR_NS}}}{key}").text = value
    _drop_empty_arrays(root, KEYWORD_BAGS)

    after = KeywordState.of(root)
    changed = after != before
    if changed:
        stamp = now or datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")
        _set_simple(root, METADATA_DATE, stamp)
        _drop_property(root, EXPORTED)
        if added:
            _main_description(root, WRITTEN).set(EXPORTED, stamp)
    return Merge(root, foreign, removed_elsewhere, changed, not has_foreign_content(root))


def strip_ours(root: ET.Element) -> bool:
    """Take albumtagger's keywords and namespace out of a packet. True if it changed."""
    return merge(root, []).changed or _drop_our_namespace(root)


def _drop_our_namespace(root: ET.Element) -> bool:
    changed = False
    for desc in kw.descriptions(root):
        for el in list(desc):
            if el.tag.startswith(f"{{{OUR_NS}}}"):
                desc.remove(el)
                changed = True
        for key in [k for k in desc.attrib if k.startswith(f"{{{OUR_NS}}}")]:
            del desc.attrib[key]
            changed = True
    return changed


def has_foreign_content(root: ET.Element) -> bool:
    """Whether the packet holds anything besides albumtagger's keywords and housekeeping."""
    rdf = root if root.tag == f"{{{RDF_NS}}}RDF" else root.find(f"{{{RDF_NS}}}RDF")
    if rdf is None:
        return len(root) > 0
    ours = set(_ours_written(root))
    for node in rdf:
        if node.tag != DESCRIPTION:
            return True
        for key, value in node.attrib.items():
            if key in (ABOUT, METADATA_DATE) or key.startswith(f"{{{OUR_NS}}}"):
                continue
            if key == CREATOR_TOOL and value == CREATOR:
                continue
            return True
        for el in node:
            if not isinstance(el.tag, str):  # a comment
                continue
            if el.tag.startswith(f"{{{OUR_NS}}}") or el.tag == METADATA_DATE:
                continue
            if el.tag == CREATOR_TOOL and (el.text or "").strip() == CREATOR:
                continue
            if el.tag in KEYWORD_BAGS:
                box = kw.container(el)
                entries = [] if box is None else [li.text or "" for li in box.findall(LI)]
                if all(fold(e) in ours for e in entries):
                    continue
            return True
    return False


def _ours_written(root: ET.Element) -> list[str]:
    return [fold(k) for k in kw.written_by_us(root)]


def serialize(root: ET.Element, prefixes: Iterable[tuple[str, str]] = ()) -> bytes:
    """The packet as UTF-8 bytes, with the prefixes the file used where possible."""
    for prefix, uri in prefixes:
        if prefix and uri not in NAMESPACES.values() and prefix not in NAMESPACES:
            with contextlib.suppress(ValueError):
                ET.register_namespace(prefix, uri)
    ET.indent(root, space=" ")
    text = _PACKET_BEGIN + ET.tostring(root, encoding="unicode") + _PACKET_END
    return text.encode("utf-8")


# -- files -----------------------------------------------------------------------------


def sidecar_for(photo: Path, style: Style = "auto", *, shared_stem: bool = False) -> Path:
    """Where a photo's sidecar goes.

    auto: `photo.jpg.xmp`, unless only `photo.xmp` exists (and no other photo in the
    folder shares its stem). `shared_stem`: another photo has the same stem, so
    `photo.xmp` would mix two photos' tags and is not used.
    """
    full = photo.with_name(photo.name + ".xmp")
    existing = kw.find_sidecar(photo)
    if existing is not None and _is_full_name(existing, photo):
        return existing
    if shared_stem or style == "photo.jpg.xmp":
        return full
    if existing is not None:
        return existing
    return photo.with_name(photo.stem + ".xmp") if style == "photo.xmp" else full


def _is_full_name(sidecar: Path | None, photo: Path) -> bool:
    return sidecar is not None and sidecar.name.lower().startswith(photo.name.lower() + ".")


def _write_atomic(target: Path, data: bytes) -> None:
    """Write `data` to `target` via a new temporary file in its folder; keep its mode.

    Never writes through a link or into anything but a regular file: a link planted at
    the sidecar's name is refused (ELOOP), not followed. Raises PermissionError for a
    read-only existing file (even for root), OSError else.
    """
    try:
        st: os.stat_result | None = target.lstat()
    except FileNotFoundError:
        st = None
    if st is not None and stat.S_ISLNK(st.st_mode):
        raise OSError(errno.ELOOP, "a symbolic link", str(target))
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise safe_io.NotRegularFileError(target)
    if st is not None and (not st.st_mode & stat.S_IWUSR or not os.access(target, os.W_OK)):
        raise PermissionError(errno.EACCES, "the file is read-only", str(target))
    safe_io.write_atomic(target, data, like=st, sync=True, suffix=TMP_SUFFIX)


def _write_problem(rel: str, target: Path, exc: OSError) -> str:
    """What could not be written and what to do, in one line."""
    folder = target.parent
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        if exc.strerror == "the file is read-only":
            return f"{rel} is read-only; make it writable (chmod u+w '{target}') and export again"
        if exc.errno == errno.EROFS:
            return (
                f"{rel} is on a read-only drive ({folder}); export again once it is mounted "
                "writable"
            )
        return (
            f"the folder {folder} is read-only, so {rel} was not written; make it writable "
            f"(chmod u+w '{folder}') and export again"
        )
    if exc.errno == errno.ENOSPC:
        return f"the disk is full, so {rel} was not written; free some space and export again"
    if exc.errno == errno.ELOOP:
        return (
            f"{rel} is a symbolic link, and albumtagger does not write through links; "
            "replace it with the file itself and export again"
        )
    return f"{rel} was not written ({exc.strerror or exc}); check the folder and export again"


def _read_problem(rel: str, target: Path, exc: OSError) -> str:
    """Why an existing sidecar could not be read (so was not written), in one line."""
    if exc.errno == errno.ELOOP:
        return _write_problem(rel, target, exc)
    return f"{rel} cannot be read ({exc.strerror or exc})"


# -- export ----------------------------------------------------------------------------


@dataclass(frozen=True)
class XmpSidecars:
    """The "xmp" export format (an `Exporter`): `style` names the sidecars (see
    `sidecar_for`); keywords other programs changed in them are taken in."""

    style: Style = "auto"

    def export(
        self,
        library: Library,
        *,
        include_suggested: bool = False,
        photo_ids: Sequence[int] | None = None,
    ) -> ExportReport:
        return export_xmp(
            library, include_suggested=include_suggested, style=self.style, photo_ids=photo_ids
        )


def _shared_stems(rows: Sequence[PhotoRow], root: Path) -> set[str]:
    """Photo paths whose folder holds another photo file with the same stem."""
    by_stem: dict[tuple[str, str], list[str]] = {}
    for r in rows:
        p = PurePosixPath(r.path)
        by_stem.setdefault((str(p.parent), p.stem.lower()), []).append(r.path)
    return {path for paths in by_stem.values() if len(paths) > 1 for path in paths}


def export_xmp(
    library: Library,
    *,
    include_suggested: bool = False,
    style: Style = "auto",
    photo_ids: Sequence[int] | None = None,
    adopt: bool = True,
) -> ExportReport:
    """Write (merge) the tags of present photos into their XMP sidecars.

    `include_suggested`: also the machine's confident suggestions (marked as such).
    `photo_ids`: only these photos (e.g. the ones just corrected).
    `adopt`: keywords the file has from other programs become accepted tags, and
    keywords albumtagger wrote that another program removed become rejections.
    A photo without tags gets no new file. Raises `XmpWriteError` at the end if some
    sidecars could not be written (the others are), with the report attached.
    """
    if not library.is_online():
        raise LibraryOfflineError(
            f"The folder {library.root} is offline; connect it and export again."
        )
    store = library.store
    rows = store.photos(statuses=("ok", "pending"))
    shared = _shared_stems(rows, library.root)
    if photo_ids is not None:
        wanted_ids = set(photo_ids)
        rows = [r for r in rows if r.id in wanted_ids]
    tags_by_photo: dict[int, list[PhotoTag]] = {r.id: [] for r in rows}
    for t in store.photo_tags([r.id for r in rows]):
        tags_by_photo[t.photo_id].append(t)
    report = ExportReport()
    seen: list[tuple[int, str, int]] = []
    for row in rows:
        options = (include_suggested, style, row.path in shared, adopt)
        done = _export_one(library, row, tags_by_photo[row.id], report, *options)
        if done is not None:
            seen.append(done)
    with store.transaction():  # our own writes are not the user's changes to import
        for photo_id, name, mtime_ns in seen:
            kw.remember_sidecar(store, photo_id, name, mtime_ns)
    if report.failed:
        total = len(report.failed) + len(report.written) + len(report.unchanged)
        raise XmpWriteError(failure_message(report.failed, total, "XMP sidecars"), report)
    return report


def _export_one(
    library: Library,
    row: PhotoRow,
    tags: list[PhotoTag],
    report: ExportReport,
    include_suggested: bool,
    style: Style,
    shared_stem: bool,
    adopt: bool,
) -> tuple[int, str, int] | None:
    """Merge one photo's tags into its sidecar; (photo id, sidecar name, mtime) if written."""
    photo = library.root / row.path
    target = sidecar_for(photo, style, shared_stem=shared_stem)
    rel = PurePosixPath(row.path).with_name(target.name).as_posix()
    names, suggestions = keywords_of(tags, include_suggested)
    try:
        data: bytes | None = kw.read_sidecar_bytes(target)
    except FileNotFoundError:
        data = None
    except OSError as exc:
        report.failed.append((rel, _read_problem(rel, target, exc)))
        return None
    if data is None and not names:
        return None  # an untagged photo gets no file

    def merged() -> tuple[Merge, list[tuple[str, str]]]:
        if data is None:
            return merge(new_packet(), names, suggestions), []
        root, prefixes = kw.parse_packet(data)
        return merge(root, names, suggestions), prefixes

    try:
        result, prefixes = merged()
    except XmpParseError as exc:
        log.warning("Leaving %s alone: %s", target, exc)
        report.skipped.append((rel, f"not XMP albumtagger can read: {exc}"))
        return None
    if adopt and _adopt(library.store, row, tags, result, report):
        # The library changed: merge again, from the file as it was.
        names, suggestions = keywords_of(library.store.photo_tags([row.id]), include_suggested)
        result, prefixes = merged()
    if not result.changed:
        report.unchanged.append(rel)
        return None
    try:
        if result.ours_only and not kw.items(result.root, WRITTEN):
            if data is not None:
                target.unlink()
                report.deleted.append(rel)
            return None
        _write_atomic(target, serialize(result.root, prefixes))
        mtime_ns = target.stat().st_mtime_ns
    except OSError as exc:
        report.failed.append((rel, _write_problem(rel, target, exc)))
        log.info("Cannot write %s: %s", target, exc)
        return None
    report.written.append(rel)
    return row.id, target.name, mtime_ns


def _adopt(
    store: Store, row: PhotoRow, tags: list[PhotoTag], result: Merge, report: ExportReport
) -> bool:
    """Record what the user did to the file in other programs; True if the library changed.

    Keywords added elsewhere become accepted tags; keywords albumtagger wrote that were
    removed elsewhere become rejections (unless the user decided otherwise since).
    """
    changed = False
    with store.transaction():
        if result.foreign:
            accepted = kw.accept_keywords(store, row.id, result.foreign)
            report.adopted.extend((row.path, n) for n in accepted.accepted)
            changed = bool(accepted.accepted)
        by_fold = {fold(t.name): t for t in tags}
        for word in result.removed_elsewhere:
            t = by_fold.get(fold(word))
            if t is not None and t.state != "rejected":
                store.set_user_decision(row.id, t.tag_id, "rejected", "user", None)
                report.rejected_elsewhere.append((row.path, t.name))
                changed = True
    return changed


# -- cleanup ---------------------------------------------------------------------------


@dataclass
class SidecarCleanup:
    deleted: list[str] = field(default_factory=list)
    """Sidecars that were purely albumtagger's: removed."""
    stripped: list[str] = field(default_factory=list)
    """Sidecars with other programs' data: only albumtagger's part was taken out."""
    failed: list[tuple[str, str]] = field(default_factory=list)


def remove_sidecars(library: Library, photo_paths: Iterable[str]) -> SidecarCleanup:
    """Remove albumtagger's sidecars of photos that are gone (call before forgetting them).

    A sidecar that holds only albumtagger's keywords is deleted; one with anything
    else keeps that and loses only albumtagger's part; one albumtagger never wrote to
    is not touched. A photo file that is still there keeps its sidecar.
    """
    report = SidecarCleanup()
    for path in photo_paths:
        photo = library.root / path
        if photo.exists():
            continue
        folder = photo.parent
        try:
            siblings = [n for n in os.listdir(folder) if not n.lower().endswith(".xmp")]
        except OSError:
            continue
        stem_shared = any(Path(n).stem.lower() == photo.stem.lower() for n in siblings)
        for name in kw.sidecar_names(photo.name):
            sidecar = photo.with_name(name)
            if not sidecar.is_file() or (not _is_full_name(sidecar, photo) and stem_shared):
                continue
            rel = PurePosixPath(path).with_name(name).as_posix()
            try:
                root, prefixes = kw.parse_packet(kw.read_sidecar_bytes(sidecar))
            except (OSError, XmpParseError):
                continue
            if not kw.written_by_us(root) and not any(
                el.tag.startswith(f"{{{OUR_NS}}}") for el in root.iter() if isinstance(el.tag, str)
            ):
                continue
            try:
                strip_ours(root)
                if not has_foreign_content(root):
                    sidecar.unlink()
                    report.deleted.append(rel)
                else:
                    _write_atomic(sidecar, serialize(root, prefixes))
                    report.stripped.append(rel)
            except OSError as exc:
                report.failed.append((rel, _write_problem(rel, sidecar, exc)))
            break
    if report.failed:
        total = len(report.failed) + len(report.deleted) + len(report.stripped)
        raise SidecarCleanupError(failure_message(report.failed, total, "XMP sidecars"), report)
    return report
