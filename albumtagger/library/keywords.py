"""Keywords photos already carry become the user's own accepted tags.

Sources, per photo: its XMP sidecar (`photo.jpg.xmp`, else `photo.xmp`, either case of
`.xmp`), XMP embedded in JPEG, PNG, WebP and TIFF files, and IPTC keywords (JPEG, TIFF).
From XMP: every `dc:subject` item, and the leaf of each `lr:hierarchicalSubject`
("places|france|paris" gives "paris") and `digiKam:TagsList` entry ("places/france/paris"
gives "paris"). Keywords that albumtagger itself wrote (listed in its own namespace, see
`xmp.py`) are not read back as the user's.

Importing never overrides a decision the user made in albumtagger: a rejected tag stays
rejected; only cells without a user decision become `accepted` (source `user`). One
source gives at most `MAX_KEYWORDS` keywords and one import makes at most
`MAX_NEW_TAGS` tags; what is left out is reported with the photo, like a sidecar that
cannot be read. Sidecars are read only if they are regular files (not through a link).

What was imported is remembered per photo (content hash, sidecar name and mtime) in a
setting `keywords.seen.<photo id>`, so unchanged sources are not imported twice (a tag
the user deleted does not come back) and a changed sidecar is imported again.
"""

from __future__ import annotations

import codecs
import errno
import io
import json
import logging
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from PIL import Image, IptcImagePlugin

from albumtagger import safe_io
from albumtagger.errors import UserError
from albumtagger.library.db.store import PhotoRow, Store
from albumtagger.library.folder import Library
from albumtagger.library.tag_names import clean_name

log = logging.getLogger(__name__)

# -- XMP vocabulary (shared with the writer in xmp.py) ---------------------------------

X_NS = "adobe:ns:meta/"
RDF_NS = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
DC_NS = "http://purl.org/dc/elements/1.1/"
XMP_NS = "http://ns.adobe.com/xap/1.0/"
DIGIKAM_NS = "http://www.digikam.org/ns/1.0/"
LR_NS = "http://ns.adobe.com/lightroom/1.0/"
OUR_NS = "https://albumtagger.invalid/ns/1.0/"
"""albumtagger's own XMP namespace (a stable identifier; `.invalid` never resolves)."""

NAMESPACES = {
    "x": X_NS,
    "rdf": RDF_NS,
    "dc": DC_NS,
    "xmp": XMP_NS,
    "digiKam": DIGIKAM_NS,
    "lr": LR_NS,
    "albumtagger": OUR_NS,
}

CREATOR = "albumtagger"
SUBJECT = f"{{{DC_NS}}}subject"
TAGS_LIST = f"{{{DIGIKAM_NS}}}TagsList"
HIERARCHICAL = f"{{{LR_NS}}}hierarchicalSubject"
WRITTEN = f"{{{OUR_NS}}}written"
"""The keywords albumtagger added to the bags at its last export (a bag)."""
CREATOR_TOOL = f"{{{XMP_NS}}}CreatorTool"
DESCRIPTION = f"{{{RDF_NS}}}Description"
LI = f"{{{RDF_NS}}}li"
CONTAINERS = (f"{{{RDF_NS}}}Bag", f"{{{RDF_NS}}}Seq", f"{{{RDF_NS}}}Alt")

KEYWORD_BAGS: dict[str, str | None] = {SUBJECT: None, HIERARCHICAL: "|", TAGS_LIST: "/"}
"""Keyword properties and the separator of their hierarchy levels."""

MAX_PACKET_BYTES = 16 * 1024 * 1024
MAX_KEYWORDS = 500
"""Keywords taken from one source (a sidecar, a photo's own metadata); the rest are left
out and reported (20,000 keywords in one sidecar once made an index take minutes)."""
MAX_NEW_TAGS = 5000
"""Tags one import (one index) makes from keywords; the rest are left out and reported."""
SIDECAR_SUFFIXES = (".xmp", ".XMP")

_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


class XmpParseError(ValueError):
    """Bytes that are not an XMP packet we can read."""


def clean_keyword(text: str) -> str:
    """Control characters out (XML cannot carry most of them), whitespace collapsed."""
    return " ".join(_NOT_XML.sub(" ", text).split())


def fold(text: str) -> str:
    """The form keywords are compared in: case and whitespace do not matter."""
    return clean_keyword(text).casefold()


def parse_packet(data: bytes) -> tuple[ET.Element, list[tuple[str, str]]]:
    """Parse an XMP packet: (root element, the (prefix, uri) pairs it declares).

    UTF-8 and UTF-16 (either byte order, with or without a byte order mark). Comments
    inside the root are kept. Documents with a DTD are refused (XMP has none, and entity
    tricks have no business in a photo's metadata); the check reads the text as the XML
    parser will, so no encoding hides a DTD from it.
    """
    if len(data) > MAX_PACKET_BYTES:
        raise XmpParseError("larger than any XMP packet should be")
    if data.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        raise XmpParseError("UTF-32 text (XMP is UTF-8 or UTF-16)")
    data, text = _trimmed_text(data)
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        raise XmpParseError("it declares a DTD")
    parser = ET.XMLParser(target=ET.TreeBuilder(insert_comments=True))
    prefixes: list[tuple[str, str]] = []
    root: ET.Element | None = None
    try:
        for event, item in ET.iterparse(io.BytesIO(data), ("start-ns", "start"), parser):
            if event == "start-ns":
                prefixes.append(item)  # type: ignore[arg-type]
            elif root is None:
                root = item  # type: ignore[assignment]
    except ET.ParseError as exc:
        raise XmpParseError(f"not well-formed XML ({exc})") from None
    if root is None or root.tag not in (f"{{{X_NS}}}xmpmeta", f"{{{RDF_NS}}}RDF"):
        raise XmpParseError("not an XMP packet (no x:xmpmeta or rdf:RDF at its top)")
    return root, prefixes


def _trimmed_text(data: bytes) -> tuple[bytes, str]:
    """(the packet without trailing padding, its text), in the encoding the XML parser
    (expat) will read it in: UTF-16 when a byte order mark or a NUL byte in the first
    two says so, else an ASCII-compatible one (read here as Latin-1: the markup is
    ASCII whatever the declared encoding)."""
    if data.startswith(codecs.BOM_UTF16_BE) or data[:1] == b"\x00":
        codec = "utf-16-be"
    elif data.startswith(codecs.BOM_UTF16_LE) or data[1:2] == b"\x00":
        codec = "utf-16-le"
    else:
        data = data.rstrip(b"\x00 \t\r\n")
        return data, data.decode("latin-1")
    trimmed = data.rstrip(b"\x00")  # NUL padding, keeping whole 2-byte units
    data = trimmed + b"\x00" * ((len(data) - len(trimmed)) % 2)
    return data, data.decode(codec, "replace")


def descriptions(root: ET.Element) -> list[ET.Element]:
    return list(root.iter(DESCRIPTION))


def container(prop: ET.Element) -> ET.Element | None:
    """The rdf:Bag / rdf:Seq / rdf:Alt of an array property."""
    for child in prop:
        if child.tag in CONTAINERS:
            return child
    return None


def items(root: ET.Element, prop_tag: str) -> list[str]:
    """The text items of an array property, over every rdf:Description."""
    out: list[str] = []
    for desc in descriptions(root):
        for prop in desc.findall(prop_tag):
            box = container(prop)
            if box is None:  # a plain literal where an array belongs: read it as one item
                if prop.text and prop.text.strip():
                    out.append(prop.text)
                continue
            out.extend(li.text or "" for li in box.findall(LI))
    return out


def leaf(entry: str, separator: str | None) -> str:
    if separator is None:
        return clean_keyword(entry)
    parts = [p for p in (clean_keyword(x) for x in entry.split(separator)) if p]
    return parts[-1] if parts else ""


def written_by_us(root: ET.Element) -> list[str]:
    """The keywords albumtagger added at its last export.

    A file from albumtagger before it kept that list (creator tool albumtagger, no
    list) counts all its `dc:subject` keywords as ours.
    """
    if any(d.find(WRITTEN) is not None for d in descriptions(root)):
        return items(root, WRITTEN)
    if creator_tool(root) == CREATOR:
        return items(root, SUBJECT)
    return []


def creator_tool(root: ET.Element) -> str | None:
    for desc in descriptions(root):
        value = desc.get(CREATOR_TOOL)
        if value is None:
            el = desc.find(CREATOR_TOOL)
            value = None if el is None else el.text
        if value is not None:
            return value.strip()
    return None


def packet_keywords(root: ET.Element, *, include_ours: bool = False) -> list[str]:
    """Keywords of a packet: dc:subject plus the leaves of the hierarchical lists,
    each once (first spelling wins), without the ones albumtagger wrote."""
    skip = set() if include_ours else {fold(k) for k in written_by_us(root)}
    out: dict[str, str] = {}
    for prop, separator in KEYWORD_BAGS.items():
        for entry in items(root, prop):
            word = leaf(entry, separator)
            key = word.casefold()
            if word and key not in skip:
                out.setdefault(key, word)
    return list(out.values())


# -- finding keywords ------------------------------------------------------------------


@dataclass(frozen=True)
class Found:
    """What one photo's sources hold."""

    names: tuple[str, ...] = ()
    sidecar: str | None = None
    """File name of the sidecar read (in the photo's folder), if any."""
    sidecar_mtime_ns: int | None = None
    content_hash: str | None = None
    """Set when the photo's own bytes (embedded XMP, IPTC) were read."""
    problems: tuple[str, ...] = ()


def sidecar_names(photo_name: str) -> list[str]:
    """Candidate sidecar names, best first: `photo.jpg.xmp`, then `photo.xmp`."""
    stem = PurePosixPath(photo_name).stem
    return [photo_name + s for s in SIDECAR_SUFFIXES] + [stem + s for s in SIDECAR_SUFFIXES]


def find_sidecar(photo: Path, listing: dict[str, tuple[str, int]] | None = None) -> Path | None:
    """The photo's existing sidecar, or None.

    `listing`: the folder's .xmp files as {lower-case name: (name, mtime_ns)} when the
    caller has listed the folder (saves a stat per candidate).
    """
    for name in sidecar_names(photo.name):
        if listing is not None:
            hit = listing.get(name.lower())
            if hit is not None:
                return photo.with_name(hit[0])
        else:
            try:
                if photo.with_name(name).is_file():
                    return photo.with_name(name)
            except (OSError, ValueError):  # a name too long for the filesystem, say
                continue
    return None


def read_sidecar_bytes(path: Path) -> bytes:
    """A sidecar's bytes: a regular file (a link is not followed), at most
    `MAX_PACKET_BYTES`. Raises OSError (`safe_io`'s errors among them)."""
    return safe_io.read_regular(path, MAX_PACKET_BYTES, follow_links=False)


def read_sidecar(path: Path) -> tuple[list[str], int]:
    """(keywords not written by albumtagger, mtime_ns) of a sidecar file.

    Raises OSError or XmpParseError.
    """
    mtime_ns = path.lstat().st_mtime_ns
    root, _ = parse_packet(read_sidecar_bytes(path))
    return packet_keywords(root), mtime_ns


def embedded_keywords(source: bytes | Path) -> list[str]:
    """Keywords in a photo's embedded XMP and IPTC. Only headers are parsed.

    Raises OSError, XmpParseError, or Pillow's errors for files it cannot open.
    """
    if isinstance(source, bytes):
        return _embedded_keywords(io.BytesIO(source))
    with safe_io.open_regular(source) as file:
        return _embedded_keywords(file)


def _embedded_keywords(fp: BinaryIO) -> list[str]:
    out: dict[str, str] = {}
    with Image.open(fp) as im:
        xmp = im.info.get("xmp") or im.info.get("XML:com.adobe.xmp")
        if isinstance(xmp, str):
            xmp = xmp.encode("utf-8")
        if isinstance(xmp, bytes) and xmp.strip():
            root, _ = parse_packet(xmp)
            for word in packet_keywords(root):
                out.setdefault(word.casefold(), word)
        for word in _iptc_keywords(im):
            out.setdefault(word.casefold(), word)
    return list(out.values())


def _iptc_keywords(im: Image.Image) -> list[str]:
    try:
        info = IptcImagePlugin.getiptcinfo(im)
    except Exception:  # a damaged IPTC block is just no keywords
        return []
    if not info:
        return []
    raw = info.get((2, 25))
    if raw is None:
        return []
    values = raw if isinstance(raw, list) else [raw]
    utf8 = info.get((1, 90)) == b"\x1b%G"
    out = []
    for value in values:
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError:
            text = value.decode("utf-8" if utf8 else "latin-1", "replace")
        word = clean_keyword(text)
        if word:
            out.append(word)
    return out


def photo_keywords(
    photo: Path,
    data: bytes | None = None,
    *,
    content_hash: str | None = None,
    embedded: bool = True,
    listing: dict[str, tuple[str, int]] | None = None,
) -> Found:
    """Everything a photo's sidecar and (with `embedded`) its own metadata hold.

    `data`: the photo's bytes when the caller has read them already. Never raises:
    what could not be read is in `problems`.
    """
    names: dict[str, str] = {}
    problems: list[str] = []
    sidecar_name: str | None = None
    mtime: int | None = None
    sidecar = find_sidecar(photo, listing)
    if sidecar is not None:
        try:
            words, mtime = read_sidecar(sidecar)
            sidecar_name = sidecar.name
            for w in _capped(words, sidecar.name, problems):
                names.setdefault(w.casefold(), w)
        except (OSError, XmpParseError) as exc:
            problems.append(f"{sidecar.name}: {_why(exc)}")
    if embedded:
        try:
            words = embedded_keywords(data if data is not None else photo)
            for w in _capped(words, "embedded metadata", problems):
                names.setdefault(w.casefold(), w)
        except (XmpParseError, OSError) as exc:
            problems.append(f"embedded metadata: {_why(exc)}")
        except Exception as exc:  # Pillow raises many kinds; damage is the scanner's
            log.debug("No embedded keywords from %s: %s", photo, exc)
    return Found(
        tuple(names.values()),
        sidecar_name,
        mtime,
        content_hash if embedded else None,
        tuple(problems),
    )


def _capped(words: list[str], source: str, problems: list[str]) -> list[str]:
    """The first `MAX_KEYWORDS` of a source's keywords; a problem noted if it had more."""
    if len(words) > MAX_KEYWORDS:
        problems.append(
            f"{source}: holds {len(words):,} keywords; only the first {MAX_KEYWORDS} were taken"
        )
    return words[:MAX_KEYWORDS]


def _why(exc: BaseException) -> str:
    if isinstance(exc, safe_io.NotRegularFileError):
        return f"{exc.strerror}; not read"
    if isinstance(exc, OSError):
        if exc.errno == errno.ELOOP:
            return "a symbolic link; sidecars are not read or written through links"
        return f"cannot read ({exc.strerror or exc})"
    return f"not read as XMP: {exc}"


# -- into the store --------------------------------------------------------------------


@dataclass
class Accepted:
    created: list[str] = field(default_factory=list)
    """Tags new to the vocabulary."""
    accepted: list[str] = field(default_factory=list)
    """Cells that became accepted (they had no user decision)."""
    kept_rejected: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """(keyword, why) for keywords that cannot be tag names."""
    left_out: int = 0
    """Keywords not taken because the import made as many new tags as it may."""


def tag_name(keyword: str) -> str:
    """The tag name a keyword becomes (a ':' is part of the name, not a prompt list)."""
    return clean_name(clean_keyword(keyword))


def accept_keywords(
    store: Store, photo_id: int, keywords: Iterable[str], *, new_tags: int | None = None
) -> Accepted:
    """Make keywords accepted user tags of a photo (inside the caller's transaction).

    Missing tags are created without prompts, at most `new_tags` of them (None:
    no limit; the keywords that would need more are counted in `left_out`): a name from
    another program (a person, a place) says nothing about a look, so they are learned
    from the photos that carry them (`tagging.look`); cells the
    user decided keep their decision (a rejected tag stays rejected, an accepted one
    stays).
    """
    out = Accepted()
    with store.transaction():
        for keyword in keywords:
            try:
                name = tag_name(keyword)
            except UserError as exc:
                out.skipped.append((keyword, str(exc)))
                continue
            tag = store.tag_by_name(name)
            if tag is None and new_tags is not None and len(out.created) >= new_tags:
                out.left_out += 1
                continue
            if tag is None:
                tag_id = store.add_tag(name, ())
                out.created.append(name)
            else:
                tag_id, name = tag.id, tag.name
            cell = store.photo_tag(photo_id, tag_id)
            if cell is None or cell.state == "suggested":
                store.set_user_decision(photo_id, tag_id, "accepted", "user", None)
                out.accepted.append(name)
            elif cell.state == "rejected":
                out.kept_rejected.append(name)
    return out


def _seen_key(photo_id: int) -> str:
    return f"keywords.seen.{photo_id}"


def seen(store: Store, photo_id: int) -> dict[str, object]:
    """What was imported for a photo: {"hash", "sidecar", "mtime_ns"} (maybe empty)."""
    raw = store.get_setting(_seen_key(photo_id))
    try:
        value = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def remember_sidecar(store: Store, photo_id: int, name: str, mtime_ns: int) -> None:
    """Note a sidecar as imported (the exporter calls this after writing one)."""
    record = seen(store, photo_id)
    record.update(sidecar=name, mtime_ns=mtime_ns)
    store.set_setting(_seen_key(photo_id), json.dumps(record))


@dataclass
class ImportReport:
    """What one import (one index) took; its `created` tags count against
    `MAX_NEW_TAGS`."""

    photos: int = 0
    """Photos looked at."""
    with_keywords: int = 0
    created: list[str] = field(default_factory=list)
    accepted: int = 0
    kept_rejected: int = 0
    problems: list[tuple[str, str]] = field(default_factory=list)
    """(photo path, what could not be read or taken), each once."""

    def __post_init__(self) -> None:
        self._reported = set(self.problems)

    def problem(self, path: str, what: str) -> None:
        """Note a problem, unless it was noted already (a sidecar is read at the scan
        and again with its photo)."""
        if (path, what) not in self._reported:
            self._reported.add((path, what))
            self.problems.append((path, what))

    def add(self, path: str, found: Found, result: Accepted) -> None:
        self.with_keywords += bool(found.names)
        self.created.extend(result.created)
        self.accepted += len(result.accepted)
        self.kept_rejected += len(result.kept_rejected)
        for what in found.problems:
            self.problem(path, what)
        for keyword, why in result.skipped:
            self.problem(path, f"keyword {keyword!r}: {why}")
        if result.left_out:
            self.problem(
                path,
                f"{result.left_out:,} keywords not taken: one index makes at most "
                f"{MAX_NEW_TAGS:,} new tags from keywords",
            )


def record_found(
    store: Store, photo_id: int, path: str, found: Found, report: ImportReport
) -> None:
    """Import what a read found, unless these sources were imported before, and note it
    (problems included) in `report`.

    The photo's own keywords are imported once per content; the sidecar's once per
    (name, mtime). Called from the scanner's `apply_read`, inside its transaction.
    """
    record = seen(store, photo_id)
    new_hash = found.content_hash is not None and record.get("hash") != found.content_hash
    new_sidecar = found.sidecar is not None and (
        record.get("sidecar") != found.sidecar or record.get("mtime_ns") != found.sidecar_mtime_ns
    )
    if not (new_hash or new_sidecar):
        for what in found.problems:
            report.problem(path, what)
        return
    room = max(0, MAX_NEW_TAGS - len(report.created))
    result = accept_keywords(store, photo_id, found.names, new_tags=room) if found.names else None
    report.add(path, found, result or Accepted())
    if new_hash and found.names:  # photos without keywords of their own need no record
        record["hash"] = found.content_hash
    elif not new_sidecar:
        return
    if new_sidecar:
        record.update(sidecar=found.sidecar, mtime_ns=found.sidecar_mtime_ns)
    store.set_setting(_seen_key(photo_id), json.dumps(record))


BATCH = 500


def import_keywords(
    library: Library, photo_rows: Sequence[PhotoRow], *, embedded: bool = True
) -> ImportReport:
    """Import the keywords of these photos (sidecar and, with `embedded`, their own
    metadata) as accepted user tags. Sources imported before are skipped.

    Reads first, then writes in transactions of `BATCH` photos.
    """
    report = ImportReport()
    store = library.store
    rows = list(photo_rows)
    for start in range(0, len(rows), BATCH):
        chunk = rows[start : start + BATCH]
        found = [
            photo_keywords(
                library.root / r.path,
                content_hash=r.content_hash,
                embedded=embedded and r.content_hash is not None,
            )
            for r in chunk
        ]
        with store.transaction():
            for row, f in zip(chunk, found, strict=True):
                record_found(store, row.id, row.path, f, report)
        report.photos += len(chunk)
    return report


def list_sidecars(folder: Path) -> dict[str, tuple[str, int]]:
    """The folder's .xmp files: {lower-case name: (name, mtime_ns)}; empty if unreadable."""
    out: dict[str, tuple[str, int]] = {}
    try:
        with os.scandir(folder) as it:
            for entry in it:
                if entry.name.lower().endswith(".xmp") and not entry.name.startswith("."):
                    try:
                        out[entry.name.lower()] = (entry.name, entry.stat().st_mtime_ns)
                    except OSError:
                        continue
    except OSError:
        pass
    return out


def import_changed_sidecars(
    library: Library, photo_rows: Sequence[PhotoRow] | None = None
) -> ImportReport:
    """Import sidecars that are new or changed (by name and mtime) since last seen.

    One directory listing per folder plus one setting lookup per photo with a sidecar;
    photos default to every ok or pending one.
    """
    store = library.store
    rows = photo_rows if photo_rows is not None else store.photos(statuses=("ok", "pending"))
    listings: dict[str, dict[str, tuple[str, int]]] = {}
    changed: list[tuple[PhotoRow, Path]] = []
    for row in rows:
        folder = str(PurePosixPath(row.path).parent)
        listing = listings.get(folder)
        if listing is None:
            listing = listings[folder] = list_sidecars(library.root / folder)
        if not listing:
            continue
        photo = library.root / row.path
        sidecar = find_sidecar(photo, listing)
        if sidecar is None:
            continue
        record = seen(store, row.id)
        _, mtime = listing[sidecar.name.lower()]
        if record.get("sidecar") != sidecar.name or record.get("mtime_ns") != mtime:
            changed.append((row, sidecar))
    report = ImportReport(photos=len(rows))
    for start in range(0, len(changed), BATCH):
        chunk = changed[start : start + BATCH]
        found = [
            photo_keywords(library.root / r.path, embedded=False, listing=listings[_parent(r)])
            for r, _ in chunk
        ]
        with store.transaction():
            for (row, _), f in zip(chunk, found, strict=True):
                record_found(store, row.id, row.path, f, report)
    return report


def _parent(row: PhotoRow) -> str:
    return str(PurePosixPath(row.path).parent)
