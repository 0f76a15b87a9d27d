"""Thresholds by hand, the tag inspector's report and vocabulary edits on a real sidecar
indexed with the golden checkpoint."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from albumtagger.config import load_settings
from albumtagger.errors import UnknownTagError, UsageError
from albumtagger.events import Notice, TagsChanged, ThresholdsChanged
from albumtagger.library.db.queries import LibraryQueries
from albumtagger.model.encoder import QUERY_INSTRUCTION
from albumtagger.model.loading import load_encoder
from albumtagger.service.session import LibrarySession
from albumtagger.tagging.vocabulary import default_vocabulary
from tests.conftest import GOLDEN_SETTINGS_ENV, index_golden, make_photo

GOLDEN_ENV = {**GOLDEN_SETTINGS_ENV, "HF_HUB_OFFLINE": "1"}


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of 40 photos indexed once with the golden checkpoint (copied per test)."""
    base = tmp_path_factory.mktemp("indexed")
    root = base / "album"
    for i in range(40):
        make_photo(root / f"p{i:02d}.jpg", 700 + i, size=(120, 90))
    return index_golden(root, base)


@pytest.fixture
def album(indexed: Path, tmp_path: Path, golden_env: dict) -> Path:
    root = tmp_path / "album"
    shutil.copytree(indexed, root)
    return root


class CountingEncoder:
    """The real encoder, counting what goes through it."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.images = 0
        self.texts: list[str] = []

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def embed_images(self, images, *args, **kwargs):
        self.images += len(images)
        return self.inner.embed_images(images, *args, **kwargs)

    def embed_texts(self, texts, *args, **kwargs):
        self.texts.extend(texts)
        return self.inner.embed_texts(texts, *args, **kwargs)


def _session(root: Path, events: list | None = None, encoder=None) -> LibrarySession:
    return LibrarySession(
        root,
        load_settings(),
        on_event=None if events is None else events.append,
        encoder=encoder,
        backup=False,
    )


def _carriers(db: Path, tag_id: int) -> set[int]:
    conn = sqlite3.connect(db)
    rows = conn.execute(
        "SELECT photo_id FROM photo_tags WHERE tag_id = ? AND state IN ('accepted', 'suggested')",
        (tag_id,),
    )
    out = {r[0] for r in rows}
    conn.close()
    return out


def _cells(db: Path) -> dict[tuple[int, int], tuple]:
    conn = sqlite3.connect(db)
    rows = conn.execute("SELECT photo_id, tag_id, state, source, fallback FROM photo_tags")
    out = {(r[0], r[1]): tuple(r[2:]) for r in rows}
    conn.close()
    return out


def _photo_tags(db: Path) -> set[tuple]:
    """Every cell of the sidecar, all columns."""
    conn = sqlite3.connect(db)
    rows = set(conn.execute("SELECT * FROM photo_tags").fetchall())
    conn.close()
    return rows


def _busy_tag(session: LibrarySession) -> str:
    """A tag that some photos carry and some do not."""
    counts = LibraryQueries(session.db_path).tag_counts()
    tags = {t.id: t.name for t in session.store.tags()}
    return next(tags[t] for t, n in sorted(counts.items(), key=lambda x: -x[1]) if 5 < n < 35)


# -- pinned thresholds --------------------------------------------------------------


def test_preview_is_exactly_what_pinning_does(album: Path) -> None:
    events: list = []
    with _session(album, events) as session:
        name = _busy_tag(session)
        tag = session.store.tag_by_name(name)
        report = session.tag_report(name)
        photos = sorted(int(p) for p, _ in report.above[:2] + report.below[:2])
        # user decisions the pins must leave alone
        session.correct([photos[0]], name, "reject")
        session.correct([photos[1]], name, "add")
        decided = {k: v for k, v in _cells(session.db_path).items() if v[0] != "suggested"}
        scores = np.sort(session.tag_report(name).scores)
        values = [float(scores[i]) for i in (3, 12, 20, 30)] + [0.0, 0.99]
        for value in values:
            before = _carriers(session.db_path, tag.id)
            preview = session.threshold_preview(name, value)
            assert preview["carries_now"] == len(before)
            events.clear()
            change = session.pin_threshold(name, value)
            after = _carriers(session.db_path, tag.id)
            assert preview["gain"] == change.gained == len(after - before), value
            assert preview["lose"] == change.lost == len(before - after), value
            assert preview["carries_after"] == change.carries == len(after), value
            assert LibraryQueries(session.db_path).tag_counts().get(tag.id, 0) == len(after)
            assert change.threshold_after == value == session.tag_report(name).threshold
            assert {k: v for k, v in _cells(session.db_path).items() if v[0] != "suggested"} == (
                decided
            )
            assert photos[0] not in after and photos[1] in after
            reported = {i for e in events if isinstance(e, TagsChanged) for i in e.ids}
            assert reported == set(change.changed_photo_ids)
            assert any(isinstance(e, ThresholdsChanged) and tag.id in e.tag_ids for e in events)
        # giving it back: the preview of None is what learning gives
        preview = session.threshold_preview(name, None)
        change = session.pin_threshold(name, None)
        assert change.pinned is None and change.previous_pin == values[-1]
        assert preview["threshold_after"] == pytest.approx(change.threshold_after)
        assert (preview["gain"], preview["lose"]) == (change.gained, change.lost)
        assert session.tag_report(name).source == "learned"


def test_a_pin_survives_refits_redecisions_corrections_and_new_photos(album: Path) -> None:
    with _session(album) as session:
        name = _busy_tag(session)
        tag = session.store.tag_by_name(name)
        scores = np.sort(session.tag_report(name).scores)
        value = float(scores[len(scores) // 2])
        session.pin_threshold(name, value)
        carriers = _carriers(session.db_path, tag.id)
        listed = {t.name: t for t in LibraryQueries(session.db_path).tags()}
        assert listed[name].pinned and not any(t.pinned for n, t in listed.items() if n != name)
        report = session.tag_report(name)
        assert report.source == "pinned" and "Pinned by hand" in report.source_text
        session.tagger().redecide()
        assert session.tag_report(name).threshold == value
        assert _carriers(session.db_path, tag.id) == carriers
        below = next(p for p, _ in report.below)
        correction = session.correct([below], name, "add")[0]
        assert correction.threshold_before == correction.threshold_after == value
        for i in range(3):
            make_photo(album / f"new{i}.jpg", 900 + i, size=(120, 90))
        list(session.index())
        assert session.store.tag_by_name(name).pinned == value
        assert session.tag_report(name).threshold == value
    with _session(album) as session:  # and a reopened library
        assert session.tag_report(name).threshold == value
        session.pin_threshold(name, None)
        learned = session.tag_report(name)
        assert learned.source == "learned" and learned.answers == {"yes": 1, "no": 0}
        assert session.store.tag_by_name(name).pinned is None


def test_pin_refuses_nonsense_and_unknown_tags(album: Path) -> None:
    with _session(album) as session:
        name = _busy_tag(session)
        for bad in (float("nan"), 2.0, "x"):
            with pytest.raises(UsageError):
                session.pin_threshold(name, bad)  # type: ignore[arg-type]
        with pytest.raises(UnknownTagError):
            session.threshold_preview("no such tag", 0.3)


# -- the tag report -----------------------------------------------------------------


def test_tag_report_shows_where_the_threshold_comes_from(album: Path) -> None:
    with _session(album) as session:
        name = _busy_tag(session)
        tag = session.store.tag_by_name(name)
        report = session.tag_report(name)
        assert report.source == "prior" and "no answers yet" in report.source_text
        assert "balance of precision and recall" in report.source_text
        assert report.name == name and report.prompts == tag.prompts
        assert report.scores.dtype == np.float32 and report.scores.size == 40
        assert report.carries == len(_carriers(session.db_path, tag.id))
        t = report.threshold
        assert all(s >= np.float32(t) for _, s in report.above)
        assert all(s < np.float32(t) for _, s in report.below)
        above = [s for _, s in report.above]
        below = [s for _, s in report.below]
        assert above == sorted(above) and below == sorted(below, reverse=True)
        assert len(report.above) + len(report.below) == min(24, 40)
        # nearest: nothing else between the threshold and the listed photos
        listed = {p for p, _ in report.above + report.below}
        ids = session.tagger()._library()[0]
        others = report.scores[~np.isin(ids, list(listed))]
        assert not ((others >= t) & (others < max(above))).any()
        assert not ((others < t) & (others > min(below))).any()
        yes_photo, no_photo = report.above[0][0], report.below[0][0]
        session.answer(yes_photo, name, False)
        session.answer(no_photo, name, True)
        learned = session.tag_report(name)
        assert learned.source == "learned" and learned.answers == {"yes": 1, "no": 1}
        assert "Learned from 2 answers (1 yes, 1 no)" in learned.source_text
        score_of = dict(zip(ids.tolist(), report.scores.tolist(), strict=True))
        assert learned.yes_scores.tolist() == pytest.approx([score_of[no_photo]])
        assert learned.no_scores.tolist() == pytest.approx([score_of[yes_photo]])


# -- vocabulary edits -----------------------------------------------------------------


def _counting(root: Path) -> CountingEncoder:
    return CountingEncoder(load_encoder(load_settings()))


def test_rename_keeps_the_tag(album: Path) -> None:
    with _session(album) as session:
        name = _busy_tag(session)
        tag = session.store.tag_by_name(name)
        photo = next(k[0] for k in _cells(session.db_path) if k[1] == tag.id)
        session.answer(photo, name, True)
        cells = {k: v for k, v in _cells(session.db_path).items() if k[1] == tag.id}
        change = session.rename_tag(name, "  My   Renamed Tag ")
        assert change.renamed == [(name, "my renamed tag")]
        renamed = session.store.tag_by_name("my renamed tag")
        assert renamed.id == tag.id and renamed.prompts == tag.prompts
        assert renamed.threshold == pytest.approx(session.tag_report("my renamed tag").threshold)
        after = {k: v for k, v in _cells(session.db_path).items() if k[1] == tag.id}
        assert after == cells
        assert session.tag_report("my renamed tag").answers["yes"] == 1
        other = session.store.tags()[0].name
        with pytest.raises(UsageError, match="already a tag"):
            session.rename_tag("my renamed tag", other.upper())
        with pytest.raises(UsageError, match="empty"):
            session.rename_tag("my renamed tag", "   ")
        with pytest.raises(UnknownTagError):
            session.rename_tag(name, "x")


def test_new_prompts_rescore_from_stored_vectors_only(album: Path) -> None:
    encoder = _counting(album)
    with _session(album, encoder=encoder) as session:
        name = _busy_tag(session)
        tag = session.store.tag_by_name(name)
        new = [f"a picture of {name}", f"{name}, seen up close"]
        prompts = [*tag.prompts, *new]  # close to the old ones: most cells stay
        change = session.set_prompts(name, [*prompts, " ", prompts[0]])
        assert encoder.images == 0 and sorted(encoder.texts) == sorted(new)
        assert change.reprompted == [name] and change.prompts_encoded == 2
        assert change.photos_scored == 40 and change.seconds > 0
        assert "no photo was encoded again" in change.describe()
        assert session.store.tag_by_name(name).prompts == tuple(prompts)
        # the tag's scores are the stored photo vectors against the mean prompt vector
        model_id = session.store.get_setting("model_id")
        texts = session.store.text_vectors(model_id, QUERY_INSTRUCTION, prompts)
        mean = np.mean([texts[p] for p in prompts], axis=0)
        mean /= np.linalg.norm(mean)
        index = session._vector_index()
        report = session.tag_report(name)
        assert np.allclose(report.scores, index.matrix @ mean, atol=1e-5)
        conn = sqlite3.connect(session.db_path)
        stored = dict(
            conn.execute(
                "SELECT photo_id, score FROM photo_tags WHERE tag_id = ? AND state = 'suggested'",
                (tag.id,),
            ).fetchall()
        )
        conn.close()
        by_id = dict(zip(index.ids.tolist(), (index.matrix @ mean).tolist(), strict=True))
        assert stored and all(abs(by_id[p] - s) < 1e-5 for p, s in stored.items())
        encoder.texts.clear()
        session.set_prompts(name, prompts)  # the same prompts: nothing to do
        assert encoder.texts == []
        with pytest.raises(UsageError):
            session.set_prompts(name, ["", "  "])


def test_new_tag_and_import_fill_the_library_without_encoding_photos(
    album: Path, tmp_path: Path
) -> None:
    encoder = _counting(album)
    listing = tmp_path / "tags.txt"
    listing.write_text(
        "# holiday words\n\nrock pool: a rock pool | tide pool\nDog\nsand castle\n", "utf-8"
    )
    with _session(album, encoder=encoder) as session:
        change = session.add_tags(["kite surfing"])
        assert change.added == ["kite surfing"] and change.photos_scored == 40
        assert "from their stored vectors" in change.describe()
        change = session.import_vocabulary(listing)
        assert change.added == ["rock pool", "sand castle"] and change.existing == ["dog"]
        assert session.store.tag_by_name("rock pool").prompts == ("a rock pool", "tide pool")
        assert encoder.images == 0
        assert not session.tagger().unscored_tags()
        bad = tmp_path / "bad.txt"
        bad.write_text("fine\n: only a prompt\n", "utf-8")
        with pytest.raises(UsageError, match="line 2"):
            session.import_vocabulary(bad)
        assert session.store.tag_by_name("fine") is None  # all or nothing


def test_restore_default_vocabulary(album: Path) -> None:
    defaults = default_vocabulary()
    with _session(album, encoder=_counting(album)) as session:
        first, second = defaults[0].name, defaults[1].name
        session.remove_tags([first])
        session.set_prompts(second, ["something else entirely"])
        session.add_tags(["my own tag"])
        change = session.restore_default_vocabulary()
        assert change.added == [first] and change.reprompted == [second]
        names = {t.name: t for t in session.store.tags()}
        assert "my own tag" in names and names[second].prompts == defaults[1].prompts
        assert {s.name for s in defaults} <= set(names)
        again = session.restore_default_vocabulary()
        assert again.added == [] and again.reprompted == []
        assert "Nothing changed" in again.describe()


def test_views_are_counted(album: Path) -> None:
    with _session(album) as session:
        photo = session.store.photos()[0].id
        for _ in range(3):
            session.note_view(photo)
        assert session.store.photo_views(photo)[0] == 3


def test_match_uses_stored_vectors_and_tag_thresholds(album: Path) -> None:
    with _session(album) as session:
        name = _busy_tag(session)
        report = session.tag_report(name)
        photo, score = report.above[0]
        matches = session.match(photo, [name, "a red bicycle", " ", name])
        assert sorted(m["text"] for m in matches) == sorted([name, "a red bicycle"])
        assert [m["score"] for m in matches] == sorted((m["score"] for m in matches), reverse=True)
        mine = next(m for m in matches if m["text"] == name)
        assert mine["rule"] == "tag" and mine["score"] == pytest.approx(score, abs=1e-6)
        assert mine["threshold"] == pytest.approx(report.threshold)
        assert mine["confidence"] in ("low", "medium", "high")
        other = next(m for m in matches if m["text"] == "a red bicycle")
        assert other["rule"] == "new tag"
        below_photo, _ = report.below[0]
        assert session.match(below_photo, [name])[0]["confidence"] == "no match"


# -- a new tag typed on a photo -------------------------------------------------------


def test_a_tag_added_to_a_photo_is_scored_at_once_with_the_model_and_undone_exactly(
    album: Path,
) -> None:
    encoder = _counting(album)
    with _session(album, encoder=encoder) as session:
        db = session.db_path
        cells = _photo_tags(db)
        policy = session.store.tag_policy_rows()
        photo = session.store.photos()[0]
        [added] = session.correct([photo.id], "Purple  Backdrop", "add")
        tag = session.store.tag_by_name("purple backdrop")
        assert tag is not None
        # Scored from the stored photo vectors: only the prompts went through the model.
        assert encoder.images == 0 and sorted(encoder.texts) == sorted(tag.prompts)
        assert added.new_tag and added.photos_scored == 40 and added.note == ""
        assert not session.tagger().unscored_tags()
        report = session.tag_report("purple backdrop")
        assert report.source != "not_scored" and report.scores.size == 40
        carriers = _carriers(db, tag.id)
        assert photo.id in carriers and len(carriers - {photo.id}) == added.added > 0
        conn = sqlite3.connect(db)
        scores = conn.execute(
            "SELECT COUNT(*) FROM photo_tags WHERE tag_id = ? AND score IS NOT NULL", (tag.id,)
        ).fetchone()[0]
        conn.close()
        assert scores == len(carriers)
        text = added.describe()
        assert text.startswith(f"Added 'purple backdrop' on {photo.path}; scored 40 photos")
        assert "from their stored vectors" in text
        assert f"{added.added} more photo" in text and "carr" in text

        # Undo puts every photo and threshold back, and takes the new tag out again.
        undone = session.undo()
        assert undone is not None and undone.undone_action == "add"
        assert undone.photos_changed == len(set(added.changed_photo_ids) - {photo.id})
        assert session.store.tag_by_name("purple backdrop") is None
        assert _photo_tags(db) == cells
        assert session.store.tag_policy_rows() == policy


def test_a_tag_added_without_the_model_waits_and_is_scored_when_it_loads(album: Path) -> None:
    loads: list[object] = []

    def loader(settings):
        loads.append(settings)
        return load_encoder(settings)

    events: list = []
    with LibrarySession(
        album, load_settings(), on_event=events.append, encoder_loader=loader, backup=False
    ) as session:
        db = session.db_path
        cells = _photo_tags(db)
        photo = session.store.photos()[0]
        [added] = session.correct([photo.id], "purple backdrop", "add")
        assert not loads and not session.model_loaded  # a correction never loads it
        assert added.describe() == (
            f"Added 'purple backdrop' on {photo.path}: a new tag, not scored yet; it will be "
            "scored when the model is loaded."
        )
        assert added.new_tag and added.photos_scored == 0
        assert session.tagger().unscored_tags() == ["purple backdrop"]
        assert session.score_waiting_tags() is None  # no model: it keeps waiting
        assert not loads

        # Undone before the model came: as ever, the new tag goes with it.
        session.undo()
        assert session.store.tag_by_name("purple backdrop") is None
        assert _photo_tags(db) == cells

        session.correct([photo.id], "purple backdrop", "add")
        session.encoder()  # the model is loaded (for a search, say)
        assert len(loads) == 1
        events.clear()
        change = session.score_waiting_tags()
        assert change is not None and change.waited == ["purple backdrop"]
        assert change.photos_scored == 40 and not change.unscored
        assert not session.tagger().unscored_tags()
        tag = session.store.tag_by_name("purple backdrop")
        assert session.tag_report("purple backdrop").scores.size == 40
        assert len(_carriers(db, tag.id) - {photo.id}) > 0
        notices = [e.text for e in events if isinstance(e, Notice)]
        assert any("'purple backdrop' was waiting for it" in n for n in notices), notices
        assert any(isinstance(e, TagsChanged) for e in events)
        assert session.score_waiting_tags() is None  # nothing waits any more

        # Undone after it was scored: the photo's own answer goes, the tag stays scored.
        undone = session.undo()
        assert undone is not None and undone.undone_action == "add"
        assert session.store.tag_by_name("purple backdrop") is not None
        assert session.store.photo_tag(photo.id, tag.id) is None or (
            session.store.photo_tag(photo.id, tag.id).state == "suggested"
        )
        assert not session.tagger().unscored_tags()
