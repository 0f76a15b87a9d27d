"""What every export format shares: the `Exporter` protocol, its report and its error."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from albumtagger.errors import UserError
from albumtagger.library.db.store import PhotoTag
from albumtagger.library.folder import Library


@dataclass
class ExportReport:
    """What an export did. Paths are relative to the library's root."""

    written: list[str] = field(default_factory=list)
    """Files written."""
    unchanged: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    """Files that held nothing but albumtagger's tags, now none: removed."""
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """(file, why) left alone: not a file this format can read."""
    failed: list[tuple[str, str]] = field(default_factory=list)
    """(file, message) that could not be written."""
    adopted: list[tuple[str, str]] = field(default_factory=list)
    """(photo, tag) keywords added in another program, now accepted tags (formats that
    read back what other programs changed)."""
    rejected_elsewhere: list[tuple[str, str]] = field(default_factory=list)
    """(photo, tag) keywords albumtagger wrote that were removed in another program."""

    def __iter__(self) -> Iterator[str]:  # the written paths, as export_xmp returned before
        return iter(self.written)

    def __len__(self) -> int:
        return len(self.written)

    def as_dict(self) -> dict[str, object]:
        return {
            "written": self.written,
            "unchanged": len(self.unchanged),
            "deleted": self.deleted,
            "skipped": [{"path": p, "why": w} for p, w in self.skipped],
            "failed": [{"path": p, "problem": w} for p, w in self.failed],
            "adopted": [{"path": p, "tag": t} for p, t in self.adopted],
            "rejected_elsewhere": [{"path": p, "tag": t} for p, t in self.rejected_elsewhere],
        }


class ExportError(UserError):
    """Some files could not be written; the message says which and what to do.

    `report` holds what the export did (the other files were written).
    """

    def __init__(self, message: str, report: ExportReport) -> None:
        super().__init__(message)
        self.report = report


class Exporter(Protocol):
    """One export format: the tags of a library written where other programs read them.
    Its own options (file names, layout) are given when it is made."""

    def export(
        self,
        library: Library,
        *,
        include_suggested: bool = False,
        photo_ids: Sequence[int] | None = None,
    ) -> ExportReport:
        """Write the tags of the library's present photos (only `photo_ids`, if given):
        accepted tags, and with `include_suggested` the confident suggestions too (see
        `keywords_of`). Raises `ExportError` at the end if some files could not be
        written (the others are), and `LibraryOfflineError` for an offline folder."""
        ...


def keywords_of(tags: Iterable[PhotoTag], include_suggested: bool) -> tuple[list[str], list]:
    """(keywords, suggestions) of one photo's tag rows: accepted, plus (if asked) the
    confident suggestions (not fallback ones) as (name, score, confidence); rejected
    never."""
    names, suggestions = [], []
    for t in tags:
        if t.state == "accepted":
            names.append(t.name)
        elif include_suggested and t.state == "suggested" and not t.fallback:
            names.append(t.name)
            suggestions.append((t.name, t.score, t.confidence))
    return sorted(names), suggestions


def failure_message(failed: list[tuple[str, str]], total: int, what: str) -> str:
    """One line for `failed` (file, problem) of `total` files: the first problem, and
    how many failed if more than one."""
    first = failed[0][1]
    if len(failed) == 1:
        return f"Cannot write {what}: {first}."
    return (
        f"{len(failed)} of {total} {what} could not be written (the others were); first: {first}."
    )
