"""Photos with their tags, as `albumtagger tags` lists them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from albumtagger.library.db.store import PhotoTag
from albumtagger.library.folder import Library


@dataclass(frozen=True)
class PhotoListing:
    """One photo and its tag cells (rejected ones too)."""

    path: str
    """Relative to the library's root, POSIX style."""
    status: str
    """ok, damaged, missing or pending; offline while the folder is (except missing)."""
    error: str | None
    tags: list[PhotoTag]


def photo_listing(library: Library, paths: Sequence[str] | None = None) -> list[PhotoListing]:
    """Every photo, or those of `paths` that are in the library, ordered by path."""
    store = library.store
    rows = store.photos(paths=paths)
    by_photo: dict[int, list[PhotoTag]] = {r.id: [] for r in rows}
    for t in store.photo_tags([r.id for r in rows]):
        by_photo[t.photo_id].append(t)
    online = library.is_online()
    return [
        PhotoListing(
            r.path,
            r.status if online or r.status == "missing" else "offline",
            r.error,
            by_photo[r.id],
        )
        for r in rows
    ]
