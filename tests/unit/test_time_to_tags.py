"""The estimate of when every photo has tags and is refined, on synthetic timings."""

from __future__ import annotations

import pytest

from albumtagger.service.progress import TimeToTags


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def run_first_pass(
    eta: TimeToTags, clock: Clock, total: int, upto: int, per_photo, in_model: float = 1.0
) -> None:
    """Batches of 4 photos, `per_photo(i)` seconds each, the share `in_model` of it in
    the model."""
    eta.observe("first pass", 0, total)
    model_s = 0.0
    for done in range(4, upto + 1, 4):
        clock.now += 4 * per_photo(done)
        model_s += 4 * per_photo(done) * in_model
        eta.observe("first pass", done, total, model_s)


def test_first_pass_and_refine_estimated_from_the_first_pass_rate() -> None:
    clock = Clock()
    eta = TimeToTags(clock)
    eta.set_backlog(unrefined=100, cost_ratio=4.0)  # 100 photos waiting from before
    eta.observe("first pass", 0, 1000)
    assert eta.estimate() == (None, None)  # nothing measured yet
    # 1 s a photo, with every third batch 50% slower: the rate does not swing with it
    run_first_pass(eta, clock, 1000, 200, lambda i: 1.5 if i % 12 == 0 else 1.0, 0.8)
    tags, refined = eta.estimate()
    assert tags == pytest.approx(800 * 7 / 6, rel=0.03)
    # the refine: 1,100 photos (the backlog and the whole first pass), the time in the
    # model at 4x the cost, the rest (reading, deciding) as it was
    assert refined == pytest.approx(tags + 1100 * (0.2 + 0.8 * 4) * 7 / 6, rel=0.03)
    clock.now += 6.0  # one slow batch moves the estimate a little, not wildly
    eta.observe("first pass", 204, 1000, 200 * 0.8 * 7 / 6 + 4.8)
    assert eta.estimate()[0] == pytest.approx(tags, rel=0.05)


def test_paused_time_does_not_count() -> None:
    clock = Clock()
    eta = TimeToTags(clock)
    run_first_pass(eta, clock, 100, 40, lambda i: 2.0)
    eta.pause()
    clock.now += 3600
    eta.resume()
    clock.now += 8.0
    eta.observe("first pass", 44, 100, 88.0)
    assert eta.estimate()[0] == pytest.approx(56 * 2.0)


def test_a_measured_refine_rate_replaces_the_scaled_one() -> None:
    clock = Clock()
    eta = TimeToTags(clock)
    eta.set_backlog(unrefined=0, cost_ratio=4.0)
    run_first_pass(eta, clock, 100, 100, lambda i: 1.0)
    assert eta.estimate() == (0.0, pytest.approx(100 * 4.0))
    # refined in chunks of 8 (2 batches), each chunk a job of its own, with 2 s
    # between chunks: 3 s a photo and 2 s a chunk, 3.25 s a photo in all
    for chunk in range(5):
        done = chunk * 8
        clock.now += 2.0
        eta.observe("refine", done, 100)
        for batch in (4, 8):
            clock.now += 4 * 3.0
            eta.observe("refine", done + batch, 100, batch * 3.0)
    assert eta.unrefined == 60
    assert eta.estimate() == (0.0, pytest.approx(60 * 3.25, rel=0.03))


def test_without_a_first_pass_the_tagging_rate_is_the_full_budget_s() -> None:
    clock = Clock()
    eta = TimeToTags(clock)
    eta.set_backlog(unrefined=10, cost_ratio=1.0)
    eta.observe("tag", 0, 50)
    for done in range(2, 21, 2):
        clock.now += 2 * 5.0
        eta.observe("tag", done, 50)
    tags, refined = eta.estimate()
    assert tags == pytest.approx(30 * 5.0)
    assert refined == pytest.approx(tags + 10 * 5.0)  # the photos tagged now need none
