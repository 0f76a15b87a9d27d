"""From files to tags: read pending photos, embed them, decide their tags, store it all.

`tag_pending` is the long job: a generator that yields `Progress` and honours a
`CancelToken` between batches. Files are read (once: hashed and decoded from the same
bytes) and preprocessed on worker threads while the model works on the current
batch. Photos are grouped by token count so padding stays small. Each batch's reads,
vectors and tag decisions are written in one transaction, so an interrupted run
resumes where it stopped and never does a photo twice.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Callable, Collection, Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from albumtagger import priority
from albumtagger.config import Settings, replace_section
from albumtagger.library import keywords
from albumtagger.library.db.store import PhotoRow
from albumtagger.library.folder import Library
from albumtagger.library.images import read_photo
from albumtagger.library.scanner import (
    CancelToken,
    ReadResult,
    ScanReport,
    apply_read,
    read_file,
    run_to_end,
    scan,
)
from albumtagger.library.thumbnails import ThumbnailCache
from albumtagger.model.loading import default_batch_size, load_encoder
from albumtagger.tagging import vocabulary
from albumtagger.tagging.decision_state import IMAGE_MODEL_ID_KEY, MODEL_ID_KEY, DecisionState
from albumtagger.tagging.tagger import library_tagger

if TYPE_CHECKING:
    from albumtagger.model.encoder import GmeEncoder, PreparedImage

log = logging.getLogger(__name__)

MODEL_SOURCE_KEY = "model_source"
"""Library setting: the model the library was tagged with (JSON: model, revision, budget,
precision)."""
MODEL_SOURCE_FIELDS = ("model", "revision", "min_image_tokens", "max_image_tokens", "dtype")
FIRST_PASS_SUFFIX = "|first-pass"
"""Embeddings under `IMAGE_ID + FIRST_PASS_SUFFIX` are the coarse first-pass vectors of
photos tagged that way (kept, the photo's own vector is under IMAGE_ID)."""
REFINED_SUFFIX = "|refined"
"""A row under `IMAGE_ID + REFINED_SUFFIX` (an empty vector) says the vector under
IMAGE_ID has been refined at the full budget."""
REFINE_CHUNK = 8
"""Photos refined per refinement job: a watched folder looks at its changes in between."""
REDECIDE_SHARE = 0.05
"""A watched folder's new photos are decided with the stored thresholds until they reach
this share of the library; then the whole library is re-fitted and re-decided."""
READ_WORKERS = 2


@dataclass(frozen=True)
class Progress:
    """How far a job is. `rate` is photos per second; `eta_s` the seconds left; `model_s`
    the seconds the job spent in the model so far."""

    phase: str
    done: int
    total: int
    rate: float | None = None
    eta_s: float | None = None
    current: str = ""
    model_s: float = 0.0


@dataclass
class TaggingReport:
    """What a tagging run did: photos embedded (`tagged`) or given a stored vector."""

    tagged: int = 0
    reused: int = 0
    """Photos whose vector was already stored (copies, moves, a changed model's cache)."""
    damaged: int = 0
    gone: int = 0
    cancelled: bool = False
    seconds: float = 0.0


@dataclass
class IndexSummary:
    offline: bool = False
    scan: ScanReport = field(default_factory=ScanReport)
    tagging: TaggingReport = field(default_factory=TaggingReport)
    keywords: keywords.ImportReport = field(default_factory=keywords.ImportReport)

    def as_dict(self) -> dict[str, Any]:
        return {
            "offline": self.offline,
            "scan": asdict(self.scan),
            "tagging": asdict(self.tagging),
            "keywords": asdict(self.keywords),
        }

    def describe(self) -> str:
        if self.offline:
            return "The folder is offline (missing or unreadable): nothing was changed."
        s, t = self.scan, self.tagging
        lines = [
            f"Scan: {s.added} new, {s.changed} changed, {s.unchanged} unchanged, "
            f"{s.missing} missing, {s.returned} back."
        ]
        if t.tagged or t.reused or t.damaged:
            lines.append(
                f"Tagged {t.tagged + t.reused} photo{'' if t.tagged + t.reused == 1 else 's'} "
                f"in {t.seconds:.1f} s"
                f"{f', {t.damaged} damaged (skipped)' if t.damaged else ''}."
            )
        if self.keywords.accepted:
            lines.append(
                f"Took {self.keywords.accepted} keyword(s) from other programs' metadata as "
                "your tags."
            )
        if t.cancelled:
            lines.append("Stopped early; run again to finish.")
        lines.extend(f"Skipped {p}: {why}" for p, why in s.problems[:20])
        lines.extend(f"Keywords of {p}: {why}" for p, why in self.keywords.problems[:20])
        return "\n".join(lines)


def _reader_thread_init() -> None:
    """Reader threads yield the CPU to the model (and, in the app, to everything): at a
    lower priority they decode mostly in the model's gaps and while it waits for them,
    rather than taking a core from the model's thread team mid-operation (its threads
    wait for each other at the end of every operation)."""
    priority.lower_this_thread()


DRAFT_SLACK = 0.9
"""JPEG draft decoding may stop at 90% of the budget's pixels: a photo's final size is
rarely the full budget (a 12 MP 4:3 photo at 256 tokens is 504 x 364, 91%), and libjpeg's
1/8 scale of it (504 x 378) then suffices: about 15% less decode and resize time. Where
the decode is a little smaller than the final size, the one bicubic resize scales up by
at most 5% per side."""


def decode_target_pixels(max_tokens: int, thumbnail_size: int | None = None) -> int:
    """Pixels a photo must keep when JPEG draft decoding shrinks it: the model's budget
    (one token = 28 x 28 pixels, less `DRAFT_SLACK`) and, when one is made, a thumbnail
    of that side."""
    target = int(max_tokens * 28 * 28 * DRAFT_SLACK)
    if thumbnail_size:
        target = max(target, thumbnail_size * thumbnail_size)
    return target


def first_pass_budget(settings: Settings, encoder: GmeEncoder) -> tuple[int, int] | None:
    """The coarse first pass's budget, or None when photos go straight to the full one.

    `coarse_first` auto is on where the model runs on a CPU; the first pass needs a
    budget below the full one (`first_pass_tokens` < max image tokens).
    """
    m = settings.model
    mode = (m.coarse_first or "auto").strip().lower()
    if mode == "off" or (mode == "auto" and encoder.device.type != "cpu"):
        return None
    high = int(m.first_pass_tokens)
    if high >= encoder.max_image_tokens:
        return None
    return min(encoder.min_image_tokens, high), high


# -- the long job -------------------------------------------------------------------


@dataclass
class _Item:
    """One pending photo on its way through the pipeline."""

    row: PhotoRow
    read: ReadResult
    prepared: PreparedImage | None = None


def _read_and_prepare(
    library: Library,
    budget: tuple[int, int],
    row: PhotoRow,
    reusable: Callable[[str], bool],
    thumbnails: ThumbnailCache | None,
) -> _Item:
    from albumtagger.model.encoder import prepare_image

    min_tokens, max_tokens = budget
    target = decode_target_pixels(max_tokens, thumbnails.size if thumbnails else None)

    def needs_pixels(content_hash: str) -> bool:
        return not reusable(content_hash) or (
            thumbnails is not None and content_hash not in thumbnails
        )

    read = read_file(library.root, row, target_pixels=target, needs_pixels=needs_pixels)
    item = _Item(row, read)
    if read.image is not None and thumbnails is not None and read.content_hash:
        try:  # the photo is decoded here anyway: its thumbnail costs one resize
            if read.content_hash not in thumbnails:
                thumbnails.put_image(read.content_hash, read.image)
        except Exception as exc:
            log.warning("Cannot make the thumbnail of %s: %s", row.path, exc)
        if reusable(read.content_hash):
            read.image = None  # decoded for the thumbnail only
    if read.image is not None:
        try:
            item.prepared = prepare_image(
                read.image,
                min_tokens=min_tokens,
                max_tokens=max_tokens,
                full_size=(read.width, read.height),
            )
        except Exception as exc:  # a decoder quirk must not stop the run
            log.warning("Cannot prepare %s: %s", row.path, exc)
            read.error = f"damaged: cannot prepare image ({exc})"
        read.image = None  # free the decoded pixels early
    return item


def _batches(items: list[_Item], batch_size: int) -> Iterator[list[_Item]]:
    """Group by token count (similar sizes together) so padding stays small."""
    items = sorted(items, key=lambda it: it.prepared.n_tokens if it.prepared else 0)
    for i in range(0, len(items), batch_size):
        yield items[i : i + batch_size]


def tag_pending(
    library: Library,
    settings: Settings,
    encoder: GmeEncoder,
    decisions: DecisionState,
    cancel: CancelToken | None = None,
    *,
    settle: bool = True,
    thumbnails: ThumbnailCache | None = None,
    imports: keywords.ImportReport | None = None,
) -> Generator[Progress, None, TaggingReport]:
    """Read, embed and tag every pending photo, deciding with `decisions`. Yields
    progress; returns a report.

    Each batch is decided with the thresholds as stored (fitted from the first batch in
    a new library). With `settle` (an index run) a finished run ends with a full
    re-decision, so the result does not depend on how the run was split; without it (a
    watched folder's trickle) that happens once the new photos reach `REDECIDE_SHARE`.
    Keywords the photos carry are noted in `imports` (an index's, shared with its scan).
    """
    store = library.store
    report = TaggingReport()
    imports = imports if imports is not None else keywords.ImportReport()
    start = time.monotonic()
    model_id, image_id = encoder.model_id, encoder.image_model_id
    coarse = first_pass_budget(settings, encoder)
    budget = coarse or (encoder.min_image_tokens, encoder.max_image_tokens)
    phase = "first pass" if coarse else "tag"
    also = [image_id + FIRST_PASS_SUFFIX] if coarse else []
    with store.transaction():
        store.set_setting(MODEL_ID_KEY, model_id)
        store.set_setting(IMAGE_MODEL_ID_KEY, image_id)
        store.set_setting(MODEL_SOURCE_KEY, json.dumps(model_source(settings, encoder)))
        store.requeue_without_vector(image_id)
    vocabulary.seed_vocabulary(store)
    newly_scored = bool(decisions.unscored_tags()) and store.count_photos()["ok"] > 0
    tags = store.tags()
    for prompts_done, prompts_total in vocabulary.embed_prompts(store, encoder, tags):
        yield Progress("vocabulary", prompts_done, prompts_total)
        if cancel is not None and cancel.cancelled:
            report.cancelled = True
            return report

    pending = store.pending_photos()
    total = len(pending)
    batch_size = default_batch_size(encoder, settings.model.batch_size, budget[1])
    # Photos grouped by token count per window; prepared pixels are large (about 24 MB
    # at 1280 tokens), so the read-ahead is one window plus one batch.
    window = max(batch_size * 2, 4)
    # Reader threads never touch the sidecar (a thread's connection would outlive it):
    # they ask this set, which the writing thread keeps up to date.
    known_hashes = store.embedding_hashes(image_id, store.content_hashes())

    def reusable(content_hash: str) -> bool:
        return content_hash in known_hashes

    done = 0
    model_s = 0.0
    yield Progress(phase, 0, total)
    with ThreadPoolExecutor(
        READ_WORKERS, thread_name_prefix="albumtagger-read", initializer=_reader_thread_init
    ) as pool:
        queue: deque[Future[_Item]] = deque()
        rows = iter(pending)

        def refill() -> None:
            while len(queue) < window + batch_size:
                row = next(rows, None)
                if row is None:
                    return
                queue.append(
                    pool.submit(_read_and_prepare, library, budget, row, reusable, thumbnails)
                )

        refill()
        while queue:
            if cancel is not None and cancel.cancelled:
                report.cancelled = True
                for f in queue:
                    f.cancel()
                break
            chunk = [queue.popleft().result() for _ in range(min(window, len(queue)))]
            refill()  # the workers read ahead while the model runs
            to_embed = [it for it in chunk if it.prepared is not None]
            others = [it for it in chunk if it.prepared is None]
            if any(it.read.gone for it in others) and not library.is_online():
                # The drive went away under us: nothing is missing, just out of reach.
                report.cancelled = True
                for f in queue:
                    f.cancel()
                break
            if others:
                with library.writing():  # picked and written in one unit: never twice
                    _write(store, decisions, _still_pending(store, others), None, report, imports)
                done += len(others)
            for batch in _batches(to_embed, batch_size):
                if cancel is not None and cancel.cancelled:
                    report.cancelled = True
                    break
                with library.writing():  # picked, embedded and written in one unit
                    mine = _still_pending(store, batch)  # another process may have done some
                    if mine:
                        began = time.monotonic()
                        vectors = encoder.embed_prepared([it.prepared for it in mine])
                        model_s += time.monotonic() - began
                        _write(store, decisions, mine, vectors, report, imports, image_id, also)
                known_hashes.update(it.read.content_hash for it in mine if it.read.content_hash)
                done += len(batch)
                elapsed = time.monotonic() - start
                rate = done / elapsed if elapsed > 0 else None
                eta = (total - done) / rate if rate else None
                yield Progress(phase, done, total, rate, eta, batch[-1].row.path, model_s)
            if report.cancelled:
                for f in queue:
                    f.cancel()
                break
            yield Progress(phase, done, total, current=chunk[-1].row.path, model_s=model_s)
    report.seconds = time.monotonic() - start
    if not report.cancelled and not settle_decisions(decisions, force=settle) and newly_scored:
        decisions.redecide()  # tags that were waiting for the model
    return report


# -- coarse first, fine later ---------------------------------------------------------


@dataclass
class RefineReport:
    refined: int = 0
    skipped: int = 0
    """Photos whose file changed or went away since (the scanner deals with them)."""
    cancelled: bool = False
    seconds: float = 0.0


def refinement_backlog(store, image_id: str) -> tuple[list[PhotoRow], int]:
    """(photos whose vector is still the first pass's, the most viewed first, then the
    newest, one per content hash; how many first-pass vectors the library's photos have
    in all)."""
    rows = store.photos(statuses=("ok",))
    coarse, refined = _first_pass_hashes(store, image_id, rows)
    if not coarse:
        return [], 0
    todo: dict[str, PhotoRow] = {}
    views = store.view_counts()
    for row in sorted(rows, key=lambda r: (views.get(r.id, 0), r.mtime_ns, r.id), reverse=True):
        if row.content_hash in coarse and row.content_hash not in refined:
            todo.setdefault(row.content_hash, row)
    return list(todo.values()), len(coarse)


def refinement_left(store, image_id: str) -> int:
    """How many photos `refinement_backlog` holds, without ordering them."""
    coarse, refined = _first_pass_hashes(store, image_id, store.photos(statuses=("ok",)))
    return len(coarse - refined)


def _first_pass_hashes(store, image_id: str, rows: list[PhotoRow]) -> tuple[set[str], set[str]]:
    """(content hashes of `rows` with a first-pass vector, those of them refined)."""
    hashes = sorted({r.content_hash for r in rows if r.content_hash})
    coarse = store.embedding_hashes(image_id + FIRST_PASS_SUFFIX, hashes)
    if not coarse:
        return set(), set()
    return coarse, store.embedding_hashes(image_id + REFINED_SUFFIX, sorted(coarse))


def _read_for_refine(root, row: PhotoRow, budget: tuple[int, int]) -> PreparedImage | None:
    """The photo at the full budget, or None if it is not the photo that was tagged."""
    from albumtagger.errors import ImageError
    from albumtagger.model.encoder import prepare_image

    try:
        photo = read_photo(root / row.path, target_pixels=decode_target_pixels(budget[1]))
    except (OSError, ImageError):
        return None
    if photo.content_hash != row.content_hash:
        return None
    return prepare_image(
        photo.image,
        min_tokens=budget[0],
        max_tokens=budget[1],
        full_size=(photo.width, photo.height),
    )


def refine_steps(
    library: Library,
    settings: Settings,
    encoder: GmeEncoder,
    decisions: DecisionState,
    cancel: CancelToken | None = None,
    *,
    max_photos: int | None = None,
) -> Generator[Progress, None, RefineReport]:
    """The second pass: photos tagged at the first pass's budget, embedded again at the
    full one (newest first, at most `max_photos`), their vectors replaced and their
    suggestions re-decided (user decisions stay). Yields Progress("refine", refined so
    far, first-pass photos in all) per batch; returns a report. Needs the library's own
    model (a photo's first-pass vector is from the image model id it holds)."""
    store = library.store
    report = RefineReport()
    start = time.monotonic()
    image_id = store.get_setting(IMAGE_MODEL_ID_KEY)
    if image_id != encoder.image_model_id:
        return report  # the library is being re-embedded with another model or budget
    rows, total = refinement_backlog(store, image_id)
    done = total - len(rows)
    if max_photos is not None:
        rows = rows[: max(0, int(max_photos))]
    if not rows:
        return report
    budget = (encoder.min_image_tokens, encoder.max_image_tokens)
    batch_size = default_batch_size(encoder, settings.model.batch_size)
    marker = np.zeros(0, dtype=np.float32)
    model_s = 0.0
    yield Progress("refine", done, total)
    with ThreadPoolExecutor(
        READ_WORKERS, thread_name_prefix="albumtagger-refine", initializer=_reader_thread_init
    ) as pool:
        futures = deque(pool.submit(_read_for_refine, library.root, r, budget) for r in rows)
        pending_rows = deque(rows)
        while futures:
            if cancel is not None and cancel.cancelled:
                report.cancelled = True
                break
            batch: list[tuple[PhotoRow, PreparedImage]] = []
            while futures and len(batch) < batch_size:
                row, prepared = pending_rows.popleft(), futures.popleft().result()
                if prepared is None:
                    report.skipped += 1
                else:
                    batch.append((row, prepared))
            if not batch:
                continue
            began = time.monotonic()
            vectors = encoder.embed_prepared([p for _, p in batch])
            model_s += time.monotonic() - began
            hashes = [row.content_hash or "" for row, _ in batch]
            with store.transaction():
                store.put_embeddings(image_id, list(zip(hashes, vectors, strict=True)))
                store.put_embeddings(image_id + REFINED_SUFFIX, [(h, marker) for h in hashes])
                ids = [r.id for h in hashes for r in store.photos_with_hash(h) if r.status == "ok"]
                decisions.tag_photos(ids)
            report.refined += len(batch)
            done += len(batch)
            elapsed = time.monotonic() - start
            rate = report.refined / elapsed if elapsed > 0 else None
            eta = (total - done) / rate if rate else None
            yield Progress("refine", done, total, rate, eta, batch[-1][0].path, model_s)
        for f in futures:
            f.cancel()
    report.seconds = time.monotonic() - start
    return report


def settle_decisions(decisions: DecisionState, *, force: bool = False) -> bool:
    """Re-fit and re-decide the whole library when it is due; True if it was.

    Due when photos were decided with stored thresholds since the last full
    re-decision and either `force` (the end of an index run, a watched folder gone
    quiet) or those photos reach `REDECIDE_SHARE` of the library. Needs no model.
    """
    since = decisions.photos_since_redecide()
    ok = decisions.store.count_photos()["ok"]
    if since == 0 or not (force or since >= REDECIDE_SHARE * ok):
        return False
    decisions.redecide()
    return True


def _still_pending(store, items: list[_Item]) -> list[_Item]:
    """Those of `items` whose photo still waits to be read (inside the unit of work that
    writes them: another process may have tagged some since they were picked)."""
    return [it for it in items if (row := store.photo(it.row.id)) and row.status == "pending"]


def _write(
    store,
    decisions: DecisionState,
    items: list[_Item],
    vectors: np.ndarray | None,
    report: TaggingReport,
    imports: keywords.ImportReport,
    image_id: str | None = None,
    also: Collection[str] = (),
) -> None:
    """One transaction: what reading found, the new vectors (also under the ids in
    `also`: the first-pass record), and the tag decisions."""
    with store.transaction():
        if vectors is not None:
            rows = [(it.read.content_hash, v) for it, v in zip(items, vectors, strict=True)]
            for key in (image_id or decisions.image_model_id or "", *also):
                store.put_embeddings(key, rows)
        finished: list[int] = []
        for it in items:
            photo_id = apply_read(store, it.read, imports)
            if photo_id is None:
                report.gone += it.read.gone
                report.damaged += it.read.error is not None
                continue
            finished.append(photo_id)
            if vectors is None:
                report.reused += 1
            else:
                report.tagged += 1
        decisions.tag_photos(finished)


def index_folder(
    library: Library,
    settings: Settings,
    *,
    tag: bool = True,
    encoder: GmeEncoder | None = None,
    cancel: CancelToken | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    thumbnails: ThumbnailCache | None = None,
) -> IndexSummary:
    """Scan the folder, then (with `tag`) read, embed and tag what is pending."""
    decisions = library_tagger(library.store, settings)
    steps = index_steps(
        library,
        settings,
        decisions,
        tag=tag,
        encoder=encoder,
        cancel=cancel,
        thumbnails=thumbnails,
    )
    while True:
        try:
            progress = next(steps)
        except StopIteration as stop:
            return stop.value
        if on_progress is not None:
            on_progress(progress)


def index_steps(
    library: Library,
    settings: Settings,
    decisions: DecisionState,
    *,
    tag: bool = True,
    encoder: GmeEncoder | None = None,
    encoder_factory: Callable[[], GmeEncoder] | None = None,
    cancel: CancelToken | None = None,
    thumbnails: ThumbnailCache | None = None,
    atomic: bool = True,
) -> Generator[Progress, None, IndexSummary]:
    """`index_folder` as a generator of progress (one item per batch), deciding with
    `decisions`; returns the summary.

    All or nothing up to the model (unless `atomic` is false): the scan is kept only once
    the model it needs is loaded, so a run that cannot have the model changes nothing.
    Tagging then commits batch by batch (an interrupted run resumes where it stopped)
    and ends with a full re-decision of the library.
    """
    summary = IndexSummary()
    store = library.store
    yield Progress("scan", 0, 0)
    # atomic=False (the app): the scan is kept even when the model cannot be had, so the
    # photos can be browsed and tagged by hand meanwhile.
    with (
        contextlib.suppress(_LoadModelFirst),
        store.transaction() if atomic else contextlib.nullcontext(),
    ):
        vocabulary.seed_vocabulary(store)
        follow = settings.library.follow_links_outside
        summary.scan = run_to_end(scan(library, cancel, follow_links_outside=follow))
        if summary.scan.offline:
            summary.offline = True
            return summary
        # Keywords given in other programs since the last run become the user's tags.
        summary.keywords = keywords.import_changed_sidecars(library)
        work = tag and needs_model(library, settings, decisions)
        if work and encoder is None and atomic:
            raise _LoadModelFirst  # the scan is rolled back: no lock is held while loading
    if work and encoder is None:
        yield Progress("model", 0, 0)
        encoder = encoder_factory() if encoder_factory else load_encoder(settings)
        if atomic:  # scan again, now with the model: all or nothing still
            return (
                yield from index_steps(
                    library,
                    settings,
                    decisions,
                    tag=tag,
                    encoder=encoder,
                    cancel=cancel,
                    thumbnails=thumbnails,
                    atomic=atomic,
                )
            )
    if not tag:
        summary.tagging = _read_only(library, cancel, summary.keywords)
        return summary
    if not work:
        settle_decisions(decisions, force=True)
        return summary
    assert encoder is not None
    summary.tagging = yield from tag_pending(
        library,
        settings,
        encoder,
        decisions,
        cancel,
        thumbnails=thumbnails,
        imports=summary.keywords,
    )
    return summary


class _LoadModelFirst(Exception):
    """An atomic index found work for the model before it was loaded."""


def model_source(settings: Settings, encoder: GmeEncoder | None = None) -> dict[str, Any]:
    """What of the model settings the stored vectors depend on; with the encoder, the
    budget it actually runs (an automatic budget resolved for its device) and, for
    `dtype = auto`, the precision auto resolved to (int8, bfloat16, float32). A precision
    asked for is recorded as asked (int8 stays the library's even where a GPU ran it in
    its own precision, see `select_precision`)."""
    m = settings.model
    source = {name: getattr(m, name) for name in MODEL_SOURCE_FIELDS}
    if encoder is not None:
        source["min_image_tokens"] = encoder.min_image_tokens
        source["max_image_tokens"] = encoder.max_image_tokens
        if m.dtype == "auto" and getattr(encoder, "precision", None):
            source["dtype"] = encoder.precision
    return source


_AUTO_FIELDS = ("min_image_tokens", "max_image_tokens")


def _is_automatic(name: str, value: Any) -> bool:
    return (name in _AUTO_FIELDS and not value) or (name == "dtype" and value == "auto")


def _same_source(recorded: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """Whether vectors made with `recorded` are what `wanted` asks for; an automatic
    budget end (0) or precision accepts whatever the library has, and so does a field it
    never recorded."""
    return all(
        recorded[name] == value
        for name, value in wanted.items()
        if name in recorded and not _is_automatic(name, value)
    )


def recorded_model_source(store) -> dict[str, Any] | None:
    """The model the library was tagged with, as `model_source` gave it (None: never)."""
    raw = store.get_setting(MODEL_SOURCE_KEY)
    if raw is None:
        return _budget_from_image_id(store.get_setting(IMAGE_MODEL_ID_KEY))
    try:
        data = json.loads(raw)
        if isinstance(data, dict):
            return {k: data[k] for k in MODEL_SOURCE_FIELDS if k in data}
    except json.JSONDecodeError:
        pass
    # Older libraries: "MODEL@REVISION|MIN-MAX".
    head, _, budget = raw.rpartition("|")
    model, _, revision = head.rpartition("@")
    low, _, high = budget.partition("-")
    try:
        return {
            "model": model,
            "revision": revision,
            "min_image_tokens": int(low),
            "max_image_tokens": int(high),
        }
    except ValueError:
        return None


def _budget_from_image_id(image_id: str | None) -> dict[str, Any] | None:
    """A library tagged before the model source was recorded: its budget at least, from
    the image model id (`...|image-tokens=MIN-MAX`), so it keeps its vectors."""
    if not image_id or "|image-tokens=" not in image_id:
        return None
    low, _, high = image_id.rpartition("|image-tokens=")[2].partition("-")
    try:
        return {"min_image_tokens": int(low), "max_image_tokens": int(high.split("|")[0])}
    except ValueError:
        return None


def library_settings(store, settings: Settings, explicit: Collection[str] = ()) -> Settings:
    """`settings` with the library's own model (id or folder, revision, token budget),
    except for the model fields named in `explicit` (given on purpose by the caller).

    The library's precision applies where the settings ask for `dtype = auto`: auto is
    resolved once, when the library is first tagged, and its vectors stay of one
    precision (a precision set on purpose, in the settings or as an option, wins and
    becomes the library's from then on)."""
    recorded = recorded_model_source(store)
    if not recorded:
        return settings
    keep = {k: v for k, v in recorded.items() if k not in explicit}
    if settings.model.dtype != "auto" or keep.get("dtype") in (None, "auto"):
        keep.pop("dtype", None)
    return replace_section(settings, "model", **keep)


def needs_model(library: Library, settings: Settings, decisions: DecisionState) -> bool:
    """Whether tagging has work that needs the model: pending photos, vectors of another
    model or budget, or tags that are not scored yet (by `decisions`)."""
    store = library.store
    if store.pending_photos(limit=1):
        return True
    recorded = recorded_model_source(store)
    if recorded is not None and not _same_source(recorded, model_source(settings)):
        return True
    return bool(store.count_photos()["ok"]) and bool(decisions.unscored_tags())


def _read_only(
    library: Library, cancel: CancelToken | None, imports: keywords.ImportReport
) -> TaggingReport:
    """`index --scan-only`: hash and check pending photos without the model."""
    report = TaggingReport()
    store = library.store
    for row in store.pending_photos():
        if cancel is not None and cancel.cancelled:
            report.cancelled = True
            break
        result = read_file(library.root, row, target_pixels=256 * 256)
        with store.transaction():  # picked and written in one unit: never twice
            if not _still_pending(store, [_Item(row, result, None)]):
                continue
            apply_read(store, result, imports)
        report.damaged += result.error is not None
        report.gone += result.gone
    return report
