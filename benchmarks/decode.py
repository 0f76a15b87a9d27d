"""12 MP JPEG to model-ready patches: albumtagger's path against the naive one; prints JSON.

Both start from the file's bytes in memory and end with normalised patches in Qwen2-VL's
layout at the same token budget (default 256 tokens, `--tokens`), measured in the same
run, alternating, median of `--reps`:

- naive (the published recipe, as a plain transformers user runs it): full decode,
  EXIF orientation, the recipe's first resize (qwen_vl_utils' fetch_image: multiples of
  28 within 4..16384 tokens, done even when the size does not change), then
  transformers' PIL image processor (`Qwen2VLImageProcessorPil`: its own bicubic resize
  into the budget, rescale, normalise, patchify). That processor imports without
  torchvision in transformers 5.x; where it does not, the same steps are emulated in
  PIL + numpy (`naive_processor` says which ran).
- albumtagger: `library.images.decode_image` with the pipeline's draft target (libjpeg
  decodes at 1/2, 1/4 or 1/8 scale straight from the DCT coefficients, never below the
  target), then `encoder.prepare_image` (one bicubic resize to the final size, numpy
  normalise and patchify).

The photo is synthetic (smooth gradients plus sensor-like noise, quality 90, about
4 MB): noisier than most camera photos, so entropy decoding (which no draft scale
saves) weighs more than usual; a real photo gains at least as much.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from albumtagger.library.images import decode_image
from albumtagger.model.encoder import (
    CLIP_MEAN,
    CLIP_STD,
    FACTOR,
    _patchify,
    _smart_resize_fetch,
    _smart_resize_processor,
    prepare_image,
)
from albumtagger.service.indexing import decode_target_pixels


def camera_jpeg(width: int = 4032, height: int = 3024, seed: int = 0, quality: int = 90) -> bytes:
    """A synthetic camera-sized JPEG: gradients, a few shapes, noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = rng.uniform(0, 1, 3) * 200
    pixels = np.stack(
        [
            base[0] + xx / width * 55,
            base[1] + yy / height * 55,
            base[2] + (xx + yy) / (width + height) * 55,
        ],
        -1,
    )
    for _ in range(6):
        cx, cy, r = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(100, 800)
        inside = (xx - cx) ** 2 + (yy - cy) ** 2 < r * r
        pixels[inside] = rng.uniform(0, 255, 3)
    pixels += rng.normal(0, 6, (height, width, 3)).astype(np.float32)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def pil_processor(min_tokens: int, max_tokens: int):
    """transformers' PIL Qwen2-VL image processor, or None where it cannot be imported."""
    try:
        from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
            Qwen2VLImageProcessorPil,
        )
    except Exception:
        return None
    return Qwen2VLImageProcessorPil(
        min_pixels=min_tokens * FACTOR * FACTOR, max_pixels=max_tokens * FACTOR * FACTOR
    )


def naive_patches(data: bytes, min_tokens: int, max_tokens: int, processor=None):
    """The recipe as written: full decode, two resizes, the processor. (patches, grid)."""
    image = Image.open(io.BytesIO(data))
    image = ImageOps.exif_transpose(image).convert("RGB")
    h, w = _smart_resize_fetch(image.height, image.width, FACTOR)
    image = image.resize((w, h), Image.Resampling.BICUBIC)  # fetch_image always resizes
    if processor is not None:
        out = processor(images=[image], return_tensors="np")
        return out["pixel_values"], tuple(int(x) for x in out["image_grid_thw"][0])
    # Emulation of the processor: float copy, its own resize, rescale, normalise, patchify.
    h2, w2 = _smart_resize_processor(
        h, w, FACTOR, min_tokens * FACTOR * FACTOR, max_tokens * FACTOR * FACTOR
    )
    array = np.asarray(image.resize((w2, h2), Image.Resampling.BICUBIC), dtype=np.float32)
    array = (array / 255.0 - np.asarray(CLIP_MEAN, np.float32)) / np.asarray(CLIP_STD, np.float32)
    prepared = _patchify(array)
    return prepared.pixel_values, prepared.grid_thw


def fast_patches(data: bytes, min_tokens: int, max_tokens: int):
    """albumtagger's path, as the pipeline's reader threads run it."""
    image, width, height = decode_image(data, target_pixels=decode_target_pixels(max_tokens))
    prepared = prepare_image(
        image, min_tokens=min_tokens, max_tokens=max_tokens, full_size=(width, height)
    )
    return prepared.pixel_values, prepared.grid_thw


def measure(data: bytes, min_tokens: int, max_tokens: int, reps: int) -> dict:
    processor = pil_processor(min_tokens, max_tokens)
    naive_s: list[float] = []
    fast_s: list[float] = []
    naive_patches(data, min_tokens, max_tokens, processor)  # warm-up (imports, caches)
    fast_patches(data, min_tokens, max_tokens)
    for _ in range(reps):
        start = time.perf_counter()
        slow_pixels, slow_grid = naive_patches(data, min_tokens, max_tokens, processor)
        naive_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        pixels, grid = fast_patches(data, min_tokens, max_tokens)
        fast_s.append(time.perf_counter() - start)
    naive_med, fast_med = statistics.median(naive_s), statistics.median(fast_s)
    same_grid = tuple(slow_grid) == tuple(grid)
    result = {
        "tokens": [min_tokens, max_tokens],
        "grid_thw": list(grid),
        "same_grid_as_naive": same_grid,
        "naive_seconds": naive_med,
        "seconds": fast_med,
        "speedup_vs_naive": naive_med / fast_med,
        "naive_processor": "transformers Qwen2VLImageProcessorPil"
        if processor is not None
        else "emulated in PIL + numpy (transformers' processor not importable)",
    }
    if same_grid:
        a, b = slow_pixels.astype(np.float32), pixels.astype(np.float32)
        cos = float((a * b).sum() / (np.linalg.norm(a) * np.linalg.norm(b)))
        result["patch_cosine_vs_naive"] = cos
        result["patch_mean_abs_diff"] = float(np.abs(a - b).mean())
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=256, help="max (and min) image tokens")
    parser.add_argument("--also", type=int, nargs="*", default=[1280], help="more max budgets")
    parser.add_argument("--reps", type=int, default=7)
    args = parser.parse_args(argv)
    data = camera_jpeg()
    main_result = measure(data, args.tokens, args.tokens, args.reps)
    others = {}
    for tokens in args.also:
        low = min(tokens, 256)
        others[f"{low}-{tokens}"] = measure(data, low, tokens, max(3, args.reps // 2))
    result = {
        "photo": {"width": 4032, "height": 3024, "bytes": len(data)},
        **main_result,
        "other_budgets": others,
        "cpu_flags": cpu_flags(),
    }
    print(json.dumps(result, indent=2))
    return 0


def cpu_flags() -> list[str]:
    """The CPU's matrix-relevant flags (what decides bf16 and int8 speed)."""
    wanted = {"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_int8", "avx512_vnni", "avx_vnni"}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return sorted(wanted & set(line.split(":", 1)[1].split()))
    except OSError:
        pass
    return []


if __name__ == "__main__":
    raise SystemExit(main())
