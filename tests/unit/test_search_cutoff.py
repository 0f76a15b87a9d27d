"""A free-text search's relevance cutoff: a new tag's prior over the query's scores."""

from __future__ import annotations

import numpy as np

from albumtagger.config import ThresholdSettings
from albumtagger.tagging.priors import search_cutoff


def bimodal(matches: int, others: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(0.52, 0.015, matches), rng.normal(0.40, 0.02, others)


def test_the_cutoff_separates_a_clear_bimodal_distribution() -> None:
    for prior in ("mixture", "robust"):
        settings = ThresholdSettings(prior=prior)
        matching, others = bimodal(60, 1500)
        cutoff = search_cutoff(np.concatenate([others, matching]), settings)
        assert (matching >= cutoff).all(), (prior, cutoff)
        assert (others >= cutoff).mean() < 0.01, (prior, cutoff)


def test_the_cutoff_follows_the_controllers_base_and_has_one_without_scores() -> None:
    settings = ThresholdSettings()
    assert search_cutoff(np.zeros(0), settings) == settings.base_threshold
    assert search_cutoff(np.zeros(0), settings, base=0.3) == 0.3
    # a tiny library trusts its distribution little: the cutoff stays near the base
    matching, others = bimodal(1, 3)
    few = search_cutoff(np.concatenate([others, matching]), settings)
    assert abs(few - settings.base_threshold) < abs(few - others.mean())
