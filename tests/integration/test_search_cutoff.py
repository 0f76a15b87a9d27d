"""A library's text search with its relevance cutoff (the golden model, a real sidecar):
the cutoff is what a new tag of the text would start from."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from albumtagger.config import load_settings
from albumtagger.library.thumbnails import ThumbnailCache
from albumtagger.service.session import LibrarySession
from tests.conftest import make_photo


def test_the_cutoff_is_a_new_tags_threshold_of_the_text(tmp_path: Path, golden_env: dict) -> None:
    root = tmp_path / "album"
    for i in range(10):
        make_photo(root / f"p{i:02d}.jpg", 300 + i, size=(120, 90))
    text = "a red bicycle in the snow"
    with LibrarySession(
        root, load_settings(), thumbnails=ThumbnailCache(tmp_path / "thumbs")
    ) as session:
        list(session.index())
        ids, scores, cutoff = session.search_with_cutoff(text, top=100)
        plain_ids, plain_scores = session.search(text, top=100)
        assert np.array_equal(ids, plain_ids) and np.allclose(scores, plain_scores)
        assert len(ids) == 10
        # the same threshold the photo's "Match descriptions" judges this text by
        matched = session.match(int(ids[0]), [text])[0]
        assert matched["rule"] == "new tag"
        assert abs(cutoff - matched["threshold"]) < 1e-6
        assert abs(cutoff - load_settings().thresholds.base_threshold) > 1e-4
