"""Tags that learn their look from answers (`thresholds.learn_look`), over a real sidecar
with synthetic vectors: the look is learned, decisions do not depend on the path that
gave the answers, and undo is exact."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from albumtagger.config import Settings
from albumtagger.library.db.store import Store
from albumtagger.model.encoder import QUERY_INSTRUCTION
from albumtagger.tagging.tagger import library_tagger

DIM = 256
MODEL = "test-model"
NAMES = ["rex", *(f"tag{i}" for i in range(11))]
REX = [f"p{i:03d}.jpg" for i in range(0, 360, 15)]
"""Photos of Rex: a look of their own that the tag's words ("rex") say nothing about."""


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


def _settings(learn: bool = True) -> Settings:
    settings = Settings()
    settings.thresholds.learn_look = learn
    return settings


def _make(path: Path) -> Store:
    """360 photos in a shared cone, each near one of the worded tags' vectors, and every
    15th also near Rex's hidden look."""
    store = Store(path, backups=False)
    rng = np.random.default_rng(7)
    tag_vecs = _unit(rng.normal(size=(len(NAMES), DIM)))
    cone, rex_look = _unit(rng.normal(size=(2, DIM)))
    with store.transaction():
        store.add_tags((n, [n]) for n in NAMES)
        store.put_text_vectors(MODEL, QUERY_INSTRUCTION, zip(NAMES, tag_vecs, strict=True))
        store.set_setting("model_id", MODEL)
        items = []
        for i in range(360):
            pid = store.add_photo(f"p{i:03d}.jpg", 1, 1)
            store.record_read(pid, content_hash=f"h{i}", size=1, mtime_ns=1, width=1, height=1)
            v = cone + 0.6 * tag_vecs[1 + i % 11] + rng.normal(size=DIM) / np.sqrt(DIM)
            if f"p{i:03d}.jpg" in REX:
                v = v + 0.8 * rex_look
            items.append((f"h{i}", _unit(v)))
        store.put_embeddings(MODEL, items)
        store.set_status(range(1, 361), "ok")
    return store


@pytest.fixture
def store(tmp_path: Path):
    store = _make(tmp_path / "lib.sqlite")
    yield store
    store.close()


def _cells(store: Store) -> dict[tuple[str, str], tuple]:
    paths = {r.id: r.path for r in store.photos()}
    return {
        (paths[t.photo_id], t.name): (t.state, t.source, t.fallback, t.confidence)
        for t in store.photo_tags()
    }


def _rex(store: Store) -> set[str]:
    """Photos Rex is on, by the user or over his threshold (not the fallback's fill)."""
    return {p for (p, name), cell in _cells(store).items() if name == "rex" and not cell[2]}


def _thresholds(store: Store) -> dict[str, tuple]:
    return {t.name: (t.threshold, t.score_median, t.score_scale) for t in store.tags()}


ANSWERS = [(REX[0], "add"), (REX[1], "add"), ("p001.jpg", "remove"), (REX[2], "add")]


def _answer(store: Store, answers, settings: Settings) -> None:
    tagger = library_tagger(store, settings)
    for path, action in answers:
        if action == "remove" and (path, "rex") not in _cells(store):
            action = "reject"  # the same "no", whether the tag was on the photo or not
        tagger.correct(path, "rex", action)


@pytest.mark.parametrize("learn", [True, False])
def test_three_photos_of_rex_teach_his_look(store: Store, learn: bool) -> None:
    library_tagger(store, _settings(learn)).redecide()
    _answer(store, [(p, "add") for p in REX[:3]], _settings(learn))
    found = _rex(store) - set(REX[:3])
    others = set(REX[3:])
    if learn:  # the look is learned: Rex is suggested on most of his other photos
        assert len(found & others) >= 0.7 * len(others)
        assert len(found - others) <= 0.05 * (360 - len(REX))  # and on almost no other
    else:  # today only the threshold moves, and the words do not find him
        assert len(found & others) < 0.3 * len(others)


def test_learning_is_off_by_default(store: Store) -> None:
    assert Settings().thresholds.learn_look is False


def test_decisions_do_not_depend_on_the_path_of_the_answers(tmp_path: Path, store) -> None:
    library_tagger(store, _settings()).redecide()
    _answer(store, ANSWERS, _settings())  # one run
    halves = _make(tmp_path / "halves.sqlite")
    library_tagger(halves, _settings()).redecide()
    _answer(halves, ANSWERS[:2], _settings())  # two halves, a fresh state each
    _answer(halves, ANSWERS[2:], _settings())
    assert _cells(halves) == _cells(store)
    assert _thresholds(halves) == _thresholds(store)
    # A fresh state deciding the whole library from the same answers agrees.
    assert len(library_tagger(store, _settings()).redecide()) == 0
    halves.close()


def test_undo_of_a_learned_answer_is_exact(store: Store) -> None:
    library_tagger(store, _settings()).redecide()
    _answer(store, ANSWERS[:3], _settings())
    cells, thresholds = _cells(store), _thresholds(store)
    tagger = library_tagger(store, _settings())
    tagger.correct(REX[3], "rex", "add")
    assert _cells(store) != cells
    assert tagger.undo() is not None
    assert _cells(store) == cells
    assert _thresholds(store) == thresholds
    # ... and what it left is what a fresh state decides from the remaining answers.
    assert len(library_tagger(store, _settings()).redecide()) == 0


def test_a_new_photo_of_rex_is_decided_by_his_learned_look(store: Store) -> None:
    library_tagger(store, _settings()).redecide()
    _answer(store, [(p, "add") for p in REX[:3]], _settings())
    rex_vectors = store.photo_vectors(MODEL, photo_ids=[1 + int(p[1:4]) for p in REX[3:6]])[1]
    with store.transaction():
        pid = store.add_photo("new.jpg", 1, 1)
        store.record_read(pid, content_hash="new", size=1, mtime_ns=1, width=1, height=1)
        store.put_embeddings(MODEL, [("new", _unit(rex_vectors.mean(axis=0)))])
    library_tagger(store, _settings()).tag_photos([pid])
    assert "rex" in {t.name for t in store.photo_tags([pid]) if not t.fallback}
