"""The sidecar's own files and errors that tell the truth: a user's action is committed
with `synchronous = FULL`, bulk tagging with NORMAL."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from albumtagger.config import Settings
from albumtagger.library.db.store import Store
from albumtagger.tagging.encoder import QUERY_INSTRUCTION
from albumtagger.tagging.tagger import Tagger

MODEL = "test-model"
NAMES = ["dog", "cat", "beach", "snow"]


@pytest.fixture
def store(tmp_path: Path):
    """40 photos with vectors near one of 4 tags each."""
    store = Store(tmp_path / "lib.sqlite", backups=False)
    rng = np.random.default_rng(0)
    tag_vecs = rng.normal(size=(len(NAMES), 32)).astype(np.float32)
    tag_vecs /= np.linalg.norm(tag_vecs, axis=1, keepdims=True)
    with store.transaction():
        store.add_tags((n, [n]) for n in NAMES)
        store.put_text_vectors(MODEL, QUERY_INSTRUCTION, zip(NAMES, tag_vecs, strict=True))
        store.set_setting("model_id", MODEL)
        items = []
        for i in range(40):
            pid = store.add_photo(f"p{i:02d}.jpg", 1, 1)
            store.record_read(pid, content_hash=f"h{i}", size=1, mtime_ns=1, width=1, height=1)
            v = tag_vecs[i % len(NAMES)] + rng.normal(size=32) / 8
            items.append((f"h{i}", (v / np.linalg.norm(v)).astype(np.float32)))
        store.put_embeddings(MODEL, items)
        store.set_status(range(1, 41), "ok")
    yield store
    store.close()


def _commit_levels(store: Store, action) -> list[str]:
    """The `synchronous` level in force at each COMMIT that `action()` makes."""
    level = ["NORMAL"]
    seen: list[str] = []

    def trace(sql: str) -> None:
        text = " ".join(sql.upper().split())
        if text.startswith("PRAGMA SYNCHRONOUS ="):
            level[0] = text.rsplit("=", 1)[1].strip()
        elif text == "COMMIT":
            seen.append(level[0])

    store.conn.set_trace_callback(trace)
    try:
        action()
    finally:
        store.conn.set_trace_callback(None)
    assert level[0] == "NORMAL"  # back to NORMAL after each user action
    return seen


def test_user_actions_commit_with_full_sync_and_bulk_tagging_with_normal(store) -> None:
    tagger = Tagger(store, Settings())
    assert set(_commit_levels(store, tagger.redecide)) == {"NORMAL"}
    assert set(_commit_levels(store, lambda: tagger.tag_photos([1, 2]))) <= {"NORMAL"}
    user_actions = {
        "correction": lambda: tagger.correct("p00.jpg", "dog", "reject"),
        "review answer": lambda: tagger.answer("p01.jpg", "cat", True),
        "undo": tagger.undo,
        "pin": lambda: tagger.pin_threshold("beach", 0.3),
        "rename": lambda: tagger.rename_tag("snow", "winter"),
        "removal": lambda: tagger.remove_tags(["winter"]),
    }
    for what, action in user_actions.items():
        assert _commit_levels(store, action) == ["FULL"], what
    assert store.conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
