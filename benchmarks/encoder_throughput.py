"""Indexing throughput of the full-size GME-2B architecture (random weights) on generated
12 MP JPEGs through the real pipeline, against the naive path; prints one JSON object.

No download: the model is built from the 2B config with random weights (speed does not
depend on the values; see encoder_speed.py), around the golden tokenizer.

What runs, all in one process and one run (so the figures compare):
- the machine's matmul rate per dtype (a large square matmul, before and after);
- `tag_pending` (read-ahead threads, draft decoding, batches, one transaction per
  batch) over the same folder of 12 MP JPEGs at each (dtype, budget): the coarse first
  pass (64 tokens), the CPU budget (64..256) and the published budget (256..1280,
  "today's default"), in bfloat16 (where the CPU has it), float32 and dynamic int8;
  each photo's vector kept; the batch size is the device's automatic one;
- the naive path: one photo at a time, full decode, the recipe's two resizes,
  transformers' PIL image processor and the plain transformers forward
  (`Qwen2VLModel(input_ids, pixel_values, image_grid_thw)`), in the same dtype as the
  pipeline it is compared with, at each budget; at the first-pass and CPU budgets it runs
  just before and just after the pipeline (a shared machine's load hits both) and the
  faster of its two runs counts;
- quality: cosine between a photo's vectors at two budgets and how often its top-3 tags
  (of a small vocabulary) change; int8 and bfloat16 against float32 (random weights: the
  golden checkpoint's figures, also here, say as much);
- memory: RSS after 200 and after 2,000 photos through `index_folder` with the golden
  checkpoint (a subprocess, so the 2B model's memory does not count).

Keys (rates in photos per second; "main dtype" is the floating-point dtype for this CPU:
bfloat16 with fast bfloat16 instructions, else float32; `dtype = auto` itself picks int8
where `int8_decision` says it wins):
- photos_per_s[dtype][budget]: the pipeline; flops_per_photo[budget];
  matmul_flops_per_s[dtype] (best of before and after);
- efficiency: achieved FLOP/s over the matmul rate, main dtype, CPU budget (256 tokens);
- speedup_vs_naive: the pipeline with this device's defaults (main dtype, automatic batch
  size, read-ahead, draft decode) at the default first-pass budget, which is what a CPU
  user's index runs, over the naive path at the same budget in the same dtype. It is the
  engineering gain alone, not the budget's;
- speedup_vs_naive_by_budget[first_pass|cpu|published]: the same ratio, main dtype, at
  each budget;
- naive_photos_per_s[budget] (the faster turn) and naive_photos_per_s_runs[budget];
- naive_photos_per_s_float32 and speedup_vs_naive_float32 (for information): the naive
  path in plain float32 at the first-pass budget, what loading the model with
  transformers' defaults gives on a CPU, and the pipeline's default over it (the dtype's
  gain included);
- first_pass_speedup: the pipeline's first pass over the pipeline at the published
  budget, both main dtype (the budget's gain alone);
- batch_size[budget]: the automatic batch size the pipeline ran;
- int8_decision: first-pass photos/s of float32, bfloat16 and int8 measured in this run
  (bfloat16 where the CPU runs it natively; where it is emulated, the most its matmul
  rate allows, `bfloat16_photos_per_s_at_most`), int8's lowest cosine to float32 on the
  golden images and the 2B model, the quality bound (0.995), whether int8 wins (faster
  than each, within the bound), what `dtype = auto` picks here and whether they agree;
- rss_growth_mb, quality_golden, quality_2b_random, int8 keys, hours_for_10k_photos,
  cpu_flags, loadavg (the machine's 1-minute load before and after: other work running
  makes all rates noisy; the ratios come from turns taken close together).
`--quick` (10 to 15 minutes on a 2-core CPU) uses fewer photos; `--precision-only` runs
just the int8 decision (a few minutes with `--quick`); run heavy with nice.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from decode import camera_jpeg, cpu_flags, naive_patches, pil_processor

GOLDEN = Path(__file__).resolve().parents[1] / "tests" / "data" / "gme-golden" / "model"
SMALL_VOCABULARY = [
    "dog", "cat", "beach", "sunset", "mountain", "city street", "food", "people",
    "snow", "forest", "car", "document",
]  # fmt: skip


def rss_mb() -> float:
    with open("/proc/self/statm", encoding="ascii") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


# -- the folder -------------------------------------------------------------------------


def make_folder(folder: Path, n: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (folder / f"IMG_{i:04d}.jpg").write_bytes(camera_jpeg(seed=i))


def unique_copies(
    folder: Path, n: int, size: tuple[int, int] = (1600, 1200), bases: list[bytes] | None = None
) -> None:
    """n distinct files (a different JPEG comment each) from a few distinct photos: `bases`
    (JPEG files' bytes), else 8 of smooth noise at `size`."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    bases = list(bases or [])
    for seed in range(0 if bases else 8):
        rng = np.random.default_rng(seed)
        pixels = rng.integers(0, 255, (size[1] // 16, size[0] // 16, 3), dtype=np.uint8)
        image = Image.fromarray(pixels).resize(size, Image.Resampling.BICUBIC)
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=85)
        bases.append(buffer.getvalue())
    for i in range(n):
        data = bases[i % len(bases)]
        comment = f"albumtagger benchmark {i}".encode()
        segment = b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment
        (folder / f"IMG_{i:05d}.jpg").write_bytes(data[:2] + segment + data[2:])


# -- the 2B model -----------------------------------------------------------------------


def run_pipeline(library, settings, encoder) -> tuple[float, int]:
    """tag_pending over whatever is pending (or needs this budget): (seconds, photos)."""
    from albumtagger.library.scanner import run_to_end, scan
    from albumtagger.service.indexing import tag_pending
    from albumtagger.tagging.tagger import library_tagger

    with library.store.transaction():
        run_to_end(scan(library))
    steps = tag_pending(library, settings, encoder, library_tagger(library.store, settings))
    start = None
    report = None
    while True:
        try:
            progress = next(steps)
        except StopIteration as stop:
            report = stop.value
            break
        if progress.phase in ("tag", "first pass") and start is None:
            start = time.perf_counter()
    seconds = time.perf_counter() - (start or time.perf_counter())
    return seconds, report.tagged


def naive_embed(model, tokenizer, data: bytes, budget: tuple[int, int], processor) -> np.ndarray:
    """One photo the plain way: recipe preprocessing and the stock transformers forward."""
    import torch

    from albumtagger.model.encoder import _PROMPT, DOCUMENT_INSTRUCTION

    pixels, grid = naive_patches(data, budget[0], budget[1], processor)
    n_tokens = grid[0] * grid[1] * grid[2] // 4
    content = "<|vision_start|>" + "<|image_pad|>" * n_tokens + "<|vision_end|>"
    text = _PROMPT.format(instruction=DOCUMENT_INSTRUCTION, content=content)
    ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)
    dtype = next(model.parameters()).dtype
    with torch.inference_mode():
        out = model.model(
            input_ids=ids["input_ids"],
            attention_mask=ids["attention_mask"],
            pixel_values=torch.from_numpy(np.asarray(pixels)).to(dtype),
            image_grid_thw=torch.tensor([grid]),
            mm_token_type_ids=(ids["input_ids"] == model.config.image_token_id).long(),
        )
        vector = torch.nn.functional.normalize(out.last_hidden_state[0, -1].float(), dim=-1)
    return vector.numpy()


def bench_2b(args, result: dict) -> None:
    import torch
    from encoder_speed import build_model, make_config, matmul_rate, model_flops
    from transformers import AutoTokenizer

    from albumtagger.config import Settings, replace_section
    from albumtagger.library.folder import open_library
    from albumtagger.model.encoder import (
        CPU_MAX_IMAGE_TOKENS,
        CPU_MIN_IMAGE_TOKENS,
        DEFAULT_MAX_IMAGE_TOKENS,
        DEFAULT_MIN_IMAGE_TOKENS,
        DOCUMENT_INSTRUCTION,
        FIRST_PASS_TOKENS,
        GmeEncoder,
        cpu_has_fast_bf16,
        prepare_resized,
        quantize_int8,
        select_device,
        select_precision,
        target_size,
    )
    from albumtagger.model.loading import default_batch_size
    from albumtagger.tagging.vocabulary import tag_vectors

    device = select_device("cpu")
    fast_bf16 = cpu_has_fast_bf16()
    main_dtype = torch.bfloat16 if fast_bf16 else torch.float32
    main = "bfloat16" if fast_bf16 else "float32"
    config = make_config("2b")
    tokenizer = AutoTokenizer.from_pretrained(str(GOLDEN))
    start = time.perf_counter()
    model = build_model(config, device, main_dtype)
    result["build_seconds"] = round(time.perf_counter() - start, 1)

    budgets = {
        "first_pass": (min(CPU_MIN_IMAGE_TOKENS, FIRST_PASS_TOKENS), FIRST_PASS_TOKENS),
        "cpu": (CPU_MIN_IMAGE_TOKENS, CPU_MAX_IMAGE_TOKENS),
        "published": (DEFAULT_MIN_IMAGE_TOKENS, DEFAULT_MAX_IMAGE_TOKENS),
    }
    result["budgets"] = {k: list(v) for k, v in budgets.items()}
    probe = GmeEncoder.from_model(model, tokenizer, model_id="probe")
    flops = {}
    for label, (low, high) in budgets.items():
        w, h = target_size(4032, 3024, min_tokens=low, max_tokens=high)
        tokens = w * h // 784
        seq = len(probe._image_prompt_ids(tokens, DOCUMENT_INSTRUCTION))
        f = model_flops(config, tokens, seq)
        flops[label] = {"image_tokens": tokens, "flops": f["vision"] + f["text"]}
    result["flops_per_photo"] = flops

    tmp = Path(tempfile.mkdtemp(prefix="albumtagger-throughput-"))
    folder_a, folder_b = tmp / "a", tmp / "b"
    make_folder(folder_a, args.photos)
    make_folder(folder_b, 0 if args.precision_only else args.published)

    def run(dtype_name: str, folder: Path, label: str) -> tuple[float, dict, np.ndarray]:
        low, high = budgets[label]
        settings = replace_section(
            Settings(),
            "model",
            min_image_tokens=low,
            max_image_tokens=high,
            coarse_first="off",
        )
        encoder = GmeEncoder.from_model(
            model,
            tokenizer,
            model_id=f"random-2b-{dtype_name}",
            min_image_tokens=low,
            max_image_tokens=high,
        )
        encoder.embed_prepared([prepare_resized(_noise(112, 112))])  # warm-up
        library = open_library(folder, tmp / "data")
        with library.store.transaction():
            if library.store.get_setting("vocabulary_seeded") is None:
                library.store.set_setting("vocabulary_seeded", "benchmark")
                library.store.add_tags((t, [t, f"a photo of {t}"]) for t in SMALL_VOCABULARY)
        seconds, n = run_pipeline(library, settings, encoder)
        ids, matrix = library.store.photo_vectors(encoder.image_model_id)
        paths = {r.id: f"{folder.name}/{r.path}" for r in library.store.photos()}
        vecs = {paths[int(i)]: v for i, v in zip(ids, matrix, strict=True)}
        tag_matrix = tag_vectors(library.store, encoder, library.store.tags())
        library.close()
        rate = n / seconds
        print(f"# {dtype_name} {label} {folder.name}: {n} in {seconds:.1f} s", file=sys.stderr)
        return rate, vecs, tag_matrix

    def naive_rate(label: str, paths: list[Path]) -> float:
        """Photos/s of the naive path at this budget, in the model's current dtype."""
        processor = pil_processor(*budgets[label])
        start = time.perf_counter()
        for path in paths:
            naive_embed(model, tokenizer, path.read_bytes(), budgets[label], processor)
        rate = len(paths) / (time.perf_counter() - start)
        print(f"# naive {label}: {rate:.4f} photos/s", file=sys.stderr, flush=True)
        return rate

    # The pipeline and the naive path take turns at each budget (naive, pipeline, naive),
    # so a load that comes and goes on a shared machine hits both; the naive rate kept
    # is the faster of its two runs (the comparison leans towards the naive path).
    paths_a = sorted(folder_a.glob("*.jpg"))
    paths_b = sorted(folder_b.glob("*.jpg"))
    naive_runs: dict[str, list[float]] = {}
    rates = {main: [matmul_rate(device, main_dtype, 3.0)["flops_per_s"]]}
    photos_per_s: dict[str, dict[str, float]] = {main: {}}
    vec: dict[tuple[str, str], dict] = {}
    if args.precision_only:
        photos_per_s[main]["first_pass"], vec[(main, "first_pass")], _ = run(
            main, folder_a, "first_pass"
        )
    else:
        tag_matrix = None
        warm = pil_processor(*budgets["first_pass"])
        naive_embed(model, tokenizer, paths_a[0].read_bytes(), budgets["first_pass"], warm)
        for label in ("first_pass", "cpu"):
            k = args.naive_photos if label == "first_pass" else max(1, args.naive_photos // 2)
            naive_runs[label] = [naive_rate(label, paths_a[:k])]
            photos_per_s[main][label], vec[(main, label)], tag_matrix = run(main, folder_a, label)
            naive_runs[label].append(naive_rate(label, paths_a[-k:]))
        for label in ("first_pass", "cpu", "published"):
            rate, vecs, _ = run(main, folder_b, label)
            vec.setdefault((main, label), {}).update(vecs)
            if label == "published":
                photos_per_s[main][label] = rate
        naive_runs["published"] = [naive_rate("published", paths_b[:1])]
        result["quality_2b_random"] = budget_quality(vec, main, tag_matrix)
        naive = {label: max(runs) for label, runs in naive_runs.items()}
        result["naive_photos_per_s"] = naive
        result["naive_photos_per_s_runs"] = naive_runs
        rates[main].append(matmul_rate(device, main_dtype, 3.0)["flops_per_s"])

    # The precisions at the first pass, in turns on the same photos: float32, bfloat16
    # (where the CPU runs it natively; elsewhere it is emulated, about 40x slower than
    # float32, so only its matmul rate is measured) and dynamic int8.
    labels = ["first_pass"] if args.quick or args.precision_only else ["first_pass", "cpu"]
    if fast_bf16:
        model.float()
        rates["float32"] = [matmul_rate(device, torch.float32, 3.0)["flops_per_s"]]
        _fresh_library_dirs(tmp)
        photos_per_s["float32"] = {}
        for label in labels:
            photos_per_s["float32"][label], vec[("float32", label)], _ = run(
                "float32", folder_a, label
            )
        if not args.precision_only:
            # What a person loading the model with transformers' defaults (float32) gets.
            result["naive_photos_per_s_float32"] = {
                "first_pass": naive_rate("first_pass", paths_a[: max(1, args.naive_photos // 2)])
            }
    else:
        rates["bfloat16"] = [matmul_rate(device, torch.bfloat16, 1.0)["flops_per_s"]]
    if not args.no_int8:
        quantize_int8(model)
        _fresh_library_dirs(tmp)
        photos_per_s["int8"] = {}
        for label in labels:
            photos_per_s["int8"][label], vec[("int8", label)], _ = run("int8", folder_a, label)
        ref = vec[("float32", "first_pass")]
        for other in ("int8", main):
            if other == "float32":
                continue
            got = vec[(other, "first_pass")]
            result[f"{other}_cosine_to_float32_2b_min"] = min(
                float(ref[p] @ got[p]) for p in ref if p in got
            )
        result["int8_speedup_vs"] = {
            d: photos_per_s["int8"]["first_pass"] / photos_per_s[d]["first_pass"]
            for d in photos_per_s
            if d != "int8"
        }
        result["int8_decision"] = int8_decision(
            result,
            photos_per_s,
            bfloat16_bound=None
            if fast_bf16
            else max(rates["bfloat16"]) / flops["first_pass"]["flops"],
            auto_picks=select_precision("auto", device),
        )
    result["photos_per_s"] = photos_per_s
    result["matmul_flops_per_s"] = {k: max(v) for k, v in rates.items()}
    result["matmul_flops_per_s_before_after"] = rates
    if args.precision_only:
        return
    best = photos_per_s[main]
    result["achieved_flops_per_s"] = {
        d: {label: r * flops[label]["flops"] for label, r in per.items()}
        for d, per in photos_per_s.items()
    }
    result["efficiency"] = best["cpu"] * flops["cpu"]["flops"] / result["matmul_flops_per_s"][main]
    result["efficiency_at"] = {"dtype": main, "image_tokens": flops["cpu"]["image_tokens"]}
    result["first_pass_speedup"] = best["first_pass"] / best["published"]
    result["speedup_vs_naive"] = best["first_pass"] / naive["first_pass"]
    result["speedup_vs_naive_by_budget"] = {
        label: best[label] / naive[label] for label in ("first_pass", "cpu", "published")
    }
    if "naive_photos_per_s_float32" in result:
        result["speedup_vs_naive_float32"] = (
            best["first_pass"] / result["naive_photos_per_s_float32"]["first_pass"]
        )
    result["batch_size"] = {
        label: default_batch_size(probe, 0, high) for label, (_, high) in budgets.items()
    }
    result["hours_for_10k_photos"] = {
        "first_pass": 1e4 / best["first_pass"] / 3600,
        "refine_at_cpu_budget": 1e4 / best["cpu"] / 3600,
        "first_pass_plus_refine": 1e4 / best["first_pass"] / 3600 + 1e4 / best["cpu"] / 3600,
        "published_budget": 1e4 / best["published"] / 3600,
    }


QUALITY_BOUND = 0.995
"""Cosine to float32 a precision must keep (golden images and the 2B random model)."""


def int8_decision(
    result: dict,
    photos_per_s: dict[str, dict[str, float]],
    bfloat16_bound: float | None,
    auto_picks: str,
) -> dict:
    """Whether int8 wins on this CPU at the first pass (faster than every other precision
    measured, cosine to float32 within `QUALITY_BOUND`), and what `dtype = auto` picks."""
    rates = {d: per["first_pass"] for d, per in photos_per_s.items() if "first_pass" in per}
    if bfloat16_bound is not None:
        rates["bfloat16"] = None  # emulated here: its matmul rate bounds it, see below
    cosines = {
        "2b_random": result.get("int8_cosine_to_float32_2b_min"),
        "golden": result.get("quality_golden", {}).get("int8_cosine_to_float32_min"),
    }
    known = [c for c in cosines.values() if c is not None]
    faster = all(
        rates["int8"] > rate for d, rate in rates.items() if d != "int8" and rate is not None
    ) and (bfloat16_bound is None or rates["int8"] > bfloat16_bound)
    wins = faster and bool(known) and min(known) >= QUALITY_BOUND
    out = {
        "first_pass_photos_per_s": rates,
        "int8_cosine_to_float32_min": cosines,
        "quality_bound": QUALITY_BOUND,
        "int8_wins": wins,
        "auto_picks": auto_picks,
        "auto_agrees": (auto_picks == "int8") == wins,
    }
    if bfloat16_bound is not None:
        out["bfloat16_photos_per_s_at_most"] = bfloat16_bound
        out["bfloat16_note"] = "emulated on this CPU: not run, bounded by its matmul rate"
    return out


def _fresh_library_dirs(tmp: Path) -> None:
    """Forget the sidecars (not the photos), so another dtype re-embeds everything."""
    import shutil

    for sidecar in tmp.glob("*/.albumtagger"):
        shutil.rmtree(sidecar, ignore_errors=True)
    shutil.rmtree(tmp / "data", ignore_errors=True)


def _noise(w: int, h: int):
    from PIL import Image

    rng = np.random.default_rng(1)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")


def budget_quality(vec: dict, dtype_name: str, tags: np.ndarray) -> dict:
    """Cosine between budgets and top-3 tag changes, per pair, over the same photos."""
    out = {}
    for a, b in (("first_pass", "cpu"), ("cpu", "published"), ("first_pass", "published")):
        va, vb = vec[(dtype_name, a)], vec[(dtype_name, b)]
        common = sorted(set(va) & set(vb))
        cos = [float(va[p] @ vb[p]) for p in common]
        changed = sum(
            set(np.argsort(-(tags @ va[p]))[:3]) != set(np.argsort(-(tags @ vb[p]))[:3])
            for p in common
        )
        out[f"{a}_vs_{b}"] = {
            "photos": len(common),
            "cosine_mean": float(np.mean(cos)) if cos else None,
            "cosine_min": float(np.min(cos)) if cos else None,
            "top3_tags_changed_share": changed / len(common) if common else None,
        }
    return out


# -- the golden checkpoint: quality and int8 ---------------------------------------------


def golden_quality() -> dict:
    """Budget and int8 quality on the golden checkpoint (tiny, random weights)."""
    from PIL import Image, ImageOps

    from albumtagger.model.encoder import GmeEncoder
    from albumtagger.tagging.vocabulary import default_vocabulary

    folder = GOLDEN.parent / "images"
    images = [
        ImageOps.exif_transpose(Image.open(p)).convert("RGB") for p in sorted(folder.iterdir())
    ]
    for seed in range(8):
        images.append(Image.open(io.BytesIO(camera_jpeg(800, 600, seed=seed))).convert("RGB"))
    prompts = [s.prompts[0] for s in default_vocabulary()]
    f32 = {}
    for budget in ((64, 64), (64, 256), (256, 1280)):
        enc = GmeEncoder(str(GOLDEN), device="cpu", dtype="float32",
                         min_image_tokens=budget[0], max_image_tokens=budget[1])  # fmt: skip
        f32[budget] = enc.embed_images(images)
        text = enc.embed_texts(prompts)
    out: dict = {"photos": len(images), "tags": len(prompts)}
    for a, b in (((64, 64), (64, 256)), ((64, 256), (256, 1280)), ((64, 64), (256, 1280))):
        cos = (f32[a] * f32[b]).sum(1)
        top_a = np.argsort(-(f32[a] @ text.T), axis=1)[:, :3]
        top_b = np.argsort(-(f32[b] @ text.T), axis=1)[:, :3]
        changed = sum(set(x) != set(y) for x, y in zip(top_a, top_b, strict=True))
        out[f"{a[0]}-{a[1]}_vs_{b[0]}-{b[1]}"] = {
            "cosine_mean": float(cos.mean()),
            "cosine_min": float(cos.min()),
            "top3_tags_changed_share": changed / len(images),
        }
    out.update(golden_precision_cosines(images))
    return out


def golden_precision_cosines(images: list | None = None) -> dict:
    """Lowest cosine to float32 of int8 and bfloat16 image vectors, golden checkpoint."""
    from PIL import Image, ImageOps

    from albumtagger.model.encoder import GmeEncoder

    if images is None:
        images = [
            ImageOps.exif_transpose(Image.open(p)).convert("RGB")
            for p in sorted((GOLDEN.parent / "images").iterdir())
        ]
    ref = GmeEncoder(str(GOLDEN), device="cpu", dtype="float32").embed_images(images)
    out = {}
    for precision in ("int8", "bfloat16"):
        got = GmeEncoder(str(GOLDEN), device="cpu", dtype=precision).embed_images(images)
        out[f"{precision}_cosine_to_float32_min"] = float((got * ref).sum(1).min())
    return out


# -- memory: RSS through the real pipeline -------------------------------------------------


def rss_child(n_small: int, n_large: int) -> dict:
    from albumtagger.config import Settings, replace_section
    from albumtagger.library.folder import open_library
    from albumtagger.model.loading import load_encoder
    from albumtagger.service.indexing import index_steps
    from albumtagger.tagging.tagger import library_tagger

    tmp = Path(tempfile.mkdtemp(prefix="albumtagger-rss-"))
    unique_copies(tmp / "photos", n_large)
    settings = replace_section(
        Settings(), "model", model=str(GOLDEN), device="cpu", dtype="float32"
    )  # the automatic CPU budget and first pass, as a user gets them
    library = open_library(tmp / "photos", tmp / "data")
    encoder = load_encoder(settings)
    samples = {}
    start = time.perf_counter()
    decisions = library_tagger(library.store, settings)
    for progress in index_steps(library, settings, decisions, encoder=encoder):
        if progress.phase in ("tag", "first pass"):
            if progress.done >= n_small and "small" not in samples:
                samples["small"] = rss_mb()
            samples["last"] = rss_mb()
    samples["large"] = rss_mb()
    library.close()
    return {
        "rss_mb_after_small": samples.get("small"),
        "rss_mb_after_large": samples["large"],
        "rss_growth_mb": samples["large"] - samples.get("small", samples["large"]),
        "photos_small": n_small,
        "photos_large": n_large,
        "seconds": time.perf_counter() - start,
        "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer photos (about 10 min)")
    parser.add_argument("--photos", type=int, default=0, help="first-pass photos")
    parser.add_argument("--published", type=int, default=0, help="photos at 256..1280")
    parser.add_argument("--naive-photos", type=int, default=0, help="naive photos per turn")
    parser.add_argument("--quality-photos", type=int, default=-1)
    parser.add_argument("--rss-photos", type=int, nargs=2, default=[200, 2000])
    parser.add_argument("--no-int8", action="store_true")
    parser.add_argument(
        "--precision-only",
        action="store_true",
        help="only the int8 decision: float32, bfloat16 and int8 at the first pass, and "
        "their cosine to float32 (golden and 2B); a few minutes",
    )
    parser.add_argument("--skip-2b", action="store_true")
    parser.add_argument("--skip-memory", action="store_true", help="no RSS or golden runs")
    parser.add_argument("--rss-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rss_child:
        print(json.dumps(rss_child(*args.rss_photos)))
        return 0
    args.photos = args.photos or (8 if args.quick else 16)
    args.naive_photos = args.naive_photos or (3 if args.quick else 6)
    args.published = args.published or (1 if args.quick else 3)
    if args.quality_photos < 0:
        args.quality_photos = 0 if args.quick else 6

    import torch

    result: dict = {
        "machine": {
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
        },
        "cpu_flags": cpu_flags(),
        "gpu": "none lent to this run" if not torch.cuda.is_available() else "present",
    }
    result["loadavg"] = {"before": os.getloadavg()[0]}
    start = time.perf_counter()
    if args.precision_only:
        result["quality_golden"] = golden_precision_cosines()
    elif not args.skip_memory:
        memory_and_golden(args, result)
    if not args.skip_2b:
        bench_2b(args, result)
    result["seconds"] = time.perf_counter() - start
    result["loadavg"]["after"] = os.getloadavg()[0]
    print(json.dumps(result, indent=2))
    return 0


def memory_and_golden(args, result: dict) -> None:
    child = subprocess.run(
        [sys.executable, __file__, "--rss-child", "--rss-photos", *map(str, args.rss_photos)],
        capture_output=True,
        text=True,
        check=True,
    )
    result["memory"] = json.loads(child.stdout.strip().splitlines()[-1])
    result["rss_growth_mb"] = result["memory"]["rss_growth_mb"]
    print(f"# memory: {result['memory']}", file=sys.stderr, flush=True)
    result["quality_golden"] = golden_quality()
    print(f"# golden quality: {result['quality_golden']}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
