"""Tag decisions over a real sidecar with synthetic vectors: corrections, undo,
vocabulary changes re-scoring from stored vectors, the review queue."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from albumtagger.config import Settings
from albumtagger.library.db.store import Store
from albumtagger.model.encoder import QUERY_INSTRUCTION
from albumtagger.tagging.tagger import Tagger, library_tagger

DIM = 256
MODEL = "test-model"
NAMES = ["dog", "cat", "beach", "snow", *(f"tag{i}" for i in range(16))]


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


class FakeTextEncoder:
    """Deterministic text vectors (stands in for GME only where prompts are new)."""

    model_id = MODEL

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def embed_texts(self, texts, instruction=QUERY_INSTRUCTION) -> np.ndarray:
        self.calls.append(list(texts))
        out = []
        for t in texts:
            rng = np.random.default_rng(abs(hash(t)) % 2**32)
            out.append(rng.normal(size=DIM))
        return _unit(np.array(out))


@pytest.fixture
def library(tmp_path: Path) -> tuple[Store, np.ndarray]:
    """400 photos; photo i is near tag (i % 20)'s vector, so each tag has a clear set
    (5% of the library, a typical prevalence)."""
    store = Store(tmp_path / "lib.sqlite", backups=False)
    rng = np.random.default_rng(0)
    names = NAMES
    tag_vecs = _unit(rng.normal(size=(len(names), DIM)))
    with store.transaction():
        store.add_tags((n, [n]) for n in names)
        store.put_text_vectors(MODEL, QUERY_INSTRUCTION, zip(names, tag_vecs, strict=True))
        store.set_setting("model_id", MODEL)
        items = []
        for i in range(400):
            pid = store.add_photo(f"p{i:03d}.jpg", 1, 1)
            h = f"h{i}"
            store.record_read(pid, content_hash=h, size=1, mtime_ns=1, width=1, height=1)
            strength = rng.uniform(0.2, 1.0)
            noise = rng.normal(size=DIM) / np.sqrt(DIM)
            items.append((h, _unit(tag_vecs[i % len(names)] * strength + noise)))
        store.put_embeddings(MODEL, items)
        store.set_status(range(1, 401), "ok")
    yield store, tag_vecs
    store.close()


def _cells(store: Store) -> dict[tuple[str, str], tuple[str, str]]:
    paths = {r.id: r.path for r in store.photos()}
    return {(paths[t.photo_id], t.name): (t.state, t.source) for t in store.photo_tags()}


def test_redecide_writes_suggestions_capped_and_ranked(library) -> None:
    store, _ = library
    tagger = library_tagger(store, Settings())
    changed = tagger.redecide()
    assert len(changed) > 0
    per_photo: dict[str, list[str]] = {}
    for (path, name), (state, source) in _cells(store).items():
        assert (state, source) == ("suggested", "auto")
        per_photo.setdefault(path, []).append(name)
    assert all(len(v) <= 10 for v in per_photo.values())
    # Photo i is built near tag i % 20: that tag is among its suggestions for most photos.
    hits = sum(NAMES[int(p[1:4]) % len(NAMES)] in v for p, v in per_photo.items())
    assert hits >= 300
    # Deciding again changes nothing.
    assert len(library_tagger(store, Settings()).redecide()) == 0


def test_correction_is_stored_learns_and_undo_restores_everything(library) -> None:
    store, _ = library
    library_tagger(store, Settings()).redecide()
    before = _cells(store)
    thresholds_before = {t.name: t.threshold for t in store.tags()}
    tagger = library_tagger(store, Settings())
    suggested = [k for k, v in before.items() if k[1] == "dog" and v[0] == "suggested"]
    path = suggested[0][0]
    result = tagger.correct(path, "dog", "reject")
    assert result.threshold_before is not None
    cells = _cells(store)
    assert cells[(path, "dog")] == ("rejected", "auto")
    # The quick path refits only the corrected tag; a full fit agrees with it.
    stored = {t.name: t.threshold for t in store.tags()}
    full = library_tagger(store, Settings()).thresholds()
    assert [stored[t.name] for t in store.tags()] == pytest.approx(full.tolist())
    assert stored["dog"] != pytest.approx(thresholds_before["dog"])
    [event] = store.feedback()
    assert (event.action, event.positive, event.was_suggested) == ("reject", False, True)
    # A rejected tag never comes back, whatever the thresholds do.
    library_tagger(store, Settings()).redecide()
    assert _cells(store)[(path, "dog")] == ("rejected", "auto")

    undone = library_tagger(store, Settings()).undo()
    assert undone is not None and undone.action == "undo"
    assert _cells(store) == before
    assert {t.name: t.threshold for t in store.tags()} == pytest.approx(thresholds_before)
    assert store.feedback() == []


def test_add_and_remove_on_a_photo(library) -> None:
    store, _ = library
    tagger = library_tagger(store, Settings())
    tagger.redecide()
    not_snow = next(
        p.path for p in store.photos() if ("snow" not in {t.name for t in store.photo_tags([p.id])})
    )
    tagger.correct(not_snow, "snow", "add")
    assert _cells(store)[(not_snow, "snow")] == ("accepted", "user")
    event = store.feedback()[-1]
    assert (event.action, event.positive, event.was_suggested) == ("add", True, False)
    tagger.correct(not_snow, "snow", "remove")
    assert _cells(store)[(not_snow, "snow")] == ("rejected", "user")


def test_new_tag_scores_the_library_from_stored_vectors(library) -> None:
    store, _ = library
    library_tagger(store, Settings()).redecide()
    encoder = FakeTextEncoder()
    tagger = library_tagger(store, Settings(), encoder_factory=lambda: encoder)
    tagger.add_tags(["sunset: a sunset | sunset sky"])
    assert encoder.calls == [["a sunset", "sunset sky"]]  # prompts only, never a photo
    tag = store.tag_by_name("sunset")
    assert tag.prompts == ("a sunset", "sunset sky")
    assert tag.threshold is not None
    # Cached now: a second tagger needs no encoder at all.
    library_tagger(store, Settings(), encoder_factory=lambda: pytest.fail("no encoder")).redecide()
    tagger.remove_tags(["sunset"])
    assert store.tag_by_name("sunset") is None
    assert all(name != "sunset" for _, name in _cells(store))


def test_review_queue_skips_decided_cells(library) -> None:
    store, _ = library
    tagger = library_tagger(store, Settings())
    tagger.redecide()
    queue = tagger.review_queue(limit=4)
    assert 1 <= len(queue) <= 4
    first = queue[0]
    tagger.correct(first["path"], first["tag"], "accept" if first["suggested"] else "reject")
    again = library_tagger(store, Settings()).review_queue(limit=50)
    assert (first["path"], first["tag"]) not in {(q["path"], q["tag"]) for q in again}
    assert len({q["tag"] for q in queue}) == len(queue)  # one per tag by default


def test_new_photos_are_decided_without_a_pass_over_the_library(library, monkeypatch) -> None:
    """A watched folder's trickle of photos must not cost a full library load each time."""
    store, tag_vecs = library
    library_tagger(store, Settings()).redecide()
    assert all(t.threshold is not None and t.score_scale is not None for t in store.tags())
    with store.transaction():
        pid = store.add_photo("new.jpg", 1, 1)
        store.record_read(pid, content_hash="new", size=1, mtime_ns=1, width=1, height=1)
        store.put_embeddings(MODEL, [("new", tag_vecs[2])])  # exactly "beach"
    full_loads = []
    real = store.photo_vectors

    def counting(model_id, statuses=("ok",), photo_ids=None):
        if photo_ids is None:
            full_loads.append(statuses)
        return real(model_id, statuses=statuses, photo_ids=photo_ids)

    def scoring(model_id, tag_matrix, statuses=("ok",)):
        full_loads.append(statuses)
        return real_scores(model_id, tag_matrix, statuses)

    real_scores = store.photo_scores
    monkeypatch.setattr(store, "photo_vectors", counting)
    monkeypatch.setattr(store, "photo_scores", scoring)
    library_tagger(store, Settings()).tag_photos([pid])
    assert full_loads == []
    assert store.photo(pid).status == "ok"
    names = {t.name: t for t in store.photo_tags([pid])}
    assert "beach" in names and names["beach"].confidence == "high"


def test_batches_reuse_the_loaded_tags_until_the_store_changes_them(library) -> None:
    """Tagging decides a batch at a time: the tags and their prompt vectors are read once,
    and read again only after a write to them, from this store or another connection."""
    store, tag_vecs = library
    tagger = library_tagger(store, Settings())
    tagger.redecide()

    def new_photo(name: str, vector: np.ndarray) -> int:
        with store.transaction():
            pid = store.add_photo(f"{name}.jpg", 1, 1)
            store.record_read(pid, content_hash=name, size=1, mtime_ns=1, width=1, height=1)
            store.put_embeddings(MODEL, [(name, vector)])
        return pid

    loads: list[int] = []
    real_text_vectors, real_tags = store.text_vectors, store.tags
    store.text_vectors = lambda *a: loads.append(1) or real_text_vectors(*a)  # type: ignore[method-assign]
    store.tags = lambda: loads.append(2) or real_tags()  # type: ignore[method-assign]
    tagger.tag_photos([new_photo("a", tag_vecs[2])])
    loads.clear()
    tagger.tag_photos([new_photo("b", tag_vecs[2])])
    assert loads == []  # nothing about the tags was read again
    assert "beach" in {t.name for t in store.photo_tags([store.photo_by_path("b.jpg").id])}

    # Another connection pins "beach" far above every score: the next batch sees it.
    beach = next(t for t in real_tags() if t.name == "beach")
    with Store(store.db_path, backups=False) as other, other.transaction():
        other.set_pinned_threshold(beach.id, 0.99)
    pid = new_photo("c", _unit(tag_vecs[2] + tag_vecs[3]))  # scores about 0.7
    tagger.tag_photos([pid])
    assert loads != []
    cells = {t.name: t for t in store.photo_tags([pid])}
    assert "beach" not in cells or cells["beach"].fallback


def test_a_rejection_never_spreads_a_tag_and_a_confirmation_changes_nothing_else(
    library,
) -> None:
    store, _ = library
    library_tagger(store, Settings()).redecide()
    tagger = library_tagger(store, Settings())
    for name in NAMES[:8]:
        cells = _cells(store)
        carried = [p for (p, n), (state, _) in cells.items() if n == name and state == "suggested"]
        if len(carried) < 2:
            continue
        rejected = tagger.correct(carried[0], name, "reject")
        assert rejected.threshold_after >= rejected.threshold_before - 1e-12
        assert rejected.added == 0
        confirmed = tagger.correct(carried[1], name, "accept")
        assert confirmed.threshold_after == pytest.approx(confirmed.threshold_before)


def test_deciding_a_library_keeps_the_cyclic_collector_out(library, monkeypatch) -> None:
    """A library's decisions make a few objects per photo and tag; the cyclic collector
    walking them held the interpreter lock long enough to freeze the app's window."""
    import gc

    store, _ = library
    seen: list[bool] = []
    real = Tagger._suggestions

    def spying(self, *args):
        seen.append(gc.isenabled())
        return real(self, *args)

    monkeypatch.setattr(Tagger, "_suggestions", spying)
    assert gc.isenabled()
    assert len(library_tagger(store, Settings()).redecide()) > 0
    assert seen and not any(seen)
    assert gc.isenabled()


def test_kept_decisions_follow_every_writer(library, monkeypatch) -> None:
    """One tagger kept alive: after its own corrections it re-decides only the rows that
    can change; a user decision written by another writer, another tagger's correction
    and a rolled-back transaction make it decide anew. The result is a fresh tagger's."""
    from albumtagger.tagging import thresholds as th

    store, _ = library
    tagger = library_tagger(store, Settings())
    tagger.redecide()
    decide = th.decide
    full: list[int] = []
    monkeypatch.setattr(th, "decide", lambda *a, **k: full.append(1) or decide(*a, **k))
    cells = _cells(store)
    carried = {
        n: [p for (p, m), (s, _) in cells.items() if m == n and s == "suggested"] for n in NAMES
    }

    def decided_anew(path: str, name: str) -> bool:
        full.clear()
        tagger.correct(path, name, "reject")
        return bool(full)

    assert not decided_anew(carried["dog"][0], "dog")
    assert not decided_anew(carried["cat"][0], "cat")
    beach = next(t.id for t in store.tags() if t.name == "beach")
    with store.transaction():  # as keywords from another program are taken
        store.set_user_decision(
            store.photo_by_path(carried["beach"][0]).id, beach, "rejected", "user", None
        )
    assert decided_anew(carried["snow"][0], "snow")
    library_tagger(store, Settings()).correct(carried["tag0"][0], "tag0", "reject")
    assert decided_anew(carried["tag1"][0], "tag1")
    with pytest.raises(RuntimeError), store.transaction():
        tagger.correct(carried["tag2"][0], "tag2", "reject")
        raise RuntimeError("rolled back")
    assert _cells(store)[(carried["tag2"][0], "tag2")] == ("suggested", "auto")
    assert decided_anew(carried["tag3"][0], "tag3")
    assert not decided_anew(carried["tag4"][0], "tag4")
    assert len(library_tagger(store, Settings()).redecide()) == 0
