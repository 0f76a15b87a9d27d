"""The user's clean-up: photos marked missing are forgotten, with albumtagger's sidecars;
photos the user chose are moved to the system's trash (never deleted) and forgotten."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import send2trash

from albumtagger.library.export.xmp_sidecars import SidecarCleanup, remove_sidecars
from albumtagger.library.folder import Library

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Cleanup:
    """What a clean-up did."""

    removed: int
    """Photos forgotten."""
    sidecars: SidecarCleanup
    """albumtagger's XMP sidecars of them, deleted or stripped of its part."""


def forget_missing(library: Library, photo_ids: Sequence[int] | None = None) -> Cleanup:
    """Remove albumtagger's sidecars of the photos marked missing (only those of
    `photo_ids`, if given), then forget them."""
    rows = library.store.photos(statuses=("missing",))
    if photo_ids is not None:
        wanted = {int(i) for i in photo_ids}
        rows = [r for r in rows if r.id in wanted]
    sidecars = remove_sidecars(library, [r.path for r in rows])
    return Cleanup(library.store.remove_missing(photo_ids), sidecars)


@dataclass(frozen=True)
class Trashed:
    """What moving photos to the trash did."""

    moved: tuple[str, ...]
    """Relative paths moved to the trash (and forgotten by the library)."""
    failed: str = ""
    """The path that could not be moved ("" when all were); the rest were not tried."""
    error: str = ""
    """Why, in words."""


def trash_photos(library: Library, photo_ids: Sequence[int]) -> Trashed:
    """Move these photos' files to the system's trash, one by one, and forget the ones
    moved (with albumtagger's sidecars of them). Stops at the first file the trash does
    not take (no trash on that drive, no permission): nothing is ever deleted."""
    store = library.store
    rows = [r for r in (store.photo(int(i)) for i in photo_ids) if r is not None]
    moved: list[tuple[int, str]] = []
    failed = error = ""
    for row in rows:
        path = library.root / row.path
        try:
            if path.exists() or path.is_symlink():
                send2trash.send2trash(str(path))
        except OSError as e:  # TrashPermissionError too
            log.warning("Could not move %s to the trash: %s", path, e)
            failed, error = row.path, str(e) or type(e).__name__
            break
        moved.append((row.id, row.path))
    if moved:
        remove_sidecars(library, [p for _, p in moved])
        store.remove_photos([i for i, _ in moved])
    return Trashed(tuple(p for _, p in moved), failed, error)
