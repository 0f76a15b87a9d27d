"""Vocabulary edits: tags added (one by one, from a file, the shipped defaults), renamed,
given new prompts or removed, each in one transaction and decided again at once.

A new or re-prompted tag is scored across the library from the stored photo vectors:
only its prompts go through the model (text only), never a photo. Without the model at
hand it is kept "not scored yet" until the model is next loaded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Sequence
from pathlib import Path

import numpy as np

from albumtagger.errors import ModelError, UnknownTagError, UsageError, UserError
from albumtagger.library.tag_names import clean_name
from albumtagger.tagging import thresholds as th
from albumtagger.tagging import vocabulary
from albumtagger.tagging.decision_state import DecisionState
from albumtagger.tagging.results import VocabularyChange
from albumtagger.tagging.vocabulary import (
    TagSpec,
    default_vocabulary,
    parse_spec,
    parse_vocabulary,
)

log = logging.getLogger(__name__)


class VocabularyEdits(DecisionState):
    """The decision state, with its vocabulary edited."""

    def add_tags(self, specs: Sequence[str]) -> VocabularyChange:
        """Add tags ("name" or "name: prompt | prompt") and score them from stored photo
        vectors (only their prompts go through the model). Without a model at hand they
        are kept "not scored yet"."""
        return self._add_specs([parse_spec(s) for s in specs])

    def _add_specs(self, parsed: Sequence[TagSpec]) -> VocabularyChange:
        start = time.perf_counter()
        result = VocabularyChange()
        with self._atomic(durable=True):
            new: set[int] = set()
            for spec in parsed:
                existing = self.store.tag_by_name(spec.name)
                if existing is not None or spec.name in result.added:
                    result.existing.append(existing.name if existing else spec.name)
                    continue
                new.add(self.store.add_tag(spec.name, spec.prompts))
                result.added.append(spec.name)
            if new:
                self._rescore(new, result)
        result.seconds = time.perf_counter() - start
        return result

    def add_learned_tag(self, name: str) -> VocabularyChange:
        """Add a tag without prompts, learned from the photos it is given (accepted or
        added: see `Corrections.correct`) and never from its name: a person, a pet, a
        place. It is suggested on other photos once it has `MIN_EXAMPLES` of them."""
        return self._add_specs([TagSpec(clean_name(name), ())])

    def import_vocabulary(self, path: Path | str) -> VocabularyChange:
        """Add the tags listed in a text file: one per line, `name` or
        `name: prompt | prompt`; blank lines and lines starting with # are ignored. Tags
        already in the vocabulary are left as they are (listed in `existing`)."""
        path = Path(path)
        text = vocabulary.read_vocabulary_file(path)
        for number, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if line and not line.startswith("#"):
                try:
                    parse_spec(line)
                except UserError as exc:
                    raise UsageError(f"{path}, line {number}: {exc}") from None
        return self._add_specs(parse_vocabulary(text))

    def rename_tag(self, old: str, new: str) -> VocabularyChange:
        """Give a tag another name: the same tag, with its cells, answers, threshold and
        prompts. Raises `UsageError` for an empty name or one another tag has."""
        result = VocabularyChange()
        with self._atomic(durable=True):
            tag = self._tag_row(old)
            name = clean_name(new)
            other = self.store.tag_by_name(name)
            if other is not None and other.id != tag.id:
                raise UsageError(
                    f"There is already a tag {other.name!r}; choose another name, or remove "
                    "that tag first."
                )
            if name != tag.name:
                self.store.rename_tag(tag.id, name)
                self._forget_all()
                result.renamed.append((tag.name, name))
        return result

    def set_prompts(self, name: str, prompts: Sequence[str]) -> VocabularyChange:
        """Replace a tag's prompts (its vector is the normalised mean of theirs) and score
        it again across the library from stored photo vectors: only the new prompts go
        through the model, no photo does. Answers and a pinned threshold stay."""
        start = time.perf_counter()
        cleaned = list(dict.fromkeys(" ".join(p.split()) for p in prompts if p.strip()))
        if not cleaned:
            raise UsageError("A tag needs at least one prompt.")
        result = VocabularyChange()
        with self._atomic(durable=True):
            tag = self._tag_row(name)
            if list(tag.prompts) != cleaned:
                self.store.set_tag_prompts(tag.id, cleaned)
                result.reprompted.append(tag.name)
                self._rescore({tag.id}, result)
        result.seconds = time.perf_counter() - start
        return result

    def restore_default_vocabulary(self) -> VocabularyChange:
        """Add back the shipped default tags that are missing and give the default tags
        their shipped prompts again; tags of the user's own stay as they are."""
        start = time.perf_counter()
        result = VocabularyChange()
        with self._atomic(durable=True):
            touched: set[int] = set()
            for spec in default_vocabulary():
                tag = self.store.tag_by_name(spec.name)
                if tag is None:
                    touched.add(self.store.add_tag(spec.name, spec.prompts))
                    result.added.append(spec.name)
                elif tuple(tag.prompts) != tuple(spec.prompts):
                    self.store.set_tag_prompts(tag.id, spec.prompts)
                    touched.add(tag.id)
                    result.reprompted.append(tag.name)
            if touched:
                self._rescore(touched, result)
        result.seconds = time.perf_counter() - start
        return result

    def remove_tags(self, names: Sequence[str]) -> VocabularyChange:
        """Remove tags with their suggestions, decisions and feedback; the photos that
        carried them are re-decided (another tag may take the freed place)."""
        result = VocabularyChange()
        with self._atomic(durable=True):
            found = []
            for name in names:
                tag = self.store.tag_by_name(clean_name(name))
                if tag is None:
                    raise UnknownTagError(f"There is no tag {name!r} in the vocabulary.")
                found.append(tag)
            for tag in found:
                self.store.remove_tag(tag.id)
                result.removed.append(tag.name)
            self._forget_all()
            if self._has_matrix():
                result.changes = self._apply(self._decide_all())
                self._bump_generation()
        return result

    def score_waiting_tags(self) -> VocabularyChange:
        """Score the tags that wait for the model (added while it was not at hand: by a
        correction, a vocabulary edit, another process) across the library from stored
        photo vectors, and decide again; only their prompts go through the model. Meant
        for when the model is loaded; `waited` names the tags scored."""
        start = time.perf_counter()
        result = VocabularyChange()
        with self._atomic():
            self._load_tags()
            waiting = {t.id: t.name for t in self._unscored}
            if waiting:
                self._rescore(set(waiting), result)
                result.waited = [n for n in waiting.values() if n not in result.unscored]
        result.seconds = time.perf_counter() - start
        return result

    def _rescore(self, tag_ids: Collection[int], result: VocabularyChange) -> None:
        """Score these tags (new, or with new prompts) across the library from stored
        photo vectors, and decide again. Prompts without a cached vector go through the
        model (text only); tags that still lack one stay "not scored yet"."""
        self._forget_all()
        self._load_tags()
        todo = list(self._unscored)
        touched = set(tag_ids) | {t.id for t in todo}
        if todo and self._encoder_factory is not None and self.model_id is not None:
            try:
                encoder = self._encoder_factory()
                if encoder.model_id != self.model_id:
                    raise ModelError(
                        f"The library was tagged with {self.model_id}, not {encoder.model_id}; "
                        "use the library's model, or index the library again with the other one."
                    )
                for _, total in vocabulary.embed_prompts(self.store, encoder, todo):
                    result.prompts_encoded = total
            except ModelError as exc:
                log.info("Tags wait for the model: %s", exc)
                result.reason = str(exc)
            self._forget_all()
        tags, _ = self._load_tags()
        unscored = {t.id for t in self._unscored}
        result.unscored = [t.name for t in self._unscored if t.id in set(tag_ids)]
        if not self._has_matrix():
            return
        cols = [j for j, t in enumerate(tags) if t.id in touched and t.id not in unscored]
        if cols:
            self._refit(cols)
        ids, rows, decisions = self._decide_all()
        if cols:
            # Cells of these tags got new scores: write them even where the decision stayed.
            photo, tag, _, _ = self.store.suggestion_cells()
            stale = np.isin(ids, photo[np.isin(tag, [tags[j].id for j in cols])])
            auto = np.isin(decisions.state[:, cols], (th.STATE_SUGGESTED, th.STATE_FALLBACK))
            rows = np.union1d(rows, np.flatnonzero(stale | auto.any(axis=1)))
            result.photos_scored = len(ids)
        result.changes = self._apply((ids, rows, decisions))
        self._bump_generation()
