"""Tag decisions: per-tag thresholds, per-photo decisions, learning from corrections.

The one module that decides which tags a photo gets. Pure NumPy, array in and array out:
the store keeps the [photos x tags] score matrix, the user's per-cell decisions and the
feedback events, and calls these functions.

Codes (all int8 matrices are [photos x tags]):

- user state: `USER_NONE` 0, `USER_ACCEPTED` 1 (accepted or added), `USER_REJECTED` -1
  (rejected or removed).
- decision state: `STATE_NONE` 0, `STATE_SUGGESTED` 1, `STATE_FALLBACK` 2 (suggested by
  the fallback, low confidence), `STATE_USER` 3 (accepted or added by the user).
- confidence: `CONF_NONE` 0, `CONF_LOW` 1, `CONF_MEDIUM` 2, `CONF_HIGH` 3.
- feedback event kinds (see `Feedback.kinds`): `EVENT_TP` accept (a shown tag confirmed),
  `EVENT_FP` reject/remove (a shown tag denied), `EVENT_FN` add (a tag that was not shown
  confirmed), `EVENT_TN` a tag that was not shown denied (a "no" in the review queue).

Thresholds: each tag starts from a prior taken from its library-wide score distribution
(`ThresholdSettings.prior`; "fixed" is the plain base threshold; the default "mixture"
fits a background plus a positive tail to the tag's scores and takes the threshold with
the best expected F-beta under that fit; both in `tagging.priors`). Labelled feedback fits a
per-tag logistic model of P(tag applies | score), anchored on the prior, and the threshold
maximises the expected F-beta over all of the tag's library scores under that model; the
result is shrunk toward the prior by the tag's number of labels. Labels picked near a
threshold (the review queue) are not a sample of the library, but a model of P(y | score)
is not biased by choosing *which scores* get labelled, so this avoids the bias of
computing F-beta on the labels alone. The global controller (the tutorial's rule) moves
the base threshold from ordinary corrections; the base is the prior of the "fixed"
strategy, and moves the distribution priors only if `controller_shifts_priors` is set.

Undo is exact because thresholds are a pure function of (scores, feedback, settings):
delete the event, restore the user state, fit and decide again.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from albumtagger.config import ThresholdSettings
from albumtagger.tagging.priors import (
    MIN_SCALE,
    ROW_CHUNK,
    TagStats,
    as_scores,
    stats_for,
    tag_indices,
    tag_priors,
    tag_stats,
)

USER_NONE, USER_ACCEPTED, USER_REJECTED = 0, 1, -1
STATE_NONE, STATE_SUGGESTED, STATE_FALLBACK, STATE_USER = 0, 1, 2, 3
CONF_NONE, CONF_LOW, CONF_MEDIUM, CONF_HIGH = 0, 1, 2, 3
EVENT_TP, EVENT_FP, EVENT_FN, EVENT_TN = 1, 2, 3, 4


@dataclass
class Decisions:
    """Decision and confidence codes for a whole library, int8 [photos x tags]."""

    state: np.ndarray
    confidence: np.ndarray

    def included(self) -> np.ndarray:
        """Boolean [photos x tags]: the tag is on the photo (suggested, fallback or user)."""
        return self.state != STATE_NONE


@dataclass(frozen=True)
class Feedback:
    """Feedback events in the order they happened (one entry per accept, reject, add,
    remove or review answer).

    `positive`: the user says the tag applies (accept, add, "yes").
    `suggested`: the tag was suggested by passing its threshold when the user acted
    (decision state STATE_SUGGESTED; not a fallback or user tag). A "no" to it is a false
    positive, a "yes" a true positive; on any other tag "yes" is a false negative and
    "no" a true negative.
    `review`: the event answers the review queue (None: no event does). Review answers
    are labels for the per-tag fits but not input to the global controller: they are
    picked at the threshold, where about half the answers are errors by construction,
    and would drive the controller to a clamp.
    """

    photo: np.ndarray
    tag: np.ndarray
    positive: np.ndarray
    suggested: np.ndarray
    review: np.ndarray | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "photo", np.asarray(self.photo, dtype=np.int64).ravel())
        object.__setattr__(self, "tag", np.asarray(self.tag, dtype=np.int64).ravel())
        object.__setattr__(self, "positive", np.asarray(self.positive, dtype=bool).ravel())
        object.__setattr__(self, "suggested", np.asarray(self.suggested, dtype=bool).ravel())
        n = self.photo.size
        review = np.zeros(n, dtype=bool) if self.review is None else self.review
        object.__setattr__(self, "review", np.asarray(review, dtype=bool).ravel())
        if not self.tag.size == self.positive.size == self.suggested.size == self.review.size == n:
            raise ValueError("Feedback arrays must have the same length")

    @classmethod
    def from_events(
        cls, events: Iterable[tuple[int, int, bool, bool] | tuple[int, int, bool, bool, bool]]
    ) -> Feedback:
        """From (photo, tag, positive, suggested[, review]) tuples, oldest first."""
        rows = [tuple(e) + (False,) * (5 - len(e)) for e in events]
        if not rows:
            return cls.empty()
        photo, tag, positive, suggested, review = zip(*rows, strict=True)
        return cls(
            np.array(photo),
            np.array(tag),
            np.array(positive),
            np.array(suggested),
            np.array(review),
        )

    @classmethod
    def empty(cls) -> Feedback:
        return cls(np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0))

    def __len__(self) -> int:
        return int(self.photo.size)

    @property
    def kinds(self) -> np.ndarray:
        """int8 event kinds (EVENT_TP / EVENT_FP / EVENT_FN / EVENT_TN), oldest first."""
        kinds = np.where(
            self.suggested,
            np.where(self.positive, EVENT_TP, EVENT_FP),
            np.where(self.positive, EVENT_FN, EVENT_TN),
        )
        return kinds.astype(np.int8)

    @property
    def controller_kinds(self) -> np.ndarray:
        """`kinds` of the events the global controller counts (all but review answers)."""
        return self.kinds[~self.review]

    def labels(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(photo, tag, positive) with one entry per cell: the latest event wins."""
        if len(self) == 0:
            return self.photo, self.tag, self.positive
        order = np.lexsort((np.arange(len(self)), self.tag, self.photo))
        photo, tag = self.photo[order], self.tag[order]
        last = np.ones(order.size, dtype=bool)
        last[:-1] = (photo[1:] != photo[:-1]) | (tag[1:] != tag[:-1])
        keep = order[last]
        return self.photo[keep], self.tag[keep], self.positive[keep]


# -------------------------------------------------------------------------- controller


def controller_update(
    kinds: Sequence[int] | np.ndarray, base: float, settings: ThresholdSettings
) -> float:
    """One controller step after the latest event: the base after `kinds` (oldest first).

    Nothing happens before `controller_min_events` events. Over the last
    `controller_window` events, a false-positive share (EVENT_FP) above
    `max_false_positive_rate` raises the base by `controller_step`, a false-negative share
    (EVENT_FN) above `max_false_negative_rate` lowers it (both: no change); the result is
    clamped to [min_base, max_base].
    """
    kinds = np.asarray(kinds)
    n_events = kinds.size
    if n_events < max(settings.controller_min_events, 1):
        return float(base)
    window = kinds[-settings.controller_window :]
    n = window.size
    fp_rate = np.count_nonzero(window == EVENT_FP) / n
    fn_rate = np.count_nonzero(window == EVENT_FN) / n
    delta = 0.0
    if fp_rate > settings.max_false_positive_rate:
        delta += settings.controller_step
    if fn_rate > settings.max_false_negative_rate:
        delta -= settings.controller_step
    return _clamp_base(base + delta, settings)


def _clamp_base(base: float, settings: ThresholdSettings) -> float:
    return round(min(max(base, settings.min_base), settings.max_base), 10)


def controller_base(kinds: Sequence[int] | np.ndarray, settings: ThresholdSettings) -> float:
    """The base after replaying every event from `settings.base_threshold`.

    Equal to folding `controller_update` over each prefix of `kinds`; a pure function of
    the event list, so deleting an event (undo) and replaying is exact.
    """
    kinds = np.asarray(kinds)
    base = _clamp_base(settings.base_threshold, settings)
    n_events = kinds.size
    start = max(settings.controller_min_events, 1)
    if n_events < start:
        return base
    w = settings.controller_window
    cfp = np.concatenate(([0], np.cumsum(kinds == EVENT_FP)))
    cfn = np.concatenate(([0], np.cumsum(kinds == EVENT_FN)))
    ends = np.arange(start, n_events + 1)
    begins = np.maximum(ends - w, 0)
    n = (ends - begins).astype(np.float64)
    fp_rate = (cfp[ends] - cfp[begins]) / n
    fn_rate = (cfn[ends] - cfn[begins]) / n
    step = settings.controller_step
    up = fp_rate > settings.max_false_positive_rate
    down = fn_rate > settings.max_false_negative_rate
    for u, d in zip(up.tolist(), down.tolist(), strict=True):
        if u != d:
            base = _clamp_base(base + (step if u else -step), settings)
    return base


# --------------------------------------------------------------------------------- fit


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _fit_logistic(
    z: np.ndarray,
    y: np.ndarray,
    settings: ThresholdSettings,
    anchor_z: float | None = None,
) -> tuple[float, float]:
    """MAP logistic regression logit = w0 + w1 * z, Gaussian prior on (w0, w1), plus
    `calibration_anchor_weight` pseudo-negatives at `anchor_z` (the tag's median).

    Damped Newton steps (backtracking on the convex objective), so it always converges.
    """
    m = np.array([0.0, settings.calibration_slope])
    prec = np.array(
        [
            1.0 / max(settings.calibration_offset_sd, 1e-6) ** 2,
            1.0 / max(settings.calibration_slope_sd, 1e-6) ** 2,
        ]
    )
    zz = np.asarray(z, dtype=np.float64)
    yf = np.asarray(y, dtype=np.float64)
    wt = np.ones(zz.size)
    if anchor_z is not None and settings.calibration_anchor_weight > 0:
        zz = np.append(zz, anchor_z)
        yf = np.append(yf, 0.0)
        wt = np.append(wt, settings.calibration_anchor_weight)
    w = m.copy()
    if z.size == 0:
        return float(w[0]), float(w[1])

    def objective(v: np.ndarray) -> float:
        logit = v[0] + v[1] * zz
        nll = np.sum(wt * (np.logaddexp(0.0, logit) - yf * logit))
        return float(nll + 0.5 * np.sum(prec * (v - m) ** 2))

    current = objective(w)
    for _ in range(100):
        p = _sigmoid(w[0] + w[1] * zz)
        r = wt * (p - yf)
        g = np.array([r.sum(), (r * zz).sum()]) + prec * (w - m)
        s = wt * p * (1.0 - p)
        h00 = s.sum() + prec[0]
        h01 = (s * zz).sum()
        h11 = (s * zz * zz).sum() + prec[1]
        det = h00 * h11 - h01 * h01
        step = np.array([h11 * g[0] - h01 * g[1], h00 * g[1] - h01 * g[0]]) / det
        t = 1.0
        while True:
            candidate = w - t * step
            value = objective(candidate)
            if value <= current or t < 1e-8:
                break
            t *= 0.5
        if value > current:
            break
        w, improvement, current = candidate, current - value, value
        if float(np.abs(t * step).max()) < 1e-9 or improvement < 1e-12:
            break
    return float(w[0]), float(w[1])


def _expected_fbeta_threshold(
    scores_desc: np.ndarray, p: np.ndarray, n_pos_fixed: float, beta: float
) -> float:
    """Threshold maximising the expected F-beta when the photo with score
    `scores_desc[i]` (sorted descending) is positive with probability `p[i]`;
    `n_pos_fixed` labelled positives are included whatever the threshold."""
    s = scores_desc
    if s.size == 0:
        return math.inf
    cum = np.concatenate(([0.0], np.cumsum(p)))
    b2 = beta * beta
    total_pos = cum[-1] + n_pos_fixed
    j = np.arange(s.size + 1)
    f = (1.0 + b2) * (cum + n_pos_fixed) / np.maximum(b2 * total_pos + j + n_pos_fixed, 1e-12)
    # a threshold can only fall between two different scores
    f[1:-1][s[1:] == s[:-1]] = -1.0
    best = int(np.argmax(f))
    if best == 0:
        return float(s[0]) + 1e-6
    if best == s.size:
        return float(s[-1])
    return 0.5 * (float(s[best - 1]) + float(s[best]))


def _fit_tag(
    column: np.ndarray,
    photos: np.ndarray,
    positive: np.ndarray,
    c: float,
    scale: float,
    median: float,
    settings: ThresholdSettings,
) -> float | None:
    """One tag's threshold from its labels (events oldest first; a photo's latest one
    counts), or None when no label has a finite score."""
    _, last = np.unique(photos[::-1], return_index=True)
    keep = photos.size - 1 - last
    ph, pos = photos[keep], positive[keep]
    label_scores = column[ph]
    finite = np.isfinite(label_scores)
    ph, pos, label_scores = ph[finite], pos[finite], label_scores[finite]
    if ph.size == 0:
        return None
    w0, w1 = _fit_logistic((label_scores - c) / scale, pos, settings, (median - c) / scale)
    w1 = max(w1, settings.calibration_min_slope)
    unlabelled = np.isfinite(column)
    unlabelled[ph] = False
    rest = np.sort(column[unlabelled])[::-1]
    p = _sigmoid(w0 + w1 * (rest - c) / scale)
    fitted = _expected_fbeta_threshold(
        rest, p, float(np.count_nonzero(pos)), settings.effective_beta
    )
    if not math.isfinite(fitted):
        return None
    weight = ph.size / (ph.size + settings.shrinkage_events)
    return c + weight * (fitted - c)


def fit_thresholds(
    scores: np.ndarray,
    feedback: Feedback,
    settings: ThresholdSettings,
    *,
    stats: TagStats | None = None,
    tags: Sequence[int] | np.ndarray | None = None,
    base: float | None = None,
    floors: Mapping[int, float] | None = None,
) -> np.ndarray:
    """Per-tag thresholds from the library scores and the feedback, float64 [len(tags)].

    For each tag: prior threshold c (`prior_thresholds`, with the controller's base
    replayed from the feedback unless `base` is given); labels are the latest event per
    (photo, tag); a logistic model of P(applies | z), z = (score - c) / robust std, is
    fitted (MAP, prior mean `calibration_slope`); the threshold maximising the expected
    F-beta over all of the tag's unlabelled library scores (labelled positives count as
    found) is moved n / (n + shrinkage_events) of the way from c, n = the tag's labels,
    and only where a label contradicts the threshold. Events are replayed oldest first,
    each moving the threshold only its own way. A pure function of its arguments: fit
    after an event and its undo equals fit before. `floors` (by tag): the lowest prior
    some tags may have (a wordless tag's, from its examples: `look.example_floor`).
    """
    scores = as_scores(scores)
    n_photos, n_tags = scores.shape
    idx = tag_indices(tags, n_tags)
    subset = tags is not None
    if base is None:
        base = controller_base(feedback.controller_kinds, settings)
    st = stats_for(scores, stats, idx, subset)
    prior = tag_priors(scores, settings, float(base), st, idx, subset).astype(np.float64)
    for k, t in enumerate(idx.tolist()):
        if floors and t in floors:
            prior[k] = max(prior[k], floors[t])
    out = prior.copy()
    if len(feedback) == 0:
        return out
    photo, tag, positive = feedback.photo, feedback.tag, feedback.positive  # oldest first
    valid = (photo >= 0) & (photo < n_photos) & (tag >= 0) & (tag < n_tags)
    photo, tag, positive = photo[valid], tag[valid], positive[valid]
    position = np.full(n_tags, -1, dtype=np.int64)
    position[idx] = np.arange(idx.size)
    wanted = position[tag] >= 0
    photo, tag, positive = photo[wanted], tag[wanted], positive[wanted]
    for t in np.unique(tag):
        events = np.flatnonzero(tag == t)
        # A photo's latest answer replaces its earlier ones (a changed mind).
        _, last = np.unique(photo[events][::-1], return_index=True)
        events = np.sort(events[events.size - 1 - last])
        k = int(position[t])
        c, scale = float(prior[k]), float(st.scale[k])
        column = np.asarray(scores[:, t], dtype=np.float64)
        # Replayed event by event, each answer judged against the threshold it met: a
        # "yes" above it or a "no" below it confirms the threshold and moves nothing; a
        # "yes" below it (a missed tag) can only lower it, a "no" above it (a wrong
        # suggestion) only raise it. So confirming a suggestion changes no other photo,
        # and a rejection never spreads the tag over the library.
        threshold = c
        for j in range(events.size):
            ev = events[: j + 1]
            score, yes = column[photo[ev[-1]]], bool(positive[ev[-1]])
            if not math.isfinite(score) or (score >= threshold) == yes:
                continue
            fitted = _fit_tag(column, photo[ev], positive[ev], c, scale, st.median[k], settings)
            if fitted is not None:
                threshold = min(fitted, threshold) if yes else max(fitted, threshold)
        out[k] = threshold
    return out


# ---------------------------------------------------------------------------- decisions


def confidence(
    scores: np.ndarray,
    thresholds: np.ndarray,
    median: np.ndarray,
    scale: np.ndarray,
    settings: ThresholdSettings,
) -> np.ndarray:
    """Confidence codes (int8, broadcast shape) of passing auto suggestions.

    Margin and position are in units of the tag's robust std: high when the margin over
    the threshold is at least `confidence_high_margin` and the score sits at least
    `confidence_high_position` above the tag's library median; medium when the margin is
    at least `confidence_medium_margin`; low otherwise.
    """
    scores = np.asarray(scores, dtype=np.float64)
    margin = (scores - thresholds) / scale
    position = (scores - median) / scale
    high = (margin >= settings.confidence_high_margin) & (
        position >= settings.confidence_high_position
    )
    medium = margin >= settings.confidence_medium_margin
    return np.where(high, CONF_HIGH, np.where(medium, CONF_MEDIUM, CONF_LOW)).astype(np.int8)


CONFIDENCE_NAMES = {CONF_LOW: "low", CONF_MEDIUM: "medium", CONF_HIGH: "high"}
NO_MATCH = "no match"
DEFAULT_SCORE_SCALE = 0.025
"""Robust std assumed for a text's scores where there is no library to measure them (a
typical spread of one GME tag's scores over an album)."""


def match_confidence(
    score: float, threshold: float, median: float, scale: float, settings: ThresholdSettings
) -> str:
    """ "high", "medium" or "low" as `confidence` gives a suggestion that passes its
    threshold, or "no match" for a score below it."""
    if not score >= threshold:
        return NO_MATCH
    code = confidence(np.array([score]), threshold, median, max(scale, MIN_SCALE), settings)
    return CONFIDENCE_NAMES[int(code[0])]


def standalone_policy(settings: ThresholdSettings) -> tuple[float, float, float]:
    """(threshold, median, scale) for a text scored without a library: the base
    threshold, read as the robust prior of a tag whose scores spread by
    `DEFAULT_SCORE_SCALE` (median = base - `prior_mad_factor` * scale)."""
    scale = DEFAULT_SCORE_SCALE
    base = settings.base_threshold
    return base, base - settings.prior_mad_factor * scale, scale


def _top_k(keys: np.ndarray, eligible: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Per row, the k[r] eligible cells with the largest keys; ties go to the lower tag.

    Depends on each row's content only, so any subset of rows gives the same answer.
    """
    out = eligible.copy()
    count = np.count_nonzero(eligible, axis=1)
    over = np.flatnonzero(count > k)
    if over.size == 0:
        return out
    kk = k[over]
    out[over[kk <= 0]] = False
    live = kk > 0
    over, kk = over[live], kk[live]
    if over.size == 0:
        return out
    elig = eligible[over]
    masked = np.where(elig, keys[over], -np.inf)
    kmax = int(kk.max())
    neg = -masked
    part = np.partition(neg, kmax - 1, axis=1)[:, :kmax] if kmax < neg.shape[1] else neg
    part = np.sort(part, axis=1)
    kth = -part[np.arange(over.size), kk - 1]
    above = masked > kth[:, None]
    tie = masked == kth[:, None]
    need = kk - np.count_nonzero(above, axis=1)
    tie &= np.cumsum(tie, axis=1) <= need[:, None]
    out[over] = above | tie
    return out


FIRST = 10.0
"""Added to the ranking key of the tags ranked first (scores are cosines: a margin is
never as large)."""


def _rank_keys(
    scores: np.ndarray, th: np.ndarray, settings: ThresholdSettings, first: np.ndarray | None
) -> np.ndarray:
    """What ranks a row's cells for the `max_tags` slots and the fallback (`rank_by`);
    the tags `first` (bool per tag) come before the others."""
    keys = scores - th if settings.rank_by == "margin" else scores
    return keys if first is None else keys + np.where(first, FIRST, 0.0).astype(keys.dtype)


def _prepare(
    scores: np.ndarray,
    thresholds: np.ndarray,
    settings: ThresholdSettings,
    first: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(thresholds, the fallback's lowered thresholds): the tags `first` are never a
    fallback guess (their lowered threshold is their threshold)."""
    th = np.asarray(thresholds, dtype=scores.dtype).ravel()
    if th.size != scores.shape[1]:
        raise ValueError("thresholds must have one value per tag")
    lowered = np.minimum(th, th * np.asarray(settings.fallback_factor, dtype=scores.dtype))
    return th, lowered if first is None else np.where(first, th, lowered)


def _decide_rows(
    scores: np.ndarray,
    th: np.ndarray,
    lowered: np.ndarray,
    user: np.ndarray,
    median: np.ndarray,
    scale: np.ndarray,
    settings: ThresholdSettings,
    first: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Decide a block of rows: (state, confidence) int8 arrays of the block's shape."""
    accepted = user == USER_ACCEPTED
    auto = user == USER_NONE
    passed = auto & (scores >= th)
    n_acc = np.count_nonzero(accepted, axis=1)
    n_pass = np.count_nonzero(passed, axis=1)
    slots = np.maximum(settings.max_tags - n_acc, 0)
    chosen = passed
    capped = np.flatnonzero(n_pass > slots)
    if capped.size:
        chosen = passed.copy()
        sub = scores[capped]
        keys = _rank_keys(sub, th, settings, first)
        chosen[capped] = _top_k(keys, passed[capped], slots[capped])

    fill = min(settings.fallback_tags, settings.max_tags)
    need = fill - n_acc - n_pass
    fb = np.flatnonzero((n_acc + n_pass < settings.min_tags) & (need > 0))
    state = np.zeros(scores.shape, dtype=np.int8)
    state[chosen] = STATE_SUGGESTED
    conf = np.zeros(scores.shape, dtype=np.int8)
    rows, cols = np.nonzero(chosen)
    if rows.size:
        conf[rows, cols] = confidence(
            scores[rows, cols], th[cols], median[cols], scale[cols], settings
        )
    if fb.size:
        sub = scores[fb]
        cand = auto[fb] & ~passed[fb] & (sub >= lowered)
        if cand.any():
            keys = _rank_keys(sub, th, settings, first)
            pick = _top_k(keys, cand, need[fb])
            r, c = np.nonzero(pick)
            state[fb[r], c] = STATE_FALLBACK
            conf[fb[r], c] = CONF_LOW
    state[accepted] = STATE_USER
    conf[accepted] = CONF_HIGH
    return state, conf


def _check_shapes(scores: np.ndarray, user_state: np.ndarray) -> None:
    if user_state.shape != scores.shape:
        raise ValueError("user_state must have the shape of scores")


def decide(
    scores: np.ndarray,
    thresholds: np.ndarray,
    user_state: np.ndarray,
    settings: ThresholdSettings,
    *,
    stats: TagStats | None = None,
    first: np.ndarray | None = None,
) -> Decisions:
    """Decide every photo's tags (vectorised, in row blocks).

    Per photo: user-accepted tags are in (STATE_USER) and rejected ones never; auto tags
    with score >= threshold pass and the best `max_tags` minus the accepted ones are
    suggested; if fewer than `min_tags` are in, the best remaining auto tags above
    threshold * `fallback_factor` fill the photo up to `fallback_tags` (STATE_FALLBACK,
    low confidence). "Best" is by `rank_by`, the tags `first` (bool per tag: the user's
    own, learned from their photos) before the others, and those never a fallback guess;
    ties go to the lower tag index.
    `stats` (from `tag_stats`) is used for confidence; computed when not given.
    """
    scores = as_scores(scores)
    user_state = np.asarray(user_state)
    _check_shapes(scores, user_state)
    th, lowered = _prepare(scores, thresholds, settings, first)
    stats = stats if stats is not None else tag_stats(scores)
    n_photos = scores.shape[0]
    state = np.empty(scores.shape, dtype=np.int8)
    conf = np.empty(scores.shape, dtype=np.int8)
    for start in range(0, n_photos, ROW_CHUNK):
        block = slice(start, min(start + ROW_CHUNK, n_photos))
        state[block], conf[block] = _decide_rows(
            scores[block],
            th,
            lowered,
            user_state[block],
            stats.median,
            stats.scale,
            settings,
            first,
        )
    return Decisions(state, conf)


def rows_to_redecide(
    scores: np.ndarray,
    thresholds: np.ndarray,
    user_state: np.ndarray,
    previous: Decisions,
    tags: Sequence[int] | np.ndarray,
    settings: ThresholdSettings,
) -> np.ndarray:
    """Photos whose decisions can change when only `tags` changed (threshold or user state).

    A row can change only if, in one of those tags, the cell was included before, has a
    user decision now, passes its new threshold, or is above the lowered threshold in a
    photo that was in fallback before (fewer than `min_tags` suggested/user tags).
    """
    scores = as_scores(scores)
    idx = tag_indices(tags, scores.shape[1])
    th, lowered = _prepare(scores, thresholds, settings)
    if idx.size == 0:
        return np.zeros(0, dtype=np.int64)
    sub = scores[:, idx]
    user = user_state[:, idx]
    certain = np.any(
        (previous.state[:, idx] != STATE_NONE) | (user != USER_NONE) | (sub >= th[idx]), axis=1
    )
    maybe = ~certain & np.any(sub >= lowered[idx], axis=1)
    maybe_rows = np.flatnonzero(maybe)
    if maybe_rows.size:
        core = np.count_nonzero(previous.state[maybe_rows] & 1, axis=1)
        certain[maybe_rows[core < settings.min_tags]] = True
    return np.flatnonzero(certain)


def redecide_tags(
    scores: np.ndarray,
    thresholds: np.ndarray,
    user_state: np.ndarray,
    previous: Decisions,
    tags: Sequence[int] | np.ndarray,
    settings: ThresholdSettings,
    *,
    stats: TagStats | None = None,
    first: np.ndarray | None = None,
) -> Decisions:
    """`decide` after a change confined to `tags`, re-deciding only rows that can change.

    `previous` must be `decide` of the same scores and settings with the same thresholds
    and user states outside `tags`. The result equals `decide` exactly. `previous` is not
    modified.
    """
    scores = as_scores(scores)
    user_state = np.asarray(user_state)
    _check_shapes(scores, user_state)
    rows = rows_to_redecide(scores, thresholds, user_state, previous, tags, settings)
    state = previous.state.copy()
    conf = previous.confidence.copy()
    if rows.size == 0:
        return Decisions(state, conf)
    th, lowered = _prepare(scores, thresholds, settings, first)
    stats = stats if stats is not None else tag_stats(scores)
    for start in range(0, rows.size, ROW_CHUNK):
        block = rows[start : start + ROW_CHUNK]
        state[block], conf[block] = _decide_rows(
            scores[block],
            th,
            lowered,
            user_state[block],
            stats.median,
            stats.scale,
            settings,
            first,
        )
    return Decisions(state, conf)


def threshold_change(
    scores: np.ndarray,
    thresholds: np.ndarray,
    user_cells: tuple[np.ndarray, np.ndarray, np.ndarray],
    previous: Decisions,
    tag: int,
    value: float,
    settings: ThresholdSettings,
    *,
    stats: TagStats,
    first: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(rows that gain `tag`, rows that lose it) when its threshold alone becomes `value`.

    Exactly what `decide` with the new threshold gives against `previous` (`decide` with
    `thresholds`), with the cap and the fallback as usual; only the rows that can change
    are decided again (those of `rows_to_redecide`; a user decision on the tag fixes its
    cell). "Has the tag" is `Decisions.included`. `user_cells` is the user state as
    (rows, tags, codes), so no [photos x tags] matrix is built.
    """
    scores = as_scores(scores)
    n, k = scores.shape
    new = np.asarray(thresholds, dtype=np.float64).copy()
    new[tag] = float(value)
    th, lowered = _prepare(scores, new, settings, first)
    u_rows, u_cols, u_codes = (np.asarray(a) for a in user_cells)
    user_col = np.zeros(n, dtype=np.int8)
    on_tag = u_cols == tag
    user_col[u_rows[on_tag]] = u_codes[on_tag]
    column = scores[:, tag]
    was = previous.state[:, tag] != STATE_NONE
    certain = was | (column >= th[tag])
    maybe = np.flatnonzero(~certain & (column >= lowered[tag]))
    if maybe.size:
        core = np.count_nonzero(previous.state[maybe] & 1, axis=1)
        certain[maybe[core < settings.min_tags]] = True
    rows = np.flatnonzero(certain & (user_col == USER_NONE))
    if rows.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    position = np.full(n, -1, dtype=np.int64)
    position[rows] = np.arange(rows.size)
    now = np.empty(rows.size, dtype=bool)
    for start in range(0, rows.size, ROW_CHUNK):
        block = rows[start : start + ROW_CHUNK]
        user = np.zeros((block.size, k), dtype=np.int8)
        at = position[u_rows] - start
        mine = (at >= 0) & (at < block.size)
        user[at[mine], u_cols[mine]] = u_codes[mine]
        now[start : start + block.size] = _included(
            scores[block], th, lowered, user, tag, settings, first
        )
    before = was[rows]
    return rows[now & ~before], rows[before & ~now]


def _included(
    scores: np.ndarray,
    th: np.ndarray,
    lowered: np.ndarray,
    user: np.ndarray,
    tag: int,
    settings: ThresholdSettings,
    first: np.ndarray | None = None,
) -> np.ndarray:
    """Whether `_decide_rows` includes `tag` in each row of a block (bool [rows]),
    without deciding the other tags: a passing cell is chosen when fewer than the free
    slots of passing cells rank ahead of it (`_top_k`'s order: larger key, then lower
    tag), and a fallback candidate likewise among the candidates."""
    accepted = user == USER_ACCEPTED
    auto = user == USER_NONE
    passed = auto & (scores >= th)
    n_acc = np.count_nonzero(accepted, axis=1)
    n_pass = np.count_nonzero(passed, axis=1)
    slots = np.maximum(settings.max_tags - n_acc, 0)
    lower = np.arange(scores.shape[1]) < tag

    def fewer_ahead(rows: np.ndarray, among: np.ndarray, limit: np.ndarray) -> np.ndarray:
        sub = scores[rows]
        keys = _rank_keys(sub, th, settings, first)
        key = keys[:, tag : tag + 1]
        ahead = (keys > key) | ((keys == key) & lower)
        return np.count_nonzero(among[rows] & ahead, axis=1) < limit

    out = accepted[:, tag] | (passed[:, tag] & (n_pass <= slots))
    capped = np.flatnonzero(passed[:, tag] & (n_pass > slots))
    if capped.size:
        out[capped] = fewer_ahead(capped, passed, slots[capped])
    fill = min(settings.fallback_tags, settings.max_tags)
    need = fill - n_acc - n_pass
    fallback = np.flatnonzero(
        (n_acc + n_pass < settings.min_tags)
        & (need > 0)
        & auto[:, tag]
        & ~passed[:, tag]
        & (scores[:, tag] >= lowered[tag])
    )
    if fallback.size:
        cand = auto[fallback] & ~passed[fallback] & (scores[fallback] >= lowered)
        among = np.zeros(passed.shape, dtype=bool)
        among[fallback] = cand
        out[fallback] = fewer_ahead(fallback, among, need[fallback])
    return out


def diff_decisions(old: Decisions, new: Decisions) -> tuple[np.ndarray, np.ndarray]:
    """(photo, tag) indices of the cells whose state or confidence differ."""
    changed = (old.state != new.state) | (old.confidence != new.confidence)
    return np.nonzero(changed)


# ------------------------------------------------------------------------------ review


def review_queue(
    scores: np.ndarray,
    thresholds: np.ndarray,
    user_state: np.ndarray,
    limit: int,
    settings: ThresholdSettings,
    *,
    stats: TagStats | None = None,
    tags: Sequence[int] | np.ndarray | None = None,
) -> list[tuple[int, int, float]]:
    """The cells worth a quick yes/no: (photo, tag, score - threshold), best first.

    Cells without a user decision, nearest to their tag's threshold in units of the tag's
    robust std (ties: lower photo, then lower tag), at most `review_per_tag` per tag;
    only `tags` when given.
    """
    scores = as_scores(scores)
    user_state = np.asarray(user_state)
    _check_shapes(scores, user_state)
    if limit <= 0 or scores.size == 0:
        return []
    th = np.asarray(thresholds, dtype=np.float64).ravel()
    idx = tag_indices(tags, scores.shape[1])
    st = stats_for(scores, stats, idx, tags is not None)
    sub = scores if tags is None else scores[:, idx]
    th_sub = th[idx].astype(sub.dtype)
    dist = np.abs(sub - th_sub) / st.scale.astype(sub.dtype)
    dist[(user_state if tags is None else user_state[:, idx]) != USER_NONE] = np.inf
    dist[~np.isfinite(dist)] = np.inf
    per_tag = settings.review_per_tag
    n_photos = sub.shape[0]
    if per_tag > 0 and per_tag < n_photos:
        cand_rows = np.argpartition(dist, per_tag - 1, axis=0)[:per_tag]
        cand_cols = np.broadcast_to(np.arange(sub.shape[1]), cand_rows.shape)
        rows, cols = cand_rows.ravel(), cand_cols.ravel()
    else:
        flat = dist.ravel()
        take = min(limit, flat.size)
        top = np.argpartition(flat, take - 1)[:take] if take < flat.size else np.arange(flat.size)
        rows, cols = np.unravel_index(top, dist.shape)
    d = dist[rows, cols]
    ok = np.isfinite(d)
    rows, cols, d = rows[ok], cols[ok], d[ok]
    order = np.lexsort((idx[cols], rows, d))[:limit]
    return [
        (int(rows[i]), int(idx[cols[i]]), float(sub[rows[i], cols[i]] - th_sub[cols[i]]))
        for i in order
    ]


def review_remaining(
    scores: np.ndarray,
    thresholds: np.ndarray,
    user_state: np.ndarray,
    settings: ThresholdSettings,
    *,
    stats: TagStats | None = None,
) -> np.ndarray:
    """Per tag, the questions review has left (int64 [tags]): cells without a user
    decision whose score is a close call, within `confidence_high_margin` robust stds of
    the tag's threshold either way (a suggestion short of high confidence, or a photo
    that just missed the tag)."""
    scores = as_scores(scores)
    user_state = np.asarray(user_state)
    _check_shapes(scores, user_state)
    if scores.size == 0:
        return np.zeros(scores.shape[1], dtype=np.int64)
    idx = np.arange(scores.shape[1])
    st = stats_for(scores, stats, idx, False)
    th = np.asarray(thresholds, dtype=np.float64).ravel().astype(scores.dtype)
    dist = np.abs(scores - th) / st.scale.astype(scores.dtype)
    close = (dist < settings.confidence_high_margin) & (user_state == USER_NONE)
    return close.sum(axis=0).astype(np.int64)
