"""The library's decision state: stored vectors and feedback in, stored suggestions out.

This is the glue between the sidecar (`library.db.store`) and the decision rules
(`tagging.thresholds`): it builds the [photos x tags] score matrix from stored photo
and tag vectors, fits the per-tag thresholds, decides, and writes back only what
changed. What is done to the decisions (corrections, vocabulary edits, pins, the
inspector's questions) builds on it, in the modules named for each job; `tagging.tagger`
puts them together.

Rules that make the tags a function of the library (photos, vocabulary, settings,
corrections) and not of the path that built it:
- A full `redecide` fits every tag's threshold from the whole library's scores and
  decides every photo. Indexing ends with one; photos that arrive in between (a
  watched folder's trickle) are decided with the stored thresholds until the next.
- Thresholds that were never fitted are fitted as soon as there are scores.
- Only tags whose prompts have text vectors for the library's model are scored; a tag
  added without the model is kept "not scored yet" (its user decisions work) until the
  model is next loaded. Nothing here needs the model unless it is given one.
- A tag without prompts ("wordless": a name, a keyword from another program, a tag made
  from example photos) is scored by the look learned from the photos it was given
  (`tagging.look`), never by its name, and suggests nothing on other photos until it
  has `MIN_EXAMPLES` of them.

What is kept in memory, and until when:
- the scored tags, their vectors and thresholds, and the model ids: each operation
  starts by checking them against the store (its `tags_key` and the model settings);
  a change by anyone else (another writer, another process, a rolled-back transaction)
  drops everything;
- the score matrix: until photos are read, changed, tagged or removed (`store_changed`,
  and `tag_photos` itself);
- the decisions under the thresholds in effect: the base of a partial re-decision only
  while the user's decisions outside the re-decided tags are the ones they were made
  with.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from albumtagger.config import Settings
from albumtagger.errors import UnknownTagError
from albumtagger.library.db.store import AutoTag, Store, SuggestionChanges, TagRow
from albumtagger.library.tag_names import clean_name
from albumtagger.model.encoder import QUERY_INSTRUCTION
from albumtagger.tagging import thresholds as th
from albumtagger.tagging.look import Look, example_floor, learned_look
from albumtagger.tagging.priors import TagStats, tag_stats
from albumtagger.tagging.results import Redecision, tag_changes
from albumtagger.tagging.vocabulary import TextEncoder

MIN_EXAMPLES = 3
"""Photos a wordless tag needs (accepted or added by the user) before it is suggested
on others: fewer say too little about its look."""
MATRIX_STATUSES = ("ok",)
"""Photos whose scores shape the thresholds and are re-decided: missing ones keep
their tags as they were (until cleanup) but do not weigh on the library's thresholds."""
MATRIX_CHANGES = ("status", "removed", "damaged", "updated")
"""Photo changes (`Store.listen` kinds) that change which photos have scores."""
MODEL_ID_KEY = "model_id"
"""Library setting: the model whose text vectors score the tags."""
IMAGE_MODEL_ID_KEY = "image_model_id"
"""Library setting: the model and image token budget the photo vectors come from."""
SINCE_REDECIDE_KEY = "photos_since_redecide"
"""Library setting: photos decided with stored thresholds since the last full re-decision."""
GENERATION_KEY = "decisions_generation"
"""Library setting: bumped by every automatic write of decisions (not by corrections), so
an undo knows whether its snapshot still describes the library."""

UserCells = tuple[np.ndarray, np.ndarray, np.ndarray]
"""The user's decisions on the score matrix: (rows, columns, codes `th.USER_*`)."""


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


class DecisionState:
    """Decisions over one library. Keep one alive (as a long-lived session does) to reuse
    the loaded matrix; a short-lived one (a CLI command) loads what it needs once.

    `encoder_factory` is asked for a text encoder only to score tags that have no text
    vector yet (a vocabulary edit); without one, such tags simply wait.
    """

    def __init__(
        self,
        store: Store,
        settings: Settings,
        *,
        encoder_factory: Callable[[], TextEncoder] | None = None,
    ) -> None:
        self.store = store
        self.policy = settings.thresholds
        self.policy.validate()
        self._encoder_factory = encoder_factory
        self.model_id, self.image_model_id = self._stored_model()
        self.redecisions: list[Redecision] = []
        """What full re-decisions changed, oldest first, for whoever reports them (a
        session takes them once they are committed)."""
        self._forget_all()

    # -- what is kept, and until when ---------------------------------------------------

    def _stored_model(self) -> tuple[str | None, str | None]:
        """(model id, image model id) as the library records them."""
        model_id = self.store.get_setting(MODEL_ID_KEY)
        return model_id, self.store.get_setting(IMAGE_MODEL_ID_KEY) or model_id

    def _sync(self) -> None:
        """Start an operation from the library as stored: if the tags, their thresholds or
        text vectors (the store's `tags_key`) or the model changed since this state read
        or wrote them, everything is read again."""
        model = self._stored_model()
        if self._tags_key != self.store.tags_key() or model != (
            self.model_id,
            self.image_model_id,
        ):
            self.model_id, self.image_model_id = model
            self._forget_all()

    @contextlib.contextmanager
    def _writing_tags(self) -> Iterator[None]:
        """Around this state's own write to the tags table: what it holds stays current
        (a change by anyone else before it still shows)."""
        current = self._tags_key == self.store.tags_key()
        yield
        if current:
            self._tags_key = self.store.tags_key()

    def store_changed(self, changes: Mapping[str, Collection[int]]) -> None:
        """What a commit changed, as `Store.listen` reports it: when photos were read,
        changed, tagged or removed (`MATRIX_CHANGES`), the score matrix is built again
        when next needed."""
        if any(changes.get(kind) for kind in MATRIX_CHANGES):
            self._forget_library()

    def use_settings(self, settings: Settings) -> None:
        """Decide by the threshold settings of `settings` from now on; `redecide` applies
        them to the library."""
        settings.thresholds.validate()
        self.policy = settings.thresholds
        self._forget_all()

    def _forget_all(self) -> None:
        self._tags: list[TagRow] | None = None
        """The scored tags: the columns of the score matrix."""
        self._tags_key: tuple[int, int] | None = None
        """The store's `tags_key` as of the last load or write of the tags by this state."""
        self._fresh: tuple[tuple[int, int], list[TagRow]] | None = None
        self._unscored: list[TagRow] = []
        self._tag_matrix: np.ndarray | None = None
        self._looks: dict[int, Look] = {}
        """The learned looks by column (`_learned` tags with a look), kept when the library
        is read again: photos that arrive are scored by them."""
        self._looks_learned = False
        """`_looks` holds every learned tag's look (learned since the tags were read)."""
        self._forget_library()

    def _forget_library(self) -> None:
        self._photo_ids: np.ndarray | None = None
        self._scores: np.ndarray | None = None
        self._floors: dict[int, float] = {}
        """The lowest threshold each wordless tag may start from (by column), as its look
        was learned from its examples (`look.example_floor`)."""
        self._vectors: tuple[np.ndarray, np.ndarray, np.ndarray, tuple[float, float]] | None
        self._vectors = None
        """The photos' vectors, their mean, the text scores and the worded tags' typical
        (median, robust std), kept only while tags learn their look (`_learned`)."""
        self._forget_policy()

    def _forget_policy(self) -> None:
        self._thresholds: np.ndarray | None = None
        self._stats: TagStats | None = None
        self._decisions: th.Decisions | None = None
        self._decided_with: UserCells | None = None
        """The user's decisions `_decisions` were made with."""

    # -- loading --------------------------------------------------------------------

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
            dim = len(next(iter(cached.values()))) if cached else 0
            if scored and dim:
                # a wordless tag's row stays zero: its name says nothing about its look
                matrix = np.stack(
                    [
                        np.mean([cached[p] for p in t.prompts], axis=0)
                        if t.prompts
                        else np.zeros(dim, dtype=np.float32)
                        for t in scored
                    ]
                )
                matrix /= np.linalg.norm(matrix, axis=1, keepdims=True).clip(min=1e-12)
            else:
                matrix = np.zeros((len(scored), dim), dtype=np.float32)
            self._tags, self._tag_matrix = scored, matrix.astype(np.float32)
        return self._tags, self._tag_matrix

    def unscored_tags(self) -> list[str]:
        """Names of tags that have no text vector for the library's model yet."""
        self._sync()
        self._load_tags()
        return [t.name for t in self._unscored]

    def _library(self) -> tuple[np.ndarray, np.ndarray]:
        """(photo ids, scores [photos x scored tags]) of every photo with a vector."""
        if self._scores is None or self._photo_ids is None:
            tags, tag_matrix = self._load_tags()
            model = self.image_model_id
            if model and self._learned(tags).any():
                # Looks are learned from the vectors: read them once, and score from them.
                ids, vectors = self.store.photo_vectors(model, statuses=MATRIX_STATUSES)
                scores = np.zeros((len(ids), len(tags)), np.float32)
                if tag_matrix.size:
                    for start in range(0, len(ids), 8192):
                        block = slice(start, start + 8192)
                        scores[block] = vectors[block] @ tag_matrix.T
                self._keep_vectors(vectors, scores, tags)
            elif model and tag_matrix.size:
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
            self._learn_looks(None)
            self._forget_policy()
        return self._photo_ids, self._scores

    def _learned(self, tags: Sequence[TagRow]) -> np.ndarray:
        """Which scored tags are scored by a learned look: the wordless ones, and with
        `learn_look` every one."""
        return np.array([self.policy.learn_look or not t.prompts for t in tags], dtype=bool)

    def _learn_looks(self, columns: Sequence[int] | None) -> None:
        """Score the tags that learn their look (`_learned`; all, or these `columns`) by
        the look learned from the user's decisions on them (`tagging.look`): a function
        of the vectors, the tag's vector and those decisions, so one run, two halves and
        a fresh state agree, and an undone answer leaves the column as it was. A wordless
        tag's scores are put on the scale of the worded tags' text scores."""
        ids, scores = self._photo_ids, self._scores
        if ids is None or scores is None or not scores.size:
            return
        tags, tag_matrix = self._load_tags()
        learned = self._learned(tags)
        wanted = {j for j in (range(len(tags)) if columns is None else columns) if learned[j]}
        self._looks_learned |= columns is None
        if not wanted or self._vectors is None:
            return  # (`_library` keeps the vectors whenever a tag learns its look)
        wordless = {j for j in wanted if not tags[j].prompts}
        # The user's decisions: accepted or added, examples; rejected or removed,
        # counter-examples (keywords imported from other programs count as accepted).
        rows, cols, codes = self._user_cells(ids)
        answers = {j: (rows[cols == j], codes[cols == j] == th.USER_ACCEPTED) for j in wanted}
        vectors, mean, text_scores, reference = self._vectors
        for j, (given, positive) in sorted(answers.items()):
            alone = j in wordless
            scores[:, j], look = learned_look(
                vectors,
                None if alone else tag_matrix[j],
                given,
                positive,
                mean=mean,
                reference=reference if alone else None,
                text_scores=None if alone else text_scores[:, j],
            )
            self._looks.pop(j, None)
            self._floors.pop(j, None)
            if look is None:
                continue
            self._looks[j] = look
            floor = (
                example_floor(vectors, given, positive, look, mean=mean, center=reference[0])
                if alone
                else None
            )
            if floor is not None:
                self._floors[j] = floor

    def _keep_vectors(self, vectors: np.ndarray, scores: np.ndarray, tags: list[TagRow]) -> None:
        """Keep the photos' vectors to learn looks from, with their mean, the text
        `scores` (nothing learned in them yet) and the worded tags' typical scale."""
        worded = [j for j, t in enumerate(tags) if t.prompts]
        self._vectors = (
            vectors,
            vectors.mean(axis=0, dtype=np.float64),
            scores.copy(),
            _typical_scale(scores[:, worded]),
        )

    def _first(self) -> np.ndarray | None:
        """The tags ranked first among a photo's suggestions: the wordless ones (names
        the user taught by example); None when there are none."""
        tags, _ = self._load_tags()
        first = np.array([not t.prompts for t in tags], dtype=bool)
        return first if first.any() else None

    def _silenced(self, thresholds: np.ndarray) -> np.ndarray:
        """`thresholds` to decide by: a wordless tag with fewer than `MIN_EXAMPLES`
        photos the user gave it passes on no other photo (its threshold is infinite)."""
        tags, _ = self._load_tags()
        wordless = np.flatnonzero([not t.prompts for t in tags])
        if wordless.size == 0:
            return thresholds
        _, tag, code = self.store.user_cells()
        given = tag[code == th.USER_ACCEPTED]
        few = [j for j in wordless if np.count_nonzero(given == tags[j].id) < MIN_EXAMPLES]
        if not few:
            return thresholds
        out = np.array(thresholds, dtype=np.float64, copy=True)
        out[few] = np.inf
        return out

    def _has_matrix(self) -> bool:
        ids, scores = self._library()
        return len(ids) > 0 and scores.shape[1] > 0

    def _user_cells(self, ids: np.ndarray) -> UserCells:
        """The user's decisions on the photos `ids` (in any order) and the scored tags."""
        photo, tag, code = self.store.user_cells()
        tags, _ = self._load_tags()
        rows = _positions(np.asarray(ids, dtype=np.int64), photo)
        cols = _positions(np.array([t.id for t in tags], dtype=np.int64), tag)
        found = (rows >= 0) & (cols >= 0)
        return rows[found], cols[found], code[found]

    def _user_state(self, ids: np.ndarray, cells: UserCells | None = None) -> np.ndarray:
        """The user state matrix (`th.USER_*`, int8 [photos x scored tags]) of `ids`."""
        tags, _ = self._load_tags()
        rows, cols, codes = self._user_cells(ids) if cells is None else cells
        state = np.zeros((len(ids), len(tags)), dtype=np.int8)
        state[rows, cols] = codes
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

    def _column(self, tag_id: int) -> int | None:
        tags, _ = self._load_tags()
        for j, t in enumerate(tags):
            if t.id == tag_id:
                return j
        return None

    def _tag_row(self, name: str) -> TagRow:
        tag = self.store.tag_by_name(clean_name(name))
        if tag is None:
            raise UnknownTagError(f"There is no tag {name!r} in the vocabulary.")
        return tag

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

    def _stored_policy(self) -> tuple[np.ndarray, TagStats, np.ndarray]:
        """(thresholds, score statistics, never fitted) of the scored tags, as stored."""
        tags = self._fresh_tag_rows()

        def column(name: str) -> np.ndarray:
            values = [getattr(t, name) for t in tags]
            return np.array([np.nan if v is None else v for v in values], dtype=np.float64)

        stored, median, scale = column("threshold"), column("score_median"), column("score_scale")
        never = np.isnan(stored) | np.isnan(median) | np.isnan(scale)
        pins = column("pinned")
        stored = np.where(np.isnan(pins), stored, pins)
        stats = TagStats(median=median, scale=scale, mean=median.copy(), std=scale.copy())
        return stored, stats, never

    def _fresh_tag_rows(self) -> list[TagRow]:
        """The scored tags as stored now (their thresholds may have been refitted)."""
        tags, _ = self._load_tags()
        key = self.store.tags_key()
        if self._fresh is None or self._fresh[0] != key:
            by_id = {t.id: t for t in self.store.tags()}
            self._fresh = key, [by_id[t.id] for t in tags]
        return self._fresh[1]

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
            self._stats = tag_stats(scores)
            self._thresholds = th.fit_thresholds(
                scores, feedback, self.policy, stats=self._stats, floors=self._floors
            )
            idx = np.arange(len(tags))
        else:
            idx = np.unique(np.asarray(tag_indices, dtype=np.int64))
            assert self._stats is not None
            fresh = tag_stats(scores, tags=idx)
            for name in ("median", "scale", "mean", "std"):
                getattr(self._stats, name)[idx] = getattr(fresh, name)
            self._thresholds = self._thresholds.copy()
            self._thresholds[idx] = th.fit_thresholds(
                scores, feedback, self.policy, tags=idx, floors=self._floors
            )
        pins = self._pins()
        pinned = idx[~np.isnan(pins[idx])]
        self._thresholds[pinned] = pins[pinned]  # a threshold set by hand is not learned
        counts = np.bincount(feedback.tag, minlength=len(tags)) if len(feedback) else None
        st = self._stats
        with self._writing_tags():
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

    def _set_threshold(self, j: int, value: float) -> None:
        """Set one tag's threshold by hand (a pin) and store it; its statistics stay."""
        tags, _ = self._load_tags()
        assert self._thresholds is not None and self._stats is not None
        self._thresholds = self._thresholds.copy()
        self._thresholds[j] = float(value)
        fresh = self._fresh_tag_rows()[j]
        with self._writing_tags():
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

    # -- deciding -------------------------------------------------------------------

    @contextlib.contextmanager
    def _atomic(self, *, durable: bool = False) -> Iterator[None]:
        """One transaction for a whole change, from the library as stored; in-memory
        state is dropped if it fails. `durable`: the user's own action, safe from a power
        cut once saved."""
        try:
            with self.store.transaction(durable=durable):
                self._sync()
                yield
        except BaseException:
            self._forget_all()
            self.redecisions.clear()
            raise

    def _bump_generation(self) -> None:
        gen = int(self.store.get_setting(GENERATION_KEY) or 0) + 1
        self.store.set_setting(GENERATION_KEY, str(gen))

    def photos_since_redecide(self) -> int:
        """Photos decided with stored thresholds since the last full re-decision."""
        return int(self.store.get_setting(SINCE_REDECIDE_KEY) or 0)

    def _generation(self) -> int:
        return int(self.store.get_setting(GENERATION_KEY) or 0)

    def _keep_decisions(self, decisions: th.Decisions, cells: UserCells) -> None:
        self._decisions, self._decided_with = decisions, cells

    def _kept_decisions(
        self, cells: UserCells, redecided: Sequence[int] = ()
    ) -> th.Decisions | None:
        """The decisions kept in memory, if the user's decisions `cells` outside the tags
        `redecided` are the ones they were made with (None otherwise: decide anew)."""
        if self._decisions is None or self._decided_with is None:
            return None
        n_tags = self._decisions.state.shape[1]
        then = _cell_keys(self._decided_with, n_tags, redecided)
        same = np.array_equal(then, _cell_keys(cells, n_tags, redecided))
        return self._decisions if same else None

    def _decide_all(self) -> tuple[np.ndarray, np.ndarray, th.Decisions]:
        ids, scores = self._library()
        self._ensure_policy()
        cells = self._user_cells(ids)
        thresholds = self._silenced(self.thresholds())
        decisions = th.decide(
            scores,
            thresholds,
            self._user_state(ids, cells),
            self.policy,
            stats=self._stats,
            first=self._first(),
        )
        rows = self._rows_differing_from_store(ids, decisions)
        self._keep_decisions(decisions, cells)
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
            self._forget_library()  # these photos have scores now
            tags, tag_matrix = self._load_tags()
            if not tags:
                return SuggestionChanges()
            if all(
                t.threshold is None for t in self._fresh_tag_rows()
            ):  # the first photos of a library
                changes = self._apply(self._decide_all())
                self._bump_generation()
                return changes
            if self._learned(tags).any() and not self._looks_learned:
                self._library()  # learns every look, once
            self._ensure_policy_without_library()
            ids, vectors = self.store.photo_vectors(
                self.image_model_id or "", statuses=("ok",), photo_ids=photo_ids
            )
            scores = vectors @ tag_matrix.T if len(ids) else np.zeros((0, len(tags)), np.float32)
            for j, look in self._looks.items():  # as the library was scored
                scores[:, j] = look.scores(vectors)
            assert self._thresholds is not None
            decisions = th.decide(
                scores,
                self._silenced(self._thresholds),
                self._user_state(ids),
                self.policy,
                stats=self._stats,
                first=self._first(),
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
                    confidence=th.CONFIDENCE_NAMES.get(int(decisions.confidence[i, j]), "low"),
                )
                for j in cols
            ]
        return out

    def redecide(self, trigger: str = "") -> SuggestionChanges:
        """Fit every threshold from the whole library and decide every photo; returns what
        changed. The result depends on the library only, not on how it was built.

        Which tags photos gained and lost is kept in `redecisions`, with `trigger` (one of
        `results.REDECISION_TRIGGERS`; by default "photos" when photos were decided with
        stored thresholds since the last re-decision)."""
        with self._atomic():
            self._forget_all()
            since = self.photos_since_redecide()
            self.store.set_setting(SINCE_REDECIDE_KEY, "0")
            if not self._has_matrix():
                return SuggestionChanges()
            self._refit(None)
            decided = self._decide_all()
            shown = np.bincount(self.store.suggestion_cells()[0]) if decided[1].size else None
            changes = self._apply(decided)
            self._bump_generation()
            if shown is not None and (changes.added or changes.removed):
                tags, _ = self._load_tags()
                trigger = trigger or ("photos" if since else "library")
                self.redecisions.append(
                    Redecision(
                        trigger,
                        tag_changes(changes, {t.id: t.name for t in tags}),
                        len(changes.photo_ids()),
                        since if trigger == "photos" else 0,
                        _replaced(shown, changes),
                    )
                )
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
        cells = self._user_cells(ids)
        previous = self._kept_decisions(cells, tag_indices)
        self._learn_looks(tag_indices)  # these tags' answers changed
        if pinned is None:
            self._refit(tag_indices)
        else:
            self._set_threshold(tag_indices[0], pinned)
        thresholds = self._silenced(self.thresholds())
        if previous is not None:
            user = self._user_state(ids, cells)
            decisions = th.redecide_tags(
                scores,
                thresholds,
                user,
                previous,
                tag_indices,
                self.policy,
                stats=self._stats,
                first=self._first(),
            )
            # Only rows that could change were re-decided: compare those alone.
            maybe = th.rows_to_redecide(
                scores, thresholds, user, previous, tag_indices, self.policy
            )
            differ = (previous.state[maybe] != decisions.state[maybe]) | (
                previous.confidence[maybe] != decisions.confidence[maybe]
            )
            self._keep_decisions(decisions, cells)
            decided = (ids, maybe[differ.any(axis=1)], decisions)
        else:
            decided = self._decide_all()
        return self._apply(decided, snapshot)

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


def _replaced(shown: np.ndarray, changes: SuggestionChanges) -> int:
    """Photos that lost every suggestion they had (`shown`: suggestions per photo id
    before `changes`) and gained others."""
    if not changes.removed or not changes.added:
        return 0
    lost = np.bincount([p for p, _ in changes.removed], minlength=len(shown))
    had = np.zeros(len(lost), dtype=np.int64)
    had[: len(shown)] = shown[: len(lost)]
    gained = np.zeros(len(lost), dtype=bool)
    ids = np.array([p for p, _ in changes.added], dtype=np.int64)
    gained[ids[ids < len(lost)]] = True
    return int(np.count_nonzero((lost > 0) & (lost == had) & gained))


def _typical_scale(text_scores: np.ndarray) -> tuple[float, float]:
    """The median (median, robust std) of these text score columns, every 7th photo of
    them (a wordless tag's scores are put on it); (0, 0.03) without any."""
    if text_scores.size == 0:
        return 0.0, 0.03
    sample = text_scores[::7] if text_scores.shape[0] >= 700 else text_scores
    med = np.median(sample, axis=0)
    scale = 1.4826 * np.median(np.abs(sample - med), axis=0)
    return float(np.median(med)), max(float(np.median(scale)), 1e-6)


def _positions(keys: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Where each of `values` is in the distinct `keys` (any order); -1 where it is not."""
    if keys.size == 0:
        return np.full(values.shape, -1, dtype=np.int64)
    order = np.argsort(keys, kind="stable")
    at = np.searchsorted(keys[order], values).clip(max=keys.size - 1)
    return np.where(keys[order][at] == values, order[at], -1)


def _cell_keys(cells: UserCells, n_tags: int, skip: Sequence[int]) -> np.ndarray:
    """`cells` outside the columns `skip` as sorted int64 keys (equal keys, equal cells)."""
    rows, cols, codes = cells
    keep = ~np.isin(cols, np.asarray(skip, dtype=np.int64))
    keys = (rows[keep].astype(np.int64) * n_tags + cols[keep]) * 3 + codes[keep] + 1
    return np.sort(keys)
