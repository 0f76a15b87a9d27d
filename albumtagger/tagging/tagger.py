"""The library's tag decisions: stored vectors and feedback in, stored suggestions out.

This is the glue between the sidecar (`library.db.store`) and the decision rules
(`tagging.thresholds`): it builds the [photos x tags] score matrix from stored photo
and tag vectors, fits the per-tag thresholds, decides, and writes back only what
changed.

Rules that make the tags a function of the library (photos, vocabulary, settings,
corrections) and not of the path that built it:
- A full `redecide` fits every tag's threshold from the whole library's scores and
  decides every photo. Indexing ends with one; photos that arrive in between (a
  watched folder's trickle) are decided with the stored thresholds until the next.
- Thresholds that were never fitted are fitted as soon as there are scores.
- A correction is one transaction: the feedback event, the user's decision, the
  corrected tag's new threshold and every photo that changes with it, and a snapshot
  of what it replaced, so that undo puts back exactly what was there.
- Only tags whose prompts have text vectors for the library's model are scored; a tag
  added without the model is kept "not scored yet" (its user decisions work) until the
  model is next loaded. Nothing here needs the model unless it is given one.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import math
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from albumtagger.config import Settings
from albumtagger.errors import ModelError, NotFoundError, UnknownTagError, UsageError, UserError
from albumtagger.library.db.store import AutoTag, Store, SuggestionChanges, TagRow
from albumtagger.model.encoder import QUERY_INSTRUCTION
from albumtagger.tagging import thresholds as th
from albumtagger.tagging import vocabulary
from albumtagger.tagging.vocabulary import (
    TagSpec,
    TextEncoder,
    clean_name,
    default_vocabulary,
    parse_spec,
    parse_vocabulary,
)

log = logging.getLogger(__name__)

CONFIDENCE_NAMES = th.CONFIDENCE_NAMES
_USER_CODES = {"accepted": th.USER_ACCEPTED, "rejected": th.USER_REJECTED}
MATRIX_STATUSES = ("ok",)
"""Photos whose scores shape the thresholds and are re-decided: missing ones keep
their tags as they were (until cleanup) but do not weigh on the library's thresholds."""
MODEL_ID_KEY = "model_id"
"""Library setting: the model whose text vectors score the tags."""
IMAGE_MODEL_ID_KEY = "image_model_id"
"""Library setting: the model and image token budget the photo vectors come from."""
SINCE_REDECIDE_KEY = "photos_since_redecide"
"""Library setting: photos decided with stored thresholds since the last full re-decision."""
GENERATION_KEY = "decisions_generation"
"""Library setting: bumped by every automatic write of decisions (not by corrections), so
an undo knows whether its snapshot still describes the library."""

_VERBS = {
    "accept": "Accepted",
    "reject": "Rejected",
    "add": "Added",
    "remove": "Removed",
}


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
        }

    def describe(self) -> str:
        if self.action == "undo":
            what = f"{_VERBS.get(self.undone_action, 'Changed').lower()} {self.tag!r}"
            text = f"Undid: {what} on {self.path}"
            if self.photos_changed:
                return text + f"; {_photos(self.photos_changed)} are back as they were."
            return text + "."
        text = f"{_VERBS[self.action]} {self.tag!r} on {self.path}"
        if self.note:
            return f"{text}: {self.note}"
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


def _photos(n: int) -> str:
    return f"{n} other photo" if n == 1 else f"{n} other photos"


def _round(x: float | None) -> float | None:
    return None if x is None else round(float(x), 4)


def _threshold_value(value: float | None) -> float | None:
    """A threshold given by hand, checked: a finite score in [-1, 1] (cosines)."""
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"A threshold is a number, not {value!r}.") from None
    if not math.isfinite(number) or not -1.0 <= number <= 1.0:
        raise UsageError(f"A threshold is a score between -1 and 1, not {value!r}.")
    return number


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


def _count(n: int, word: str) -> str:
    return f"{n:,} {word}" if n == 1 else f"{n:,} {word}s"


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


TAG_SOURCES = ("pinned", "learned", "prior", "not_scored")
_PREFERENCE_TEXT = {
    "precision": "precision (fewer wrong tags, more missed ones)",
    "balanced": "a balance of precision and recall",
    "recall": "recall (fewer missed tags, more wrong ones)",
}


@dataclass
class TagReport:
    """Everything the tag inspector shows about one tag."""

    name: str
    prompts: tuple[str, ...]
    threshold: float | None
    source: str
    """Where the threshold comes from: one of `TAG_SOURCES`."""
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


@contextlib.contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """Without the cyclic garbage collector for a while (nesting is fine). Deciding a
    whole library makes a few objects per photo and tag, up to millions, and undo
    snapshots keep thousands: the collector would walk them all, more than once, while
    holding the interpreter lock (a window in the same process froze for tens of
    milliseconds). They form no cycles; reference counting frees them. Whoever pauses it
    should let go of them before the end, or the next collection walks them after all."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class Tagger:
    """Decisions over one library. Keep one alive (as a long-lived session does) to reuse
    the loaded matrix; a short-lived one (a CLI command) loads what it needs once.

    `encoder_factory` is asked for a text encoder only to score tags that have no text
    vector yet (`score_new_tags`); without one, such tags simply wait.
    """

    def __init__(
        self,
        store: Store,
        settings: Settings,
        *,
        model_id: str | None = None,
        image_model_id: str | None = None,
        encoder_factory: Callable[[], TextEncoder] | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.policy = settings.thresholds
        self.policy.validate()
        self.model_id = model_id or store.get_setting(MODEL_ID_KEY)
        self.image_model_id = (
            image_model_id or store.get_setting(IMAGE_MODEL_ID_KEY) or self.model_id
        )
        self._encoder_factory = encoder_factory
        self._forget_all()

    # -- loading --------------------------------------------------------------------

    def _forget_all(self) -> None:
        self._tags: list[TagRow] | None = None
        """The scored tags: the columns of the score matrix."""
        self._tags_key: tuple[int, int] | None = None
        """The store's `tags_key` when they were loaded."""
        self._fresh: tuple[tuple[int, int], list[TagRow]] | None = None
        self._unscored: list[TagRow] = []
        self._tag_matrix: np.ndarray | None = None
        self._forget_library()

    def _forget_library(self) -> None:
        self._photo_ids: np.ndarray | None = None
        self._scores: np.ndarray | None = None
        self._forget_policy()

    def _forget_policy(self) -> None:
        self._thresholds: np.ndarray | None = None
        self._stats: th.TagStats | None = None
        self._decisions: th.Decisions | None = None

    def _load_tags(self) -> tuple[list[TagRow], np.ndarray]:
        """The scored tags and their unit vectors (from cached prompt vectors only)."""
        if self._tags is None or self._tag_matrix is None:
            self._tags_key = self.store.tags_key()
            tags = self.store.tags()
            prompts = [p for t in tags for p in t.prompts]
            cached = (
                self.store.text_vectors(self.model_id, QUERY_INSTRUCTION, prompts)
                if self.model_id
                else {}
            )
            scored = [t for t in tags if all(p in cached for p in t.prompts)]
            scored_ids = {t.id for t in scored}
            self._unscored = [t for t in tags if t.id not in scored_ids]
            if scored:
                matrix = np.stack([np.mean([cached[p] for p in t.prompts], axis=0) for t in scored])
                matrix /= np.linalg.norm(matrix, axis=1, keepdims=True).clip(min=1e-12)
            else:
                matrix = np.zeros((0, 0), dtype=np.float32)
            self._tags, self._tag_matrix = scored, matrix.astype(np.float32)
        return self._tags, self._tag_matrix

    def unscored_tags(self) -> list[str]:
        """Names of tags that have no text vector for the library's model yet."""
        self._load_tags()
        return [t.name for t in self._unscored]

    def score_new_tags(self) -> list[str]:
        """Embed the prompts of tags that are not scored yet (needs the encoder), then
        decide them across the library. Returns the names scored."""
        self._load_tags()
        if not self._unscored or self._encoder_factory is None or self.model_id is None:
            return []  # a library never tagged: indexing embeds every prompt
        names = [t.name for t in self._unscored]
        encoder = self._encoder_factory()
        if encoder.model_id != self.model_id:
            raise ModelError(
                f"The library was tagged with {self.model_id}, not {encoder.model_id}; "
                "use the library's model, or index the library again with the other one."
            )
        with self._atomic():
            for _ in vocabulary.embed_prompts(self.store, encoder, self._unscored):
                pass
            self._forget_all()
            tags, _ = self._load_tags()
            new = [j for j, t in enumerate(tags) if t.name in names]
            if new and self._has_matrix():
                self._refit(new)
                self._apply(self._decide_all())
                self._bump_generation()
        return names

    def _library(self) -> tuple[np.ndarray, np.ndarray]:
        """(photo ids, scores [photos x scored tags]) of every photo with a vector."""
        if self._scores is None or self._photo_ids is None:
            tags, tag_matrix = self._load_tags()
            model = self.image_model_id
            if model and tag_matrix.size:
                # Scored a block of vectors at a time, never all vectors in memory at once.
                ids, scores = self.store.photo_scores(model, tag_matrix, MATRIX_STATUSES)
            else:
                ids = (
                    self.store.photo_vectors(model, statuses=MATRIX_STATUSES)[0]
                    if model
                    else np.zeros(0, dtype=np.int64)
                )
                scores = np.zeros((len(ids), len(tags)), np.float32)
            self._photo_ids, self._scores = ids, scores
            self._forget_policy()
        return self._photo_ids, self._scores

    def _has_matrix(self) -> bool:
        ids, scores = self._library()
        return len(ids) > 0 and scores.shape[1] > 0

    def _user_state(self, photo_ids: np.ndarray) -> np.ndarray:
        tags, _ = self._load_tags()
        col = {t.id: j for j, t in enumerate(tags)}
        row = {pid: i for i, pid in enumerate(np.asarray(photo_ids).tolist())}
        state = np.zeros((len(photo_ids), len(tags)), dtype=np.int8)
        for pid, tid, s in self.store.user_decisions():
            i, j = row.get(pid), col.get(tid)
            if i is not None and j is not None:
                state[i, j] = _USER_CODES[s]
        return state

    def _feedback(self) -> th.Feedback:
        ids, _ = self._library()
        tags, _ = self._load_tags()
        row = {pid: i for i, pid in enumerate(ids.tolist())}
        col = {t.id: j for j, t in enumerate(tags)}
        return th.Feedback.from_events(
            (row[e.photo_id], col[e.tag_id], e.positive, e.was_suggested, e.review)
            for e in self.store.feedback()
            if e.photo_id in row and e.tag_id in col
        )

    # -- thresholds -----------------------------------------------------------------

    def thresholds(self) -> np.ndarray:
        """The thresholds in effect for the scored tags: as stored, and fitted from the
        library's scores for tags that have never been fitted."""
        self._ensure_policy()
        assert self._thresholds is not None
        return self._thresholds

    def _ensure_policy(self) -> None:
        if self._thresholds is not None and self._stats is not None:
            return
        stored, stats, never = self._stored_policy()
        if never.all() or (self._base_moves_all() and never.any()):
            self._refit(None)
            return
        self._thresholds, self._stats = stored, stats
        if never.any():
            self._refit(np.flatnonzero(never))

    def _stored_policy(self) -> tuple[np.ndarray, th.TagStats, np.ndarray]:
        """(thresholds, score statistics, never fitted) of the scored tags, as stored."""
        tags = self._fresh_tag_rows()

        def column(name: str) -> np.ndarray:
            values = [getattr(t, name) for t in tags]
            return np.array([np.nan if v is None else v for v in values], dtype=np.float64)

        stored, median, scale = column("threshold"), column("score_median"), column("score_scale")
        never = np.isnan(stored) | np.isnan(median) | np.isnan(scale)
        pins = column("pinned")
        stored = np.where(np.isnan(pins), stored, pins)
        stats = th.TagStats(median=median, scale=scale, mean=median.copy(), std=scale.copy())
        return stored, stats, never

    def _fresh_tag_rows(self) -> list[TagRow]:
        """The scored tags as stored now (their thresholds may have been refitted)."""
        tags, _ = self._load_tags()
        key = self.store.tags_key()
        if self._fresh is None or self._fresh[0] != key:
            by_id = {t.id: t for t in self.store.tags()}
            self._fresh = key, [by_id[t.id] for t in tags]
        return self._fresh[1]

    def _forget_stale(self) -> None:
        """Before deciding new photos: the library's scores are out of date, and the tags
        too if the store has written them since they were loaded (once per batch while
        tagging; reloading every tag and prompt vector each time is what it saves)."""
        if self._tags_key != self.store.tags_key():
            self._forget_all()
        else:
            self._forget_library()

    def _pins(self) -> np.ndarray:
        """Thresholds pinned by hand per scored tag, float64 (NaN: learned)."""
        pins = [t.pinned for t in self._fresh_tag_rows()]
        return np.array([np.nan if v is None else v for v in pins], dtype=np.float64)

    def _base_moves_all(self) -> bool:
        return self.policy.prior == "fixed" or self.policy.controller_shifts_priors

    def _refit(self, tag_indices: Sequence[int] | np.ndarray | None) -> None:
        """Fit every tag's threshold (None), or only these tags', from the library's
        scores and the feedback, and store them. When the controller's base moves every
        threshold, all are fitted."""
        _, scores = self._library()
        tags, _ = self._load_tags()
        feedback = self._feedback()
        if tag_indices is None or self._base_moves_all() or self._thresholds is None:
            self._stats = th.tag_stats(scores)
            self._thresholds = th.fit_thresholds(scores, feedback, self.policy, stats=self._stats)
            idx = np.arange(len(tags))
        else:
            idx = np.unique(np.asarray(tag_indices, dtype=np.int64))
            assert self._stats is not None
            fresh = th.tag_stats(scores, tags=idx)
            for name in ("median", "scale", "mean", "std"):
                getattr(self._stats, name)[idx] = getattr(fresh, name)
            self._thresholds = self._thresholds.copy()
            self._thresholds[idx] = th.fit_thresholds(scores, feedback, self.policy, tags=idx)
        pins = self._pins()
        pinned = idx[~np.isnan(pins[idx])]
        self._thresholds[pinned] = pins[pinned]  # a threshold set by hand is not learned
        counts = np.bincount(feedback.tag, minlength=len(tags)) if len(feedback) else None
        st = self._stats
        self.store.set_tag_thresholds(
            (
                tags[j].id,
                float(self._thresholds[j]),
                0 if counts is None else int(counts[j]),
                float(st.median[j]),
                float(st.scale[j]),
            )
            for j in idx
        )
        self._decisions = None

    # -- deciding -------------------------------------------------------------------

    @contextlib.contextmanager
    def _atomic(self, *, durable: bool = False) -> Iterator[None]:
        """One transaction for a whole change; in-memory state is dropped if it fails.
        `durable`: the user's own action, safe from a power cut once saved."""
        try:
            with self.store.transaction(durable=durable):
                yield
        except BaseException:
            self._forget_all()
            raise

    def _bump_generation(self) -> None:
        gen = int(self.store.get_setting(GENERATION_KEY) or 0) + 1
        self.store.set_setting(GENERATION_KEY, str(gen))

    def photos_since_redecide(self) -> int:
        """Photos decided with stored thresholds since the last full re-decision."""
        return int(self.store.get_setting(SINCE_REDECIDE_KEY) or 0)

    def _generation(self) -> int:
        return int(self.store.get_setting(GENERATION_KEY) or 0)

    def _decide_all(self) -> tuple[np.ndarray, np.ndarray, th.Decisions]:
        ids, scores = self._library()
        self._ensure_policy()
        decisions = th.decide(
            scores, self.thresholds(), self._user_state(ids), self.policy, stats=self._stats
        )
        rows = self._rows_differing_from_store(ids, decisions)
        self._decisions = decisions
        return ids, rows, decisions

    def _apply(
        self,
        decided: tuple[np.ndarray, np.ndarray, th.Decisions],
        snapshot: dict[str, Any] | None = None,
    ) -> SuggestionChanges:
        """Write the decided rows; with `snapshot`, first keep those photos' rows."""
        ids, rows, decisions = decided
        if rows.size == 0:
            return SuggestionChanges()
        _, scores = self._library()
        with cyclic_gc_paused():
            suggestions = self._suggestions(ids, scores, decisions, rows)
            if snapshot is not None:
                new = [p for p in suggestions if p not in snapshot["photos"]]
                snapshot["rows"] += self.store.photo_tag_rows(new)
                snapshot["photos"] += new
            changes = self.store.replace_suggestions(suggestions)
            # Freed here, before the collector is back, and a photo at a time: dropping
            # the whole dict is one step of the interpreter that holds the GIL until
            # every object in it is gone (about 0.1 s at 100k photos).
            while suggestions:
                suggestions.popitem()
        return changes

    def tag_photos(self, photo_ids: Sequence[int]) -> SuggestionChanges:
        """Mark freshly embedded photos ok and decide their suggestions.

        With the thresholds as stored; a library whose thresholds were never fitted is
        fitted first, from every score there is (these photos' included).
        """
        if not photo_ids:
            return SuggestionChanges()
        with self._atomic():
            self.store.set_status([int(i) for i in photo_ids], "ok")
            since = self.photos_since_redecide() + len(photo_ids)
            self.store.set_setting(SINCE_REDECIDE_KEY, str(since))
            self._forget_stale()
            tags, tag_matrix = self._load_tags()
            if not tags:
                return SuggestionChanges()
            if all(
                t.threshold is None for t in self._fresh_tag_rows()
            ):  # the first photos of a library
                changes = self._apply(self._decide_all())
                self._bump_generation()
                return changes
            self._ensure_policy_without_library()
            ids, vectors = self.store.photo_vectors(
                self.image_model_id or "", statuses=("ok",), photo_ids=photo_ids
            )
            scores = vectors @ tag_matrix.T if len(ids) else np.zeros((0, len(tags)), np.float32)
            assert self._thresholds is not None
            decisions = th.decide(
                scores, self._thresholds, self._user_state(ids), self.policy, stats=self._stats
            )
            suggestions = self._suggestions(ids, scores, decisions, np.arange(len(ids)))
            changes = self.store.replace_suggestions(suggestions)
            self._bump_generation()
            self._forget_policy()
            return changes

    def _ensure_policy_without_library(self) -> None:
        """Stored thresholds for a few new photos; tags never fitted need the library."""
        stored, stats, never = self._stored_policy()
        if never.any():
            self._ensure_policy()  # loads the library for the missing tags
        else:
            self._thresholds, self._stats = stored, stats

    def _suggestions(
        self, ids: np.ndarray, scores: np.ndarray, decisions: th.Decisions, rows: np.ndarray
    ) -> dict[int, list[AutoTag]]:
        tags, _ = self._load_tags()
        out: dict[int, list[AutoTag]] = {}
        auto = (decisions.state == th.STATE_SUGGESTED) | (decisions.state == th.STATE_FALLBACK)
        for i in rows:
            cols = np.flatnonzero(auto[i])
            out[int(ids[i])] = [
                AutoTag(
                    tag_id=tags[j].id,
                    score=float(scores[i, j]),
                    fallback=bool(decisions.state[i, j] == th.STATE_FALLBACK),
                    confidence=CONFIDENCE_NAMES.get(int(decisions.confidence[i, j]), "low"),
                )
                for j in cols
            ]
        return out

    def redecide(self) -> SuggestionChanges:
        """Fit every threshold from the whole library and decide every photo; returns what
        changed. The result depends on the library only, not on how it was built."""
        with self._atomic():
            self._forget_all()
            self.store.set_setting(SINCE_REDECIDE_KEY, "0")
            if not self._has_matrix():
                return SuggestionChanges()
            self._refit(None)
            changes = self._apply(self._decide_all())
            self._bump_generation()
            return changes

    def _redecide_tags(
        self,
        tag_indices: Sequence[int],
        snapshot: dict[str, Any] | None = None,
        *,
        pinned: float | None = None,
    ) -> SuggestionChanges:
        """Refit these tags (or set the one tag's threshold to `pinned`) and re-decide the
        photos whose outcome can change."""
        ids, scores = self._library()
        self._ensure_policy()
        previous = self._decisions
        if pinned is None:
            self._refit(tag_indices)
        else:
            self._set_threshold(tag_indices[0], pinned)
        thresholds = self.thresholds()
        user = self._user_state(ids)
        if previous is not None:
            decisions = th.redecide_tags(
                scores, thresholds, user, previous, tag_indices, self.policy, stats=self._stats
            )
            # Only rows that could change were re-decided: compare those alone.
            maybe = th.rows_to_redecide(
                scores, thresholds, user, previous, tag_indices, self.policy
            )
            differ = (previous.state[maybe] != decisions.state[maybe]) | (
                previous.confidence[maybe] != decisions.confidence[maybe]
            )
            self._decisions = decisions
            decided = (ids, maybe[differ.any(axis=1)], decisions)
        else:
            decided = self._decide_all()
        return self._apply(decided, snapshot)

    def _set_threshold(self, j: int, value: float) -> None:
        """Set one tag's threshold by hand (a pin) and store it; its statistics stay."""
        tags, _ = self._load_tags()
        assert self._thresholds is not None and self._stats is not None
        self._thresholds = self._thresholds.copy()
        self._thresholds[j] = float(value)
        fresh = self._fresh_tag_rows()[j]
        self.store.set_tag_thresholds(
            [
                (
                    tags[j].id,
                    float(value),
                    fresh.events,
                    float(self._stats.median[j]),
                    float(self._stats.scale[j]),
                )
            ]
        )
        self._decisions = None

    def _rows_differing_from_store(self, ids: np.ndarray, decisions: th.Decisions) -> np.ndarray:
        """Rows whose automatic suggestions in the store differ from `decisions`."""
        tags, _ = self._load_tags()
        photo, tag, fallback, confidence = self.store.suggestion_cells()
        row_of = np.full(int(max(ids.max(initial=0), photo.max(initial=0))) + 1, -1, np.int64)
        row_of[ids] = np.arange(len(ids))
        col_of = np.full(int(max([t.id for t in tags] + [int(tag.max(initial=0))])) + 1, -1)
        col_of[[t.id for t in tags]] = np.arange(len(tags))
        i, j = row_of[photo], col_of[tag]
        known = i >= 0
        extra = np.zeros(len(ids), dtype=bool)  # suggestions of tags not scored (any more)
        extra[i[known & (j < 0)]] = True
        keep = known & (j >= 0)
        stored = np.zeros(decisions.state.shape, dtype=np.int8)
        conf = np.zeros(decisions.state.shape, dtype=np.int8)
        stored[i[keep], j[keep]] = np.where(fallback[keep], th.STATE_FALLBACK, th.STATE_SUGGESTED)
        conf[i[keep], j[keep]] = confidence[keep]
        auto = np.where(decisions.state == th.STATE_USER, 0, decisions.state)
        auto_conf = np.where(auto == 0, 0, decisions.confidence)
        differ = (stored != auto) | (conf != auto_conf)
        return np.flatnonzero(differ.any(axis=1) | extra)

    # -- corrections ----------------------------------------------------------------

    def _photo(self, path: str):
        photo = self.store.photo_by_path(path)
        if photo is None:
            raise NotFoundError(f"{path} is not in the library; check the path, or index first.")
        return photo

    def _column(self, tag_id: int) -> int | None:
        tags, _ = self._load_tags()
        for j, t in enumerate(tags):
            if t.id == tag_id:
                return j
        return None

    def _score(self, photo_id: int, j: int | None) -> float | None:
        if j is None or not self._has_matrix():
            return None
        ids, scores = self._library()
        hit = np.flatnonzero(ids == photo_id)
        return None if hit.size == 0 else float(scores[hit[0], j])

    def correct(self, path: str, tag_name: str, action: str, *, review: bool = False) -> Correction:
        """Accept, reject, add or remove one tag of one photo, and learn from it.

        `review`: the answer came from the review queue (it teaches the tag's threshold
        but not the global controller, since such cells are chosen near the threshold).
        Needs no model: a new tag name is recorded (not scored yet) with the decision.
        """
        if action not in _VERBS:
            raise UserError(f"Unknown correction {action!r}.")
        name = clean_name(tag_name)
        with self._atomic(durable=True):
            photo = self._photo(path)
            tag = self.store.tag_by_name(name)
            created = None
            if tag is None:
                if action != "add":
                    raise UnknownTagError(
                        f"There is no tag {name!r}; add it to this photo, or to the vocabulary."
                    )
                spec = parse_spec(name)
                created = self.store.add_tag(spec.name, spec.prompts)
                self._forget_all()
                tag = self.store.tag_by_name(name)
                assert tag is not None
            previous = self.store.photo_tag(photo.id, tag.id)
            positive = action in ("accept", "add")
            state = "accepted" if positive else "rejected"
            if previous is not None and previous.state == state:
                return Correction(
                    path,
                    tag.name,
                    action,
                    None,
                    None,
                    0,
                    note=f"it was already {state}; nothing changed.",
                )
            shown = previous is not None and previous.state != "rejected"
            suggested = (
                previous is not None and previous.state == "suggested" and not previous.fallback
            )
            if action == "accept" and not shown:
                action = "add"
            j = self._column(tag.id)
            score = self._score(photo.id, j)
            before = None if j is None else float(self.thresholds()[j])
            policy_before = self.store.tag_policy_rows()
            snapshot: dict[str, Any] = {
                "generation": self._generation(),
                "photos": [photo.id],
                "rows": self.store.photo_tag_rows([photo.id]),
                "created_tag": created,
            }
            source = previous.source if previous is not None and shown else "user"
            feedback_id = self.store.add_feedback(
                photo.id,
                tag.id,
                action,
                score,
                positive=positive,
                was_suggested=suggested,
                previous=previous,
                review=review,
            )
            self.store.set_user_decision(photo.id, tag.id, state, source, score)
            after = None
            changes = SuggestionChanges()
            note = ""
            if j is None:
                note = "the tag is not scored yet; it is learned from once the model scores it."
            elif self._has_matrix():
                changes = self._redecide_tags([j], snapshot)
                after = float(self.thresholds()[j])
            policy_after = {tuple(row) for row in self.store.tag_policy_rows()}
            snapshot["tags"] = [row for row in policy_before if tuple(row) not in policy_after]
            self.store.set_feedback_undo(feedback_id, snapshot)
            return self._correction(
                path, tag.name, tag.id, action, before, after, changes, photo.id, note
            )

    def _correction(
        self,
        path: str,
        tag: str,
        tag_id: int,
        action: str,
        before: float | None,
        after: float | None,
        changes: SuggestionChanges,
        photo_id: int,
        note: str = "",
        undone_action: str = "",
    ) -> Correction:
        others = sorted(changes.photo_ids() - {photo_id})
        added = {p for p, t in changes.added if t == tag_id and p != photo_id}
        removed = {p for p, t in changes.removed if t == tag_id and p != photo_id}
        return Correction(
            path,
            tag,
            action,
            before,
            after,
            len(others),
            len(added),
            len(removed),
            tuple([photo_id, *others]),
            note,
            undone_action,
        )

    def answer(self, path: str, tag_name: str, yes: bool) -> Correction:
        """A yes/no from the review queue: does this tag apply to this photo?"""
        return self.correct(path, tag_name, "accept" if yes else "reject", review=True)

    def undo(self) -> Correction | None:
        """Undo the newest correction; None when there is none.

        When no automatic decision was written since the correction, everything it
        changed (the cell, the photos re-decided with it, the thresholds) is put back
        exactly; otherwise the cell is put back and its tag re-fitted and re-decided.
        """
        with self._atomic(durable=True):
            last = self.store.last_feedback()
            if last is None:
                return None
            event, previous, data = last
            photo = self.store.photo(event.photo_id)
            path = photo.path if photo else "?"
            tag = next(t for t in self.store.tags() if t.id == event.tag_id)
            j = self._column(tag.id)
            before = None if j is None else float(self.thresholds()[j])
            self.store.mark_feedback_undone(event.id)
            if data is not None and data.get("generation") == self._generation():
                self.store.restore_photo_tag_rows(data["photos"], data["rows"])
                self.store.restore_tag_policy_rows(data["tags"])
                if data.get("created_tag") is not None:
                    self.store.remove_tag_if_unused(data["created_tag"])
                self._forget_all()
                j = self._column(tag.id)
                after = None if j is None else float(self.thresholds()[j])
                changed = [p for p in data["photos"] if p != event.photo_id]
                return Correction(
                    path,
                    tag.name,
                    "undo",
                    before,
                    after,
                    len(changed),
                    changed_photo_ids=(event.photo_id, *changed),
                    undone_action=event.action,
                )
            self.store.restore_cell(
                event.photo_id,
                event.tag_id,
                None if previous is None else previous.state,
                None if previous is None else previous.source,
                None if previous is None else previous.score,
                bool(previous is not None and previous.fallback),
            )
            self._forget_all()
            j = self._column(tag.id)
            changes = SuggestionChanges()
            after = None
            if j is not None and self._has_matrix():
                changes = self._redecide_tags([j])
                after = float(self.thresholds()[j])
            return self._correction(
                path,
                tag.name,
                tag.id,
                "undo",
                before,
                after,
                changes,
                event.photo_id,
                undone_action=event.action,
            )

    def review_queue(self, limit: int = 20) -> list[dict[str, Any]]:
        """Suggestions nearest to their tag's threshold, best first, for a quick yes/no."""
        if not self._has_matrix():
            return []
        ids, scores = self._library()
        tags, _ = self._load_tags()
        thresholds = self.thresholds()
        user = self._user_state(ids)
        items = th.review_queue(scores, thresholds, user, limit, self.policy, stats=self._stats)
        paths = {r.id: r.path for r in self.store.photos(statuses=("ok",))}
        out = []
        for i, j, margin in items:
            path = paths.get(int(ids[i]))
            if path is None:  # missing photos are not worth asking about
                continue
            out.append(
                {
                    "photo_id": int(ids[i]),
                    "path": path,
                    "tag": tags[j].name,
                    "score": round(float(scores[i, j]), 4),
                    "threshold": round(float(thresholds[j]), 4),
                    "margin": round(margin, 4),
                    "suggested": bool(margin >= 0),
                }
            )
        return out

    # -- vocabulary -----------------------------------------------------------------

    def add_tags(self, specs: Sequence[str]) -> VocabularyChange:
        """Add tags ("name" or "name: prompt | prompt") and score them from stored photo
        vectors (only their prompts go through the model). Without a model at hand they
        are kept "not scored yet"."""
        return self._add_specs([parse_spec(s) for s in specs])

    def _add_specs(self, parsed: Sequence[TagSpec]) -> VocabularyChange:
        start = time.perf_counter()
        result = VocabularyChange()
        with self._atomic(durable=True):
            new: set[int] = set()
            for spec in parsed:
                existing = self.store.tag_by_name(spec.name)
                if existing is not None or spec.name in result.added:
                    result.existing.append(existing.name if existing else spec.name)
                    continue
                new.add(self.store.add_tag(spec.name, spec.prompts))
                result.added.append(spec.name)
            if new:
                self._rescore(new, result)
        result.seconds = time.perf_counter() - start
        return result

    def import_vocabulary(self, path: Path | str) -> VocabularyChange:
        """Add the tags listed in a text file: one per line, `name` or
        `name: prompt | prompt`; blank lines and lines starting with # are ignored. Tags
        already in the vocabulary are left as they are (listed in `existing`)."""
        path = Path(path)
        text = vocabulary.read_vocabulary_file(path)
        for number, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if line and not line.startswith("#"):
                try:
                    parse_spec(line)
                except UserError as exc:
                    raise UsageError(f"{path}, line {number}: {exc}") from None
        return self._add_specs(parse_vocabulary(text))

    def rename_tag(self, old: str, new: str) -> VocabularyChange:
        """Give a tag another name: the same tag, with its cells, answers, threshold and
        prompts. Raises `UsageError` for an empty name or one another tag has."""
        result = VocabularyChange()
        with self._atomic(durable=True):
            tag = self._tag_row(old)
            name = clean_name(new)
            other = self.store.tag_by_name(name)
            if other is not None and other.id != tag.id:
                raise UsageError(
                    f"There is already a tag {other.name!r}; choose another name, or remove "
                    "that tag first."
                )
            if name != tag.name:
                self.store.rename_tag(tag.id, name)
                self._forget_all()
                result.renamed.append((tag.name, name))
        return result

    def set_prompts(self, name: str, prompts: Sequence[str]) -> VocabularyChange:
        """Replace a tag's prompts (its vector is the normalised mean of theirs) and score
        it again across the library from stored photo vectors: only the new prompts go
        through the model, no photo does. Answers and a pinned threshold stay."""
        start = time.perf_counter()
        cleaned = list(dict.fromkeys(" ".join(p.split()) for p in prompts if p.strip()))
        if not cleaned:
            raise UsageError("A tag needs at least one prompt.")
        result = VocabularyChange()
        with self._atomic(durable=True):
            tag = self._tag_row(name)
            if list(tag.prompts) != cleaned:
                self.store.set_tag_prompts(tag.id, cleaned)
                result.reprompted.append(tag.name)
                self._rescore({tag.id}, result)
        result.seconds = time.perf_counter() - start
        return result

    def restore_default_vocabulary(self) -> VocabularyChange:
        """Add back the shipped default tags that are missing and give the default tags
        their shipped prompts again; tags of the user's own stay as they are."""
        start = time.perf_counter()
        result = VocabularyChange()
        with self._atomic(durable=True):
            touched: set[int] = set()
            for spec in default_vocabulary():
                tag = self.store.tag_by_name(spec.name)
                if tag is None:
                    touched.add(self.store.add_tag(spec.name, spec.prompts))
                    result.added.append(spec.name)
                elif tuple(tag.prompts) != tuple(spec.prompts):
                    self.store.set_tag_prompts(tag.id, spec.prompts)
                    touched.add(tag.id)
                    result.reprompted.append(tag.name)
            if touched:
                self._rescore(touched, result)
        result.seconds = time.perf_counter() - start
        return result

    def _tag_row(self, name: str) -> TagRow:
        tag = self.store.tag_by_name(clean_name(name))
        if tag is None:
            raise UnknownTagError(f"There is no tag {name!r} in the vocabulary.")
        return tag

    def _rescore(self, tag_ids: Collection[int], result: VocabularyChange) -> None:
        """Score these tags (new, or with new prompts) across the library from stored
        photo vectors, and decide again. Prompts without a cached vector go through the
        model (text only); tags that still lack one stay "not scored yet"."""
        self._forget_all()
        self._load_tags()
        todo = list(self._unscored)
        touched = set(tag_ids) | {t.id for t in todo}
        if todo and self._encoder_factory is not None and self.model_id is not None:
            try:
                encoder = self._encoder_factory()
                if encoder.model_id != self.model_id:
                    raise ModelError(
                        f"The library was tagged with {self.model_id}, not {encoder.model_id}; "
                        "use the library's model, or index the library again with the other one."
                    )
                for _, total in vocabulary.embed_prompts(self.store, encoder, todo):
                    result.prompts_encoded = total
            except ModelError as exc:
                log.info("Tags wait for the model: %s", exc)
                result.reason = str(exc)
            self._forget_all()
        tags, _ = self._load_tags()
        unscored = {t.id for t in self._unscored}
        result.unscored = [t.name for t in self._unscored if t.id in set(tag_ids)]
        if not self._has_matrix():
            return
        cols = [j for j, t in enumerate(tags) if t.id in touched and t.id not in unscored]
        if cols:
            self._refit(cols)
        ids, rows, decisions = self._decide_all()
        if cols:
            # Cells of these tags got new scores: write them even where the decision stayed.
            photo, tag, _, _ = self.store.suggestion_cells()
            stale = np.isin(ids, photo[np.isin(tag, [tags[j].id for j in cols])])
            auto = np.isin(decisions.state[:, cols], (th.STATE_SUGGESTED, th.STATE_FALLBACK))
            rows = np.union1d(rows, np.flatnonzero(stale | auto.any(axis=1)))
            result.photos_scored = len(ids)
        result.changes = self._apply((ids, rows, decisions))
        self._bump_generation()

    # -- thresholds by hand -----------------------------------------------------------

    def pin_threshold(self, name: str, value: float | None) -> ThresholdChange:
        """Pin a tag's threshold at `value` (None: give it back to learning) and decide
        the tag again across the library at once, in one transaction.

        A pinned threshold stays through re-fits, full re-decisions and new photos;
        answers are still recorded (they teach the tag once it learns again). User
        decisions are untouched; the cap of tags per photo and the fallback apply as
        always. Not part of the corrections' undo: pin `previous_pin` again to go back.
        """
        value = _threshold_value(value)
        with self._atomic(durable=True):
            tag = self._tag_row(name)
            j = self._column(tag.id)
            before_ids = self.store.carrier_ids(tag.id)
            before = None if j is None else float(self.thresholds()[j])
            self.store.set_pinned_threshold(tag.id, value)
            after = value
            changes = SuggestionChanges()
            if j is not None and self._has_matrix():
                changes = self._redecide_tags([j], pinned=value)
                after = float(self.thresholds()[j])
                self._bump_generation()
            after_ids = self.store.carrier_ids(tag.id)
            changed = sorted(changes.photo_ids())
            return ThresholdChange(
                tag=tag.name,
                threshold_before=before,
                threshold_after=after,
                pinned=value,
                previous_pin=tag.pinned,
                gained=int(np.setdiff1d(after_ids, before_ids).size),
                lost=int(np.setdiff1d(before_ids, after_ids).size),
                carries=int(after_ids.size),
                photos_changed=len(changed),
                changed_photo_ids=tuple(changed),
            )

    def threshold_preview(self, name: str, value: float | None) -> dict[str, Any]:
        """What `pin_threshold(name, value)` would do, without doing it: "carries_now",
        "carries_after", "gain", "lose" (photos), "threshold_now", "threshold_after"
        (None: what learning gives). Re-decides only the photos that can change, from
        the score matrix in memory."""
        value = _threshold_value(value)
        tag = self._tag_row(name)
        j = self._column(tag.id)
        carries = self.store.count_carriers(tag.id)
        out: dict[str, Any] = {
            "tag": tag.name,
            "threshold_now": tag.pinned if tag.pinned is not None else tag.threshold,
            "threshold_after": value,
            "carries_now": carries,
            "carries_after": carries,
            "gain": 0,
            "lose": 0,
        }
        if j is None or not self._has_matrix():
            return out
        ids, scores = self._library()
        thresholds = self.thresholds()
        if value is None:
            value = float(th.fit_thresholds(scores, self._feedback(), self.policy, tags=[j])[0])
        assert self._stats is not None
        gain, lose = th.threshold_change(
            scores,
            thresholds,
            self._user_cells(ids),
            self._current_decisions(),
            j,
            value,
            self.policy,
            stats=self._stats,
        )
        out.update(
            threshold_now=float(thresholds[j]),
            threshold_after=float(value),
            carries_after=carries + int(gain.size) - int(lose.size),
            gain=int(gain.size),
            lose=int(lose.size),
        )
        return out

    def _current_decisions(self) -> th.Decisions:
        """The decisions under the thresholds in effect (kept until they change)."""
        if self._decisions is None:
            ids, scores = self._library()
            thresholds = self.thresholds()
            self._decisions = th.decide(
                scores, thresholds, self._user_state(ids), self.policy, stats=self._stats
            )
        return self._decisions

    def _user_cells(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The user's decisions as (matrix rows, matrix columns, codes)."""
        photo, tag, code = self.store.user_cells()
        tags, _ = self._load_tags()
        tag_ids = np.array([t.id for t in tags], dtype=np.int64)
        order = np.argsort(tag_ids)
        rows = np.searchsorted(ids, photo).clip(max=max(len(ids) - 1, 0))
        cols = np.searchsorted(tag_ids[order], tag).clip(max=max(len(tags) - 1, 0))
        found = (ids[rows] == photo) & (tag_ids[order][cols] == tag) if len(ids) else rows < 0
        return rows[found], order[cols[found]], code[found]

    def tag_report(self, name: str, near: int = 12) -> TagReport:
        """One tag as the inspector shows it: threshold and where it comes from, its
        scores over the library, the user's answers, the photos either side of the
        threshold and how many photos carry it."""
        tag = self._tag_row(name)
        j = self._column(tag.id)
        carries = self.store.count_carriers(tag.id)
        pref = self.policy.preference
        empty = np.zeros(0, dtype=np.float32)
        if j is None or not self._has_matrix():
            source = "pinned" if tag.pinned is not None else "not_scored"
            return TagReport(
                name=tag.name,
                prompts=tag.prompts,
                threshold=tag.pinned if tag.pinned is not None else tag.threshold,
                source=source,
                source_text=self._source_text(source, tag.pinned, 0, 0),
                preference=pref,
                pinned=tag.pinned,
                answers={"yes": 0, "no": 0},
                scores=empty,
                yes_scores=empty,
                no_scores=empty,
                above=[],
                below=[],
                carries=carries,
            )
        ids, scores = self._library()
        threshold = float(self.thresholds()[j])
        assert self._stats is not None
        column = np.ascontiguousarray(scores[:, j], dtype=np.float32)
        photo, tag_col, positive = self._feedback().labels()
        mine = tag_col == j
        yes = column[photo[mine & positive]]
        no = column[photo[mine & ~positive]]
        n = int(yes.size + no.size)
        pinned = tag.pinned
        source = "pinned" if pinned is not None else ("learned" if n else "prior")
        passing = column >= np.float32(threshold)  # as the decisions compare
        order = np.argsort(column, kind="stable")
        first_above = int(np.count_nonzero(~passing))
        above_rows = order[first_above : first_above + near]
        below_rows = order[max(first_above - near, 0) : first_above][::-1]
        return TagReport(
            name=tag.name,
            prompts=tag.prompts,
            threshold=threshold,
            source=source,
            source_text=self._source_text(source, pinned, int(yes.size), int(no.size)),
            preference=pref,
            pinned=pinned,
            answers={"yes": int(yes.size), "no": int(no.size)},
            scores=column,
            yes_scores=yes.astype(np.float32),
            no_scores=no.astype(np.float32),
            above=[(int(ids[i]), float(column[i])) for i in above_rows],
            below=[(int(ids[i]), float(column[i])) for i in below_rows],
            carries=carries,
            median=float(self._stats.median[j]),
            scale=float(self._stats.scale[j]),
        )

    def _source_text(self, source: str, pinned: float | None, yes: int, no: int) -> str:
        if self.policy.beta > 0:
            preference = f"F-beta with beta {self.policy.beta:g}"
        else:
            preference = _PREFERENCE_TEXT.get(self.policy.preference, self.policy.preference)
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

    # -- matching -------------------------------------------------------------------

    def tag_vector(self, text: str) -> np.ndarray | None:
        """The unit vector of the scored tag named `text` (mean of its prompts), or None."""
        try:
            tag = self.store.tag_by_name(clean_name(text))
        except UserError:
            return None
        j = None if tag is None else self._column(tag.id)
        if j is None:
            return None
        _, matrix = self._load_tags()
        return matrix[j].copy()

    def text_policy(self, text: str, column: np.ndarray | None) -> tuple[float, float, float, str]:
        """(threshold, median, scale, rule) to judge a text's score by.

        rule "tag": `text` is a scored tag of the library: its threshold and score
        statistics. rule "new tag": what a tag with this text would start from (its
        prior from `column`, the text's scores over the library's photos, with the
        library's controller base). rule "base": no scores to go by
        (`thresholds.standalone_policy`).
        """
        try:
            name = clean_name(text)
        except UserError:
            name = ""
        tag = self.store.tag_by_name(name) if name else None
        j = None if tag is None else self._column(tag.id)
        if j is not None and self._has_matrix():
            thresholds = self.thresholds()
            assert self._stats is not None
            return (
                float(thresholds[j]),
                float(self._stats.median[j]),
                float(self._stats.scale[j]),
                "tag",
            )
        if column is None or column.size == 0:
            return (*th.standalone_policy(self.policy), "base")
        scores = np.asarray(column, dtype=np.float32).reshape(-1, 1)
        stats = th.tag_stats(scores)
        kinds = self._feedback().controller_kinds if self._has_matrix() else np.zeros(0)
        base = th.controller_base(kinds, self.policy)
        prior = th.prior_thresholds(scores, self.policy, base=base, stats=stats)
        return float(prior[0]), float(stats.median[0]), float(stats.scale[0]), "new tag"

    def remove_tags(self, names: Sequence[str]) -> VocabularyChange:
        """Remove tags with their suggestions, decisions and feedback; the photos that
        carried them are re-decided (another tag may take the freed place)."""
        result = VocabularyChange()
        with self._atomic(durable=True):
            found = []
            for name in names:
                tag = self.store.tag_by_name(clean_name(name))
                if tag is None:
                    raise UnknownTagError(f"There is no tag {name!r} in the vocabulary.")
                found.append(tag)
            for tag in found:
                self.store.remove_tag(tag.id)
                result.removed.append(tag.name)
            self._forget_all()
            if self._has_matrix():
                result.changes = self._apply(self._decide_all())
                self._bump_generation()
        return result
