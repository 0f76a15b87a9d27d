"""Each tag's score distribution over the library, and the thresholds it gives before
any label: the priors that `thresholds.fit_thresholds` starts from.

Statistics (`tag_stats`): the median and robust std (1.4826 x MAD) of each tag's library
scores, with the mean and std. Priors (`prior_thresholds`, strategy
`ThresholdSettings.prior`): "fixed" the base threshold, "mean_std", "percentile",
"robust" (median + k x robust std) and the default "mixture", a background plus a
positive tail fitted to the tag's scores (`mixture_fit`), taking the threshold with the
best expected F-beta under that fit. Pure NumPy, vectorised over tags, and the same for
any subset of tags.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from albumtagger.config import PRIORS, ThresholdSettings
from albumtagger.errors import UserError

_MAD_TO_STD = 1.4826
MIN_SCALE = 1e-4
"""Floor of a robust std (a tag whose scores are all alike)."""
ROW_CHUNK = 8192
"""Rows of a score matrix worked on at a time (bounds the temporaries)."""


@dataclass(frozen=True)
class TagStats:
    """Each tag's library-wide score distribution, float64 [tags]."""

    median: np.ndarray
    scale: np.ndarray
    """Robust std: 1.4826 * median absolute deviation (floored at 1e-4)."""
    mean: np.ndarray
    std: np.ndarray


# --------------------------------------------------------------------------- statistics


def as_scores(scores: np.ndarray) -> np.ndarray:
    """`scores` as a float32 or float64 [photos x tags] matrix (ValueError otherwise)."""
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ValueError("scores must be a [photos x tags] matrix")
    if scores.dtype not in (np.float32, np.float64):
        scores = scores.astype(np.float32)
    return scores


def tag_indices(tags: Sequence[int] | np.ndarray | None, n_tags: int) -> np.ndarray:
    """`tags` as checked column indices (all `n_tags` columns for None)."""
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
    scores = as_scores(scores)
    idx = tag_indices(tags, scores.shape[1])
    cols = scores if tags is None else scores[:, idx]
    if cols.shape[0] == 0:
        zeros = np.zeros(idx.size)
        return TagStats(zeros, np.full(idx.size, MIN_SCALE), zeros, zeros)
    finite = bool(np.isfinite(cols).all())
    median_fn = np.median if finite else np.nanmedian
    median = np.asarray(median_fn(cols, axis=0), dtype=np.float64)
    mad = np.asarray(median_fn(np.abs(cols - median.astype(cols.dtype)), axis=0), np.float64)
    scale = np.maximum(_MAD_TO_STD * np.nan_to_num(mad), MIN_SCALE)
    mean_fn, std_fn = (np.mean, np.std) if finite else (np.nanmean, np.nanstd)
    mean = np.asarray(mean_fn(cols, axis=0, dtype=np.float64))
    std = np.asarray(std_fn(cols, axis=0, dtype=np.float64))
    return TagStats(np.nan_to_num(median), scale, np.nan_to_num(mean), np.nan_to_num(std))


def stats_for(
    scores: np.ndarray, stats: TagStats | None, idx: np.ndarray, subset: bool
) -> TagStats:
    """The stats of tags `idx` (`subset`; else of all tags): taken from `stats` when
    given, else computed."""
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
    scores = as_scores(scores)
    idx = tag_indices(tags, scores.shape[1])
    base = settings.base_threshold if base is None else float(base)
    st = (
        None
        if settings.prior in ("fixed", "percentile")
        else stats_for(scores, stats, idx, tags is not None)
    )
    return tag_priors(scores, settings, base, st, idx, tags is not None)


def search_cutoff(
    scores: np.ndarray, settings: ThresholdSettings, *, base: float | None = None
) -> float:
    """The relevance cutoff of a free-text search: the threshold a new tag of the query
    would start from, its prior (`prior_thresholds`) over `scores`, the query's scores
    over the library's photos; the base threshold when there are none."""
    column = np.asarray(scores, dtype=np.float32).reshape(-1, 1)
    base = settings.base_threshold if base is None else float(base)
    if column.shape[0] == 0:
        return base
    return float(prior_thresholds(column, settings, base=base)[0])


def tag_priors(
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
    for start in range(0, n, ROW_CHUNK):
        b = cols[start : start + ROW_CHUNK] - lo
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
    scores = as_scores(scores)
    idx = tag_indices(tags, scores.shape[1])
    subset = tags is not None
    st = stats_for(scores, stats, idx, subset)
    cols = scores[:, idx] if subset else scores
    return _mixture_fit(cols, st.median, st.scale, settings)


def _mixture_fit(
    cols: np.ndarray, median: np.ndarray, scale: np.ndarray, settings: ThresholdSettings
) -> MixtureFit:
    n_rows, k = cols.shape
    median = np.asarray(median, dtype=np.float64)
    scale = np.maximum(np.asarray(scale, dtype=np.float64), MIN_SCALE)
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
