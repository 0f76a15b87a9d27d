"""Rank descriptions for one image: scores, and confidence levels as the thresholds give.

A score is the cosine between the image's vector and a text's query vector. Each text
is judged by a threshold and a score distribution (median, robust std), and
`thresholds.match_confidence` turns the score into "high", "medium", "low" or
"no match":
- a text that names a scored tag of the library the image is in: that tag's threshold
  and score statistics (rule "tag");
- any other text, inside a library: what a new tag of that text would start from, its
  prior over the library's stored photo vectors (rule "new tag");
- outside a library (or one tagged with another model): the base threshold, read as the
  prior of a tag whose scores spread by `thresholds.DEFAULT_SCORE_SCALE` (rule "base").

A free-text search of a library stops at a relevance cutoff learned the same way
(`search_cutoff`): what a new tag of the query would start from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from albumtagger.config import Settings
from albumtagger.library.db.store import fallback_sidecar_path, sidecar_path
from albumtagger.tagging import thresholds as th
from albumtagger.tagging.decision_state import IMAGE_MODEL_ID_KEY, MODEL_ID_KEY
from albumtagger.tagging.inspection import Inspection

CUTOFF_SAMPLE = 20_000
"""A search's cutoff is estimated from at most about this many photos' scores (evenly
spread over the library): a distribution needs no more, and a big library costs no
second full pass."""


@dataclass(frozen=True)
class Judge:
    """How one text's score is judged."""

    threshold: float
    median: float
    scale: float
    rule: str
    """"tag", "new tag" or "base" (see the module doc)."""


def find_library(image: Path, data_dir: Path) -> Path | None:
    """The folder of the library `image` lies in (its nearest ancestor with a sidecar,
    in the folder or, for a read-only folder, in the data dir), or None."""
    start = Path(image).expanduser().absolute().parent
    for folder in (start, *start.parents):
        if sidecar_path(folder).is_file() or fallback_sidecar_path(folder, data_dir).is_file():
            return folder
    return None


def library_judges(
    tagger: Inspection,
    model_id: str,
    texts: Sequence[str],
    vectors: np.ndarray,
) -> tuple[list[Judge] | None, str]:
    """Judges from the thresholds and stored photo vectors of `tagger`'s library, or
    (None, why) when the library has nothing to judge by: no tagged photo yet, or tagged
    with another model than `model_id` (its scores do not compare)."""
    store = tagger.store
    recorded = store.get_setting(MODEL_ID_KEY)
    if recorded is None:
        return None, "the library has no tagged photo yet"
    if recorded != model_id:
        return None, f"the library was tagged with another model ({recorded})"
    image_id = store.get_setting(IMAGE_MODEL_ID_KEY) or recorded
    _, photos = store.photo_vectors(image_id, statuses=("ok",))
    out = []
    for text, vector in zip(texts, vectors, strict=True):
        column = photos @ vector if len(photos) else None
        out.append(Judge(*tagger.text_policy(text, column)))
    return out, ""


def standalone_judges(settings: Settings, n: int) -> list[Judge]:
    threshold, median, scale = th.standalone_policy(settings.thresholds)
    return [Judge(threshold, median, scale, "base")] * n


def ranked(
    texts: Sequence[str], scores: np.ndarray, judges: Sequence[Judge], settings: Settings
) -> list[dict[str, Any]]:
    """[{"text", "score", "confidence", "threshold", "rule"}], best score first (ties in
    the order given)."""
    out = [
        {
            "text": text,
            "score": float(score),
            "confidence": th.match_confidence(
                float(score), j.threshold, j.median, j.scale, settings.thresholds
            ),
            "threshold": j.threshold,
            "rule": j.rule,
        }
        for text, score, j in zip(texts, scores, judges, strict=True)
    ]
    order = sorted(range(len(out)), key=lambda i: (-out[i]["score"], i))
    return [out[i] for i in order]


def search_cutoff(tagger: Inspection, matrix: np.ndarray, vector: np.ndarray) -> float:
    """The relevance cutoff of a search for the query vector `vector` over the library's
    photo vectors `matrix` (unit rows): the prior a new tag of the query would start
    from (`Inspection.search_cutoff`)."""
    step = max(1, len(matrix) // CUTOFF_SAMPLE)
    column = matrix[::step] @ np.asarray(vector, dtype=np.float32) if len(matrix) else None
    return tagger.search_cutoff(np.zeros(0) if column is None else column)
