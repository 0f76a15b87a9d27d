"""The library's tag decisions: stored vectors and feedback in, stored suggestions out.

This is the glue between the sidecar (`library.store`) and the decision rules
(`tagging.thresholds`): it builds the [photos x tags] score matrix from stored photo
and tag vectors, fits the per-tag thresholds to the user's corrections, decides, and
writes back only what changed. A correction is stored as a feedback event, re-decides
the affected tag across the whole library at once, and can be undone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from albumtagger.config import Settings
from albumtagger.errors import NotFoundError, UserError
from albumtagger.library.store import AutoTag, Store, TagRow
from albumtagger.tagging import thresholds as th
from albumtagger.tagging import vocabulary
from albumtagger.tagging.encoder import QUERY_INSTRUCTION
from albumtagger.tagging.vocabulary import TextEncoder, clean_name, parse_spec

log = logging.getLogger(__name__)

CONFIDENCE_NAMES = {th.CONF_LOW: "low", th.CONF_MEDIUM: "medium", th.CONF_HIGH: "high"}
_USER_CODES = {"accepted": th.USER_ACCEPTED, "rejected": th.USER_REJECTED}
MATRIX_STATUSES = ("ok", "missing")
MODEL_ID_KEY = "model_id"
"""Library setting: the model whose text vectors score the tags."""
IMAGE_MODEL_ID_KEY = "image_model_id"
"""Library setting: the model and image token budget the photo vectors come from."""


@dataclass(frozen=True)
class Correction:
    """What one correction (or its undo) did."""

    path: str
    tag: str
    action: str
    threshold_before: float | None
    threshold_after: float | None
    photos_changed: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "tag": self.tag,
            "action": self.action,
            "threshold_before": _round(self.threshold_before),
            "threshold_after": _round(self.threshold_after),
            "photos_changed": self.photos_changed,
        }

    def describe(self) -> str:
        verb = {
            "accept": "Accepted",
            "reject": "Rejected",
            "add": "Added",
            "remove": "Removed",
            "undo": "Undid the last correction of",
        }[self.action]
        text = f"{verb} {self.tag!r} on {self.path}"
        if self.threshold_before is not None and self.threshold_after is not None:
            text += f"; threshold {self.threshold_before:.3f} -> {self.threshold_after:.3f}"
        return text + f"; {self.photos_changed} photos re-tagged."


def _round(x: float | None) -> float | None:
    return None if x is None else round(float(x), 4)


class Tagger:
    """Decisions over one library. Keep one alive (as the GUI worker does) to reuse the
    loaded matrix; a short-lived one (a CLI command) loads what it needs once.

    `encoder_factory` is called only when a tag prompt has no cached vector yet.
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
        self._tags: list[TagRow] | None = None
        self._tag_matrix: np.ndarray | None = None
        self._photo_ids: np.ndarray | None = None
        self._scores: np.ndarray | None = None
        self._thresholds: np.ndarray | None = None
        self._stats: th.TagStats | None = None
        self._stats_fresh = False
        """True when `_stats` was computed from the loaded scores (not read back)."""
        self._decisions: th.Decisions | None = None

    # -- loading --------------------------------------------------------------------

    def set_tag_vectors(self, tags: list[TagRow], matrix: np.ndarray) -> None:
        self._tags, self._tag_matrix = tags, matrix
        self._forget_library()

    def _forget_library(self) -> None:
        self._photo_ids = self._scores = self._thresholds = self._stats = None
        self._decisions = None

    def _encoder(self) -> TextEncoder:
        if self._encoder_factory is None:
            from albumtagger.tagging.pipeline import load_encoder

            return load_encoder(self.settings)
        return self._encoder_factory()

    def _tag_list(self) -> list[TagRow]:
        if self._tags is None:
            self._tags = self.store.tags()
        return self._tags

    def _load_tags(self) -> tuple[list[TagRow], np.ndarray]:
        if self._tag_matrix is None:
            tags = self._tag_list()
            prompts = [p for t in tags for p in t.prompts]
            cached = self.store.text_vectors(self.model_id or "", QUERY_INSTRUCTION, prompts)
            if len(cached) < len(set(prompts)):
                matrix = vocabulary.tag_vectors(self.store, self._encoder(), tags)
            else:
                matrix = vocabulary.tag_vectors(self.store, _CacheOnly(self.model_id), tags)
            self._tags, self._tag_matrix = tags, matrix
        return self._tags, self._tag_matrix

    def _require_model(self) -> str:
        if self.model_id is None:
            raise UserError("No photo is tagged yet. Run `albumtagger index FOLDER` first.")
        return self.model_id

    def _library(self) -> tuple[np.ndarray, np.ndarray]:
        """(photo ids, scores [photos x tags]) of every photo with a vector."""
        if self._scores is None or self._photo_ids is None:
            self._require_model()
            _, tag_matrix = self._load_tags()
            ids, vectors = self.store.photo_vectors(
                self.image_model_id or "", statuses=MATRIX_STATUSES
            )
            if len(ids) == 0 or tag_matrix.size == 0:
                n_tags = len(self._tags or [])
                self._photo_ids, self._scores = ids, np.zeros((len(ids), n_tags), np.float32)
            else:
                self._photo_ids, self._scores = ids, vectors @ tag_matrix.T
            self._stats = None
            self._stats_fresh = False
            self._thresholds = None
            self._decisions = None
        return self._photo_ids, self._scores

    def _user_state(self, photo_ids: np.ndarray) -> np.ndarray:
        tags, _ = self._load_tags()
        col = {t.id: j for j, t in enumerate(tags)}
        row = {int(pid): i for i, pid in enumerate(photo_ids)}
        state = np.zeros((len(photo_ids), len(tags)), dtype=np.int8)
        for pid, tid, s in self.store.user_decisions():
            i, j = row.get(pid), col.get(tid)
            if i is not None and j is not None:
                state[i, j] = _USER_CODES[s]
        return state

    def _feedback(self) -> th.Feedback:
        ids, _ = self._library()
        tags, _ = self._load_tags()
        row = {int(pid): i for i, pid in enumerate(ids)}
        col = {t.id: j for j, t in enumerate(tags)}
        return th.Feedback.from_events(
            (row[e.photo_id], col[e.tag_id], e.positive, e.was_suggested, e.review)
            for e in self.store.feedback()
            if e.photo_id in row and e.tag_id in col
        )

    def _tag_stats(self) -> th.TagStats:
        """Each tag's score distribution over the loaded library (computed once)."""
        if self._stats is None or not self._stats_fresh:
            _, scores = self._library()
            self._stats, self._stats_fresh = th.tag_stats(scores), True
        return self._stats

    def thresholds(self) -> np.ndarray:
        """The current per-tag thresholds (fitted to the library and the feedback)."""
        if self._thresholds is None:
            self._fit(None)
        assert self._thresholds is not None
        return self._thresholds

    def _fit(self, tag_indices: Sequence[int] | None) -> None:
        """Fit every tag's threshold, or only `tag_indices` (after corrections to them).

        A partial fit keeps the other tags' thresholds (in memory, else as last stored);
        when the policy lets the global base move every threshold, all are refitted.
        """
        ids, scores = self._library()
        tags = self._tag_list()
        feedback = self._feedback()
        base_moves_all = self.policy.prior == "fixed" or self.policy.controller_shifts_priors
        partial = tag_indices is not None and not base_moves_all
        if partial and self._thresholds is None:
            stored = self._stored_policy()
            if stored is None or len(ids) == 0:
                partial = False
            else:
                self._thresholds, self._stats = stored
                self._stats_fresh = False
        if not partial:
            self._thresholds = th.fit_thresholds(
                scores, feedback, self.policy, stats=self._tag_stats()
            )
            idx = np.arange(len(tags))
        else:
            idx = np.unique(np.asarray(tag_indices, dtype=np.int64))
            assert self._thresholds is not None and self._stats is not None
            if not self._stats_fresh:  # read back from the store: refresh these tags
                fresh = th.tag_stats(scores, tags=idx)
                st = self._stats
                for name in ("median", "scale", "mean", "std"):
                    getattr(st, name)[idx] = getattr(fresh, name)
            self._thresholds = self._thresholds.copy()
            self._thresholds[idx] = th.fit_thresholds(
                scores, feedback, self.policy, stats=self._stats, tags=idx
            )
        counts = np.bincount(feedback.tag, minlength=len(tags)) if len(feedback) else None
        st = self._stats
        assert st is not None
        with self.store.transaction():
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

    def _stored_policy(self) -> tuple[np.ndarray, th.TagStats] | None:
        """Thresholds and score statistics as last fitted, if every tag has them.

        Deciding a few new photos with these needs no pass over the library; a full
        `redecide` (after enough new photos, or a correction) refreshes them.
        """
        tags = self._tag_list()
        if not tags or any(
            t.threshold is None or t.score_median is None or t.score_scale is None for t in tags
        ):
            return None
        thresholds = np.array([t.threshold for t in tags], dtype=np.float64)
        median = np.array([t.score_median for t in tags], dtype=np.float64)
        scale = np.array([t.score_scale for t in tags], dtype=np.float64)
        return thresholds, th.TagStats(
            median=median, scale=scale, mean=median.copy(), std=scale.copy()
        )

    # -- deciding -------------------------------------------------------------------

    def tag_photos(self, photo_ids: Sequence[int]) -> None:
        """Decide and store suggestions for freshly embedded photos (marks them ok).

        Uses the thresholds of the library as it was when this tagger first looked;
        `redecide` after a run brings every photo in line with the final library.
        """
        if not photo_ids:
            return
        self._require_model()
        tags, tag_matrix = self._load_tags()
        if self._thresholds is None:
            stored = self._stored_policy() if self._scores is None else None
            if stored is None:
                self.thresholds()
            else:
                self._thresholds, self._stats = stored
        assert self._thresholds is not None and self._stats is not None
        ids, vectors = self.store.photo_vectors(
            self.image_model_id or "", statuses=("pending", "ok"), photo_ids=photo_ids
        )
        scores = vectors @ tag_matrix.T if tag_matrix.size else np.zeros((len(ids), 0))
        decisions = th.decide(
            scores, self._thresholds, self._user_state(ids), self.policy, stats=self._stats
        )
        with self.store.transaction():
            self.store.replace_suggestions(self._suggestions(ids, scores, decisions, tags))
            self.store.set_status([int(i) for i in ids], "ok")

    @staticmethod
    def _suggestions(
        ids: np.ndarray,
        scores: np.ndarray,
        decisions: th.Decisions,
        tags: list[TagRow],
        rows: np.ndarray | None = None,
    ) -> dict[int, list[AutoTag]]:
        rows = np.arange(len(ids)) if rows is None else rows
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

    def redecide(self, tag_indices: Sequence[int] | None = None) -> int:
        """Re-fit thresholds and re-decide the library; returns photos changed.

        With `tag_indices` (after a correction to those tags) only rows whose outcome can
        change are recomputed; the result equals a full decision.
        """
        ids, scores = self._library()
        if len(ids) == 0:
            return 0
        tags, _ = self._load_tags()
        previous = self._decisions
        self._fit(tag_indices)
        thresholds = self.thresholds()
        user = self._user_state(ids)
        if previous is not None and tag_indices is not None and self._stats_fresh:
            decisions = th.redecide_tags(
                scores, thresholds, user, previous, tag_indices, self.policy, stats=self._stats
            )
            rows, _ = th.diff_decisions(previous, decisions)
            rows = np.unique(rows)
        else:
            decisions = th.decide(scores, thresholds, user, self.policy, stats=self._stats)
            rows = self._rows_differing_from_store(ids, decisions, tags)
        self._decisions = decisions
        if rows.size:
            self.store.replace_suggestions(self._suggestions(ids, scores, decisions, tags, rows))
        return int(rows.size)

    def _rows_differing_from_store(
        self, ids: np.ndarray, decisions: th.Decisions, tags: list[TagRow]
    ) -> np.ndarray:
        """Rows whose automatic suggestions in the store differ from `decisions`."""
        row = {int(pid): i for i, pid in enumerate(ids)}
        col = {t.id: j for j, t in enumerate(tags)}
        stored = np.zeros(decisions.state.shape, dtype=np.int8)
        conf = np.zeros(decisions.state.shape, dtype=np.int8)
        codes = {v: k for k, v in CONFIDENCE_NAMES.items()}
        for t in self.store.photo_tags([int(i) for i in ids]):
            i, j = row.get(t.photo_id), col.get(t.tag_id)
            if i is None or j is None or t.state != "suggested":
                continue
            stored[i, j] = th.STATE_FALLBACK if t.fallback else th.STATE_SUGGESTED
            conf[i, j] = codes.get(t.confidence or "", th.CONF_LOW)
        auto = np.where(decisions.state == th.STATE_USER, 0, decisions.state)
        auto_conf = np.where(auto == 0, 0, decisions.confidence)
        differ = (stored != auto) | (conf != auto_conf)
        return np.flatnonzero(differ.any(axis=1))

    # -- corrections ----------------------------------------------------------------

    def _photo(self, path: str):
        photo = self.store.photo_by_path(path)
        if photo is None:
            raise NotFoundError(f"{path} is not in the library; check the path or run index.")
        return photo

    def _tag_index(self, tag_id: int) -> int:
        tags = self._tag_list()
        for j, t in enumerate(tags):
            if t.id == tag_id:
                return j
        raise NotFoundError(f"Tag {tag_id} is not in the vocabulary.")

    def _score(self, photo_id: int, tag_id: int) -> float | None:
        if not self._has_matrix():
            return None
        ids, scores = self._library()
        hit = np.flatnonzero(ids == photo_id)
        if hit.size == 0:
            return None
        return float(scores[hit[0], self._tag_index(tag_id)])

    def correct(self, path: str, tag_name: str, action: str, *, review: bool = False) -> Correction:
        """Accept, reject, add or remove one tag of one photo, and learn from it.

        `review`: the answer came from the review queue (it teaches the tag's threshold
        but not the global controller, since such cells are chosen near the threshold).
        """
        if action not in ("accept", "reject", "add", "remove"):
            raise UserError(f"Unknown correction {action!r}.")
        photo = self._photo(path)
        name = clean_name(tag_name)
        tag = self.store.tag_by_name(name)
        if tag is None:
            if action != "add":
                raise NotFoundError(
                    f"There is no tag {name!r}; add it with --add or `albumtagger vocab`."
                )
            self.add_tags([name])
            tag = self.store.tag_by_name(name)
            assert tag is not None
        previous = self.store.photo_tag(photo.id, tag.id)
        shown = previous is not None and previous.state != "rejected"
        suggested = previous is not None and previous.state == "suggested" and not previous.fallback
        positive = action in ("accept", "add")
        if action == "accept" and not shown:
            action = "add"
        score = self._score(photo.id, tag.id)
        j = self._tag_index(tag.id)
        before = self._current_threshold(j)
        source = previous.source if previous is not None and shown else "user"
        state = "accepted" if positive else "rejected"
        with self.store.transaction():
            self.store.add_feedback(
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
        return self._after_change(path, tag.name, action, j, before)

    def answer(self, path: str, tag_name: str, yes: bool) -> Correction:
        """A yes/no from the review queue: does this tag apply to this photo?"""
        return self.correct(path, tag_name, "accept" if yes else "reject", review=True)

    def _current_threshold(self, j: int) -> float | None:
        """Tag j's threshold in effect: in memory, else as last stored."""
        if self._thresholds is not None:
            return float(self._thresholds[j])
        return self._tag_list()[j].threshold

    def _has_matrix(self) -> bool:
        return self.model_id is not None and len(self._library()[0]) > 0

    def _after_change(
        self, path: str, tag: str, action: str, tag_index: int, before: float | None
    ) -> Correction:
        changed = 0
        after = None
        if self._has_matrix():
            changed = self.redecide([tag_index])
            after = self._current_threshold(tag_index)
        return Correction(path, tag, action, before, after, changed)

    def undo(self) -> Correction | None:
        """Undo the newest correction; None when there is none."""
        undone = self.store.undo_last_feedback()
        if undone is None:
            return None
        photo_id, tag_id = undone
        photo = self.store.photo(photo_id)
        j = self._tag_index(tag_id)
        tags = self._tag_list()
        before = self._current_threshold(j)
        return self._after_change(photo.path if photo else "?", tags[j].name, "undo", j, before)

    def review_queue(self, limit: int = 20) -> list[dict[str, Any]]:
        """Suggestions nearest to their tag's threshold, best first, for a quick yes/no."""
        ids, scores = self._library()
        if len(ids) == 0:
            return []
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

    def add_tags(self, specs: Sequence[str]) -> list[str]:
        """Add tags ("name" or "name: prompt | prompt"); re-scores from stored vectors."""
        parsed = [parse_spec(s) for s in specs]
        with self.store.transaction():
            for spec in parsed:
                if self.store.tag_by_name(spec.name) is None:
                    self.store.add_tag(spec.name, spec.prompts)
        self._tags = self._tag_matrix = None
        self._forget_library()
        if self.model_id is not None:
            self._load_tags()
            self.redecide()
        return [s.name for s in parsed]

    def remove_tags(self, names: Sequence[str]) -> None:
        """Remove tags with their suggestions, decisions and feedback."""
        found = []
        for name in names:
            tag = self.store.tag_by_name(clean_name(name))
            if tag is None:
                raise NotFoundError(f"There is no tag {name!r}.")
            found.append(tag)
        with self.store.transaction():
            for tag in found:
                self.store.remove_tag(tag.id)
        self._tags = self._tag_matrix = None
        self._forget_library()
        if self.model_id is not None:
            self.redecide()


class _CacheOnly:
    """A text encoder for when every prompt is cached: never asked to embed."""

    def __init__(self, model_id: str | None) -> None:
        self.model_id = model_id or ""

    def embed_texts(self, texts: Sequence[str], instruction: str = "") -> np.ndarray:
        raise AssertionError("all prompts were cached")
