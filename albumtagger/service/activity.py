"""What changed in a library lately, newest first: the user's corrections (with their
knock-on effect on the tag's threshold), their undo and redo, and re-decisions of the
whole library (which tags photos gained and lost). A session keeps the last
`ACTIVITY_LIMIT` entries in memory; the app's Activity panel shows them. No Qt here.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from albumtagger.tagging.results import ACTION_VERBS, Correction, Redecision, TagChange

ACTIVITY_LIMIT = 200
"""Entries a session keeps (the oldest go first)."""
ACTIVITY_KINDS = ("correction", "undo", "redo", "redecision")


@dataclass(frozen=True)
class ActivityEntry:
    """One change: `text` says what it was, `detail` its knock-on effect."""

    id: int
    at: float
    """When (seconds since the epoch)."""
    kind: str
    """One of `ACTIVITY_KINDS`."""
    text: str
    detail: str = ""
    tags: tuple[TagChange, ...] = ()
    """Per tag, the photos that gained and lost it (a correction: the other photos)."""
    feedback_ids: tuple[int, ...] = ()
    """A correction's events in the sidecar (what its undo takes back)."""


@dataclass(frozen=True)
class Activity:
    """The entries, newest first, and which correction undo and redo would act on."""

    entries: tuple[ActivityEntry, ...]
    undo_id: int | None
    """The event Undo takes back (the newest correction in effect)."""
    redo_id: int | None
    """The event Redo puts back (the correction undone last), if any."""

    def undoable(self, entry: ActivityEntry) -> bool:
        """`entry` is a correction that Undo would take back now."""
        return entry.kind == "correction" and self.undo_id in entry.feedback_ids

    def redoable(self, entry: ActivityEntry) -> bool:
        """`entry` is a correction that Redo would put back now."""
        return entry.kind == "correction" and self.redo_id in entry.feedback_ids


class ActivityLog:
    """The last `limit` entries of one library's session."""

    def __init__(self, limit: int = ACTIVITY_LIMIT) -> None:
        self._entries: deque[ActivityEntry] = deque(maxlen=limit)
        self._next = 1

    def __len__(self) -> int:
        return len(self._entries)

    def add(
        self,
        kind: str,
        text: str,
        detail: str = "",
        tags: tuple[TagChange, ...] = (),
        feedback_ids: tuple[int, ...] = (),
    ) -> ActivityEntry:
        entry = ActivityEntry(self._next, time.time(), kind, text, detail, tags, feedback_ids)
        self._next += 1
        self._entries.append(entry)
        return entry

    def corrections(self, results: Sequence[Correction]) -> ActivityEntry | None:
        """An entry for corrections of one tag (one call of the session), or an undo or a
        redo; None when nothing changed."""
        done = [c for c in results if c.feedback_id]
        if not done:
            return None
        first, last = done[0], done[-1]
        if first.action in ("undo", "redo"):
            return self.add(first.action, first.describe(), feedback_ids=(first.feedback_id,))
        verb = ACTION_VERBS.get(first.action, first.action).lower()
        where = first.path if len(done) == 1 else f"{len(done):,} photos"
        added = sum(c.added for c in done)
        removed = sum(c.removed for c in done)
        before, after = first.threshold_before, last.threshold_after
        if before is not None and after is not None and abs(after - before) >= 5e-4:
            detail = (
                f"{first.tag!r} threshold moved {before:.3f} \u2192 {after:.3f}: "
                f"+{added:,} photos -{removed:,}"
            )
        elif added or removed:
            detail = f"{first.tag!r}: +{added:,} photos -{removed:,}"
        else:
            detail = first.note.rstrip(".") if first.note else "no other photo changed"
        return self.add(
            "correction",
            f"You {verb} {first.tag!r} on {where}",
            detail,
            (TagChange(first.tag, added, removed),) if added or removed else (),
            tuple(c.feedback_id for c in done),
        )

    def redecision(self, redecision: Redecision) -> ActivityEntry:
        return self.add(
            "redecision",
            redecision.describe(),
            ", ".join(c.text() for c in redecision.tags),
            redecision.tags,
        )

    def mark(self) -> int:
        """The id the next entry gets (see `drop_from`)."""
        return self._next

    def drop_from(self, mark: int) -> None:
        """Forget the entries added since `mark` (what they said was rolled back)."""
        while self._entries and self._entries[-1].id >= mark:
            self._entries.pop()

    def view(self, undo_id: int | None, redo_id: int | None) -> Activity:
        return Activity(tuple(reversed(self._entries)), undo_id, redo_id)
