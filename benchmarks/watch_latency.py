"""How fast the folder watcher gets photos into the sidecar; print JSON.

- latency: a photo is copied into a watched folder; the time from the end of the copy
  (the file closed) to its tags being in the sidecar. Median, min and max over
  `--samples` photos copied one at a time. The quiet period (`--quiet`, default the
  setting's default) is part of it by design: a file must be still that long before it
  is read.
- burst: `--photos` files copied at once; events-to-sidecar throughput (photos per
  second from the first file copied to the last one tagged) and the time from the end
  of the copy to the last tag.
- baseline, measured in the same run on the same files, interleaved with the bursts
  (`--repeats` of each, medians reported): a plain `index_folder` of a folder the
  photos were copied into (scan + tag, no watcher). `overhead_s` is the watcher's
  extra time, from the end of the copy to the last photo tagged, over it; the quiet
  period is part of it by design (`overhead_beyond_quiet_period_s` is the rest).

The model is the golden tiny checkpoint by default (what is measured is the watcher
and the pipeline around the model, not the model); `--model` takes another.

Example: python benchmarks/watch_latency.py --photos 500 --samples 5
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from albumtagger.config import Settings, WatchSettings
from albumtagger.library.folder import Library, open_library
from albumtagger.library.scanner import CancelToken
from albumtagger.model.loading import load_encoder
from albumtagger.service.indexing import index_folder
from albumtagger.service.watching import watch_folder

GOLDEN_MODEL = Path(__file__).resolve().parents[1] / "tests" / "data" / "gme-golden" / "model"


def make_photo(path: Path, seed: int, size: tuple[int, int]) -> Path:
    """A JPEG with content unique to `seed`."""
    rng = np.random.default_rng(seed)
    w, h = size
    pixels = np.clip(
        rng.integers(0, 255, size=3)
        + np.linspace(0, 1, w)[None, :, None] * rng.integers(0, 120, size=3)
        + rng.integers(0, 60, size=(h, w, 3)),
        0,
        255,
    ).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels, "RGB").save(path, quality=90)
    return path


def untagged_ok(library: Library) -> int:
    """Photos done (ok) that carry no automatic tag (possible: nothing passed)."""
    store = library.store
    ok = {r.id for r in store.photos(statuses=("ok",))}
    return len(ok - {t.photo_id for t in store.photo_tags(list(ok))}) if ok else 0


def is_done(library: Library, path: str) -> bool:
    """Read, embedded and decided: tag_pending writes the tags and `ok` together."""
    row = library.store.photo_by_path(path)
    return row is not None and row.status == "ok"


def wait_for(predicate, timeout: float, step: float = 0.005) -> float:
    """Poll until `predicate()`; returns the monotonic time it first held."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not done within {timeout} s")
        time.sleep(step)
    return time.monotonic()


class Session:
    """watch_folder on a thread of its own."""

    def __init__(self, library: Library, settings: Settings, encoder: object) -> None:
        self.cancel = CancelToken()
        self.error: BaseException | None = None

        def run() -> None:
            try:
                watch_folder(library, settings, self.cancel, encoder=encoder)
            except BaseException as exc:
                self.error = exc

        self.thread = threading.Thread(target=run, name="watch-bench")
        self.thread.start()

    def stop(self) -> float:
        start = time.monotonic()
        self.cancel.cancel()
        self.thread.join(60)
        if self.error is not None:
            raise self.error
        return time.monotonic() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(GOLDEN_MODEL))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--min-image-tokens", type=int, default=4)
    parser.add_argument("--max-image-tokens", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--quiet", type=float, default=WatchSettings().quiet_seconds)
    parser.add_argument("--photos", type=int, default=500, help="files in the burst")
    parser.add_argument("--repeats", type=int, default=2, help="bursts (and baselines)")
    parser.add_argument("--samples", type=int, default=5, help="photos timed one by one")
    parser.add_argument("--size", default="64x48", help="burst photo size, WxH")
    parser.add_argument("--polling", action="store_true", help="force the polling observer")
    args = parser.parse_args(argv)
    size = tuple(int(x) for x in args.size.lower().split("x"))

    settings = Settings()
    m = settings.model
    m.model, m.device, m.dtype = args.model, args.device, args.dtype
    m.min_image_tokens, m.max_image_tokens = args.min_image_tokens, args.max_image_tokens
    m.batch_size = args.batch_size
    settings.watch.quiet_seconds = args.quiet
    settings.watch.force_polling = args.polling

    t = time.monotonic()
    encoder = load_encoder(settings)
    load_s = time.monotonic() - t

    out: dict[str, object] = {
        "benchmark": "watch_latency",
        "model": args.model,
        "device": args.device,
        "dtype": args.dtype,
        "image_tokens": [args.min_image_tokens, args.max_image_tokens],
        "batch_size": args.batch_size,
        "quiet_seconds": args.quiet,
        "polling": args.polling,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "model_load_s": round(load_s, 3),
    }

    with tempfile.TemporaryDirectory(prefix="albumtagger-watch-bench-") as tmp:
        work = Path(tmp)
        staging = work / "staging"
        bursts = [
            [
                make_photo(staging / f"burst{r}" / f"p{i:05d}.jpg", 10_000 * (r + 1) + i, size)
                for i in range(args.photos)
            ]
            for r in range(args.repeats)
        ]
        singles = [
            make_photo(staging / "single" / f"s{i:03d}.jpg", 90_000 + i, (320, 240))
            for i in range(args.samples)
        ]
        warm = [make_photo(staging / "warm" / f"w{i}.jpg", 5_000 + i, size) for i in range(64)]
        baseline(work / "warm-up", work, warm, settings, encoder)  # warms the model's shapes

        root = work / "watched"
        make_photo(root / "seed.jpg", 1, size)
        base_runs: list[float] = []
        watch_runs: list[dict[str, float]] = []
        latencies: list[float] = []
        with open_library(root, work / "data") as library:
            session = Session(library, settings, encoder)
            try:
                wait_for(lambda: library.store.count_photos()["ok"] == 1, 120, step=0.05)
                expected = 1

                # Latency: one photo at a time, from the end of its copy to its tags.
                for src in singles:
                    shutil.copy(src, root / src.name)
                    copied = time.monotonic()
                    done = wait_for(lambda src=src: is_done(library, src.name), 120)
                    latencies.append(done - copied)
                    expected += 1
                    time.sleep(0.2)

                # Bursts, each next to a baseline on the same number of photos (the
                # machine may be shared: interleaving keeps the comparison fair).
                for r, burst in enumerate(bursts):
                    base = baseline(work / f"baseline{r}", work, burst, settings, encoder)
                    base_runs.append(base)
                    dest = root / f"burst{r}"
                    dest.mkdir()
                    t0 = time.monotonic()
                    for src in burst:
                        shutil.copy(src, dest / src.name)
                    copied = time.monotonic()
                    expected += len(burst)
                    done = wait_for(
                        lambda n=expected: library.store.count_photos()["ok"] == n, 600, step=0.01
                    )
                    watch_runs.append({"t0": t0, "copied": copied, "done": done})
                without_tags = untagged_ok(library)
            finally:
                stop_s = session.stop()

    after_copy = [w["done"] - w["copied"] for w in watch_runs]
    from_start = [w["done"] - w["t0"] for w in watch_runs]
    copy_s = [w["copied"] - w["t0"] for w in watch_runs]
    med = statistics.median
    out["latency"] = {
        "samples": len(latencies),
        "median_s": round(med(latencies), 3),
        "min_s": round(min(latencies), 3),
        "max_s": round(max(latencies), 3),
        "of_which_quiet_period_s": args.quiet,
        "photo_size": [320, 240],
    }
    out["burst"] = {
        "photos": args.photos,
        "repeats": args.repeats,
        "photo_size": list(size),
        "copy_s": round(med(copy_s), 3),
        "copy_start_to_all_tagged_s": round(med(from_start), 3),
        "copy_end_to_all_tagged_s": round(med(after_copy), 3),
        "copy_end_to_all_tagged_runs_s": [round(x, 3) for x in after_copy],
        "events_to_sidecar_photos_per_s": round(args.photos / med(from_start), 1),
        "photos_without_auto_tags": without_tags,
    }
    out["baseline_index_folder"] = {
        "photos": args.photos,
        "seconds": round(med(base_runs), 3),
        "runs_s": [round(x, 3) for x in base_runs],
        "photos_per_s": round(args.photos / med(base_runs), 1),
    }
    out["overhead_s"] = round(med(after_copy) - med(base_runs), 3)
    out["overhead_beyond_quiet_period_s"] = round(med(after_copy) - med(base_runs) - args.quiet, 3)
    out["overhead_ratio"] = round(med(after_copy) / med(base_runs), 3)
    out["stop_s"] = round(stop_s, 3)
    print(json.dumps(out, indent=2))
    return 0


def baseline(
    root: Path, work: Path, photos: list[Path], settings: Settings, encoder: object
) -> float:
    """Seconds a plain `index_folder` takes for `photos` (the vocabulary's text vectors
    are computed beforehand, on a seed photo, as the watched library has them)."""
    make_photo(root / "seed.jpg", 1, (64, 48))
    with open_library(root, work / "data") as library:
        index_folder(library, settings, encoder=encoder)
        for src in photos:
            shutil.copy(src, root / src.name)
        t = time.monotonic()
        summary = index_folder(library, settings, encoder=encoder)
        seconds = time.monotonic() - t
    if summary.tagging.tagged != len(photos):
        raise RuntimeError(f"baseline tagged {summary.tagging.tagged} of {len(photos)}")
    return seconds


if __name__ == "__main__":
    sys.exit(main())
