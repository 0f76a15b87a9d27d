"""Time the GME encoder on random photos with a random-weight model; print JSON.

No download: the model is built from a config with random weights (speed does not depend
on the weight values), around the golden tokenizer (only token ids matter).

- `--size 2b`: the full GME-Qwen2-VL-2B architecture (text 1536 x 28 layers, vision
  1280 x 32 blocks); `--size golden`: the tiny golden checkpoint's config.
- Photos are random noise at exactly (or nearly) `--tokens` merged image tokens, embedded
  as documents through `GmeEncoder.embed_prepared` in batches of `--batch-size`, after a
  small warm-up.
- In the same run: the machine's matmul rate for the same dtype and device (a large
  square torch.matmul, before and after the timed photos; the better one is used), the
  model FLOPs per photo counted from the config (2 x multiply-adds of every matmul, the
  vision tower's attention per image, the decoder's causal attention; no lm_head, which
  the encoder never runs), and from them the floor (FLOPs / matmul rate) and how far
  above it the encoder runs.
- Also the preprocessing cost of one 12 MP photo (`prepare_image`, resize + patchify).

Example: python benchmarks/encoder_speed.py --size 2b --photos 2 --tokens 256
The default dtype is `auto` (what albumtagger picks: bf16 on GPUs and on CPUs with native
bf16, else float32: on a CPU without it bf16 matmuls are emulated and many times slower).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from albumtagger.model.encoder import (
    DOCUMENT_INSTRUCTION,
    GmeEncoder,
    prepare_image,
    prepare_resized,
    select_device,
    select_dtype,
)

GOLDEN_MODEL = Path(__file__).resolve().parents[1] / "tests" / "data" / "gme-golden" / "model"


def make_config(size: str):
    """The model config: the golden one, or the GME 2B architecture with the golden ids."""
    from transformers import Qwen2VLConfig

    golden = Qwen2VLConfig.from_pretrained(str(GOLDEN_MODEL))
    if size == "golden":
        return golden
    ids = {
        name: getattr(golden, name)
        for name in ("image_token_id", "video_token_id", "vision_start_token_id")
    }
    ids["vision_end_token_id"] = golden.vision_end_token_id
    return Qwen2VLConfig(
        text_config={
            "vocab_size": 151936,
            "hidden_size": 1536,
            "intermediate_size": 8960,
            "num_hidden_layers": 28,
            "num_attention_heads": 12,
            "num_key_value_heads": 2,
            "hidden_act": "silu",
            "max_position_embeddings": 32768,
            "rms_norm_eps": 1e-6,
            "tie_word_embeddings": True,
            "pad_token_id": golden.text_config.pad_token_id,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 1_000_000.0,
                "mrope_section": [16, 24, 24],
            },
        },
        vision_config={
            "depth": 32,
            "embed_dim": 1280,
            "hidden_size": 1536,
            "hidden_act": "quick_gelu",
            "mlp_ratio": 4,
            "num_heads": 16,
            "in_channels": 3,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
        },
        tie_word_embeddings=True,
        **ids,
    )


def build_model(config, device: torch.device, dtype: torch.dtype):
    """A random-weight model, fast: skip transformers' init and tile one random pool.

    Matrices get N(0, 0.02) values (a pool of 4M values repeated), norm weights 1 and biases
    0, so activations stay in a normal range (no denormals, no overflow).
    """
    from transformers import Qwen2VLForConditionalGeneration
    from transformers.initialization import no_init_weights

    with torch.device(device), no_init_weights():
        model = Qwen2VLForConditionalGeneration._from_config(
            config, dtype=dtype, attn_implementation="sdpa"
        )
    generator = torch.Generator(device="cpu").manual_seed(0)
    pool = (torch.randn(1 << 22, generator=generator) * 0.02).to(device=device, dtype=dtype)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.ndim == 1:
                param.fill_(0.0 if name.endswith("bias") else 1.0)
                continue
            flat = param.view(-1)
            for start in range(0, flat.numel(), pool.numel()):
                chunk = flat[start : start + pool.numel()]
                chunk.copy_(pool[: chunk.numel()])
    if config.tie_word_embeddings:
        model.lm_head.weight = model.model.language_model.embed_tokens.weight
    return model.eval().requires_grad_(False)


def model_flops(config, n_tokens: int, seq_len: int) -> dict[str, float]:
    """FLOPs (2 x multiply-adds) of one photo: n_tokens merged tokens, seq_len prompt tokens."""
    v = config.vision_config
    t = config.text_config
    merge = v.spatial_merge_size
    patches = n_tokens * merge * merge  # one still image: t = 1
    e = v.embed_dim
    mlp = int(e * v.mlp_ratio)
    patch_dim = v.in_channels * v.temporal_patch_size * v.patch_size**2
    merged = e * merge * merge
    vision_macs = patches * patch_dim * e
    vision_macs += v.depth * (
        patches * e * (3 * e + e + 2 * mlp)  # qkv, proj, fc1, fc2
        + 2 * patches * patches * e  # scores and weighted sum, all heads
    )
    vision_macs += n_tokens * (merged * merged + merged * v.hidden_size)
    h = t.hidden_size
    head_dim = h // t.num_attention_heads
    kv = t.num_key_value_heads * head_dim
    causal_pairs = seq_len * (seq_len + 1) // 2
    text_macs = t.num_hidden_layers * (
        seq_len * h * (h + 2 * kv + h)  # q, k, v, o
        + seq_len * h * 3 * t.intermediate_size  # gate, up, down
        + 2 * causal_pairs * h  # causal scores and weighted sum
    )
    return {"vision": 2.0 * vision_macs, "text": 2.0 * text_macs}


def matmul_rate(device: torch.device, dtype: torch.dtype, budget_s: float = 3.0) -> dict:
    """Sustained FLOP/s of a large square matmul in this dtype on this device."""

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        elif device.type == "mps":
            torch.mps.synchronize()

    n = 512
    while True:
        a = torch.randn(n, n, device=device).to(dtype)
        b = torch.randn(n, n, device=device).to(dtype)
        torch.matmul(a, b)
        sync()
        start = time.perf_counter()
        torch.matmul(a, b)
        sync()
        once = time.perf_counter() - start
        if once >= 0.2 or n >= 8192 or (device.type != "cpu" and n >= 8192):
            break
        if once * 8 > budget_s:  # the next size would blow the time budget
            break
        n *= 2
    reps = max(1, min(50, int(budget_s / max(once, 1e-4))))
    sync()
    start = time.perf_counter()
    for _ in range(reps):
        torch.matmul(a, b)
    sync()
    elapsed = time.perf_counter() - start
    return {"size": n, "reps": reps, "flops_per_s": 2.0 * n**3 * reps / elapsed}


def grid_for(tokens: int) -> tuple[int, int]:
    """(w, h) in merged tokens with w*h == tokens if possible, closest to 4:3 (landscape)."""
    best = None
    for h in range(1, tokens + 1):
        if tokens % h:
            continue
        w = tokens // h
        if w < h:
            break
        score = abs(math.log((w / h) / (4 / 3)))
        if best is None or score < best[0]:
            best = (score, w, h)
    assert best is not None
    _, w, h = best
    if w / h > 4:  # a prime or awkward count: take the nearest 4:3 grid instead
        h = max(1, round(math.sqrt(tokens * 3 / 4)))
        w = max(1, round(tokens / h))
    return w, h


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def random_photo(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=["2b", "golden"], default="2b")
    parser.add_argument("--photos", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=256, help="merged image tokens per photo")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--matmul-seconds", type=float, default=3.0)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    device = select_device(args.device)
    dtype = select_dtype(args.dtype, device)
    config = make_config(args.size)

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(GOLDEN_MODEL))
    start = time.perf_counter()
    model = build_model(config, device, dtype)
    build_s = time.perf_counter() - start
    n_params = sum(p.numel() for p in model.parameters())  # tied weights counted once
    encoder = GmeEncoder.from_model(
        model, tokenizer, model_id=f"random-{args.size}", min_image_tokens=args.tokens,
        max_image_tokens=args.tokens,
    )  # fmt: skip

    rng = np.random.default_rng(0)
    gw, gh = grid_for(args.tokens)
    photos = [prepare_resized(random_photo(rng, gw * 28, gh * 28)) for _ in range(args.photos)]
    n_tokens = photos[0].n_tokens

    # preprocessing of a 12 MP photo (decode not included)
    big = random_photo(rng, 4032, 3024)
    start = time.perf_counter()
    prepare_image(big, min_tokens=args.tokens, max_tokens=args.tokens)
    prepare_s = time.perf_counter() - start

    # warm-up: one small image (runs the vision tower and the decoder once)
    start = time.perf_counter()
    encoder.embed_prepared([prepare_resized(random_photo(rng, 112, 112))])
    warmup_s = time.perf_counter() - start

    rate_before = matmul_rate(device, dtype, args.matmul_seconds)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    for i in range(0, len(photos), args.batch_size):
        vectors = encoder.embed_prepared(photos[i : i + args.batch_size])
        assert np.isfinite(vectors).all()
    elapsed = time.perf_counter() - start

    seq_len = len(encoder._image_prompt_ids(n_tokens, DOCUMENT_INSTRUCTION))
    flops = model_flops(config, n_tokens, seq_len)
    flops_per_photo = flops["vision"] + flops["text"]
    rate_after = matmul_rate(device, dtype, args.matmul_seconds)
    # the better of the two: the machine may be shared, and the floor is what it can do
    rate = max(rate_before, rate_after, key=lambda r: r["flops_per_s"])
    seconds_per_photo = elapsed / len(photos)
    floor = flops_per_photo / rate["flops_per_s"]
    result = {
        "size": args.size,
        "device": str(device),
        "device_name": (
            torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()
        ),
        "dtype": str(dtype).removeprefix("torch."),
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "params": n_params,
        "build_seconds": round(build_s, 2),
        "warmup_seconds": round(warmup_s, 2),
        "photos": len(photos),
        "batch_size": args.batch_size,
        "image_tokens": n_tokens,
        "image_grid": [gw * 2, gh * 2],
        "sequence_length": seq_len,
        "prepare_12mp_seconds": round(prepare_s, 4),
        "photos_per_s": len(photos) / elapsed,
        "seconds_per_photo": seconds_per_photo,
        "flops_per_photo": flops_per_photo,
        "vision_flops_per_photo": flops["vision"],
        "text_flops_per_photo": flops["text"],
        "achieved_flops_per_s": flops_per_photo / seconds_per_photo,
        "matmul_flops_per_s": rate["flops_per_s"],
        "matmul_size": rate["size"],
        "matmul_flops_per_s_before_after": [rate_before["flops_per_s"], rate_after["flops_per_s"]],
        "floor_seconds_per_photo": floor,
        "ratio_to_floor": seconds_per_photo / floor,
        "fraction_of_matmul_rate": floor / seconds_per_photo,
    }
    if device.type == "cuda":
        result["peak_memory_bytes"] = torch.cuda.max_memory_allocated(device)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
