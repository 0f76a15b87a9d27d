"""The user's clean-up: photos marked missing are forgotten, with albumtagger's sidecars."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from albumtagger.library.export.xmp_sidecars import SidecarCleanup, remove_sidecars
from albumtagger.library.folder import Library


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
