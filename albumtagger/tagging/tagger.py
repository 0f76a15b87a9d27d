"""A library's tagger: its decision state (`tagging.decision_state`) with every job done
on it: corrections and undo (`corrections`), vocabulary edits (`vocabulary_edits`),
thresholds by hand (`pins`) and the inspector's questions (`inspection`).

A session keeps one for its library and hands it to indexing and watching; a caller
without a session makes one with `library_tagger`.
"""

from __future__ import annotations

from collections.abc import Callable

from albumtagger.config import Settings
from albumtagger.library.db.store import Store
from albumtagger.tagging.corrections import Corrections
from albumtagger.tagging.inspection import Inspection
from albumtagger.tagging.pins import Pins
from albumtagger.tagging.vocabulary import TextEncoder
from albumtagger.tagging.vocabulary_edits import VocabularyEdits


class Tagger(Corrections, VocabularyEdits, Pins, Inspection):
    """Decisions over one library, and all that is done to them."""


def library_tagger(
    store: Store,
    settings: Settings,
    *,
    encoder_factory: Callable[[], TextEncoder] | None = None,
) -> Tagger:
    """The tagger of the library in `store`, deciding by `settings`; `encoder_factory`
    (optional) gives the text encoder that scores new prompts."""
    return Tagger(store, settings, encoder_factory=encoder_factory)
