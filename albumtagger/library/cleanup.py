"""The user's clean-up: photos marked missing are forgotten, with albumtagger's sidecars."""

from __future__ import annotations

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


def forget_missing(library: Library) -> Cleanup:
    """Remove albumtagger's sidecars of the photos marked missing, then forget them."""
    missing = [r.path for r in library.store.photos(statuses=("missing",))]
    sidecars = remove_sidecars(library, missing)
    return Cleanup(library.store.remove_missing(), sidecars)
