"""Rules of tag decisions and threshold learning (albumtagger.tagging.thresholds)."""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from albumtagger.errors import UserError
from albumtagger.tagging.priors import TagStats, mixture_fit, prior_thresholds, tag_stats
from albumtagger.tagging.thresholds import (
    CONF_HIGH,
    CONF_LOW,
    CONF_MEDIUM,
    CONF_NONE,
    EVENT_FN,
    EVENT_FP,
    EVENT_TN,
    EVENT_TP,
    STATE_FALLBACK,
    STATE_NONE,
    STATE_SUGGESTED,
    STATE_USER,
    USER_ACCEPTED,
    USER_REJECTED,
    Feedback,
    ThresholdSettings,
    confidence,
    controller_base,
    controller_update,
    decide,
    diff_decisions,
    fit_thresholds,
    redecide_tags,
    review_queue,
    threshold_change,
)

ROOT = Path(__file__).resolve().parents[2]


def one_photo(scores, thresholds, user=None, settings=None):
    s = np.asarray([scores], dtype=np.float32)
    u = np.zeros(s.shape, np.int8) if user is None else np.asarray([user], np.int8)
    n = s.shape[1]
    stats = TagStats(np.zeros(n), np.full(n, 0.05), np.zeros(n), np.zeros(n))
    d = decide(s, np.asarray(thresholds, float), u, settings or ThresholdSettings(), stats=stats)
    return d.state[0], d.confidence[0]


def _ranking(s, th, rank_by, first=None):
    ahead = (lambda t: not first[t]) if first is not None else (lambda t: False)
    if rank_by == "margin":
        return lambda t: (ahead(t), -(s[t] - th[t]), t)
    return lambda t: (ahead(t), -s[t], t)


def reference_state(scores, thresholds, user, settings, first=None):
    """Plain per-photo reading of the rules (DESIGN.md, "Tags and thresholds"); the tags
    `first` rank before the others and are never a fallback guess."""
    th = thresholds.astype(scores.dtype)
    low = np.minimum(th, th * np.asarray(settings.fallback_factor, scores.dtype))
    if first is not None:
        low = np.where(first, th, low)
    out = np.zeros(scores.shape, np.int8)
    for r in range(scores.shape[0]):
        s, u = scores[r], user[r]
        acc = [t for t in range(s.size) if u[t] == 1]
        key = _ranking(s, th, settings.rank_by, first)
        passed = sorted((t for t in range(s.size) if u[t] == 0 and s[t] >= th[t]), key=key)
        for t in passed[: max(settings.max_tags - len(acc), 0)]:
            out[r, t] = STATE_SUGGESTED
        if len(acc) + len(passed) < settings.min_tags:
            need = min(settings.fallback_tags, settings.max_tags) - len(acc) - len(passed)
            rest = sorted(
                (t for t in range(s.size) if u[t] == 0 and th[t] > s[t] >= low[t]), key=key
            )
            for t in rest[: max(need, 0)]:
                out[r, t] = STATE_FALLBACK
        out[r, acc] = STATE_USER
    return out


def random_library(rng, n_photos=300, n_tags=25, ties=True):
    scores = rng.normal(0.2, 0.06, (n_photos, n_tags))
    if ties:
        scores = np.round(scores, 2)
    scores = scores.astype(np.float32)
    thresholds = rng.uniform(0.18, 0.32, n_tags)
    user = np.zeros(scores.shape, np.int8)
    cells = rng.random(scores.shape)
    user[cells < 0.03] = USER_ACCEPTED
    user[cells > 0.97] = USER_REJECTED
    return scores, thresholds, user


# ----------------------------------------------------------------------- per-photo rules


def test_tags_at_or_above_threshold_pass():
    state, conf = one_photo([0.30, 0.25, 0.249, 0.40, 0.26], [0.25] * 5)
    assert state.tolist() == [1, 1, 0, 1, 1]
    assert conf[2] == CONF_NONE and (conf[[0, 1, 3, 4]] > CONF_NONE).all()


def test_per_tag_thresholds_apply_per_tag():
    state, _ = one_photo([0.30, 0.30, 0.30, 0.30], [0.20, 0.35, 0.29, 0.31])
    assert state.tolist() == [1, 2, 1, 2]  # two pass, the fallback adds the other two
    state, _ = one_photo(
        [0.30] * 4, [0.20, 0.35, 0.29, 0.31], settings=ThresholdSettings(min_tags=2)
    )
    assert state.tolist() == [1, 0, 1, 0]


def test_max_tags_keeps_the_best_by_margin():
    scores = np.linspace(0.30, 0.44, 15)
    state, _ = one_photo(scores, [0.25] * 15)
    assert np.flatnonzero(state == STATE_SUGGESTED).tolist() == list(range(5, 15))
    # margin, not raw score: tag 0 has a low score but a low threshold too
    th = [0.10] + [0.25] * 14
    state, _ = one_photo(scores, th)
    assert state[0] == STATE_SUGGESTED and state[5] == STATE_NONE
    state, _ = one_photo(scores, th, settings=ThresholdSettings(rank_by="score"))
    assert state[0] == STATE_NONE and state[5] == STATE_SUGGESTED


def test_max_tags_setting_and_ties_go_to_lower_tag():
    state, _ = one_photo([0.3] * 6, [0.25] * 6, settings=ThresholdSettings(max_tags=4))
    assert state.tolist() == [1, 1, 1, 1, 0, 0]


def test_user_accepted_tags_take_slots_of_the_cap():
    scores = np.full(14, 0.4)
    user = [1, 1, 1] + [0] * 11
    scores[:3] = 0.05  # accepted below any threshold: still in
    state, conf = one_photo(scores, [0.25] * 14, user)
    assert (state[:3] == STATE_USER).all() and (conf[:3] == CONF_HIGH).all()
    assert np.count_nonzero(state == STATE_SUGGESTED) == 7


def test_fallback_lowers_thresholds_and_fills_to_five_low_confidence():
    # one passes; four above 0.8 * 0.25 = 0.2; best ones first
    scores = [0.30, 0.24, 0.21, 0.23, 0.205, 0.22, 0.19]
    state, conf = one_photo(scores, [0.25] * 7)
    assert state.tolist() == [1, 2, 2, 2, 0, 2, 0]
    assert (conf[state == STATE_FALLBACK] == CONF_LOW).all()


def test_fallback_never_picks_tags_below_lowered_thresholds():
    scores = [0.30, 0.21, 0.199, 0.15]
    state, _ = one_photo(scores, [0.25] * 4)
    assert state.tolist() == [1, 2, 0, 0]
    # per tag: lowered threshold of tag 1 is 0.32 * 0.8 = 0.256
    state, _ = one_photo([0.30, 0.25, 0.21], [0.25, 0.32, 0.25])
    assert state.tolist() == [1, 0, 2]


def test_fallback_factor_and_counts_are_settings():
    scores = [0.30, 0.19, 0.18, 0.17, 0.16]
    s = ThresholdSettings(fallback_factor=0.6, fallback_tags=4)
    state, _ = one_photo(scores, [0.25] * 5, settings=s)
    assert state.tolist() == [1, 2, 2, 2, 0]
    s = ThresholdSettings(min_tags=1)
    state, _ = one_photo(scores, [0.25] * 5, settings=s)
    assert state.tolist() == [1, 0, 0, 0, 0]


def test_no_fallback_when_min_tags_pass_or_are_accepted():
    state, _ = one_photo([0.3, 0.3, 0.3, 0.24], [0.25] * 4)
    assert state.tolist() == [1, 1, 1, 0]
    state, _ = one_photo([0.3, 0.1, 0.1, 0.24], [0.25] * 4, user=[0, 1, 1, 0])
    assert state.tolist() == [1, 3, 3, 0]
    # accepted count toward the fill target too: 1 accepted + 1 pass -> 3 more
    state, _ = one_photo([0.1, 0.3, 0.24, 0.23, 0.22, 0.21], [0.25] * 6, user=[1, 0, 0, 0, 0, 0])
    assert state.tolist() == [3, 1, 2, 2, 2, 0]


def test_rejected_never_in_even_by_fallback():
    state, _ = one_photo([0.9, 0.3, 0.24, 0.23], [0.25] * 4, user=[-1, 0, -1, 0])
    assert state.tolist() == [0, 1, 0, 2]


def test_nan_scores_never_pass():
    state, _ = one_photo([np.nan, 0.3, 0.3, 0.3], [0.25] * 4)
    assert state.tolist() == [0, 1, 1, 1]


def test_confidence_levels_from_margin_and_position():
    s = ThresholdSettings()
    median, scale = np.array([0.2]), np.array([0.02])
    codes = confidence(np.array([0.251, 0.26, 0.28, 0.27]), np.array([0.25]), median, scale, s)
    # margins (robust stds): 0.05, 0.5, 1.5, 1.0; positions: 2.55, 3, 4, 3.5
    assert codes.tolist() == [CONF_LOW, CONF_MEDIUM, CONF_HIGH, CONF_HIGH]
    # a big margin over a threshold set inside the bulk is not high confidence
    assert confidence(np.array([0.23]), np.array([0.2]), median, scale, s)[0] == CONF_MEDIUM


def test_decide_matches_plain_reading_of_rules():
    rng = np.random.default_rng(1)
    for settings in (ThresholdSettings(), ThresholdSettings(rank_by="score", max_tags=4)):
        scores, thresholds, user = random_library(rng)
        d = decide(scores, thresholds, user, settings)
        assert np.array_equal(d.state, reference_state(scores, thresholds, user, settings))
        assert (d.confidence[d.state == STATE_FALLBACK] == CONF_LOW).all()
        assert (d.confidence[d.state == STATE_USER] == CONF_HIGH).all()
        assert (d.confidence[d.state == STATE_NONE] == CONF_NONE).all()


@pytest.mark.parametrize("seed", range(3))
def test_tags_ranked_first_take_the_slots_before_the_others(seed):
    """The user's own tags (learned from their photos) come first among a photo's
    suggestions, whatever their margin, and are never a fallback guess."""
    rng = np.random.default_rng(40 + seed)
    settings = ThresholdSettings(max_tags=3, min_tags=3, fallback_tags=4)
    scores, thresholds, user = random_library(rng, n_photos=200, n_tags=12)
    first = np.zeros(12, dtype=bool)
    first[[2, 9]] = True
    d = decide(scores, thresholds, user, settings, first=first)
    assert np.array_equal(d.state, reference_state(scores, thresholds, user, settings, first))
    plain = decide(scores, thresholds, user, settings)
    assert not np.array_equal(d.state, plain.state)  # it changes who gets the slots
    free = (user == USER_ACCEPTED).sum(axis=1) == 0  # 3 slots: two tags first fit
    passed = (scores >= thresholds.astype(np.float32)) & (user == 0)
    assert (d.state[passed[:, 2] & free, 2] == STATE_SUGGESTED).all()
    assert not (d.state[:, first] == STATE_FALLBACK).any()
    assert (plain.state[:, first] == STATE_FALLBACK).any()
    # the partial re-decision and the preview agree with it
    new = thresholds.copy()
    new[9] *= 0.8
    full = decide(scores, new, user, settings, first=first)
    fast = redecide_tags(scores, new, user, d, [9], settings, first=first)
    assert np.array_equal(fast.state, full.state)
    rows, cols = np.nonzero(user)
    gain, lose = threshold_change(
        scores,
        thresholds,
        (rows, cols, user[rows, cols]),
        d,
        9,
        float(new[9]),
        settings,
        stats=tag_stats(scores),
        first=first,
    )
    had, has = d.included()[:, 9], full.included()[:, 9]
    assert np.array_equal(gain, np.flatnonzero(has & ~had))
    assert np.array_equal(lose, np.flatnonzero(had & ~has))


# ---------------------------------------------------------------------------- redecide


@pytest.mark.parametrize("seed", range(6))
def test_redecide_equals_decide(seed):
    rng = np.random.default_rng(seed)
    settings = ThresholdSettings(max_tags=int(rng.integers(3, 8)))
    scores, thresholds, user = random_library(rng, n_photos=400, n_tags=20)
    stats = tag_stats(scores)
    previous = decide(scores, thresholds, user, settings, stats=stats)
    for _ in range(4):
        tags = rng.choice(scores.shape[1], size=int(rng.integers(1, 4)), replace=False)
        thresholds = thresholds.copy()
        thresholds[tags] *= rng.uniform(0.6, 1.4, tags.size)
        user = user.copy()
        cells = rng.integers(0, scores.shape[0], 30)
        user[cells, tags[0]] = rng.integers(-1, 2, 30)
        fast = redecide_tags(scores, thresholds, user, previous, tags, settings, stats=stats)
        full = decide(scores, thresholds, user, settings, stats=stats)
        assert np.array_equal(fast.state, full.state)
        assert np.array_equal(fast.confidence, full.confidence)
        previous = fast
    everything = redecide_tags(
        scores, thresholds * 0.9, user, previous, np.arange(20), settings, stats=stats
    )
    assert np.array_equal(everything.state, decide(scores, thresholds * 0.9, user, settings).state)


def test_redecide_leaves_previous_untouched_and_diff_lists_changes():
    rng = np.random.default_rng(7)
    scores, thresholds, user = random_library(rng, ties=False)
    settings = ThresholdSettings()
    previous = decide(scores, thresholds, user, settings)
    before = previous.state.copy()
    th = thresholds.copy()
    th[3] = 0.1
    new = redecide_tags(scores, th, user, previous, [3], settings)
    assert np.array_equal(previous.state, before)
    rows, cols = diff_decisions(previous, new)
    assert rows.size > 0
    assert set(np.unique(cols).tolist()) >= {3}


# -------------------------------------------------------------------------- controller


def kinds(*parts):
    out = []
    for kind, count in parts:
        out += [kind] * count
    return np.array(out, np.int8)


def test_controller_waits_for_min_events():
    s = ThresholdSettings()
    assert controller_update(kinds((EVENT_FP, 49)), 0.25, s) == 0.25
    assert controller_update(kinds((EVENT_FP, 50)), 0.25, s) == pytest.approx(0.26)


def test_controller_steps_and_thresholds_of_rates():
    s = ThresholdSettings()
    # exactly 10% false positives is not above 0.10
    ok = kinds((EVENT_TP, 90), (EVENT_FP, 10))
    assert controller_update(ok, 0.25, s) == 0.25
    assert controller_update(kinds((EVENT_TP, 89), (EVENT_FP, 11)), 0.25, s) == pytest.approx(0.26)
    assert controller_update(kinds((EVENT_TP, 85), (EVENT_FN, 15)), 0.25, s) == 0.25
    assert controller_update(kinds((EVENT_TP, 84), (EVENT_FN, 16)), 0.25, s) == pytest.approx(0.24)
    # both too high: the two steps cancel
    both = kinds((EVENT_TP, 60), (EVENT_FP, 20), (EVENT_FN, 20))
    assert controller_update(both, 0.25, s) == 0.25
    # true negatives count as events, not as errors
    assert controller_update(kinds((EVENT_TN, 100)), 0.25, s) == 0.25


def test_controller_uses_last_window_only():
    s = ThresholdSettings()
    old_errors = kinds((EVENT_FP, 100), (EVENT_TP, 90))  # last 100: 10 FP
    assert controller_update(old_errors, 0.25, s) == 0.25
    assert controller_update(old_errors[:-1], 0.25, s) == pytest.approx(0.26)  # 11 FP
    small = dataclasses.replace(s, controller_window=10, controller_min_events=5)
    assert controller_update(kinds((EVENT_FP, 50), (EVENT_TP, 10)), 0.25, small) == 0.25


def test_controller_clamps():
    s = ThresholdSettings()
    assert controller_update(kinds((EVENT_FP, 60)), 0.50, s) == 0.50
    assert controller_update(kinds((EVENT_FN, 60)), 0.10, s) == 0.10
    assert controller_base(kinds((EVENT_FP, 500)), s) == 0.50
    assert controller_base(kinds((EVENT_FN, 500)), s) == 0.10


def test_controller_base_replays_every_step():
    rng = np.random.default_rng(3)
    s = ThresholdSettings()
    events = rng.choice([EVENT_TP, EVENT_FP, EVENT_FN, EVENT_TN], 400, p=[0.6, 0.2, 0.1, 0.1])
    base = s.base_threshold
    for i in range(events.size):
        base = controller_update(events[: i + 1], base, s)
        assert controller_base(events[: i + 1], s) == pytest.approx(base, abs=1e-9)
    assert controller_base(kinds((EVENT_FP, 60)), s) == pytest.approx(0.25 + 11 * 0.01)


def test_feedback_event_encoding_and_labels():
    fb = Feedback.from_events(
        [
            (0, 1, True, True),  # accept a suggestion
            (0, 2, False, True),  # reject a suggestion
            (1, 1, True, False),  # add a tag
            (2, 1, False, False, True),  # "no" in the review queue
            (0, 2, True, False),  # changed mind: add it back
        ]
    )
    assert fb.kinds.tolist() == [EVENT_TP, EVENT_FP, EVENT_FN, EVENT_TN, EVENT_FN]
    assert fb.controller_kinds.tolist() == [EVENT_TP, EVENT_FP, EVENT_FN, EVENT_FN]
    photo, tag, positive = fb.labels()
    labels = sorted(zip(photo.tolist(), tag.tolist(), positive.tolist(), strict=True))
    assert labels == [(0, 1, True), (0, 2, True), (1, 1, True), (2, 1, False)]
    assert len(Feedback.empty()) == 0


def test_review_answers_do_not_move_the_base_but_corrections_do():
    rng = np.random.default_rng(0)
    scores = rng.normal(0.2, 0.03, (200, 3)).astype(np.float32)
    s = ThresholdSettings(prior="fixed")
    rejects = [(i, 0, False, True, True) for i in range(60)]
    assert fit_thresholds(scores, Feedback.from_events(rejects), s, tags=[1])[0] == 0.25
    organic = [(i, 0, False, True, False) for i in range(60)]
    assert fit_thresholds(scores, Feedback.from_events(organic), s, tags=[1])[0] == pytest.approx(
        0.25 + 11 * 0.01
    )


# ------------------------------------------------------------------------------ priors


def test_priors_per_strategy():
    rng = np.random.default_rng(0)
    offsets = np.array([0.1, 0.2, 0.3, 0.15])
    scores = (rng.standard_t(4, (2000, 4)) * 0.03 + offsets).astype(np.float32)
    s = ThresholdSettings(prior_photos=0, prior="robust")
    assert np.allclose(prior_thresholds(scores, dataclasses.replace(s, prior="fixed")), 0.25)
    ms = prior_thresholds(scores, dataclasses.replace(s, prior="mean_std"))
    assert np.allclose(ms, scores.mean(0, dtype=float) + 0.5 * scores.std(0, dtype=float))
    pc = prior_thresholds(scores, dataclasses.replace(s, prior="percentile", prior_percentile=90))
    assert np.allclose(pc, np.percentile(scores, 90, axis=0))
    med = np.median(scores, axis=0)
    mad = np.median(np.abs(scores - med), axis=0)
    assert np.allclose(prior_thresholds(scores, s), med + 3.0 * 1.4826 * mad, atol=1e-6)
    assert np.allclose(
        prior_thresholds(scores, s, tags=[2, 0]), prior_thresholds(scores, s)[[2, 0]]
    )
    # the base moves every distribution prior only when asked to
    shifted = dataclasses.replace(s, controller_shifts_priors=True)
    assert np.allclose(prior_thresholds(scores, s, base=0.3), prior_thresholds(scores, s))
    assert np.allclose(
        prior_thresholds(scores, shifted, base=0.3), prior_thresholds(scores, s) + 0.05
    )


def test_small_libraries_lean_on_the_base_threshold():
    rng = np.random.default_rng(1)
    scores = (rng.normal(0.05, 0.02, (2000, 3))).astype(np.float32)
    s = ThresholdSettings(prior_photos=20)
    trusting = dataclasses.replace(s, prior_photos=0)
    assert np.allclose(prior_thresholds(scores[:0], s), 0.25)  # empty library: the base
    few = prior_thresholds(scores[:20], s)
    raw = prior_thresholds(scores[:20], trusting)
    assert np.allclose(few, 0.25 + 0.5 * (raw - 0.25))  # 20 photos: half way
    many = prior_thresholds(scores, s)
    assert np.allclose(many, 0.25 + (2000 / 2020) * (prior_thresholds(scores, trusting) - 0.25))


def two_component(n, prevalence, seed, neg=(0.20, 0.03), pos=(0.30, 0.03)):
    rng = np.random.default_rng(seed)
    truth = rng.random(n) < prevalence
    scores = np.where(truth, rng.normal(*pos, n), rng.normal(*neg, n))
    return scores.astype(np.float32)[:, None], truth[:, None]


MIXTURE = ThresholdSettings(prior="mixture", prior_photos=0)
ROBUST = ThresholdSettings(prior="robust", prior_photos=0)


@pytest.mark.parametrize(
    ("prevalence", "neg", "pos"),
    [
        (0.02, (0.20, 0.03), (0.32, 0.03)),
        (0.1, (0.20, 0.03), (0.30, 0.03)),
        (0.3, (0.05, 0.02), (0.15, 0.03)),
    ],
)
def test_mixture_prior_recovers_the_optimum(prevalence, neg, pos):
    scores, truth = two_component(20000, prevalence, 0, neg, pos)
    fit = mixture_fit(scores, MIXTURE)
    assert fit.trusted[0]
    assert fit.expected_positives[0] == pytest.approx(truth.sum(), rel=0.2)
    optimum = fbeta_optimum(scores[:, 0], truth[:, 0])
    prior = prior_thresholds(scores, MIXTURE)[0]
    assert prior == fit.threshold[0]
    assert abs(prior - optimum) < 0.25 * neg[1]
    # the robust prior is far off at a high prevalence; the mixture is not
    if prevalence >= 0.1:
        assert abs(prior_thresholds(scores, ROBUST)[0] - optimum) > 2 * abs(prior - optimum)
    by_pref = {
        p: prior_thresholds(scores, dataclasses.replace(MIXTURE, preference=p))[0]
        for p in ("precision", "balanced", "recall")
    }
    assert by_pref["precision"] > by_pref["balanced"] > by_pref["recall"]


def test_mixture_prior_falls_back_to_robust():
    rng = np.random.default_rng(3)
    robust = lambda s: prior_thresholds(s, ROBUST)  # noqa: E731
    # no tail: a Gaussian, a heavy-tailed and a light-tailed background alone
    for col in (
        rng.normal(0.2, 0.03, 20000),
        0.15 + 0.02 * rng.standard_t(3, 20000),
        0.1 + 0.05 * rng.uniform(-1, 1, 20000),
    ):
        scores = col.astype(np.float32)[:, None]
        assert not mixture_fit(scores, MIXTURE).trusted[0]
        assert np.array_equal(prior_thresholds(scores, MIXTURE), robust(scores))
    # too few photos, even with a clear tail
    scores, _ = two_component(150, 0.1, 4)
    assert not mixture_fit(scores, MIXTURE).trusted.any()
    assert np.array_equal(prior_thresholds(scores, MIXTURE), robust(scores))
    assert mixture_fit(scores[:, :0], MIXTURE).threshold.size == 0
    # degenerate and NaN columns neither crash nor pass everything
    flat = np.zeros((1000, 2), np.float32)
    flat[:, 1] = np.nan
    th = prior_thresholds(flat, MIXTURE)
    assert th[0] == pytest.approx(robust(flat)[0]) and np.isfinite(th[0])
    scores, _ = two_component(5000, 0.1, 5)
    holed = scores.copy()
    holed[::7] = np.nan
    assert abs(prior_thresholds(holed, MIXTURE)[0] - prior_thresholds(scores, MIXTURE)[0]) < 0.01


def test_mixture_partial_fit_equals_full_fit():
    sim = _load_sim()
    scores, truth = sim.make_family("prevalence", 3000, 12, seed=1)
    s = ThresholdSettings()
    assert s.prior == "mixture"
    rng = np.random.default_rng(0)
    events = [
        (int(p), int(t), bool(truth[p, t]), False, True)
        for p, t in zip(rng.integers(0, 3000, 60), rng.integers(0, 12, 60), strict=True)
    ]
    fb = Feedback.from_events(events)
    stats = tag_stats(scores)
    full = fit_thresholds(scores, fb, s, stats=stats)
    for tags in ([3], [7, 1], [11, 0, 5]):
        assert np.array_equal(fit_thresholds(scores, fb, s, stats=stats, tags=tags), full[tags])
        assert np.array_equal(fit_thresholds(scores, fb, s, tags=tags), full[tags])
        assert np.array_equal(
            prior_thresholds(scores, s, tags=tags), prior_thresholds(scores, s)[tags]
        )


@pytest.mark.parametrize("family", ["prevalence", "heavy_tails", "correlated"])
def test_mixture_prior_beats_one_global_threshold(family):
    sim = _load_sim()
    for seed in (0, 1):
        scores, truth = sim.make_family(family, 3000, 30, seed=seed)
        g = sim.best_global_threshold(scores, truth)
        best_global = sim.metrics(scores >= g, truth)["micro_f1"]
        mixture = sim.metrics(sim._passes(scores, prior_thresholds(scores, MIXTURE)), truth)
        robust = sim.metrics(sim._passes(scores, prior_thresholds(scores, ROBUST)), truth)
        assert mixture["micro_f1"] > best_global
        assert mixture["micro_f1"] > robust["micro_f1"] - 0.02


def test_settings_validation_and_beta():
    ThresholdSettings().validate()
    ThresholdSettings(prior="mixture").validate()
    assert ThresholdSettings().prior == "mixture"
    for bad in (
        {"prior": "magic"},
        {"preference": "fast"},
        {"rank_by": "name"},
        {"min_base": 0.6},
        {"fallback_factor": 1.5},
        {"max_tags": 0},
        {"mixture_min_photos": -1},
    ):
        with pytest.raises(UserError):
            ThresholdSettings(**bad).validate()
    assert ThresholdSettings(preference="precision").effective_beta == 0.5
    assert ThresholdSettings(preference="recall").effective_beta == 2.0
    assert ThresholdSettings(preference="recall", beta=1.5).effective_beta == 1.5
    for f in dataclasses.fields(ThresholdSettings):
        assert f.type in ("int", "float", "str", "bool"), f.name


# --------------------------------------------------------------------------------- fit


def two_class_tag(n=6000, prevalence=0.1, seed=0):
    """One tag: negatives ~ N(0.20, 0.03), positives ~ N(0.30, 0.03)."""
    rng = np.random.default_rng(seed)
    truth = rng.random(n) < prevalence
    scores = np.where(truth, rng.normal(0.30, 0.03, n), rng.normal(0.20, 0.03, n))
    return scores.astype(np.float32)[:, None], truth[:, None]


def fbeta_optimum(scores, truth, beta=1.0):
    order = np.argsort(-scores)
    s, y = scores[order], truth[order]
    tp = np.cumsum(y)
    j = np.arange(1, s.size + 1)
    b2 = beta * beta
    f = (1 + b2) * tp / (b2 * y.sum() + j)
    return float(s[int(np.argmax(f))])


def labels_for(truth, photos, tag=0):
    return Feedback.from_events((int(p), tag, bool(truth[p, tag]), False, True) for p in photos)


def test_no_labels_gives_the_prior():
    scores, _ = two_class_tag()
    s = ThresholdSettings()
    assert np.array_equal(fit_thresholds(scores, Feedback.empty(), s), prior_thresholds(scores, s))


def test_many_labels_reach_the_data_optimum():
    scores, truth = two_class_tag()
    s = ThresholdSettings(prior="robust")  # a prior away from the optimum
    rng = np.random.default_rng(1)
    photos = rng.choice(scores.shape[0], 1500, replace=False)
    th = fit_thresholds(scores, labels_for(truth, photos), s)[0]
    optimum = fbeta_optimum(scores[:, 0], truth[:, 0])
    prior = prior_thresholds(scores, s)[0]
    assert abs(prior - optimum) > 0.02
    assert abs(th - optimum) < 0.01


def test_labels_near_the_threshold_are_not_a_biased_sample():
    # every label sits within 0.01 of the prior: F1 on them alone is meaningless
    scores, truth = two_class_tag()
    s = ThresholdSettings(prior="robust")  # a prior away from the optimum
    prior = prior_thresholds(scores, s)[0]
    optimum = fbeta_optimum(scores[:, 0], truth[:, 0])
    near = np.flatnonzero(np.abs(scores[:, 0] - prior) < 0.01)[:60]
    th = fit_thresholds(scores, labels_for(truth, near), s)[0]
    assert abs(th - optimum) < abs(prior - optimum)


def test_shrinkage_by_event_count():
    scores, truth = two_class_tag()
    prior = prior_thresholds(scores, ThresholdSettings())[0]
    rng = np.random.default_rng(2)
    for n in (1, 3, 20):
        fb = labels_for(truth, rng.choice(scores.shape[0], n, replace=False))
        free = fit_thresholds(scores, fb, ThresholdSettings(shrinkage_events=0))[0]
        shrunk = fit_thresholds(scores, fb, ThresholdSettings(shrinkage_events=3))[0]
        assert shrunk - prior == pytest.approx(n / (n + 3) * (free - prior))
    # with one label a tag stays near its prior
    one = labels_for(truth, [int(np.flatnonzero(truth[:, 0])[0])])
    assert abs(fit_thresholds(scores, one, ThresholdSettings())[0] - prior) < 0.015


def test_shrinkage_toward_base_with_fixed_prior():
    scores, truth = two_class_tag()
    s = ThresholdSettings(prior="fixed", shrinkage_events=1e9)
    fb = labels_for(truth, range(500))
    assert fit_thresholds(scores, fb, s)[0] == pytest.approx(0.25, abs=1e-6)


def test_preference_moves_thresholds_the_right_way():
    scores, truth = two_class_tag()
    fb = labels_for(truth, range(0, 6000, 4))
    th = {
        p: fit_thresholds(scores, fb, ThresholdSettings(preference=p))[0]
        for p in ("precision", "balanced", "recall")
    }
    assert th["precision"] > th["balanced"] + 0.005
    assert th["recall"] < th["balanced"] - 0.005
    assert fit_thresholds(scores, fb, ThresholdSettings(beta=0.5))[0] == th["precision"]


def test_fit_after_correction_and_undo_equals_fit_before():
    rng = np.random.default_rng(4)
    scores = rng.normal(0.2, 0.04, (1000, 6)).astype(np.float32)
    truth = scores > 0.25
    events = [
        (int(p), int(t), bool(truth[p, t]), bool(rng.random() < 0.5), False)
        for p, t in zip(rng.integers(0, 1000, 80), rng.integers(0, 6, 80), strict=True)
    ]
    s = ThresholdSettings()
    before = fit_thresholds(scores, Feedback.from_events(events), s)
    extra = (5, 2, not bool(truth[5, 2]), True, False)
    after = fit_thresholds(scores, Feedback.from_events([*events, extra]), s)
    undone = fit_thresholds(scores, Feedback.from_events(events), s)
    assert not np.array_equal(before, after)
    assert np.array_equal(before, undone)
    # refitting only the touched tag gives the same value as a full fit
    assert (
        fit_thresholds(scores, Feedback.from_events([*events, extra]), s, tags=[2])[0] == after[2]
    )


def test_latest_event_per_cell_is_the_label():
    scores, truth = two_class_tag()
    s = ThresholdSettings()
    p = int(np.flatnonzero(truth[:, 0])[0])
    changed = Feedback.from_events([(p, 0, False, True), (p, 0, True, False)])
    same = Feedback.from_events([(p, 0, True, False)])
    s_nc = dataclasses.replace(s, controller_min_events=10**6)
    assert fit_thresholds(scores, changed, s_nc)[0] == fit_thresholds(scores, same, s_nc)[0]


# ------------------------------------------------------------------------------ review


def test_review_queue_nearest_first_and_skips_decided():
    scores = np.array([[0.26, 0.40], [0.30, 0.31], [0.24, 0.50], [0.251, 0.29]], dtype=np.float32)
    user = np.zeros(scores.shape, np.int8)
    th = np.array([0.25, 0.30])
    stats = TagStats(np.zeros(2), np.array([0.01, 0.02]), np.zeros(2), np.zeros(2))
    s = ThresholdSettings(review_per_tag=0)
    queue = review_queue(scores, th, user, 10, s, stats=stats)
    # distances in robust stds: (3,0) 0.1, (1,1) 0.5, (3,1) 0.5, (0,0) 1, (2,0) 1, ...
    assert [(p, t) for p, t, _ in queue][:5] == [(3, 0), (1, 1), (3, 1), (0, 0), (2, 0)]
    assert queue[0][2] == pytest.approx(0.001, abs=1e-6)
    assert queue[3][2] == pytest.approx(0.01, abs=1e-6)
    user[3, 0] = USER_REJECTED
    user[1, 1] = USER_ACCEPTED
    queue = review_queue(scores, th, user, 2, s, stats=stats)
    assert [(p, t) for p, t, _ in queue] == [(3, 1), (0, 0)]
    capped = review_queue(scores, th, user, 10, ThresholdSettings(review_per_tag=1), stats=stats)
    assert [(p, t) for p, t, _ in capped] == [(3, 1), (0, 0)]
    only = review_queue(scores, th, user, 10, s, stats=stats, tags=[1])
    assert {t for _, t, _ in only} == {1} and only[0][:2] == (3, 1)
    assert review_queue(scores, th, user, 0, s, stats=stats) == []


# ---------------------------------------------------------------------- whole behaviour


def _load_sim():
    path = ROOT / "benchmarks" / "threshold_sim.py"
    spec = importlib.util.spec_from_file_location("threshold_sim", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("threshold_sim", module)
    spec.loader.exec_module(module)
    return module


def test_simulation_meets_the_bars():
    sim = _load_sim()
    scores, truth = sim.make_scenario(3000, 60, seed=0)
    four = sim.simulate(scores, truth, 4)
    ten = sim.simulate(scores, truth, 10)
    r4, r10 = four["results"], ten["results"]
    assert r4["prior_only"]["micro_f1"] > r4["best_global_hindsight"]["micro_f1"]
    assert r4["policy"]["micro_f1"] >= r4["best_global_hindsight"]["micro_f1"] + 0.05
    assert r10["policy"]["micro_f1"] >= 0.85 * r10["per_tag_hindsight"]["micro_f1"]
    assert r10["policy"]["micro_f1"] > r4["prior_only"]["micro_f1"]


def test_module_imports_only_numpy_and_stdlib():
    path = ROOT / "albumtagger" / "tagging" / "thresholds.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    assert names <= {"__future__", "math", "collections", "dataclasses", "numpy", "albumtagger"}


def test_state_codes_are_distinct():
    codes = {STATE_NONE, STATE_SUGGESTED, STATE_FALLBACK, STATE_USER}
    assert len(codes) == 4 and len({CONF_NONE, CONF_LOW, CONF_MEDIUM, CONF_HIGH}) == 4
