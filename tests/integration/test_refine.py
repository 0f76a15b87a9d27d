"""Coarse first, fine later: every photo tagged at a small budget first, then refined at
the full budget (newest first) while nothing else waits; user decisions untouched."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest

from albumtagger.config import load_settings, replace_section
from albumtagger.events import JobProgress
from albumtagger.library.folder import open_library
from albumtagger.model.loading import load_encoder
from albumtagger.service.indexing import (
    FIRST_PASS_SUFFIX,
    REFINED_SUFFIX,
    index_folder,
    library_settings,
    model_source,
    needs_model,
    refine_steps,
    refinement_backlog,
    refinement_left,
)
from albumtagger.service.session import LibrarySession
from albumtagger.tagging.decision_state import IMAGE_MODEL_ID_KEY
from albumtagger.tagging.tagger import library_tagger
from tests.conftest import make_photo

N = 6


@pytest.fixture
def album(tmp_path: Path) -> Path:
    root = tmp_path / "album"
    for i in range(N):
        path = make_photo(root / f"p{i:02d}.jpg", 700 + i, size=(160, 120))
        stamp = 1_600_000_000 + i * 100  # p05 is the newest
        os.utime(path, (stamp, stamp))
    return root


@pytest.fixture
def settings(golden_env: dict):
    # golden_env: the golden checkpoint, fp32 on the CPU, budget 4..16; first pass at 4.
    return replace_section(
        load_settings(), "model", coarse_first="on", first_pass_tokens=4, batch_size=2
    )


def _vectors(store, model_id: str) -> dict[int, np.ndarray]:
    ids, matrix = store.photo_vectors(model_id)
    return {int(i): v for i, v in zip(ids, matrix, strict=True)}


def test_first_pass_then_refinement_keeps_user_decisions(
    album: Path, settings, tmp_path: Path
) -> None:
    library = open_library(album, tmp_path / "data")
    store = library.store
    phases: list[str] = []
    encoder = load_encoder(settings)
    summary = index_folder(
        library, settings, encoder=encoder, on_progress=lambda p: phases.append(p.phase)
    )
    assert summary.tagging.tagged == N
    assert "first pass" in phases and "tag" not in phases
    image_id = store.get_setting(IMAGE_MODEL_ID_KEY)
    assert image_id == encoder.image_model_id and image_id.endswith("image-tokens=4-16")
    coarse = _vectors(store, image_id + FIRST_PASS_SUFFIX)
    before = _vectors(store, image_id)
    assert len(coarse) == N and all(np.allclose(coarse[i], before[i], atol=1e-3) for i in coarse)
    backlog, total = refinement_backlog(store, image_id)
    assert total == N and [r.path for r in backlog] == [f"p{i:02d}.jpg" for i in reversed(range(N))]
    assert refinement_left(store, image_id) == N
    # the photos looked at most come first, then the newest
    store.note_view(store.photo_by_path("p01.jpg").id)
    store.note_view(store.photo_by_path("p02.jpg").id)
    store.note_view(store.photo_by_path("p02.jpg").id)
    backlog, _ = refinement_backlog(store, image_id)
    assert [r.path for r in backlog][:3] == ["p02.jpg", "p01.jpg", f"p{N - 1:02d}.jpg"]
    store.conn.execute("UPDATE photos SET views = 0")

    # the user decides some tags before the refinement
    tagger = library_tagger(store, settings)
    first = store.photo_by_path("p00.jpg")
    suggested = [t for t in store.photo_tags([first.id]) if t.state == "suggested"]
    assert suggested
    rejected = suggested[0].name
    tagger.correct("p00.jpg", rejected, "reject")
    tagger.correct("p01.jpg", "my own tag", "add")

    steps = refine_steps(library, settings, encoder, tagger, max_photos=2)
    progress = list(steps)
    assert [p.phase for p in progress] == ["refine"] * len(progress)
    assert progress[-1].done == 2 and progress[-1].total == N
    assert progress[-1].current in ("p05.jpg", "p04.jpg")  # newest first
    backlog, _ = refinement_backlog(store, image_id)
    assert {r.path for r in backlog} == {f"p{i:02d}.jpg" for i in range(4)}

    progress = list(refine_steps(library, settings, encoder, tagger))
    assert progress[-1].done == progress[-1].total == N
    assert refinement_backlog(store, image_id) == ([], N)
    assert refinement_left(store, image_id) == 0
    markers = _vectors(store, image_id + REFINED_SUFFIX)
    assert len(markers) == N and all(v.size == 0 for v in markers.values())  # no vector
    after = _vectors(store, image_id)
    cosines = [float(before[i] @ after[i]) for i in before]
    assert min(cosines) < 0.9999  # the vectors were replaced (4 against 16 tokens)
    # a refined vector is exactly what the full budget gives
    from albumtagger.library.images import read_photo
    from albumtagger.model.encoder import prepare_image

    photo = read_photo(album / "p03.jpg")
    full = encoder.embed_prepared([prepare_image(photo.image, min_tokens=4, max_tokens=16)])[0]
    assert float(full @ after[store.photo_by_path("p03.jpg").id]) > 0.999

    # user decisions untouched
    cells = {(t.photo_id, t.tag_id): t for t in store.photo_tags([first.id, first.id + 1])}
    tag_ids = {t.name: t.id for t in store.tags()}
    assert cells[(first.id, tag_ids[rejected])].state == "rejected"
    own = store.photo_by_path("p01.jpg").id
    assert cells[(own, tag_ids["my own tag"])].state == "accepted"
    # nothing left: a second run does nothing
    assert list(refine_steps(library, settings, encoder, tagger)) == []
    library.close()


def test_watch_steps_tag_first_then_refine(album: Path, settings, tmp_path: Path) -> None:
    events: list = []
    with LibrarySession(album, settings, data_dir=tmp_path / "data", on_event=events.append) as s:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            s.watch_step(0.5)
            if s._keeper is not None and s._keeper.summary.refined >= N:
                break
        assert s._keeper is not None and s._keeper.summary.refined == N
        phases = [e.phase for e in events if isinstance(e, JobProgress)]
        assert "first pass" in phases and "refine" in phases
        assert phases.index("first pass") < phases.index("refine")
        image_id = s.store.get_setting(IMAGE_MODEL_ID_KEY)
        assert refinement_backlog(s.store, image_id) == ([], N)


def test_no_first_pass_where_the_budget_is_already_small(
    album: Path, golden_env: dict, tmp_path: Path
) -> None:
    settings = replace_section(load_settings(), "model", coarse_first="on", first_pass_tokens=64)
    library = open_library(album, tmp_path / "data")
    phases: list[str] = []
    index_folder(library, settings, on_progress=lambda p: phases.append(p.phase))
    assert "tag" in phases and "first pass" not in phases
    image_id = library.store.get_setting(IMAGE_MODEL_ID_KEY)
    assert refinement_backlog(library.store, image_id) == ([], 0)
    library.close()


def test_automatic_budget_keeps_an_existing_librarys_vectors(
    album: Path, golden_env: dict, tmp_path: Path, monkeypatch
) -> None:
    """A library tagged with 4..16 keeps it when the budget is automatic (0): nothing is
    embedded again just because the default changed; the budget is recorded resolved."""
    settings = load_settings()
    library = open_library(album, tmp_path / "data")
    index_folder(library, settings)
    db = library.store.db_path
    library.close()
    monkeypatch.delenv("ALBUMTAGGER_MIN_IMAGE_TOKENS")
    monkeypatch.delenv("ALBUMTAGGER_MAX_IMAGE_TOKENS")
    auto = load_settings()
    assert (auto.model.min_image_tokens, auto.model.max_image_tokens) == (0, 0)
    library = open_library(album, tmp_path / "data")
    assert not needs_model(library, auto, library_tagger(library.store, auto))
    own = library_settings(library.store, auto)
    assert (own.model.min_image_tokens, own.model.max_image_tokens) == (4, 16)
    summary = index_folder(library, own)
    assert summary.tagging.tagged == 0
    library.close()
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0] == N
    conn.close()
    # a new library records the budget the automatic setting resolved to on its device
    fresh = tmp_path / "fresh"
    make_photo(fresh / "a.jpg", 1)
    library = open_library(fresh, tmp_path / "data")
    encoder = load_encoder(auto)
    assert (encoder.min_image_tokens, encoder.max_image_tokens) == (64, 256)
    assert model_source(auto, encoder)["max_image_tokens"] == 256
    library.close()
