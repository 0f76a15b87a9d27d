"""What the tagger's jobs report: a correction, a re-decision of the library, a vocabulary
edit, a pinned threshold and one tag as the inspector shows it, each with its words for
the user."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from albumtagger.config import ThresholdSettings
from albumtagger.library.db.store import SuggestionChanges

ACTION_VERBS = {
    "accept": "Accepted",
    "reject": "Rejected",
    "add": "Added",
    "remove": "Removed",
}
"""The corrections there are, with their verb for the user."""
THRESHOLD_SOURCES = ("pinned", "learned", "prior", "not_scored")
"""Where a tag's threshold comes from (`TagInspection.source`)."""
_PREFERENCE_TEXT = {
    "precision": "precision (fewer wrong tags, more missed ones)",
    "balanced": "a balance of precision and recall",
    "recall": "recall (fewer missed tags, more wrong ones)",
}


def _photos(n: int) -> str:
    return f"{n} other photo" if n == 1 else f"{n} other photos"


def _round(x: float | None) -> float | None:
    return None if x is None else round(float(x), 4)


def _count(n: int, word: str) -> str:
    return f"{n:,} {word}" if n == 1 else f"{n:,} {word}s"


@dataclass(frozen=True)
class Correction:
    """What one correction (or its undo) did.

    `photos_changed` counts the other photos whose tags changed with it; `added` and
    `removed` count the other photos that gained or lost the corrected tag.
    """

    path: str
    tag: str
    action: str
    threshold_before: float | None
    threshold_after: float | None
    photos_changed: int
    added: int = 0
    removed: int = 0
    changed_photo_ids: tuple[int, ...] = ()
    note: str = ""
    """Why nothing was learned, when nothing was: already decided, not scored yet."""
    undone_action: str = ""
    """The action an undo took back, or a redo put back."""
    new_tag: bool = False
    """The tag was not in the vocabulary: this correction created it."""
    photos_scored: int = 0
    """Photos whose stored vectors scored the new tag at once (0: it was not scored)."""
    seconds: float = 0.0
    """How long scoring the new tag took."""
    feedback_id: int = 0
    """The correction's event in the sidecar (undone or redone by an undo or redo)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "tag": self.tag,
            "action": self.action,
            "threshold_before": _round(self.threshold_before),
            "threshold_after": _round(self.threshold_after),
            "photos_changed": self.photos_changed,
            "tag_added_to": self.added,
            "tag_removed_from": self.removed,
            "note": self.note,
            "new_tag": self.new_tag,
            "photos_scored": self.photos_scored,
        }

    def scoring_text(self) -> str:
        """What became of a tag this correction created ("" for a tag there was)."""
        if self.photos_scored:
            return (
                f"scored {_count(self.photos_scored, 'photo')} from their stored vectors in "
                f"{self.seconds:.1f} s (no photo was encoded again)"
            )
        return self.note.rstrip(".") if self.new_tag else ""

    def describe(self) -> str:
        if self.action in ("undo", "redo"):
            what = f"{ACTION_VERBS.get(self.undone_action, 'Changed').lower()} {self.tag!r}"
            text = f"{'Undid' if self.action == 'undo' else 'Redid'}: {what} on {self.path}"
            if self.photos_changed and self.action == "redo":
                return text + f"; {_photos(self.photos_changed)} changed with it again."
            if self.photos_changed:
                return text + f"; {_photos(self.photos_changed)} are back as they were."
            return text + "."
        text = f"{ACTION_VERBS[self.action]} {self.tag!r} on {self.path}"
        if self.note:
            return f"{text}: {self.note}"
        if self.photos_scored:
            return self._describe_scored(text)
        before, after = self.threshold_before, self.threshold_after
        moved = before is not None and after is not None and abs(after - before) >= 5e-4
        if moved:
            text += (
                f". Learning from it moved the threshold of {self.tag!r} from {before:.3f} to "
                f"{after:.3f}"
            )
        if not self.photos_changed:
            return text + ("; no other photo changed." if moved else ". No other photo changed.")
        parts = []
        if self.added:
            parts.append(f"added to {_photos(self.added)}")
        if self.removed:
            parts.append(f"removed from {_photos(self.removed)}")
        text += (", so " if moved else ". ") + (
            f"{self.tag!r} was {' and '.join(parts)}" if parts else "no photo gained or lost it"
        )
        ripple = self.photos_changed - self.added - self.removed
        if ripple > 0:
            text += (
                f"; {_photos(ripple)} changed other tags (the limit of tags per photo and "
                "the fallback)"
            )
        return text + "."

    def _describe_scored(self, text: str) -> str:
        """`text`, and how the new tag was scored and which other photos carry it."""
        if self.added == 1:
            carry = "1 more photo carries it"
        elif self.added:
            carry = f"{self.added:,} more photos carry it"
        else:
            carry = "no other photo carries it yet"
        text += f"; {self.scoring_text()}: {carry}"
        ripple = self.photos_changed - self.added - self.removed
        if ripple > 0:
            text += (
                f"; {_photos(ripple)} changed other tags (the limit of tags per photo and "
                "the fallback)"
            )
        return text + "."


@dataclass(frozen=True)
class TagChange:
    """How many photos gained and lost one tag in a change of automatic suggestions."""

    tag: str
    gained: int
    lost: int

    def text(self) -> str:
        """The tag and its counts: "'turtle' +41 -3" (a count of 0 is left out)."""
        counts = [f"+{self.gained:,}"] if self.gained else []
        counts += [f"-{self.lost:,}"] if self.lost else []
        return f"{self.tag!r} {' '.join(counts)}"


def tag_changes(changes: SuggestionChanges, names: Mapping[int, str]) -> tuple[TagChange, ...]:
    """Per tag of `names` (tag id: name), the photos that gained and lost it in `changes`,
    the most changed first (a tag not in `names`, e.g. removed, is left out)."""
    gained = Counter(t for _, t in changes.added)
    lost = Counter(t for _, t in changes.removed)
    out = [
        TagChange(names[t], gained[t], lost[t]) for t in gained.keys() | lost.keys() if t in names
    ]
    return tuple(sorted(out, key=lambda c: (-(c.gained + c.lost), c.tag)))


def tag_changes_text(tags: tuple[TagChange, ...], top: int = 3) -> str:
    """The first `top` tags with their counts ("'turtle' +41, 'beach' -12") and how many
    more there are."""
    text = ", ".join(c.text() for c in tags[:top])
    more = len(tags) - top
    if more > 0:
        text += f" and {_count(more, 'more tag')}"
    return text


REDECISION_TRIGGERS = ("photos", "settings", "vocabulary", "library")
"""What re-decides a library: new photos arrived, the threshold settings changed, the
vocabulary was edited (or tags waiting for the model were scored), or anything else."""


@dataclass(frozen=True)
class Redecision:
    """What deciding the whole library again changed on photos' automatic suggestions
    (the user's own decisions never change): per tag, the photos that gained or lost it."""

    trigger: str
    """One of `REDECISION_TRIGGERS`."""
    tags: tuple[TagChange, ...]
    photos_changed: int
    """Photos whose tags changed (a new score or confidence alone included)."""
    new_photos: int = 0
    """With the trigger "photos": the photos that arrived since the last re-decision."""
    photos_replaced: int = 0
    """Photos that lost every suggestion they had and got others instead."""

    def reason(self) -> str:
        """What triggered it: "after 60 new photos", "after a settings change", ..."""
        if self.trigger == "photos":
            return f"after {_count(self.new_photos, 'new photo')}"
        if self.trigger == "settings":
            return "after a settings change"
        if self.trigger == "vocabulary":
            return "after a vocabulary change"
        return "the whole library"

    def describe(self, top: int = 3) -> str:
        """What it did: "Re-decided after 60 new photos: 'turtle' +41, 'beach' -12 (53
        photos changed)." """
        text = f"Re-decided {self.reason()}"
        changed = f"{_count(self.photos_changed, 'photo')} changed"
        if self.photos_replaced:
            changed += f"; {self.photos_replaced:,} got all new suggestions"
        if not self.tags:
            return f"{text}: {changed}."
        return f"{text}: {tag_changes_text(self.tags, top)} ({changed})."


@dataclass
class VocabularyChange:
    """What a vocabulary edit did."""

    added: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    """Names asked for that the vocabulary already had (compared without case)."""
    removed: list[str] = field(default_factory=list)
    unscored: list[str] = field(default_factory=list)
    """Tags that have no text vector yet (no model at hand): scored when it next loads."""
    reason: str = ""
    """Why the model was not at hand, when it was not."""
    changes: SuggestionChanges = field(default_factory=SuggestionChanges)
    renamed: list[tuple[str, str]] = field(default_factory=list)
    """(old name, new name) of renamed tags."""
    reprompted: list[str] = field(default_factory=list)
    """Tags whose prompts changed (re-scored)."""
    waited: list[str] = field(default_factory=list)
    """Tags that waited for the model (added without it), scored now that it is loaded."""
    prompts_encoded: int = 0
    """Prompts that went through the model (text only: photos are never re-encoded)."""
    photos_scored: int = 0
    """Photos whose stored vectors scored the new or changed tags."""
    seconds: float = 0.0
    """How long the edit took, scoring included."""

    def describe(self) -> str:
        """What the edit did, in a few sentences for the user."""
        return " ".join(self.lines())

    def lines(self) -> list[str]:
        """What the edit did, a sentence a line."""
        parts = []
        if self.added:
            parts.append("Added " + ", ".join(repr(n) for n in self.added) + ".")
        if self.existing:
            parts.append(
                "Already in the vocabulary: " + ", ".join(repr(n) for n in self.existing) + "."
            )
        for old, new in self.renamed:
            parts.append(f"Renamed {old!r} to {new!r}.")
        if self.reprompted:
            parts.append("New prompts for " + ", ".join(repr(n) for n in self.reprompted) + ".")
        if self.removed:
            parts.append("Removed " + ", ".join(repr(n) for n in self.removed) + ".")
        if self.waited:
            parts.append(
                "The model is loaded: "
                + ", ".join(repr(n) for n in self.waited)
                + (" was" if len(self.waited) == 1 else " were")
                + " waiting for it."
            )
        if self.unscored:
            why = f" ({self.reason})" if self.reason else ""
            parts.append(
                f"Not scored yet: {', '.join(repr(n) for n in self.unscored)}; the model is "
                f"not at hand{why}. They are scored across the library the next time it is "
                "loaded (`albumtagger index FOLDER`, or the app)."
            )
        if self.photos_scored:
            prompts = _count(self.prompts_encoded, "prompt")
            parts.append(
                f"Scored {_count(self.photos_scored, 'photo')} from their stored vectors in "
                f"{self.seconds:.1f} s; no photo was encoded again ({prompts} went through "
                "the model)."
            )
        changed = len(self.changes.photo_ids())
        if changed or parts:
            parts.append(f"{_count(changed, 'photo')} changed tags.")
        return parts or ["Nothing changed."]


@dataclass(frozen=True)
class ThresholdChange:
    """What pinning a tag's threshold (or giving it back to learning) did."""

    tag: str
    threshold_before: float | None
    threshold_after: float | None
    pinned: float | None
    """The pin now (None: the threshold is learned)."""
    previous_pin: float | None
    """The pin before (None: it was learned); pin this again to go back."""
    gained: int
    """Photos that now carry the tag and did not before."""
    lost: int
    """Photos that carried the tag and do not any more."""
    carries: int
    """Photos that carry the tag now."""
    photos_changed: int
    """Photos whose tags changed (the cap and the fallback can move other tags)."""
    changed_photo_ids: tuple[int, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "tag": self.tag,
            "threshold_before": _round(self.threshold_before),
            "threshold_after": _round(self.threshold_after),
            "pinned": self.pinned,
            "previous_pin": self.previous_pin,
            "gained": self.gained,
            "lost": self.lost,
            "carries": self.carries,
            "photos_changed": self.photos_changed,
        }

    def describe(self) -> str:
        if self.pinned is not None:
            text = f"Pinned the threshold of {self.tag!r} at {self.pinned:.3f}"
        elif self.threshold_after is not None:
            text = (
                f"The threshold of {self.tag!r} is learned again from answers: "
                f"{self.threshold_after:.3f}"
            )
        else:
            text = f"The threshold of {self.tag!r} is learned again from answers"
        return (
            f"{text}. {_count(self.gained, 'photo')} gained it and {_count(self.lost, 'photo')} "
            f"lost it; {_count(self.carries, 'photo')} carry it."
        )


@dataclass
class TagInspection:
    """Everything the tag inspector shows about one tag."""

    name: str
    prompts: tuple[str, ...]
    threshold: float | None
    source: str
    """Where the threshold comes from: one of `THRESHOLD_SOURCES`."""
    source_text: str
    """The same as a sentence for the user (with the precision/recall preference)."""
    preference: str
    pinned: float | None
    answers: dict[str, int]
    """{"yes": n, "no": m}: the user's labels of this tag (a photo's latest answer)."""
    scores: np.ndarray
    """float32: the tag's score on every scored photo of the library (a histogram)."""
    yes_scores: np.ndarray
    no_scores: np.ndarray
    above: list[tuple[int, float]]
    """(photo id, score) of the photos just above the threshold, nearest first."""
    below: list[tuple[int, float]]
    """(photo id, score) of the photos just below the threshold, nearest first."""
    carries: int
    """Photos that carry the tag (`queries.CARRIES_SQL`)."""
    median: float | None = None
    scale: float | None = None
    """The tag's library score distribution: median and robust std."""
    carried_by: dict[str, int] = field(default_factory=dict)
    """`carries` by the way the photos carry the tag: {"accepted", "passing",
    "fallback"} (`Store.count_carriers_by_way`)."""


def source_text(
    source: str, pinned: float | None, yes: int, no: int, policy: ThresholdSettings
) -> str:
    """Where a tag's threshold comes from (`THRESHOLD_SOURCES`), as a sentence for the
    user: `yes` and `no` are its answers, `policy` the precision/recall preference."""
    if policy.beta > 0:
        preference = f"F-beta with beta {policy.beta:g}"
    else:
        preference = _PREFERENCE_TEXT.get(policy.preference, policy.preference)
    if source == "pinned":
        return (
            f"Pinned by hand at {pinned:.3f}. Answers are still kept, and teach the "
            "threshold once it is given back to learning."
        )
    if source == "learned":
        return (
            f"Learned from {_count(yes + no, 'answer')} ({yes} yes, {no} no), starting "
            f"from the tag's score distribution; the preference is {preference}."
        )
    if source == "prior":
        return (
            "From the tag's score distribution over the library (no answers yet); the "
            f"preference is {preference}. Answers in review mode teach it."
        )
    return (
        "Not scored yet: its prompts have not been through the model. It is scored "
        "when the model is next loaded."
    )
