"""SQL fragments and constants shared by the writer (`store` and its parts) and the reads
(`queries`): one definition of each, imported by both sides."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

PHOTO_STATUSES = ("pending", "ok", "damaged", "missing")
TAG_STATES = ("suggested", "accepted", "rejected")
TAG_SOURCES = ("auto", "user")
FEEDBACK_ACTIONS = ("accept", "reject", "add", "remove")

CARRIED_STATES: tuple[str, ...] = ("accepted", "suggested")
"""`photo_tags.state` values under which a photo carries the tag (never `rejected`)."""

CARRIES_SQL = "state IN ('accepted', 'suggested')"
"""SQL condition on a `photo_tags` row (unqualified columns): the photo carries the tag.

Written out as literals so SQLite uses the index photo_tags_by_tag(tag_id, state, ...).
"""

NEEDS_REVIEW_CONDITION = (
    "state = 'suggested' AND (fallback != 0 OR confidence IS NULL OR confidence = 'low')"
)
"""An automatic suggestion worth a second look (the read queries' "needs review")."""

TAKEN_SQL = "COALESCE(taken_at, mtime_ns / 1000000000.0)"
"""A photo's date taken (seconds): its EXIF date, else the file's modification time."""

VECTOR_BLOCK_ROWS = 1024
"""Vectors are read this many rows at a time: turning a block into a matrix holds the
interpreter lock (about a millisecond for this many; four times that froze the window
noticeably when a search loaded 100k vectors)."""


def marks(items: Sequence[object]) -> str:
    """The `?` placeholders of an `IN (...)` list of these items."""
    return ", ".join("?" * len(items))


def chunks(items: list, size: int) -> Iterator[list]:
    """`items` in slices of at most `size` (SQLite limits the parameters of a statement)."""
    for i in range(0, len(items), size):
        yield items[i : i + size]
