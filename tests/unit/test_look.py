"""A tag's learned look (`tagging.look`): exact text scores without answers, looks
learned from examples, the latest answer counting, the text scale kept, and speed."""

from __future__ import annotations

import time

import numpy as np
import pytest

from albumtagger.tagging.look import (
    LookSettings,
    example_floor,
    latest_answers,
    learned_column,
    learned_direction,
    learned_look,
    robust_center_scale,
)

D = 256


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


@pytest.fixture
def library() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(vectors [600 x D] in a shared cone, a text vector that says nothing about the
    look, the rows that show the look: 30 photos near a hidden centroid)."""
    rng = np.random.default_rng(3)
    cone = _unit(rng.normal(size=D))
    look = _unit(rng.normal(size=D))
    noise = rng.normal(size=(600, D)) / np.sqrt(D)
    X = cone + 0.6 * noise
    shows = np.arange(0, 600, 20)
    X[shows] += 0.5 * look
    text = _unit(0.5 * cone + _unit(rng.normal(size=D)))
    return _unit(X), text, shows


@pytest.mark.parametrize("method", ["prototype", "logistic"])
def test_a_tag_without_answers_keeps_its_text_scores_exactly(library, method) -> None:
    X, text, _ = library
    settings = LookSettings(method=method)
    w = learned_direction(text, np.zeros((0, D)), np.zeros(0, bool), mean=X.mean(0))
    assert np.array_equal(w, text)
    column = learned_column(X, text, [], [], settings=settings)
    assert np.array_equal(column, X @ text)


def test_three_examples_teach_a_look_the_words_miss(library) -> None:
    X, text, shows = library
    settings = LookSettings()  # the prototype: the benchmark's choice
    others = np.setdiff1d(shows, shows[:3])
    text_top = np.argsort(-(X @ text))[: others.size + 3]
    assert np.isin(others, text_top).mean() < 0.3  # the words do not find it
    column = learned_column(X, text, shows[:3], [True] * 3, settings=settings)
    top = np.argsort(-column)[: others.size + 3]
    assert np.isin(others, top).mean() >= 0.8


def test_a_wordless_tag_is_learned_from_its_examples_alone(library) -> None:
    X, _, shows = library
    assert not learned_direction(None, np.zeros((0, D)), np.zeros(0, bool), mean=X.mean(0)).any()
    column = learned_column(X, None, shows[:5], [True] * 5)
    top = np.argsort(-column)[: shows.size]
    assert np.isin(shows[5:], top).mean() >= 0.8


def test_a_photos_latest_answer_counts_and_the_result_is_deterministic(library) -> None:
    X, text, shows = library
    rows, positive = latest_answers([5, 7, 5, 9], [True, False, False, True])
    assert rows.tolist() == [7, 5, 9] and positive.tolist() == [False, False, True]
    changed_mind = learned_column(X, text, [shows[0], 1, shows[0]], [False, True, True])
    same = learned_column(X, text, [1, shows[0]], [True, True])
    assert np.array_equal(changed_mind, same)
    assert np.array_equal(same, learned_column(X, text, [1, shows[0]], [True, True]))


def test_learned_scores_sit_on_the_text_scores_scale(library) -> None:
    X, text, shows = library
    column = learned_column(X, text, shows[:4], [True] * 4)
    assert not np.allclose(column, X @ text)
    assert robust_center_scale(column) == pytest.approx(robust_center_scale(X @ text), rel=1e-4)
    # the scores of photos that arrive later follow the same recipe
    column, look = learned_look(X, text, shows[:4], [True] * 4)
    assert look is not None and np.allclose(look.scores(X), column, atol=1e-6)


def test_a_refit_with_200_answers_at_full_width_is_fast() -> None:
    rng = np.random.default_rng(0)
    dim = 1536
    answered = _unit(rng.normal(size=(200, dim)))
    positive = rng.random(200) < 0.4
    text, mean = _unit(rng.normal(size=dim)), _unit(rng.normal(size=dim))
    settings = LookSettings()  # the learner in use
    best = np.inf
    for _ in range(5):
        start = time.perf_counter()
        learned_direction(text, answered, positive, mean=mean, settings=settings)
        best = min(best, time.perf_counter() - start)
    assert best < 0.05


def test_a_wordless_tags_floor_sits_between_the_library_and_its_examples(library) -> None:
    X, _, shows = library
    mean = X.mean(axis=0, dtype=np.float64)
    reference = (0.25, 0.03)
    given = shows[:5]
    column, look = learned_look(X, None, given, np.ones(5, bool), mean=mean, reference=reference)
    assert look is not None
    assert np.allclose(look.scores(X), column, atol=1e-6)  # the recipe scores as the library
    floor = example_floor(X, given, np.ones(5, bool), look, mean=mean, center=reference[0])
    assert floor is not None
    assert abs(float(np.median(column)) - reference[0]) < 1e-6
    # above the library's median, below the examples (each judged by the others' look)
    assert reference[0] < floor < float(np.median(column[given]))
    rest = np.setdiff1d(shows, given)
    others = np.setdiff1d(np.arange(len(X)), shows)
    assert np.mean(column[rest] >= floor) >= 0.9  # the look's other photos clear it
    assert np.mean(column[others] >= floor) <= 0.05  # the average photo does not
    # one example says nothing about how alike its photos are
    assert example_floor(X, shows[:1], [True], look, mean=mean, center=reference[0]) is None
