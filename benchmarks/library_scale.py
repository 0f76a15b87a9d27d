"""The read side at library scale: filters, counts, pages and vector search. Prints JSON.

    python benchmarks/library_scale.py --photos 100000 --tags 300 --dir /tmp/lib100k

Builds (once; reused for the same size and seed) a generated library in DIR through
the real `Store` and `Tagger`: photo vectors as float16 BLOBs, tags with text vectors
and fitted thresholds, suggestions decided by the real tag decisions, some accepted,
rejected and added tags with their feedback events, a few damaged, missing and pending
photos. Then it opens the library read-only as the app's GUI thread does and times
what the window asks for. The build runs without a journal or syncs (a build cut short
is rebuilt); at a million photos it took 7.4 min and 6.1 GB on 2 cores, the timings 10 min.

`build_library(dir, photos, tags, seed)` is importable (the desktop-app benchmark
reuses it). The photo files themselves are not written: only the sidecar exists, so
scanning DIR would mark every photo missing (kept, never deleted). Do not point a
watcher or an `index` at a generated library.

Vectors are realistic enough for thresholds: each photo is a mix of a few "concept"
directions plus noise, each tag leans on one or two concepts, so a tag's scores have a
positive tail (random unit vectors would give every cosine about 0).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import resource
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from albumtagger.config import Settings
from albumtagger.library.db.queries import (
    REVIEW_INDEX,
    REVIEW_INDEX_SQL,
    LibraryQueries,
    PhotoFilter,
)
from albumtagger.library.db.store import Store, sidecar_path
from albumtagger.model.encoder import QUERY_INSTRUCTION
from albumtagger.tagging.decision_state import IMAGE_MODEL_ID_KEY, MODEL_ID_KEY
from albumtagger.tagging.similarity import VectorIndex
from albumtagger.tagging.tagger import library_tagger
from albumtagger.tagging.vocabulary import default_vocabulary

MODEL = "bench-model"
DIM = 1536
MARKER_KEY = "benchmark_library"
"""Library setting: the parameters a generated library was built with (set when done)."""
BUILDING_KEY = "benchmark_library_building"
FORMAT = 2
"""Bump when the generator changes, so old generated libraries are rebuilt."""

DAMAGED_SHARE = 0.002
MISSING_SHARE = 0.005
PENDING_SHARE = 0.003
DECIDED_SHARE = 0.005
"""Share of photos with a user decision (accept, reject or add) and its feedback event."""

_CHUNK = 10_000
_EPOCH_NS = 1_420_070_400 * 10**9  # 2015-01-01
_SPAN_NS = 10 * 365 * 86_400 * 10**9


def _marker(photos: int, tags: int, seed: int, dim: int) -> str:
    return json.dumps(
        {"photos": photos, "tags": tags, "seed": seed, "dim": dim, "format": FORMAT},
        sort_keys=True,
    )


def _tag_names(count: int) -> list[str]:
    names = [s.name for s in default_vocabulary()][:count]
    names += [f"tag {j:04d}" for j in range(len(names), count)]
    return names


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def _existing(db: Path, marker: str) -> bool:
    """True when `db` is a finished generated library of these parameters.

    A generated library of other parameters (or a half-built one) is deleted; a
    sidecar that this generator did not make is refused.
    """
    if not db.exists():
        return False
    with Store(db, backups=False) as store:
        done = store.get_setting(MARKER_KEY)
        building = store.get_setting(BUILDING_KEY)
    if done == marker:
        return True
    if done is None and building is None:
        raise SystemExit(f"{db} is not a generated library; pick another --dir.")
    shutil.rmtree(db.parent)
    return False


def build_library(
    dir: Path | str, photos: int, tags: int, seed: int = 0, *, dim: int = DIM
) -> Path:
    """Build (or reuse) a generated library in `dir`; returns its sidecar database path.

    The library root is `dir`; the sidecar is `sidecar_path(dir)`. Deterministic for
    the same parameters; a library built earlier with the same ones is reused as it is.
    """
    root = Path(dir)
    db = sidecar_path(root)
    marker = _marker(photos, tags, seed, dim)
    if _existing(db, marker):
        return db
    rng = np.random.default_rng(seed)
    names = _tag_names(tags)
    n_concepts = max(4, tags // 2)
    common = _unit(rng.normal(size=dim))
    concepts = _unit(rng.normal(size=(n_concepts, dim)))
    # Each tag leans on one concept, sometimes a second; all share a common direction.
    primary = rng.permutation(np.arange(tags) % n_concepts)
    secondary = rng.integers(0, n_concepts, size=tags)
    tag_vecs = (
        0.35 * common
        + concepts[primary]
        + rng.uniform(0, 0.4, (tags, 1)) * concepts[secondary]
        + rng.normal(size=(tags, dim)) * (0.6 / np.sqrt(dim))
    )
    tag_vecs = _unit(tag_vecs)
    prevalence = 1.0 / (np.arange(n_concepts) + 3.0) ** 0.9
    prevalence /= prevalence.sum()

    with Store(db, backups=False) as store:
        with store.transaction():
            store.set_setting(BUILDING_KEY, marker)
        with _bulk_writes(store):
            with store.transaction():
                store.add_tags((n, [n]) for n in names)
                store.put_text_vectors(MODEL, QUERY_INSTRUCTION, zip(names, tag_vecs, strict=True))
                store.set_setting(MODEL_ID_KEY, MODEL)
                store.set_setting(IMAGE_MODEL_ID_KEY, MODEL)
            _add_photos(store, rng, photos, dim, common, concepts, prevalence)
            tagger = library_tagger(store, Settings())
            tagger.redecide()  # fits the thresholds and stores every photo's suggestions
            del tagger  # its score matrix (1.2 GB at a million)
            _add_decisions(store, rng, photos)
        with store.transaction():
            store.set_setting(MARKER_KEY, marker)
        store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        store.conn.execute("ANALYZE")
    return db


@contextlib.contextmanager
def _bulk_writes(store: Store) -> Iterator[None]:
    """While the library is generated: no journal, no syncs, a 2 GB page cache (a build
    cut short is deleted and rebuilt, as its marker says so); WAL again afterwards."""
    conn = store.conn
    conn.execute("PRAGMA journal_mode = OFF")
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute(f"PRAGMA cache_size = -{2 * 2**20}")
    try:
        yield
    finally:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")


def _add_photos(
    store: Store,
    rng: np.random.Generator,
    photos: int,
    dim: int,
    common: np.ndarray,
    concepts: np.ndarray,
    prevalence: np.ndarray,
) -> None:
    """Photo rows (folders by year and event) and their float16 vectors, in one transaction."""
    n_concepts = len(concepts)
    now = time.time()
    status = rng.choice(
        4,
        size=photos,
        p=[
            1 - DAMAGED_SHARE - MISSING_SHARE - PENDING_SHARE,
            DAMAGED_SHARE,
            MISSING_SHARE,
            PENDING_SHARE,
        ],
    )
    status_names = np.array(["ok", "damaged", "missing", "pending"])
    # Photos come in events of 20-400 shots; mtime increases within an event.
    with store.transaction() as conn:
        i = 0
        event = 0
        rows: list[tuple[Any, ...]] = []
        while i < photos:
            size_ev = int(min(photos - i, rng.integers(20, 400)))
            start = _EPOCH_NS + int(rng.integers(0, _SPAN_NS))
            year = 2015 + (start - _EPOCH_NS) * 10 // _SPAN_NS
            folder = f"{year}/{year}-{event % 12 + 1:02d} event {event:05d}"
            for k in range(size_ev):
                n = i + k
                s = status_names[status[n]]
                h = None if s in ("damaged", "pending") else hashlib.sha256(b"%d" % n).hexdigest()
                mtime = start + k * int(rng.integers(1, 600)) * 10**9
                w, hgt = (4032, 3024) if rng.random() < 0.8 else (3024, 4032)
                rows.append(
                    (
                        n + 1,
                        f"{folder}/IMG_{n:06d}.jpg",
                        int(rng.integers(1_500_000, 6_000_000)),
                        mtime,
                        h,
                        None if h is None else w,
                        None if h is None else hgt,
                        s,
                        "damaged: file is truncated" if s == "damaged" else None,
                        now - (photos - n),
                        now,
                    )
                )
            i += size_ev
            event += 1
        conn.executemany(
            "INSERT INTO photos(id, path, size, mtime_ns, content_hash, width, height, status, "
            "error, added_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        # Generated in photo order, stored in content-hash order: the embeddings table is
        # keyed by hash, and random-order inserts into a 3 GB B-tree crawl at a million.
        vectors = np.empty((photos, dim), np.float16)
        for start in range(0, photos, _CHUNK):
            count = min(_CHUNK, photos - start)
            k = rng.integers(1, 4, size=count)
            picks = rng.choice(n_concepts, size=(count, 3), p=prevalence)
            # Weak concept weights give scores near the thresholds: fallback and low tags.
            weights = rng.uniform(0.05, 1.0, size=(count, 3)) * (np.arange(3) < k[:, None])
            vecs = 0.5 * common + np.einsum("nk,nkd->nd", weights, concepts[picks])
            vecs += rng.normal(size=(count, dim)) * (0.9 / np.sqrt(dim))
            vectors[start : start + count] = _unit(vecs)
        hashed = sorted((row[4], n) for n, row in enumerate(rows) if row[4] is not None)
        del rows
        for start in range(0, len(hashed), _CHUNK):
            chunk = hashed[start : start + _CHUNK]
            store.put_embeddings(MODEL, [(h, vectors[n]) for h, n in chunk])


def _add_decisions(store: Store, rng: np.random.Generator, photos: int) -> None:
    """Accept or reject some suggestions and add some tags, with feedback events."""
    ok = np.array([r.id for r in store.photos(statuses=("ok",))], dtype=np.int64)
    if len(ok) == 0:
        return
    n = max(1, int(photos * DECIDED_SHARE))
    picked = np.unique(rng.choice(ok, size=n))
    cells = store.photo_tags([int(p) for p in picked])
    by_photo: dict[int, list[Any]] = {}
    for cell in cells:
        by_photo.setdefault(cell.photo_id, []).append(cell)
    tag_ids = [t.id for t in store.tags()]
    with store.transaction():
        for pid in picked:
            own = by_photo.get(int(pid), [])
            roll = rng.random()
            if own and roll < 0.8:
                cell = own[int(rng.integers(0, len(own)))]
                action = "accept" if rng.random() < 0.6 else "reject"
                previous = cell
                tag_id, score = cell.tag_id, cell.score
            else:
                action = "add"
                tag_id = int(tag_ids[int(rng.integers(0, len(tag_ids)))])
                previous = store.photo_tag(int(pid), tag_id)
                if previous is not None:
                    continue
                score = None
            positive = action != "reject"
            store.add_feedback(
                int(pid),
                tag_id,
                action,
                score,
                positive=positive,
                was_suggested=previous is not None and not previous.fallback,
                previous=previous,
            )
            store.set_user_decision(
                int(pid),
                tag_id,
                "accepted" if positive else "rejected",
                "auto" if previous is not None else "user",
                score,
            )


def _set_review_index(db: Path, wanted: bool) -> None:
    with Store(db, backups=False) as store:
        store.conn.execute(f"DROP INDEX IF EXISTS {REVIEW_INDEX}")
        if wanted:
            store.conn.execute(REVIEW_INDEX_SQL)


# --------------------------------------------------------------------------- timing


def _best(fn: Callable[[], object], repeat: int = 5) -> tuple[float, object]:
    """(median seconds, last result) of `repeat` calls after one warm-up."""
    result = fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _popular_tags(queries: LibraryQueries, k: int) -> list[int]:
    counts = queries.tag_counts(PhotoFilter())
    return [t for t, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:k]]


def measure(db: Path) -> dict[str, Any]:
    """Open the library read-only and time the window's reads and the vector index."""
    out: dict[str, Any] = {}
    t0 = time.perf_counter()
    queries = LibraryQueries(db)
    ids = queries.photo_ids(PhotoFilter())
    out["open_s"] = round(time.perf_counter() - t0, 4)
    out["all_photos"] = len(ids)
    out["review_index"] = queries.uses_review_index
    with queries:
        top = _popular_tags(queries, 12)
        # Tags with many photos: the slow case for IN lists and counts.
        one = PhotoFilter(tags=(top[0],))
        three = PhotoFilter(tags=(top[1], top[4], top[8]))
        exclude = PhotoFilter(tags=(top[2], top[5]), exclude=(top[3],), match_any=True)
        # Counts are kept until the library changes: the first ask of a filter pays.
        first: dict[str, Callable[[], object]] = {
            "quick_counts_first_s": lambda: queries.quick_counts(one),
            "quick_counts_all_first_s": lambda: queries.quick_counts(PhotoFilter()),
            "counts_first_s": lambda: queries.tag_counts(one),
        }
        for key, fn in first.items():
            t0 = time.perf_counter()
            fn()
            out[key] = round(time.perf_counter() - t0, 4)
        timed: dict[str, tuple[str, Callable[[], object]]] = {
            "filter_one_s": ("filter_one_photos", lambda: queries.photo_ids(one)),
            "filter_all_s": ("filter_all_photos", lambda: queries.photo_ids(three)),
            "filter_exclude_s": ("filter_exclude_photos", lambda: queries.photo_ids(exclude)),
            "filter_none_s": ("filter_none_photos", lambda: queries.photo_ids(PhotoFilter())),
            "filter_taken_desc_s": (
                "",
                lambda: queries.photo_ids(PhotoFilter(order="taken", descending=True)),
            ),
            "filter_name_text_s": (
                "filter_name_text_photos",
                lambda: queries.photo_ids(PhotoFilter(name="img_01")),
            ),
            "filter_untagged_s": (
                "untagged_photos",
                lambda: queries.photo_ids(PhotoFilter(untagged=True)),
            ),
            "filter_needs_review_s": (
                "needs_review_photos",
                lambda: queries.photo_ids(PhotoFilter(needs_review=True)),
            ),
            "counts_s": ("", lambda: queries.tag_counts(one)),
            "counts_all_s": ("", lambda: queries.tag_counts(PhotoFilter())),
            "quick_counts_s": ("", lambda: queries.quick_counts(one)),
            "quick_counts_all_s": ("", lambda: queries.quick_counts(PhotoFilter())),
        }
        for key, (size_key, fn) in timed.items():
            seconds, result = _best(fn)
            out[key] = round(seconds, 4)
            if size_key:
                out[size_key] = len(result)  # type: ignore[arg-type]
        out["quick_counts"] = queries.quick_counts(PhotoFilter()).as_dict()
        page = [int(i) for i in ids[len(ids) // 2 : len(ids) // 2 + 200]]
        out["page_s"] = round(_best(lambda: queries.summaries(page))[0], 4)
        out["photo_detail_s"] = round(_best(lambda: queries.photo_detail(page[0]))[0], 4)
        out["photo_tags_s"] = round(_best(lambda: queries.photo_tags(page[0]))[0], 4)
        out["tags_s"] = round(_best(queries.tags)[0], 4)

        t0 = time.perf_counter()
        vec_ids, matrix = queries.photo_vectors(MODEL)
        index = VectorIndex(vec_ids, matrix)
        del matrix
        out["index_load_s"] = round(time.perf_counter() - t0, 2)
    rng = np.random.default_rng(7)
    query = rng.normal(size=index.dim).astype(np.float32) + index.matrix[0]
    query /= np.linalg.norm(query)
    out["search_s"] = round(_best(lambda: index.search(query, 100))[0], 4)
    restrict = vec_ids[::3]
    out["search_restricted_s"] = round(_best(lambda: index.search(query, 100, restrict))[0], 4)
    out["similar_s"] = round(_best(lambda: index.similar(int(vec_ids[1]), 100))[0], 4)
    out.update(measure_writes(db))
    out["rss_mb"] = round(_rss_mb(), 1)
    out["rss_peak_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return out


def measure_writes(db: Path) -> dict[str, Any]:
    """A session on the library: open, corrections end to end (the re-decision and the
    writes included; the first one loads the score matrix), each undone afterwards so
    the library stays as built; and `tags --json` of the whole library."""
    import io

    from albumtagger.cli import main as cli_main
    from albumtagger.service.session import LibrarySession

    out: dict[str, Any] = {}
    root = db.parent.parent
    t0 = time.perf_counter()
    session = LibrarySession(root, Settings(), backup=False, create=False)
    out["session_open_s"] = round(time.perf_counter() - t0, 4)
    with session:
        rows = session.store.conn.execute(
            "SELECT pt.photo_id, t.name FROM photo_tags pt JOIN tags t ON t.id = pt.tag_id "
            "WHERE pt.state = 'suggested' AND pt.fallback = 0 ORDER BY pt.photo_id LIMIT 4000"
        ).fetchall()
        picks = [rows[i] for i in range(0, len(rows), len(rows) // 6)][:6]
        times = []
        for (photo, tag), action in zip(picks, ["reject", "accept"] * 3, strict=False):
            t0 = time.perf_counter()
            session.correct([photo], tag, action)
            times.append(time.perf_counter() - t0)
        for _ in picks:
            session.undo()
        out["correction_cold_s"] = round(times[0], 3)
        out["correction_s"] = round(statistics.median(times[1:]), 4)
        out.update(_learned_tag(session, [photo for photo, _ in rows[:: len(rows) // 8][:8]]))
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()) as text:
        cli_main(["tags", str(root), "--json"])
    out["tags_json_s"] = round(time.perf_counter() - t0, 2)
    out["tags_json_mb"] = round(len(text.getvalue()) / 1e6, 1)
    return out


def _learned_tag(session, photos: list[int]) -> dict[str, Any]:
    """A tag learned from photos (no prompts) made from 5 of `photos`, then given two
    more answers (each relearns its look over every vector), then taken out again:
    `learned_tag_s` (making it: its look, the library re-decided for it),
    `learned_correction_s` (the slower of the two answers), `learned_rss_mb` (the
    process once it holds every vector to learn from)."""
    name = "learned benchmark tag"
    out: dict[str, Any] = {}
    t0 = time.perf_counter()
    session.learn_tag(name, photos[:5])
    out["learned_tag_s"] = round(time.perf_counter() - t0, 2)
    answers = []
    for photo, action in ((photos[5], "add"), (photos[6], "reject")):
        t0 = time.perf_counter()
        session.correct([photo], name, action)
        answers.append(time.perf_counter() - t0)
    out["learned_correction_s"] = round(max(answers), 3)
    out["learned_rss_mb"] = round(_rss_mb(), 1)
    for _ in range(7):
        session.undo()
    session.remove_tags([name])
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=int, default=100_000)
    parser.add_argument("--tags", type=int, default=300)
    parser.add_argument("--dir", type=Path, required=True, help="where the library is built")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--no-review-index",
        action="store_true",
        help="drop the partial index of needs-review (REVIEW_INDEX_SQL, in the schema "
        "since 1.3), as a 1.2 sidecar has none",
    )
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    db = build_library(args.dir, args.photos, args.tags, args.seed)
    build_s = time.perf_counter() - t0
    _set_review_index(db, not args.no_review_index)
    out: dict[str, Any] = {"photos": args.photos, "tags": args.tags, "seed": args.seed}
    out["build_s"] = round(build_s, 1)
    out["sidecar_mb"] = round(os.path.getsize(db) / 2**20, 1)
    out.update(measure(db))
    out["cpu"] = os.cpu_count()
    out["python"] = sys.version.split()[0]
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
