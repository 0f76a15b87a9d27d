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
the best expected F-beta under that fit, see `mixture_fit`). Labelled feedback fits a
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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from albumtagger.config import PRIORS, ThresholdSettings
from albumtagger.errors import UserError

USER_NONE, USER_ACCEPTED, USER_REJECTED = 0, 1, -1
STATE_NONE, STATE_SUGGESTED, STATE_FALLBACK, STATE_USER = 0, 1, 2, 3
CONF_NONE, CONF_LOW, CONF_MEDIUM, CONF_HIGH = 0, 1, 2, 3
EVENT_TP, EVENT_FP, EVENT_FN, EVENT_TN = 1, 2, 3, 4


_MAD_TO_STD = 1.4826
_MIN_SCALE = 1e-4
_ROW_CHUNK = 8192


@dataclass
class Decisions:
    """Decision and confidence codes for a whole library, int8 [photos x tags]."""

    state: np.ndarray
    confidence: np.ndarray

    def included(self) -> np.ndarray:
        """Boolean [photos x tags]: the tag is on the photo (suggested, fallback or user)."""
        return self.state != STATE_NONE


@dataclass(frozen=True)
class TagStats:
    """Each tag's library-wide score distribution, float64 [tags]."""

    median: np.ndarray
    scale: np.ndarray
    """Robust std: 1.4826 * median absolute deviation (floored at 1e-4)."""
    mean: np.ndarray
    std: np.ndarray


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


# --------------------------------------------------------------------------- statistics


def _as_scores(scores: np.ndarray) -> np.ndarray:
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ValueError("scores must be a [photos x tags] matrix")
    if scores.dtype not in (np.float32, np.float64):
        scores = scores.astype(np.float32)
    return scores


def _tag_indices(tags: Sequence[int] | np.ndarray | None, n_tags: int) -> np.ndarray:
    if tags is None:
        return np.arange(n_tags)
    idx = np.asarray(tags, dtype=np.int64).ravel()
    if idx.size and (idx.min() < 0 or idx.max() >= n_tags):
        raise IndexError("tag index out of range")
    return idx


def tag_stats(scores: np.ndarray, tags: Sequence[int] | np.ndarray | None = None) -> TagStats:
    """Median, robust std, mean and std of each tag's library scores (NaN ignored).

    Arrays cover `tags` in that order (all tags by default). Compute once per score
    matrix and pass it on: it is the slow part (a median over the whole library).
    """
    scores = _as_scores(scores)
    idx = _tag_indices(tags, scores.shape[1])
    cols = scores if tags is None else scores[:, idx]
    if cols.shape[0] == 0:
        zeros = np.zeros(idx.size)
        return TagStats(zeros, np.full(idx.size, _MIN_SCALE), zeros, zeros)
    finite = bool(np.isfinite(cols).all())
    median_fn = np.median if finite else np.nanmedian
    median = np.asarray(median_fn(cols, axis=0), dtype=np.float64)
    mad = np.asarray(median_fn(np.abs(cols - median.astype(cols.dtype)), axis=0), np.float64)
    scale = np.maximum(_MAD_TO_STD * np.nan_to_num(mad), _MIN_SCALE)
    mean_fn, std_fn = (np.mean, np.std) if finite else (np.nanmean, np.nanstd)
    mean = np.asarray(mean_fn(cols, axis=0, dtype=np.float64))
    std = np.asarray(std_fn(cols, axis=0, dtype=np.float64))
    return TagStats(np.nan_to_num(median), scale, np.nan_to_num(mean), np.nan_to_num(std))


def _stats_for(
    scores: np.ndarray, stats: TagStats | None, idx: np.ndarray, subset: bool
) -> TagStats:
    if stats is None:
        return tag_stats(scores, idx if subset else None)
    if not subset:
        return stats
    return TagStats(stats.median[idx], stats.scale[idx], stats.mean[idx], stats.std[idx])


# ------------------------------------------------------------------------------ priors


def prior_thresholds(
    scores: np.ndarray,
    settings: ThresholdSettings,
    *,
    base: float | None = None,
    stats: TagStats | None = None,
    tags: Sequence[int] | np.ndarray | None = None,
) -> np.ndarray:
    """Per-tag thresholds before any label, float64 [len(tags)] (all tags by default).

    Strategy `settings.prior`: "fixed" is the base itself; "mean_std" mean + k * std;
    "percentile" a percentile; "robust" median + k * robust std (all of the tag's library
    scores); "mixture" the expected-F-beta threshold of a background-plus-positive-tail
    fit (`mixture_fit`), or the robust prior for tags whose fit is not trusted. With
    `controller_shifts_priors`, a base moved away from `base_threshold` shifts the
    distribution priors by the same amount.
    """
    scores = _as_scores(scores)
    idx = _tag_indices(tags, scores.shape[1])
    base = settings.base_threshold if base is None else float(base)
    st = (
        None
        if settings.prior in ("fixed", "percentile")
        else _stats_for(scores, stats, idx, tags is not None)
    )
    return _prior(scores, settings, base, st, idx, tags is not None)


def _prior(
    scores: np.ndarray,
    settings: ThresholdSettings,
    base: float,
    st: TagStats | None,
    idx: np.ndarray,
    subset: bool,
) -> np.ndarray:
    """Priors for tags `idx`; `st` holds the stats of exactly those tags.

    A small library's distributions say little: with n photos the distribution prior
    is trusted n / (n + `prior_photos`) and the rest is the base threshold.
    """
    if settings.prior == "fixed":
        return np.full(idx.size, base)
    n = scores.shape[0]
    trust = n / (n + settings.prior_photos) if settings.prior_photos > 0 else 1.0
    return base + trust * (_distribution_prior(scores, settings, base, st, idx, subset) - base)


def _distribution_prior(
    scores: np.ndarray,
    settings: ThresholdSettings,
    base: float,
    st: TagStats | None,
    idx: np.ndarray,
    subset: bool,
) -> np.ndarray:
    shift = base - settings.base_threshold if settings.controller_shifts_priors else 0.0
    if settings.prior == "percentile":
        cols = scores[:, idx] if subset else scores
        if cols.shape[0] == 0:
            return np.full(idx.size, base)
        pct = np.nanpercentile(cols, settings.prior_percentile, axis=0)
        return np.asarray(pct, dtype=np.float64) + shift
    assert st is not None
    if settings.prior == "mean_std":
        return st.mean + settings.prior_std_factor * st.std + shift
    robust = st.median + settings.prior_mad_factor * st.scale
    if settings.prior == "robust":
        return robust + shift
    if settings.prior == "mixture":
        cols = scores[:, idx] if subset else scores
        fit = _mixture_fit(cols, st.median, st.scale, settings)
        return np.where(fit.trusted, fit.threshold, robust) + shift
    raise UserError(f"Setting thresholds.prior is {settings.prior!r}; use one of {PRIORS}.")


# ---------------------------------------------------------------------- mixture prior
#
# The "mixture" prior reads each tag's library scores as a background (photos without
# the tag) plus a positive tail. The background is fitted from the half of the scores
# below their mode, which positives hardly reach: its location is the mode, its scale the
# median distance below the mode, and its tail weight (from a Gaussian-lighter shape to
# a Student-t with 2 degrees of freedom) the ratio of the 95% to the 50% distance. It is
# taken to be symmetric, so the left half says how many background photos score above any
# point on the right. A Gaussian positive component is fitted by EM to what the
# background leaves over, and the threshold maximises the expected F-beta of the tag
# under that fit. All of it runs on a per-tag histogram over a common grid of robust
# z-scores (score - median) / robust std, vectorised over tags and identical for any
# subset of tags (no cross-tag reduction, a fixed number of EM rounds).

_Z_LO, _Z_HI, _Z_STEP = -8.0, 40.0, 0.05
_N_BINS = round((_Z_HI - _Z_LO) / _Z_STEP)
_MODE_RANGE = 3.0
"""The background mode is looked for within this many robust stds of the median."""
_EM_ROUNDS = 40
_SHAPE_STEP, _SHAPE_MAX = 0.01, 60.0
_T_DFS = (2.0, 2.5, 3.0, 4.0, 5.0, 7.0, 10.0, 20.0)
_GN_POWERS = (2.5, 3.0, 4.0, 6.0)
_shape_cache: list[tuple[np.ndarray, np.ndarray]] = []


def _shape_tables() -> tuple[np.ndarray, np.ndarray]:
    """Survival functions of symmetric background shapes, heaviest tail first.

    Rows: Student-t (`_T_DFS`), the Gaussian, generalised Gaussians exp(-|x|^p)
    (`_GN_POWERS`), each scaled so that the median of |U| is 1; columns: u on
    [0, `_SHAPE_MAX`] in steps of `_SHAPE_STEP`; value P(U > u). Also returns each
    shape's 95th percentile of |U| (its tail ratio), decreasing.
    """
    if _shape_cache:
        return _shape_cache[0]
    x = np.linspace(0.0, 80.0, 400001)
    densities = []
    for df in _T_DFS:
        c = math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2)) / math.sqrt(df * math.pi)
        densities.append(c * (1.0 + x * x / df) ** (-(df + 1) / 2))
    densities.append(np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi))
    for p in _GN_POWERS:
        densities.append(p / (2 * math.gamma(1 / p)) * np.exp(-(x**p)))
    u = np.arange(0.0, _SHAPE_MAX + _SHAPE_STEP / 2, _SHAPE_STEP)
    rows, ratios = [], []
    for g in densities:
        half = np.concatenate(([0.0], np.cumsum(0.5 * (g[1:] + g[:-1]) * np.diff(x))))
        sf_abs = np.clip(1.0 - 2.0 * half, 0.0, 1.0)  # P(|U| > x)
        q50 = float(np.interp(0.5, half * 2.0, x))
        q95 = float(np.interp(0.95, half * 2.0, x))
        rows.append(0.5 * np.interp(u * q50, x, sf_abs))
        ratios.append(q95 / q50)
    table = (np.array(rows), np.array(ratios))
    _shape_cache.append(table)
    return table


def _z_histograms(cols: np.ndarray, median: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Counts per tag on the z grid, int64 [tags x _N_BINS] (NaN ignored, the rest
    clipped into the end bins)."""
    n, k = cols.shape
    width = _N_BINS + 1  # the last bin of each tag collects NaN and is dropped
    lo = (median + _Z_LO * scale).astype(cols.dtype)
    inv = (1.0 / (_Z_STEP * scale)).astype(cols.dtype)
    offsets = (np.arange(k, dtype=np.int64) * width)[None, :]
    counts = np.zeros(k * width, dtype=np.int64)
    for start in range(0, n, _ROW_CHUNK):
        b = cols[start : start + _ROW_CHUNK] - lo
        b *= inv
        np.clip(b, 0, _N_BINS - 1, out=b)
        b[np.isnan(b)] = _N_BINS
        counts += np.bincount((b.astype(np.int64) + offsets).ravel(), minlength=k * width)
    return counts.reshape(k, width)[:, :_N_BINS]


def _box_smooth(h: np.ndarray, half: np.ndarray) -> np.ndarray:
    """Moving average over 2 * half[row] + 1 bins along the last axis, three times
    (zero-padded; close to a Gaussian of sd `half` bins)."""
    top = int(half.max())
    j = np.arange(h.shape[1])[None, :]
    hi = j + top + 1 + half[:, None]
    lo = j + top - half[:, None]
    width = (2 * half + 1)[:, None].astype(np.float64)
    out = h.astype(np.float64)
    for _ in range(3):
        c = np.cumsum(np.pad(out, ((0, 0), (top + 1, top))), axis=1)
        out = (np.take_along_axis(c, hi, axis=1) - np.take_along_axis(c, lo, axis=1)) / width
    return out


def _mode_and_left_half(
    h: np.ndarray, half: np.ndarray, centers: np.ndarray, edges: np.ndarray
) -> tuple[np.ndarray, ...]:
    """Per row: the mode of the smoothed histogram near the median (z), the count below
    it and the median and 95th percentile of the distances below it."""
    k = h.shape[0]
    smooth = _box_smooth(h, half)
    near = np.abs(centers) <= _MODE_RANGE
    first = int(np.argmax(near))
    sm = smooth[:, near]
    j = np.clip(np.argmax(sm, axis=1), 1, sm.shape[1] - 2)
    r = np.arange(k)
    y0, y1, y2 = sm[r, j - 1], sm[r, j], sm[r, j + 1]
    curve = y0 - 2 * y1 + y2
    shift = np.where(curve < 0, 0.5 * (y0 - y2) / np.where(curve < 0, curve, -1.0), 0.0)
    mode = centers[first + j] + np.clip(shift, -1.0, 1.0) * _Z_STEP
    below = np.concatenate((np.zeros((k, 1)), np.cumsum(h, axis=1)), axis=1)
    pos = np.clip((mode - _Z_LO) / _Z_STEP, 0, _N_BINS - 1e-9)
    jm = pos.astype(np.int64)
    n_left = below[r, jm] + (pos - jm) * h[r, jm]
    d50 = mode - _row_interp(below, 0.5 * n_left, edges)
    d95 = mode - _row_interp(below, 0.05 * n_left, edges)
    return mode, n_left, d50, d95


def _row_interp(values: np.ndarray, targets: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Per row, where the non-decreasing `values` [rows x cols] reach `targets` [rows],
    linearly interpolated on `grid` [cols]."""
    j = np.count_nonzero(values < targets[:, None], axis=1)
    j = np.clip(j, 1, values.shape[1] - 1)
    r = np.arange(values.shape[0])
    v0, v1 = values[r, j - 1], values[r, j]
    frac = np.clip((targets - v0) / np.maximum(v1 - v0, 1e-12), 0.0, 1.0)
    return grid[j - 1] + frac * (grid[j] - grid[j - 1])


def _background_cdf(
    u: np.ndarray, table: np.ndarray, shape_a: np.ndarray, shape_b: np.ndarray, w: np.ndarray
) -> np.ndarray:
    """P(U <= u) of the per-row blend (1 - w) * shape_a + w * shape_b, u [rows x cols]."""
    a = np.minimum(np.abs(u) / _SHAPE_STEP, table.shape[1] - 1.000001)
    i = a.astype(np.int64)
    frac = a - i
    rows_a, rows_b = shape_a[:, None], shape_b[:, None]
    sf_a = table[rows_a, i] * (1 - frac) + table[rows_a, i + 1] * frac
    sf_b = table[rows_b, i] * (1 - frac) + table[rows_b, i + 1] * frac
    sf = (1 - w[:, None]) * sf_a + w[:, None] * sf_b
    return np.where(u >= 0, 1.0 - sf, sf)


@dataclass(frozen=True)
class MixtureFit:
    """Per-tag fit of the "mixture" prior, float64 [tags] (z units: robust stds of the
    tag's scores from its median)."""

    threshold: np.ndarray
    """Score threshold maximising the expected F-beta (NaN where the fit is not trusted)."""
    trusted: np.ndarray
    """bool: enough photos, a background and a significant positive tail."""
    mode: np.ndarray
    """Background location (z)."""
    spread: np.ndarray
    """Background scale (z): median distance of the scores below the mode."""
    tail_ratio: np.ndarray
    """95th over 50th percentile of the distances below the mode (Gaussian: 2.44)."""
    positive_share: np.ndarray
    positive_mean: np.ndarray
    positive_sd: np.ndarray
    expected_positives: np.ndarray
    """Expected number of photos with the tag."""


def mixture_fit(
    scores: np.ndarray,
    settings: ThresholdSettings,
    *,
    stats: TagStats | None = None,
    tags: Sequence[int] | np.ndarray | None = None,
) -> MixtureFit:
    """Fit the "mixture" prior's model to each tag's library scores (see the section
    comment above); arrays cover `tags` in that order (all by default)."""
    scores = _as_scores(scores)
    idx = _tag_indices(tags, scores.shape[1])
    subset = tags is not None
    st = _stats_for(scores, stats, idx, subset)
    cols = scores[:, idx] if subset else scores
    return _mixture_fit(cols, st.median, st.scale, settings)


def _mixture_fit(
    cols: np.ndarray, median: np.ndarray, scale: np.ndarray, settings: ThresholdSettings
) -> MixtureFit:
    n_rows, k = cols.shape
    median = np.asarray(median, dtype=np.float64)
    scale = np.maximum(np.asarray(scale, dtype=np.float64), _MIN_SCALE)
    nan = np.full(k, np.nan)
    empty = MixtureFit(nan, np.zeros(k, bool), nan, nan, nan, nan, nan, nan, nan)
    if k == 0 or n_rows < max(settings.mixture_min_photos, 20):
        return empty
    h = _z_histograms(cols, median, scale).astype(np.float64)
    n = h.sum(axis=1)
    edges = _Z_LO + _Z_STEP * np.arange(_N_BINS + 1)
    centers = edges[:-1] + 0.5 * _Z_STEP

    # background location: the mode of the smoothed histogram near the median, smoothed
    # again over a good part of the background's width (a flat top has no sharp mode)
    r = np.arange(k)
    first_half = max(1, round(0.3 * n_rows ** (-0.2) / _Z_STEP))
    half = np.full(k, first_half, dtype=np.int64)
    mode, n_left, d50, d95 = _mode_and_left_half(h, half, centers, edges)
    half = np.maximum(np.round(0.6 * np.maximum(d50, _Z_STEP) / _Z_STEP), first_half)
    mode, n_left, d50, d95 = _mode_and_left_half(h, half.astype(np.int64), centers, edges)
    spread = np.maximum(d50, _Z_STEP)
    ratio = d95 / spread

    table, ratios = _shape_tables()
    # ratios decrease from the heaviest shape: pick the two around each tag's ratio
    clipped = np.clip(ratio, ratios[-1], ratios[0])
    b = np.clip(np.count_nonzero(ratios[None, :] > clipped[:, None], axis=1), 1, ratios.size - 1)
    a = b - 1
    w = np.clip((ratios[a] - clipped) / (ratios[a] - ratios[b]), 0.0, 1.0)

    cdf = _background_cdf((edges[None, :] - mode[:, None]) / spread[:, None], table, a, b, w)
    cdf[:, 0], cdf[:, -1] = 0.0, 1.0
    bg = np.diff(cdf, axis=1)  # background probability per bin

    # EM for the positive component; the background stays as fitted from the left half
    n_bg0 = np.minimum(2.0 * n_left, n)
    excess = np.maximum(h - n_bg0[:, None] * bg, 0.0)
    excess[centers[None, :] < (mode + 2.0 * spread)[:, None]] = 0.0
    ex = excess.sum(axis=1)
    has = ex > 0
    safe = np.where(has, ex, 1.0)
    mu = np.where(has, (excess * centers).sum(axis=1) / safe, mode + 4.0 * spread)
    var = np.where(has, (excess * (centers - mu[:, None]) ** 2).sum(axis=1) / safe, 0.0)
    min_sd = 0.5 * spread
    sd = np.maximum(np.sqrt(var), min_sd)
    share = np.clip(ex / np.maximum(n, 1.0), 1e-4, 0.5)
    tiny = 1e-300
    left = centers[None, :] < mode[:, None]  # positives below the background mode: none
    for _ in range(_EM_ROUNDS):
        zz = (centers[None, :] - mu[:, None]) / sd[:, None]
        pos_mass = np.exp(-0.5 * zz * zz) * (_Z_STEP / (math.sqrt(2 * math.pi) * sd))[:, None]
        num = share[:, None] * pos_mass
        resp = np.where(left, 0.0, num / (num + (1.0 - share)[:, None] * bg + tiny))
        resp = np.maximum.accumulate(resp, axis=1)  # a higher score is never less likely
        wk = h * resp
        tot = wk.sum(axis=1)
        ok = tot > 0
        tot = np.where(ok, tot, 1.0)
        share = np.where(ok, np.clip(tot / np.maximum(n, 1.0), 1e-6, 0.9), share)
        mu_new = (wk * centers).sum(axis=1) / tot
        var = (wk * (centers - mu_new[:, None]) ** 2).sum(axis=1) / tot
        mu = np.where(ok, mu_new, mu)
        sd = np.where(ok, np.maximum(np.sqrt(var + _Z_STEP**2 / 12), min_sd), sd)
    zz = (centers[None, :] - mu[:, None]) / sd[:, None]
    pos_mass = np.exp(-0.5 * zz * zz) * (_Z_STEP / (math.sqrt(2 * math.pi) * sd))[:, None]
    num = share[:, None] * pos_mass
    resp = np.where(left, 0.0, num / (num + (1.0 - share)[:, None] * bg + tiny))
    resp = np.maximum.accumulate(resp, axis=1)

    # the threshold with the best expected F-beta (a cut at a bin's lower edge)
    beta2 = settings.effective_beta**2
    tp = np.cumsum((h * resp)[:, ::-1], axis=1)[:, ::-1]
    kept = np.cumsum(h[:, ::-1], axis=1)[:, ::-1]
    total = tp[:, 0]
    f = (1 + beta2) * tp / np.maximum(beta2 * total[:, None] + kept, 1e-12)
    f[edges[None, :-1] < (mode + 2.0 * spread)[:, None]] = -1.0
    cut = np.argmax(f, axis=1)
    z_cut = edges[cut]
    # trust: a real background, and more photos above the cut than it explains
    bg_above = (1.0 - share) * n * (1.0 - cdf[r, cut])
    above = kept[r, cut]
    trusted = (
        (n_left >= 0.25 * settings.mixture_min_photos)
        & (d50 > _Z_STEP)
        & (mu >= mode + 3.0 * spread)  # a tail, not a shoulder of the background
        & (total >= settings.mixture_min_positives)
        & (above - bg_above >= np.maximum(settings.mixture_min_positives, 3 * np.sqrt(bg_above)))
        & (f[r, cut] > 0)
    )
    threshold = np.where(trusted, median + z_cut * scale, np.nan)
    return MixtureFit(threshold, trusted, mode, spread, ratio, share, mu, sd, total)


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
    after an event and its undo equals fit before.
    """
    scores = _as_scores(scores)
    n_photos, n_tags = scores.shape
    idx = _tag_indices(tags, n_tags)
    subset = tags is not None
    if base is None:
        base = controller_base(feedback.controller_kinds, settings)
    st = _stats_for(scores, stats, idx, subset)
    prior = _prior(scores, settings, float(base), st, idx, subset)
    out = prior.astype(np.float64).copy()
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
    code = confidence(np.array([score]), threshold, median, max(scale, _MIN_SCALE), settings)
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


def _prepare(
    scores: np.ndarray, thresholds: np.ndarray, settings: ThresholdSettings
) -> tuple[np.ndarray, np.ndarray]:
    th = np.asarray(thresholds, dtype=scores.dtype).ravel()
    if th.size != scores.shape[1]:
        raise ValueError("thresholds must have one value per tag")
    lowered = th * np.asarray(settings.fallback_factor, dtype=scores.dtype)
    return th, np.minimum(th, lowered)


def _decide_rows(
    scores: np.ndarray,
    th: np.ndarray,
    lowered: np.ndarray,
    user: np.ndarray,
    median: np.ndarray,
    scale: np.ndarray,
    settings: ThresholdSettings,
) -> tuple[np.ndarray, np.ndarray]:
    """Decide a block of rows: (state, confidence) int8 arrays of the block's shape."""
    accepted = user == USER_ACCEPTED
    auto = user == USER_NONE
    passed = auto & (scores >= th)
    n_acc = np.count_nonzero(accepted, axis=1)
    n_pass = np.count_nonzero(passed, axis=1)
    slots = np.maximum(settings.max_tags - n_acc, 0)
    margin_rank = settings.rank_by == "margin"

    chosen = passed
    capped = np.flatnonzero(n_pass > slots)
    if capped.size:
        chosen = passed.copy()
        sub = scores[capped]
        keys = sub - th if margin_rank else sub
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
            keys = sub - th if margin_rank else sub
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
) -> Decisions:
    """Decide every photo's tags (vectorised, in row blocks).

    Per photo: user-accepted tags are in (STATE_USER) and rejected ones never; auto tags
    with score >= threshold pass and the best `max_tags` minus the accepted ones are
    suggested; if fewer than `min_tags` are in, the best remaining auto tags above
    threshold * `fallback_factor` fill the photo up to `fallback_tags` (STATE_FALLBACK,
    low confidence). "Best" is by `rank_by`; ties go to the lower tag index.
    `stats` (from `tag_stats`) is used for confidence; computed when not given.
    """
    scores = _as_scores(scores)
    user_state = np.asarray(user_state)
    _check_shapes(scores, user_state)
    th, lowered = _prepare(scores, thresholds, settings)
    stats = stats if stats is not None else tag_stats(scores)
    n_photos = scores.shape[0]
    state = np.empty(scores.shape, dtype=np.int8)
    conf = np.empty(scores.shape, dtype=np.int8)
    for start in range(0, n_photos, _ROW_CHUNK):
        block = slice(start, min(start + _ROW_CHUNK, n_photos))
        state[block], conf[block] = _decide_rows(
            scores[block], th, lowered, user_state[block], stats.median, stats.scale, settings
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
    scores = _as_scores(scores)
    idx = _tag_indices(tags, scores.shape[1])
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
) -> Decisions:
    """`decide` after a change confined to `tags`, re-deciding only rows that can change.

    `previous` must be `decide` of the same scores and settings with the same thresholds
    and user states outside `tags`. The result equals `decide` exactly. `previous` is not
    modified.
    """
    scores = _as_scores(scores)
    user_state = np.asarray(user_state)
    _check_shapes(scores, user_state)
    rows = rows_to_redecide(scores, thresholds, user_state, previous, tags, settings)
    state = previous.state.copy()
    conf = previous.confidence.copy()
    if rows.size == 0:
        return Decisions(state, conf)
    th, lowered = _prepare(scores, thresholds, settings)
    stats = stats if stats is not None else tag_stats(scores)
    for start in range(0, rows.size, _ROW_CHUNK):
        block = rows[start : start + _ROW_CHUNK]
        state[block], conf[block] = _decide_rows(
            scores[block], th, lowered, user_state[block], stats.median, stats.scale, settings
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
) -> tuple[np.ndarray, np.ndarray]:
    """(rows that gain `tag`, rows that lose it) when its threshold alone becomes `value`.

    Exactly what `decide` with the new threshold gives against `previous` (`decide` with
    `thresholds`), with the cap and the fallback as usual; only the rows that can change
    are decided again (those of `rows_to_redecide`; a user decision on the tag fixes its
    cell). "Has the tag" is `Decisions.included`. `user_cells` is the user state as
    (rows, tags, codes), so no [photos x tags] matrix is built.
    """
    scores = _as_scores(scores)
    n, k = scores.shape
    new = np.asarray(thresholds, dtype=np.float64).copy()
    new[tag] = float(value)
    th, lowered = _prepare(scores, new, settings)
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
    for start in range(0, rows.size, _ROW_CHUNK):
        block = rows[start : start + _ROW_CHUNK]
        user = np.zeros((block.size, k), dtype=np.int8)
        at = position[u_rows] - start
        mine = (at >= 0) & (at < block.size)
        user[at[mine], u_cols[mine]] = u_codes[mine]
        now[start : start + block.size] = _included(scores[block], th, lowered, user, tag, settings)
    before = was[rows]
    return rows[now & ~before], rows[before & ~now]


def _included(
    scores: np.ndarray,
    th: np.ndarray,
    lowered: np.ndarray,
    user: np.ndarray,
    tag: int,
    settings: ThresholdSettings,
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
    margin = settings.rank_by == "margin"

    def fewer_ahead(rows: np.ndarray, among: np.ndarray, limit: np.ndarray) -> np.ndarray:
        sub = scores[rows]
        keys = sub - th if margin else sub
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
    scores = _as_scores(scores)
    user_state = np.asarray(user_state)
    _check_shapes(scores, user_state)
    if limit <= 0 or scores.size == 0:
        return []
    th = np.asarray(thresholds, dtype=np.float64).ravel()
    idx = _tag_indices(tags, scores.shape[1])
    st = _stats_for(scores, stats, idx, tags is not None)
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
