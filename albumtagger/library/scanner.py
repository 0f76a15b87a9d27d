"""Walking a photo folder and bringing the sidecar in line with it.

`scan` only looks at names, sizes and modification times: new and changed files
become `pending`, vanished ones `missing` (never deleted). Reading a file happens once,
later, in `read_file`, which hashes and decodes the same bytes; `apply_read` records
what it found and recognises a moved or renamed photo by its content hash.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import threading
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from PIL import Image

from albumtagger.errors import ImageError
from albumtagger.library import images, keywords
from albumtagger.library.db.store import PhotoRow, Store
from albumtagger.library.folder import Library

log = logging.getLogger(__name__)

UNREADABLE = "unreadable"
WRITE_BATCH = 500


class CancelToken:
    """Set from any thread to stop a long job between steps."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()


class LinkedCancel(CancelToken):
    """A token of its own that also reads as cancelled when `outer` is (a job within a
    session: cancelling the job leaves the session going)."""

    def __init__(self, outer: CancelToken) -> None:
        super().__init__()
        self._outer = outer

    @property
    def cancelled(self) -> bool:
        return super().cancelled or self._outer.cancelled


@dataclass(frozen=True)
class FileEntry:
    path: str
    """Relative to the root, POSIX style."""
    size: int
    mtime_ns: int


@dataclass
class ScanReport:
    offline: bool = False
    added: int = 0
    changed: int = 0
    unchanged: int = 0
    missing: int = 0
    returned: int = 0
    problems: list[tuple[str, str]] = field(default_factory=list)
    """(relative path, what went wrong) for folders and files that could not be read."""


@dataclass(frozen=True)
class ScanProgress:
    files_seen: int
    current: str


def relative(root: Path, path: Path) -> str:
    return PurePosixPath(path.relative_to(root).as_posix()).as_posix()


SYSTEM_FOLDERS = ("/proc", "/sys", "/dev")
"""Never walked (kernel and device files, not photos), whatever the settings."""

OUTSIDE_LINK = "link to a place outside the folder: not followed (see --follow-links)"


def _within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def link_refusal(real: str, real_root: str, follow_outside: bool) -> str | None:
    """Why the scan does not go to `real` (a resolved path), or None when it does.

    Inside the root (`real_root`, resolved too) is always fine; outside it only with
    `follow_outside`, and never into /proc, /sys or /dev (unless the root is there).
    """
    for system in SYSTEM_FOLDERS:
        if _within(real, system) and not _within(real_root, system):
            return f"leads into {system}, a system folder: never followed"
    if _within(real, real_root) or follow_outside:
        return None
    return OUTSIDE_LINK


def walk(
    root: Path,
    problems: list[tuple[str, str]],
    *,
    follow_links_outside: bool = False,
    start: str = ".",
) -> Iterator[FileEntry]:
    """Photo files under `root` (or its subfolder `start`), depth first, sorted per folder.

    Skips hidden files and folders (the sidecar among them). Follows symbolic links to
    folders and files that lead inside the root, and (with `follow_links_outside`)
    outside it, never into a system folder (`link_refusal`). A folder is walked once,
    by its real path where it has one (linked folders come last; a second way in, a
    loop among them, is reported). Records links not followed and folders and files
    that cannot be read in `problems`, and goes on.
    """
    real_root = os.path.realpath(root)
    top = root / start
    visited: set[tuple[int, int]] = set()
    stack: list[tuple[Path, str]] = [(top, os.path.realpath(top))]
    linked: list[tuple[Path, str]] = []
    while stack or linked:
        folder, real_folder = stack.pop() if stack else linked.pop(0)
        rel_folder = "." if folder == root else relative(root, folder)
        refusal = link_refusal(real_folder, real_root, follow_links_outside)
        if refusal is not None:
            problems.append((rel_folder, refusal))
            continue
        try:
            st = folder.stat()
        except OSError as exc:
            problems.append((rel_folder, f"cannot open folder: {exc.strerror or exc}"))
            continue
        key = (st.st_dev, st.st_ino)
        if key in visited:
            problems.append((rel_folder, "symbolic link loop: folder already scanned"))
            continue
        visited.add(key)
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            problems.append((rel_folder, f"cannot read folder: {exc.strerror or exc}"))
            continue
        subfolders = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            if not storable(entry.name):
                problems.append(
                    (
                        os.fsencode(relative(root, path)).decode("utf-8", "backslashreplace"),
                        "the name is not valid UTF-8 text; rename it to include it",
                    )
                )
                continue
            try:
                est = entry.stat(follow_symlinks=True)
            except OSError as exc:
                if entry.is_symlink():
                    problems.append((relative(root, path), "broken symbolic link"))
                else:
                    problems.append((relative(root, path), f"cannot read: {exc.strerror or exc}"))
                continue
            is_link = entry.is_symlink()
            real = os.path.realpath(path) if is_link else os.path.join(real_folder, entry.name)
            if stat.S_ISDIR(est.st_mode):
                (linked if is_link else subfolders).append((path, real))
            elif path.suffix.lower() in images.PHOTO_SUFFIXES:
                refusal = link_refusal(real, real_root, follow_links_outside)
                if refusal is not None:
                    problems.append((relative(root, path), refusal))
                elif stat.S_ISREG(est.st_mode):
                    yield FileEntry(relative(root, path), est.st_size, est.st_mtime_ns)
                else:
                    problems.append(
                        (relative(root, path), "not a file (a pipe, socket or device); skipped")
                    )
        stack.extend(reversed(subfolders))


def storable(name: str) -> bool:
    """Names with undecodable bytes (surrogate escapes) cannot be stored as text."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _under(path: str, folders: list[str]) -> bool:
    return any(f == "." or path == f or path.startswith(f + "/") for f in folders)


def scan(
    library: Library, cancel: CancelToken | None = None, *, follow_links_outside: bool = False
) -> Generator[ScanProgress, None, ScanReport]:
    """Bring the sidecar in line with the folder; yields progress, returns a report.

    Links are followed as `walk` says (`follow_links_outside`: also out of the folder).

    An offline root (missing, unreadable, or a mount point without our sidecar) changes
    nothing. Photos under a folder that could not be read are not marked missing.
    Cancelling stops the walk and marks nothing missing.
    """
    report = ScanReport()
    if not library.is_online():
        report.offline = True
        return report
    store = library.store
    known = store.photo_index()
    seen: set[str] = set()
    pending_writes: list[tuple[str, FileEntry, PhotoRow | None]] = []

    def flush() -> None:
        with store.transaction():
            for action, entry, row in pending_writes:
                if action == "add":
                    store.add_photo(entry.path, entry.size, entry.mtime_ns)
                elif row is not None:
                    store.mark_changed(row.id, entry.size, entry.mtime_ns)
        pending_writes.clear()

    for entry in walk(library.root, report.problems, follow_links_outside=follow_links_outside):
        if cancel is not None and cancel.cancelled:
            flush()
            return report
        seen.add(entry.path)
        row = known.get(entry.path)
        if row is None:
            pending_writes.append(("add", entry, None))
            report.added += 1
        elif row.status == "missing":
            pending_writes.append(("change", entry, row))
            report.returned += 1
        elif (row.size, row.mtime_ns) != (entry.size, entry.mtime_ns) or (
            row.status == "damaged" and (row.error or "").startswith(UNREADABLE)
        ):
            pending_writes.append(("change", entry, row))
            report.changed += 1
        else:
            report.unchanged += 1
        if len(pending_writes) >= WRITE_BATCH:
            flush()
        if len(seen) % 200 == 0:
            yield ScanProgress(len(seen), entry.path)
    flush()

    blind = [p for p, why in report.problems if why.startswith(("cannot open", "cannot read f"))]
    vanished = [
        row.id
        for path, row in known.items()
        if path not in seen and row.status != "missing" and not _under(path, blind)
    ]
    if vanished and not library.is_online():
        # The drive went away while we walked: what we did not see is not missing.
        report.offline = True
        return report
    with store.transaction():
        store.mark_missing(vanished)
        store.set_setting("scan_problems", _problems_json(report.problems))
    report.missing = len(vanished)
    yield ScanProgress(len(seen), "")
    return report


def _problems_json(problems: list[tuple[str, str]]) -> str:
    return json.dumps([{"path": p, "problem": why} for p, why in problems], ensure_ascii=False)


def run_to_end(gen: Generator[object, None, ScanReport]) -> ScanReport:
    """Drive a progress generator to its end and return what it returns."""
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value


# -- reading files once -----------------------------------------------------------


@dataclass
class ReadResult:
    """What reading one pending photo found. `image` is None when not decoded."""

    photo_id: int
    path: str
    size: int = 0
    mtime_ns: int = 0
    content_hash: str | None = None
    width: int = 0
    height: int = 0
    image: Image.Image | None = None
    error: str | None = None
    gone: bool = False
    taken_at: float | None = None
    """When the photo was taken, by its EXIF (None: it does not say)."""
    keywords: keywords.Found | None = None
    """Keywords in the photo's sidecar, embedded XMP and IPTC (imported by `apply_read`)."""
    root: Path | None = None
    """The library root the file was read under (to tell a moved photo from a copy)."""


def read_file(
    root: Path,
    row: PhotoRow,
    *,
    target_pixels: int | None = None,
    needs_pixels: Callable[[str], bool] | None = None,
) -> ReadResult:
    """Read a photo's bytes once: hash them and, if `needs_pixels(hash)`, decode them.

    Never raises for a bad file: the result says damaged (`error`), unreadable
    (`error` starting with "unreadable") or `gone`. Safe to call from worker threads.
    """
    path = root / row.path
    result = ReadResult(photo_id=row.id, path=row.path, root=Path(root))
    try:
        st = path.stat()
        data = images.read_file_bytes(path)
    except FileNotFoundError:
        result.gone = True
        return result
    except ImageError as exc:  # not a regular file, or too large to read safely
        result.size, result.mtime_ns = row.size, row.mtime_ns
        result.error = exc.reason
        return result
    except OSError as exc:
        result.size, result.mtime_ns = row.size, row.mtime_ns
        result.error = f"{UNREADABLE}: {exc.strerror or exc}"
        return result
    result.size, result.mtime_ns = len(data), st.st_mtime_ns
    result.content_hash = images.hash_bytes(data)
    want_pixels = needs_pixels is None or needs_pixels(result.content_hash)
    try:
        image, width, height = images.decode_image(
            data, target_pixels=target_pixels if want_pixels else 1
        )
    except ImageError as exc:
        result.error = exc.reason
        return result
    result.width, result.height = width, height
    result.image = image if want_pixels else None
    result.taken_at = images.date_taken(data)
    result.keywords = keywords.photo_keywords(path, data, content_hash=result.content_hash)
    return result


def apply_read(
    store: Store, result: ReadResult, imports: keywords.ImportReport | None = None
) -> int | None:
    """Record a read in the sidecar (inside the caller's transaction).

    Returns the photo's id (which changes when the file turns out to be a moved photo),
    or None when the photo is damaged, unreadable or gone.
    Keywords the photo carries (sidecar, embedded XMP, IPTC) become accepted user tags;
    what they gave and the problems reading them are noted in `imports`.
    """
    if result.gone:
        store.mark_missing([result.photo_id])
        return None
    if result.error is not None:
        store.record_damaged(result.photo_id, result.size, result.mtime_ns, result.error)
        return None
    assert result.content_hash is not None
    if result.root is not None:
        # A move seen as "new file" before "file gone" (into a folder made a moment
        # ago, say): the old row is missing already, so the photo keeps its identity.
        gone = [
            row.id
            for row in store.photos_with_hash(result.content_hash)
            if row.id != result.photo_id
            and row.status != "missing"
            and not (result.root / row.path).exists()
        ]
        if gone:
            store.mark_missing(gone)
    photo_id = store.record_read(
        result.photo_id,
        content_hash=result.content_hash,
        size=result.size,
        mtime_ns=result.mtime_ns,
        width=result.width,
        height=result.height,
        taken_at=result.taken_at,
    )
    if result.keywords is not None:
        report = imports if imports is not None else keywords.ImportReport()
        keywords.record_found(store, photo_id, result.path, result.keywords, report)
    return photo_id
