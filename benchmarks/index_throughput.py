"""Indexing throughput: the pipeline against a naive loop, measured in the same run.

Makes a folder of camera-sized JPEGs, then tags it twice with the same model:
- naive: one photo at a time: read, full decode, resize, embed, write;
- pipeline: `index_folder` (draft decoding, reading ahead on worker threads while the
  model runs, batches of similar token counts, one transaction per batch).
Prints JSON with photos/s of each and their ratio. With the golden checkpoint (the
default) the model is tiny, so this measures everything around the model; pass
`--model FOLDER` for a real checkpoint.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from albumtagger.config import Settings
from albumtagger.library.folder import open_library
from albumtagger.library.images import read_photo
from albumtagger.model.encoder import prepare_image
from albumtagger.model.loading import load_encoder
from albumtagger.service.indexing import index_folder
from albumtagger.tagging.vocabulary import seed_vocabulary, tag_vectors

GOLDEN = Path(__file__).resolve().parent.parent / "tests" / "data" / "gme-golden" / "model"


def make_photos(folder: Path, n: int, size: tuple[int, int]) -> None:
    rng = np.random.default_rng(0)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    for i in range(n):
        base = rng.integers(0, 255, 3)
        pixels = (base + (xx[..., None] * rng.uniform(0, 0.05, 3)) + (yy[..., None] * 0.02)) % 255
        noise = rng.integers(0, 30, (h // 8, w // 8, 3)).repeat(8, 0).repeat(8, 1)
        img = Image.fromarray(np.clip(pixels + noise, 0, 255).astype(np.uint8))
        img.save(folder / f"IMG_{i:04d}.jpg", quality=90)


def naive(folder: Path, encoder) -> float:
    """One photo at a time, no read-ahead, no draft decoding."""
    from albumtagger.library.db.store import Store

    start = time.perf_counter()
    with Store(Path(tempfile.mkdtemp()) / "naive.sqlite", backups=False) as store:
        for path in sorted(folder.glob("*.jpg")):
            photo = read_photo(path)
            prepared = prepare_image(
                photo.image,
                min_tokens=encoder.min_image_tokens,
                max_tokens=encoder.max_image_tokens,
            )
            vector = encoder.embed_prepared([prepared])[0]
            with store.transaction():
                pid = store.add_photo(path.name, photo.size, 0)
                store.record_read(
                    pid,
                    content_hash=photo.content_hash,
                    size=photo.size,
                    mtime_ns=0,
                    width=photo.width,
                    height=photo.height,
                )
                store.put_embeddings("naive", [(photo.content_hash, vector)])
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--photos", type=int, default=60)
    parser.add_argument("--width", type=int, default=4000)
    parser.add_argument("--height", type=int, default=3000)
    parser.add_argument("--model", default=str(GOLDEN))
    parser.add_argument("--max-image-tokens", type=int, default=1280)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()

    settings = Settings()
    settings.model = dataclasses.replace(
        settings.model,
        model=args.model,
        device="cpu",
        dtype="float32",
        max_image_tokens=args.max_image_tokens,
        batch_size=args.batch_size,
    )
    work = Path(tempfile.mkdtemp(prefix="albumtagger-bench-"))
    try:
        folder = work / "photos"
        folder.mkdir()
        t0 = time.perf_counter()
        make_photos(folder, args.photos, (args.width, args.height))
        make_s = time.perf_counter() - t0
        encoder = load_encoder(settings)
        encoder.embed_texts(["warm up"])
        naive_s = naive(folder, encoder)
        with open_library(folder, work / "data") as library:
            # The vocabulary's text vectors are computed once per library: not timed.
            seed_vocabulary(library.store)
            tag_vectors(library.store, encoder, library.store.tags())
            t0 = time.perf_counter()
            summary = index_folder(library, settings, encoder=encoder)
            pipeline_s = time.perf_counter() - t0
        tagged = summary.tagging.tagged
        result = {
            "photos": args.photos,
            "photo_size": [args.width, args.height],
            "max_image_tokens": args.max_image_tokens,
            "model": Path(args.model).name,
            "make_photos_s": round(make_s, 2),
            "naive_s": round(naive_s, 2),
            "naive_photos_per_s": round(args.photos / naive_s, 2),
            "pipeline_s": round(pipeline_s, 2),
            "pipeline_photos_per_s": round(tagged / pipeline_s, 2),
            "pipeline_tagged": tagged,
            "speedup": round(naive_s / pipeline_s, 2),
            "note": "pipeline_s includes the scan and writing tag decisions; naive_s only "
            "reads, embeds and stores vectors",
        }
        print(json.dumps(result, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
