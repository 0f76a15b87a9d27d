"""How many questions review has left: close calls without an answer, per tag."""

from __future__ import annotations

import numpy as np

from albumtagger.config import ThresholdSettings
from albumtagger.tagging.priors import TagStats
from albumtagger.tagging.thresholds import USER_ACCEPTED, USER_REJECTED, review_remaining


def test_close_calls_without_an_answer_are_counted_per_tag() -> None:
    settings = ThresholdSettings(confidence_high_margin=1.0)
    # two tags, threshold 0.30 each, robust std 0.02: "close" is within 0.28..0.32
    scores = np.array(
        [
            [0.31, 0.10],  # close above (tag 0)
            [0.29, 0.295],  # close below (tag 0), close below (tag 1)
            [0.35, 0.305],  # far above (tag 0), close above but answered (tag 1)
            [0.20, 0.315],  # far below (tag 0), close above but answered (tag 1)
            [0.30, 0.60],  # on the threshold (tag 0), far above (tag 1)
        ],
        dtype=np.float32,
    )
    user = np.zeros(scores.shape, dtype=np.int8)
    user[2, 1], user[3, 1] = USER_ACCEPTED, USER_REJECTED
    stats = TagStats(
        median=np.array([0.2, 0.2]),
        scale=np.array([0.02, 0.02]),
        mean=np.array([0.2, 0.2]),
        std=np.array([0.02, 0.02]),
    )
    counts = review_remaining(scores, np.array([0.30, 0.30]), user, settings, stats=stats)
    assert counts.tolist() == [3, 1]
    user[0, 0] = USER_REJECTED  # an answer: one question fewer
    counts = review_remaining(scores, np.array([0.30, 0.30]), user, settings, stats=stats)
    assert counts.tolist() == [2, 1]


def test_an_empty_library_has_no_questions() -> None:
    empty = np.zeros((0, 3), dtype=np.float32)
    counts = review_remaining(
        empty, np.full(3, 0.25), np.zeros((0, 3), np.int8), ThresholdSettings()
    )
    assert counts.tolist() == [0, 0, 0]
