"""threshold_change: the preview of one tag's new threshold equals deciding again."""

from __future__ import annotations

import numpy as np
import pytest

from albumtagger.tagging import priors
from albumtagger.tagging import thresholds as th


def _library(seed: int, n: int = 3000, k: int = 40, rank_by: str = "margin"):
    rng = np.random.default_rng(seed)
    scores = (rng.normal(0.2, 0.05, (n, k)) + (rng.random((n, k)) < 0.05) * 0.15).astype(np.float32)
    user = np.zeros((n, k), dtype=np.int8)
    cells = rng.choice(n * k, 400, replace=False)
    user.flat[cells] = rng.choice([th.USER_ACCEPTED, th.USER_REJECTED], cells.size)
    settings = th.ThresholdSettings(max_tags=4, min_tags=2, fallback_tags=3, rank_by=rank_by)
    stats = priors.tag_stats(scores)
    thresholds = priors.prior_thresholds(scores, settings, stats=stats)
    return scores, user, settings, stats, thresholds


@pytest.mark.parametrize(("seed", "rank_by"), [(0, "margin"), (1, "margin"), (2, "score")])
def test_preview_equals_deciding_with_the_new_threshold(seed: int, rank_by: str) -> None:
    scores, user, settings, stats, thresholds = _library(seed, rank_by=rank_by)
    previous = th.decide(scores, thresholds, user, settings, stats=stats)
    rows, cols = np.nonzero(user)
    cells = (rows, cols, user[rows, cols])
    for tag in (0, 7, 31):
        for value in (0.0, 0.15, 0.22, float(thresholds[tag]), 0.3, 0.45, -0.2):
            gain, lose = th.threshold_change(
                scores, thresholds, cells, previous, tag, value, settings, stats=stats
            )
            new = thresholds.copy()
            new[tag] = value
            after = th.decide(scores, new, user, settings, stats=stats)
            had = previous.included()[:, tag]
            has = after.included()[:, tag]
            assert np.array_equal(gain, np.flatnonzero(has & ~had)), (tag, value)
            assert np.array_equal(lose, np.flatnonzero(had & ~has)), (tag, value)


def test_user_decisions_never_move() -> None:
    scores, user, settings, stats, thresholds = _library(3)
    previous = th.decide(scores, thresholds, user, settings, stats=stats)
    rows, cols = np.nonzero(user)
    cells = (rows, cols, user[rows, cols])
    tag = int(cols[0])
    decided = np.flatnonzero(user[:, tag] != 0)
    for value in (-1.0, 1.0):
        gain, lose = th.threshold_change(
            scores, thresholds, cells, previous, tag, value, settings, stats=stats
        )
        assert not np.isin(decided, np.concatenate([gain, lose])).any()


def test_match_confidence_levels() -> None:
    settings = th.ThresholdSettings()
    threshold, median, scale = th.standalone_policy(settings)
    assert threshold == settings.base_threshold
    assert th.match_confidence(threshold - 1e-3, threshold, median, scale, settings) == "no match"
    assert th.match_confidence(threshold, threshold, median, scale, settings) == "low"
    medium = threshold + settings.confidence_medium_margin * scale
    assert th.match_confidence(medium + 1e-6, threshold, median, scale, settings) == "medium"
    high = threshold + settings.confidence_high_margin * scale
    assert th.match_confidence(high + 1e-6, threshold, median, scale, settings) == "high"
