"""A correction end to end on a real sidecar: feedback stored, the tag refitted, the
library re-decided, changed suggestions written back. Prints JSON.

Builds a library of `--photos` synthetic photo vectors (float16 BLOBs, as the pipeline
stores them) and `--tags` tags, decides it once, then times corrections:
- in a long-lived tagger (the app's worker): refit one tag, re-decide only rows that
  can change, write the diff;
- in a fresh tagger (one `albumtagger correct` command): load the library first;
and compares them with the naive way measured in the same run: refit every tag and
re-decide the whole library after each correction.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from albumtagger.config import Settings
from albumtagger.library.db.store import Store
from albumtagger.model.encoder import QUERY_INSTRUCTION
from albumtagger.tagging.decision_state import IMAGE_MODEL_ID_KEY, MODEL_ID_KEY
from albumtagger.tagging.tagger import library_tagger

MODEL = "bench-model"


def build(db: Path, n_photos: int, n_tags: int, dim: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    tag_vecs = rng.normal(size=(n_tags, dim)).astype(np.float32)
    tag_vecs /= np.linalg.norm(tag_vecs, axis=1, keepdims=True)
    names = [f"tag{j:03d}" for j in range(n_tags)]
    with Store(db, backups=False) as store, store.transaction():
        store.add_tags((n, [n]) for n in names)
        store.put_text_vectors(MODEL, QUERY_INSTRUCTION, zip(names, tag_vecs, strict=True))
        store.set_setting(MODEL_ID_KEY, MODEL)
        store.set_setting(IMAGE_MODEL_ID_KEY, MODEL)
        chunk = 5000
        for start in range(0, n_photos, chunk):
            count = min(chunk, n_photos - start)
            # Each photo: a few of its tags plus noise; prevalences differ per tag.
            weights = rng.exponential(size=n_tags) ** 2
            picks = rng.choice(n_tags, size=(count, 3), p=weights / weights.sum())
            vecs = tag_vecs[picks].sum(axis=1) * rng.uniform(0.1, 0.4, (count, 1))
            vecs += rng.normal(size=(count, dim)).astype(np.float32) / np.sqrt(dim)
            vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
            items = []
            for i in range(count):
                pid = store.add_photo(f"p{start + i:06d}.jpg", 1, 1)
                h = f"h{start + i}"
                store.record_read(pid, content_hash=h, size=1, mtime_ns=1, width=1, height=1)
                items.append((h, vecs[i]))
            store.put_embeddings(MODEL, items)
        store.conn.execute("UPDATE photos SET status = 'ok'")


def _pick(store: Store, rng: np.random.Generator, k: int) -> list[tuple[str, str, str]]:
    rows = store.conn.execute(
        "SELECT p.path, t.name FROM photo_tags pt JOIN photos p ON p.id = pt.photo_id "
        "JOIN tags t ON t.id = pt.tag_id WHERE pt.state = 'suggested' ORDER BY RANDOM() "
        "LIMIT ?",
        (k,),
    ).fetchall()
    return [(path, name, "reject" if rng.random() < 0.5 else "accept") for path, name in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--photos", type=int, default=100_000)
    parser.add_argument("--tags", type=int, default=300)
    parser.add_argument("--dim", type=int, default=1536)
    parser.add_argument("--corrections", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(1)
    work = Path(tempfile.mkdtemp(prefix="albumtagger-bench-"))
    out: dict[str, object] = {"photos": args.photos, "tags": args.tags, "dim": args.dim}
    try:
        db = work / "library.sqlite"
        t0 = time.perf_counter()
        build(db, args.photos, args.tags, args.dim)
        out["build_s"] = round(time.perf_counter() - t0, 1)
        with Store(db, backups=False) as store:
            tagger = library_tagger(store, Settings())
            t0 = time.perf_counter()
            tagger._library()
            out["load_library_s"] = round(time.perf_counter() - t0, 2)
            t0 = time.perf_counter()
            changed = tagger.redecide()
            out["first_decide_and_write_s"] = round(time.perf_counter() - t0, 2)
            out["first_decide_photos_written"] = len(changed.photo_ids())
            out["suggestions_stored"] = store.conn.execute(
                "SELECT COUNT(*) FROM photo_tags"
            ).fetchone()[0]
            tagger.redecide()  # in memory: previous decisions for the quick path

            live = []
            for path, name, action in _pick(store, rng, args.corrections):
                t0 = time.perf_counter()
                result = tagger.correct(path, name, action)
                live.append((time.perf_counter() - t0, result.photos_changed))
            out["long_lived_correction_s"] = {
                "median": round(statistics.median(t for t, _ in live), 3),
                "max": round(max(t for t, _ in live), 3),
                "photos_rewritten_median": statistics.median(n for _, n in live),
            }
            t0 = time.perf_counter()
            tagger.undo()
            out["long_lived_undo_s"] = round(time.perf_counter() - t0, 3)

            fresh = []
            for path, name, action in _pick(store, rng, 2):
                t0 = time.perf_counter()
                library_tagger(store, Settings()).correct(path, name, action)
                fresh.append(time.perf_counter() - t0)
            out["fresh_tagger_correction_s"] = round(statistics.median(fresh), 2)

            naive = []
            for path, name, action in _pick(store, rng, 2):
                t0 = time.perf_counter()
                tagger.correct(path, name, action)
                tagger.redecide()  # the naive way: refit every tag, decide every photo
                naive.append(time.perf_counter() - t0)
            out["naive_full_redecide_s"] = round(statistics.median(naive), 2)
            out["speedup_long_lived_vs_naive"] = round(
                out["naive_full_redecide_s"] / out["long_lived_correction_s"]["median"], 1
            )
        print(json.dumps(out, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
