"""Corrections, their undo and redo: the user accepts, rejects, adds or removes a tag of a
photo (or answers the review queue), and the tag's threshold learns from it.

A correction is one transaction: the feedback event, the user's decision, the corrected
tag's new threshold and every photo that changes with it, and a snapshot of what it
replaced, so that undo puts back exactly what was there. Undo in turn keeps what it
replaced, so that redo puts the correction back exactly; a new correction ends what can
be redone.

Adding a tag that is not in the vocabulary yet creates it. With the model at hand it is
scored across the library at once from the stored photo vectors (only its prompts go
through the model), as a vocabulary edit does, within the same correction: its undo
puts every photo back and takes the tag out again. Without the model the tag waits,
"not scored yet", and is scored when the model is next loaded.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from albumtagger.errors import ModelError, NotFoundError, UnknownTagError, UserError
from albumtagger.library.db.store import PhotoRow, SuggestionChanges, TagRow
from albumtagger.library.tag_names import clean_name
from albumtagger.tagging import vocabulary
from albumtagger.tagging.decision_state import DecisionState
from albumtagger.tagging.results import ACTION_VERBS, Correction
from albumtagger.tagging.vocabulary import TextEncoder, parse_spec

NEW_TAG_WAITS = "a new tag, not scored yet; it will be scored when the model is loaded"
"""The note of a correction that created a tag without the model at hand."""
REDO_PREFIX = "redo_"
"""Keys of an undone event's undo data that keep what its undo replaced (for redo)."""


class Corrections(DecisionState):
    """The decision state, corrected by the user."""

    def _photo(self, path: str) -> PhotoRow:
        photo = self.store.photo_by_path(path)
        if photo is None:
            raise NotFoundError(f"{path} is not in the library; check the path, or index first.")
        return photo

    def _score(self, photo_id: int, j: int | None) -> float | None:
        if j is None or not self._has_matrix():
            return None
        ids, scores = self._library()
        hit = np.flatnonzero(ids == photo_id)
        return None if hit.size == 0 else float(scores[hit[0], j])

    def correct(
        self,
        path: str,
        tag_name: str,
        action: str,
        *,
        review: bool = False,
        encoder: TextEncoder | None = None,
    ) -> Correction:
        """Accept, reject, add or remove one tag of one photo, and learn from it.

        `review`: the answer came from the review queue (it teaches the tag's threshold
        but not the global controller, since such cells are chosen near the threshold).
        Needs no model. A new tag name is created with the decision: `encoder` is the
        model at hand, if any, and scores it across the library at once from the stored
        photo vectors (only its prompts go through it); without it the tag is recorded
        "not scored yet" and waits for the model.
        """
        if action not in ACTION_VERBS:
            raise UserError(f"Unknown correction {action!r}.")
        name = clean_name(tag_name)
        with self._atomic(durable=True):
            photo = self._photo(path)
            policy_before = self.store.tag_policy_rows()
            tag = self.store.tag_by_name(name)
            created = None
            scoring = 0.0
            waits = ""
            if tag is None:
                if action != "add":
                    raise UnknownTagError(
                        f"There is no tag {name!r}; add it to this photo, or to the vocabulary."
                    )
                spec = parse_spec(name)
                created = self.store.add_tag(spec.name, spec.prompts)
                self._forget_all()
                tag = self.store.tag_by_name(name)
                assert tag is not None
                start = time.perf_counter()
                waits = self._score_new_tag(tag, encoder)
                scoring = time.perf_counter() - start
            previous = self.store.photo_tag(photo.id, tag.id)
            positive = action in ("accept", "add")
            state = "accepted" if positive else "rejected"
            if previous is not None and previous.state == state:
                return Correction(
                    path,
                    tag.name,
                    action,
                    None,
                    None,
                    0,
                    note=f"it was already {state}; nothing changed.",
                )
            shown = previous is not None and previous.state != "rejected"
            suggested = (
                previous is not None and previous.state == "suggested" and not previous.fallback
            )
            if action == "accept" and not shown:
                action = "add"
            j = self._column(tag.id)
            score = self._score(photo.id, j)
            before = None if j is None else float(self.thresholds()[j])
            snapshot: dict[str, Any] = {
                "generation": self._generation(),
                "photos": [photo.id],
                "rows": self.store.photo_tag_rows([photo.id]),
                "created_tag": created,
            }
            source = previous.source if previous is not None and shown else "user"
            feedback_id = self.store.add_feedback(
                photo.id,
                tag.id,
                action,
                score,
                positive=positive,
                was_suggested=suggested,
                previous=previous,
                review=review,
            )
            self.store.forget_redo()
            self.store.set_user_decision(photo.id, tag.id, state, source, score)
            after = None
            changes = SuggestionChanges()
            note = ""
            scored = 0
            if j is None and created is not None:
                note = NEW_TAG_WAITS + (f" ({waits})" if waits else "") + "."
            elif j is None:
                note = "the tag is not scored yet; it is learned from once the model scores it."
            elif self._has_matrix():
                start = time.perf_counter()
                changes = self._redecide_tags([j], snapshot)
                after = float(self.thresholds()[j])
                if created is not None:
                    scored = len(self._library()[0])
                    scoring += time.perf_counter() - start
            policy_after = {tuple(row) for row in self.store.tag_policy_rows()}
            snapshot["tags"] = [row for row in policy_before if tuple(row) not in policy_after]
            self.store.set_feedback_undo(feedback_id, snapshot)
            return _correction(
                path,
                tag.name,
                tag.id,
                action,
                before,
                after,
                changes,
                photo.id,
                note,
                new_tag=created is not None,
                photos_scored=scored,
                seconds=scoring if scored else 0.0,
                feedback_id=feedback_id,
            )

    def _score_new_tag(self, tag: TagRow, encoder: TextEncoder | None) -> str:
        """Give a tag just created by a correction its text vector, so it is scored from
        the stored photo vectors: only its prompts go through `encoder`, no photo does.
        Returns why it waits for the model ("" when it is scored, or no model is at
        hand)."""
        if encoder is None or self.model_id is None:
            return ""
        if encoder.model_id != self.model_id:
            return f"the library was tagged with {self.model_id}, not {encoder.model_id}"
        try:
            for _ in vocabulary.embed_prompts(self.store, encoder, [tag]):
                pass
        except ModelError as exc:
            return str(exc)
        self._forget_all()
        return ""

    def answer(self, path: str, tag_name: str, yes: bool) -> Correction:
        """A yes/no from the review queue: does this tag apply to this photo?"""
        return self.correct(path, tag_name, "accept" if yes else "reject", review=True)

    def undo(self) -> Correction | None:
        """Undo the newest correction; None when there is none.

        When no automatic decision was written since the correction, everything it
        changed (the cell, the photos re-decided with it, the thresholds) is put back
        exactly; otherwise the cell is put back and its tag re-fitted and re-decided.
        """
        with self._atomic(durable=True):
            last = self.store.last_feedback()
            if last is None:
                return None
            event, previous, data = last
            photo = self.store.photo(event.photo_id)
            path = photo.path if photo else "?"
            tag = next(t for t in self.store.tags() if t.id == event.tag_id)
            j = self._column(tag.id)
            before = None if j is None else float(self.thresholds()[j])
            self.store.mark_feedback_undone(event.id)
            exact = data is not None and data.get("generation") == self._generation()
            photos = list(data["photos"]) if exact and data is not None else [event.photo_id]
            redo: dict[str, Any] = {
                "generation": self._generation(),
                "photos": photos,
                "rows": self.store.photo_tag_rows(photos),
            }
            policy_before = self.store.tag_policy_rows()
            if exact and data is not None:
                self.store.restore_photo_tag_rows(data["photos"], data["rows"])
                self.store.restore_tag_policy_rows(data["tags"])
                self._keep_redo(event.id, data, redo, policy_before)
                if data.get("created_tag") is not None:
                    self.store.remove_tag_if_unused(data["created_tag"])
                return self._restored("undo", event, path, tag.name, before, data["photos"])
            self.store.restore_cell(
                event.photo_id,
                event.tag_id,
                None if previous is None else previous.state,
                None if previous is None else previous.source,
                None if previous is None else previous.score,
                bool(previous is not None and previous.fallback),
            )
            self._forget_all()
            j = self._column(tag.id)
            changes = SuggestionChanges()
            after = None
            if j is not None and self._has_matrix():
                changes = self._redecide_tags([j], redo)
                after = float(self.thresholds()[j])
            self._keep_redo(event.id, data, redo, policy_before)
            return _correction(
                path,
                tag.name,
                tag.id,
                "undo",
                before,
                after,
                changes,
                event.photo_id,
                undone_action=event.action,
                feedback_id=event.id,
            )

    def _restored(
        self, kind: str, event: Any, path: str, tag_name: str, before: float | None, photos
    ) -> Correction:
        """What an exact undo or redo (`kind`) of `event` did, once the rows it kept are
        back: `photos`, the photos those rows are of."""
        self._forget_all()
        j = self._column(event.tag_id)
        after = None if j is None else float(self.thresholds()[j])
        changed = [p for p in photos if p != event.photo_id]
        return Correction(
            path,
            tag_name,
            kind,
            before,
            after,
            len(changed),
            changed_photo_ids=(event.photo_id, *changed),
            undone_action=event.action,
            feedback_id=event.id,
        )

    def _keep_redo(
        self,
        feedback_id: int,
        data: dict[str, Any] | None,
        redo: dict[str, Any],
        policy_before: list[list],
    ) -> None:
        """Keep, with the undone event, what its undo replaced (`redo`: the photos' rows;
        the tags' thresholds as in `policy_before`), so that redo puts it back exactly."""
        policy_after = {tuple(row) for row in self.store.tag_policy_rows()}
        redo["tags"] = [row for row in policy_before if tuple(row) not in policy_after]
        # Top-level keys: the store writes long lists a slice at a time.
        redo_keys = {f"{REDO_PREFIX}{key}": value for key, value in redo.items()}
        self.store.set_feedback_undo(feedback_id, {**(data or {}), **redo_keys})

    def redo(self) -> Correction | None:
        """Put back the correction undone last; None when there is none (nothing was
        undone, or a correction was made since).

        When no automatic decision was written since the undo, everything it changed is
        put back exactly as it was before the undo; otherwise the cell is put back and
        its tag re-fitted and re-decided.
        """
        with self._atomic(durable=True):
            found = self.store.next_redo()
            if found is None:
                return None
            event, data = found
            redo = {
                key[len(REDO_PREFIX) :]: value
                for key, value in (data or {}).items()
                if key.startswith(REDO_PREFIX)
            } or None
            photo = self.store.photo(event.photo_id)
            path = photo.path if photo else "?"
            tag = next(t for t in self.store.tags() if t.id == event.tag_id)
            j = self._column(tag.id)
            before = None if j is None else float(self.thresholds()[j])
            self.store.mark_feedback_undone(event.id, undone=False)
            if redo is not None and redo.get("generation") == self._generation():
                self.store.restore_photo_tag_rows(redo["photos"], redo["rows"])
                self.store.restore_tag_policy_rows(redo["tags"])
                return self._restored("redo", event, path, tag.name, before, redo["photos"])
            cell = next(
                (r for r in (redo or {}).get("rows", []) if r[:2] == [event.photo_id, tag.id]),
                None,
            )
            state = "accepted" if event.positive else "rejected"
            source = cell[3] if cell is not None else "user"
            self.store.set_user_decision(event.photo_id, tag.id, state, source, event.score)
            self._forget_all()
            j = self._column(tag.id)
            changes = SuggestionChanges()
            after = None
            if j is not None and self._has_matrix():
                changes = self._redecide_tags([j])
                after = float(self.thresholds()[j])
            return _correction(
                path,
                tag.name,
                tag.id,
                "redo",
                before,
                after,
                changes,
                event.photo_id,
                undone_action=event.action,
                feedback_id=event.id,
            )


def _correction(
    path: str,
    tag: str,
    tag_id: int,
    action: str,
    before: float | None,
    after: float | None,
    changes: SuggestionChanges,
    photo_id: int,
    note: str = "",
    undone_action: str = "",
    *,
    new_tag: bool = False,
    photos_scored: int = 0,
    seconds: float = 0.0,
    feedback_id: int = 0,
) -> Correction:
    """The report of a correction (or undo) of `photo_id` that made `changes`."""
    others = sorted(changes.photo_ids() - {photo_id})
    added = {p for p, t in changes.added if t == tag_id and p != photo_id}
    removed = {p for p, t in changes.removed if t == tag_id and p != photo_id}
    return Correction(
        path,
        tag,
        action,
        before,
        after,
        len(others),
        len(added),
        len(removed),
        tuple([photo_id, *others]),
        note,
        undone_action,
        new_tag=new_tag,
        photos_scored=photos_scored,
        seconds=seconds,
        feedback_id=feedback_id,
    )
