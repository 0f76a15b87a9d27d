"""What a `LibrarySession` tells its caller after each change: plain dataclasses, no Qt.

The app's adapter turns them into Qt signals; the CLI prints some of them.
"""

from __future__ import annotations

from dataclasses import dataclass

PHOTO_KINDS = ("added", "updated", "moved", "missing", "damaged", "removed", "status")


@dataclass(frozen=True)
class Event:
    """Base of every session event."""


@dataclass(frozen=True)
class PhotosChanged(Event):
    """Photos were added, queued to be read again ("updated"), moved, marked missing or
    damaged, removed, or read and tagged ("status")."""

    ids: tuple[int, ...]
    kind: str


@dataclass(frozen=True)
class TagsChanged(Event):
    """These photos' tag cells changed (tagging, a correction, a re-decision)."""

    ids: tuple[int, ...]


@dataclass(frozen=True)
class VocabularyChanged(Event):
    """Tags were added, removed or scored."""


@dataclass(frozen=True)
class ThresholdsChanged(Event):
    tag_ids: tuple[int, ...]


@dataclass(frozen=True)
class JobProgress(Event):
    """How far a long job is. `rate` is photos per second, `eta_s` seconds left in this
    job; `tags_eta_s` and `refined_eta_s` the seconds until every photo of the library
    has first-pass tags and until every photo is refined (see `tagging.progress`)."""

    job: str
    phase: str
    done: int
    total: int
    rate: float | None = None
    eta_s: float | None = None
    paused: bool = False
    finished: bool = False
    tags_eta_s: float | None = None
    refined_eta_s: float | None = None


@dataclass(frozen=True)
class Notice(Event):
    """Something to tell the person: level "info", "warning" or "error"."""

    level: str
    text: str


@dataclass(frozen=True)
class ActivityChanged(Event):
    """The library's recent activity has a new entry (a correction, an undo or redo, a
    re-decision): `text` says what it was."""

    kind: str
    text: str


@dataclass(frozen=True)
class ModelStatus(Event):
    """The model's state: "not_loaded", "loading", "ready" or "unavailable"."""

    state: str
    text: str = ""


@dataclass(frozen=True)
class FolderState(Event):
    """The library's folder went away (`online` false; `text` says so: nothing changes
    until it is back) or came back."""

    online: bool
    text: str = ""


def from_store_changes(changes: dict[str, set[int]]) -> list[Event]:
    """Events for one commit's change log (see `Store.listen`)."""
    events: list[Event] = []
    moved = changes.get("moved", set())
    for kind in PHOTO_KINDS:
        ids = changes.get(kind, set()) - (moved if kind == "missing" else set())
        if ids:  # a moved photo is briefly missing inside the commit that moves it
            events.append(PhotosChanged(tuple(sorted(ids)), kind))
    if changes.get("tags"):
        events.append(TagsChanged(tuple(sorted(changes["tags"]))))
    if "vocabulary" in changes:
        events.append(VocabularyChanged())
    if changes.get("thresholds"):
        events.append(ThresholdsChanged(tuple(sorted(changes["thresholds"]))))
    return events
