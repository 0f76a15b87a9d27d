"""The GME recipe: turn photos and texts into normalised vectors in one shared space.

This is the one module that knows how GME (`Alibaba-NLP/gme-Qwen2-VL-2B-Instruct`, a
Qwen2-VL model) computes embeddings. It reproduces the published GME inference code
(checked against `tests/data/gme-golden`):

- prompt `<|im_start|>system\\n{instruction}<|im_end|>\\n<|im_start|>user\\n{content}`
  `<|im_end|>\\n<|im_start|>assistant\\n<|endoftext|>`; for an image the content is
  `<|vision_start|>` + one `<|image_pad|>` per merged 28x28 patch + `<|vision_end|>`;
- vision tower features replace the image-pad embeddings;
- plain sequential positions 0..L-1 in all three M-RoPE sections (not the multimodal
  RoPE that `Qwen2VLModel.forward` would compute);
- right padding, pooled = last hidden state at the last real token, L2-normalised.

Image preprocessing (`prepare_image`) is numpy + PIL only and thread-safe, so it can run
in worker threads while the model runs elsewhere. `GmeEncoder` itself is meant to be
used from one thread at a time.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from albumtagger.errors import ImageError, ModelError, UserError
from albumtagger.model.files import (
    DEFAULT_MODEL,
    DEFAULT_REVISION,
    ProgressCallback,
    folder_model_id,
    locate_model,
)

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

QUERY_INSTRUCTION = "Find an image that matches the given text."
"""Instruction for texts that look for images: tag prompts, free-text searches."""
DOCUMENT_INSTRUCTION = "You are a helpful assistant."
"""GME's default instruction, used for photos (documents)."""


DEFAULT_MIN_IMAGE_TOKENS = 256
DEFAULT_MAX_IMAGE_TOKENS = 1280
"""The published recipe's budget (what GME's own code passes): the budget on a GPU."""

CPU_MIN_IMAGE_TOKENS = 64
CPU_MAX_IMAGE_TOKENS = 256
"""The automatic budget on a CPU. Cost grows a little faster than linearly with tokens
(about 2.2 TFLOP per photo at 256 tokens, 13 at the 1,230 a 12 MP photo gets from the
published budget): on a 2-core CPU with fast bfloat16 that is about 5 s against a minute
per photo. Fewer tokens see less detail (small text, small faces, far-away things);
the layout, the main subjects and the scene survive. See README "Speed"."""

FIRST_PASS_TOKENS = 64
"""Default budget of the coarse first pass (`coarse_first`): about 4x cheaper than 256."""

# Qwen2-VL image geometry. GME uses the stock values; a checkpoint with others is refused.
PATCH_SIZE = 14
MERGE_SIZE = 2
TEMPORAL_PATCH_SIZE = 2
FACTOR = PATCH_SIZE * MERGE_SIZE  # one merged token covers FACTOR x FACTOR pixels
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

# The published recipe first fits an image to 4..16384 tokens (qwen_vl_utils.fetch_image),
# then the processor fits it to the configured budget.
_FETCH_MIN_TOKENS = 4
_FETCH_MAX_TOKENS = 16384
_MAX_RATIO = 200

_PROMPT = (
    "<|im_start|>system\n{instruction}<|im_end|>\n<|im_start|>user\n{content}<|im_end|>\n"
    "<|im_start|>assistant\n<|endoftext|>"
)
_IMAGE_PAD = "<|image_pad|>"
_VISION_START = "<|vision_start|>"
_VISION_END = "<|vision_end|>"
_IMAGE_CONTENT = _VISION_START + _IMAGE_PAD + _VISION_END


# --------------------------------------------------------------------------- images


@dataclass(frozen=True, eq=False)
class PreparedImage:
    """An image ready for the vision tower: normalised patches in Qwen2-VL's layout."""

    pixel_values: np.ndarray
    """float32 [t*h*w, 3 * TEMPORAL_PATCH_SIZE * PATCH_SIZE**2], patches in 2x2 merge groups."""
    grid_thw: tuple[int, int, int]
    """Patch grid (t, h, w), in 14-pixel patches."""

    @property
    def n_tokens(self) -> int:
        """Merged tokens the language model sees (= image-pad tokens in the prompt)."""
        t, h, w = self.grid_thw
        return t * h * w // (MERGE_SIZE * MERGE_SIZE)


def _smart_resize_fetch(height: int, width: int, factor: int) -> tuple[int, int]:
    """qwen_vl_utils' smart_resize as GME's fetch_image calls it: 4..16384 tokens, ratio clamp."""
    min_pixels = _FETCH_MIN_TOKENS * factor * factor
    max_pixels = _FETCH_MAX_TOKENS * factor * factor
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = math.floor(height / beta / factor) * factor
        w_bar = math.floor(width / beta / factor) * factor
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    h_bar, w_bar = max(h_bar, factor), max(w_bar, factor)
    if max(h_bar, w_bar) / min(h_bar, w_bar) > _MAX_RATIO:
        # The published recipe squashes extreme panoramas to 200:1 (with a warning).
        if h_bar > w_bar:
            h_bar = w_bar * _MAX_RATIO
        else:
            w_bar = h_bar * _MAX_RATIO
    return h_bar, w_bar


def _smart_resize_processor(
    height: int, width: int, factor: int, min_pixels: int, max_pixels: int
) -> tuple[int, int]:
    """Qwen2VLImageProcessor's smart_resize (the recipe's second resize)."""
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def auto_image_budget(device_type: str) -> tuple[int, int]:
    """The image token budget albumtagger picks for a device: speed against detail.

    A GPU (cuda, Apple's mps) gets the published 256..1280 (a 12 MP photo becomes about
    1,230 tokens); a CPU gets 64..256 (a 12 MP photo becomes 256 tokens, about 6x less
    work).
    """
    if device_type in ("cuda", "mps"):
        return DEFAULT_MIN_IMAGE_TOKENS, DEFAULT_MAX_IMAGE_TOKENS
    return CPU_MIN_IMAGE_TOKENS, CPU_MAX_IMAGE_TOKENS


def resolve_image_budget(min_tokens: int, max_tokens: int, device_type: str) -> tuple[int, int]:
    """A budget with 0 (automatic) for either end filled in for `device_type`.

    Given ends are kept; an automatic end gives way to a given one (max 128 with an
    automatic min on a CPU is 64..128; min 512 with an automatic max is 512..512 there).
    """
    auto_min, auto_max = auto_image_budget(device_type)
    low = int(min_tokens or 0)
    high = int(max_tokens or 0)
    if low <= 0 and high <= 0:
        return auto_min, auto_max
    if low <= 0:
        return min(auto_min, high), high
    if high <= 0:
        return low, max(auto_max, low)
    return low, high


def _check_budget(min_tokens: int, max_tokens: int) -> None:
    if not (1 <= min_tokens <= max_tokens):
        raise UserError(
            f"Image token budget {min_tokens}..{max_tokens} is invalid: need "
            "1 <= min image tokens <= max image tokens (default 256..1280)."
        )


def target_size(
    width: int,
    height: int,
    *,
    min_tokens: int = DEFAULT_MIN_IMAGE_TOKENS,
    max_tokens: int = DEFAULT_MAX_IMAGE_TOKENS,
    factor: int = FACTOR,
) -> tuple[int, int]:
    """The (width, height) the recipe gives an image of this size.

    Both sides are multiples of `factor`; the token count (w*h/factor**2) lies within
    [min_tokens, max_tokens] for all but absurd aspect ratios; the aspect ratio is kept as
    well as the grid allows. It is the size the published recipe ends with after its two
    resizes, so resizing once straight to it gives the same patch grid.
    """
    if width <= 0 or height <= 0:
        raise ImageError(f"image has no pixels ({width}x{height})")
    _check_budget(min_tokens, max_tokens)
    h1, w1 = _smart_resize_fetch(height, width, factor)
    h2, w2 = _smart_resize_processor(
        h1, w1, factor, min_tokens * factor * factor, max_tokens * factor * factor
    )
    return w2, h2


def _patchify(rgb: np.ndarray) -> PreparedImage:
    """uint8 or float [H, W, 3] image at a multiple-of-28 size -> PreparedImage."""
    height, width, channels = rgb.shape
    if channels != 3 or height % FACTOR or width % FACTOR or height == 0 or width == 0:
        raise ImageError(
            f"image of {width}x{height}x{channels} is not RGB at a multiple of {FACTOR} pixels"
        )
    mean = np.asarray(CLIP_MEAN, dtype=np.float32)
    std = np.asarray(CLIP_STD, dtype=np.float32)
    x = (rgb.astype(np.float32) * np.float32(1.0 / 255.0) - mean) / std
    gh, gw = height // PATCH_SIZE, width // PATCH_SIZE
    m, p = MERGE_SIZE, PATCH_SIZE
    # [H, W, C] -> [gh/m, m, p, gw/m, m, p, C] -> [gh/m, gw/m, m, m, C, p, p]
    x = x.reshape(gh // m, m, p, gw // m, m, p, channels).transpose(0, 3, 1, 4, 6, 2, 5)
    # the still image fills every temporal slot: [..., C, T, p, p]
    x = np.broadcast_to(x[:, :, :, :, :, None], (*x.shape[:5], TEMPORAL_PATCH_SIZE, p, p))
    patches = np.ascontiguousarray(x).reshape(gh * gw, channels * TEMPORAL_PATCH_SIZE * p * p)
    return PreparedImage(pixel_values=patches, grid_thw=(1, gh, gw))


def _to_rgb(image: Image.Image) -> Image.Image:
    return image if image.mode == "RGB" else image.convert("RGB")


def prepare_image(
    image: Image.Image,
    *,
    min_tokens: int = DEFAULT_MIN_IMAGE_TOKENS,
    max_tokens: int = DEFAULT_MAX_IMAGE_TOKENS,
    full_size: tuple[int, int] | None = None,
) -> PreparedImage:
    """Resize (bicubic, once, to `target_size`), normalise and patchify a decoded photo.

    `image` should be RGB with its EXIF orientation already applied; other modes are
    converted as the recipe does (`convert("RGB")`). `full_size` is the photo's own
    (width, height) where `image` was decoded smaller (JPEG draft): the final size is
    the recipe's for the full photo, as if it had been decoded whole. Thread-safe; needs
    no torch.
    """
    image = _to_rgb(image)
    width, height = full_size if full_size and min(full_size) > 0 else image.size
    size = target_size(width, height, min_tokens=min_tokens, max_tokens=max_tokens)
    if size != image.size:
        image = image.resize(size, Image.Resampling.BICUBIC)
    return _patchify(np.asarray(image))


def prepare_resized(image: Image.Image) -> PreparedImage:
    """Normalise and patchify an image already at its final, multiple-of-28 size."""
    return _patchify(np.asarray(_to_rgb(image)))


# --------------------------------------------------------------------------- devices


def select_device(requested: str = "auto") -> torch.device:
    """auto: cuda, then mps, then cpu. Explicit: cuda, cuda:N, mps, cpu."""
    import torch

    name = (requested or "auto").strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise UserError(f"Unknown device {requested!r}; use auto, cuda, mps or cpu.") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(
                "Device cuda was requested but no usable CUDA GPU was found (or this torch "
                "build has no CUDA); choose the device auto or cpu.",
                setting="device",
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UserError(
                f"Device {requested} does not exist: this machine has "
                f"{torch.cuda.device_count()} CUDA device(s)."
            )
    elif device.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise UserError("Device mps was requested but is not available; use auto or cpu.")
    elif device.type != "cpu":
        raise UserError(f"Unsupported device {requested!r}; use auto, cuda, mps or cpu.")
    return device


ASSUME_NO_BF16_ENV = "ALBUMTAGGER_ASSUME_NO_BF16"
"""Set to 1: treat the CPU as one without fast bfloat16 (tests, benchmarks, comparisons)."""


def cpu_has_fast_bf16() -> bool:
    """True where the CPU has native bf16 matrix instructions (AMX, AVX512-BF16, ARM BF16)
    and `ALBUMTAGGER_ASSUME_NO_BF16` is not set.

    Elsewhere bf16 matmuls on the CPU are emulated and far slower than float32 (measured
    40x on a 2-core AVX2 EPYC).
    """
    if os.environ.get(ASSUME_NO_BF16_ENV, "").strip() not in ("", "0"):
        return False
    return bool(_cpu_flags() & {"amx_bf16", "avx512_bf16", "bf16"})


@functools.lru_cache(maxsize=1)
def _cpu_flags() -> frozenset[str]:
    flags: set[str] = set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip().lower() in ("flags", "features"):
                    flags.update(value.split())
    except OSError:
        pass
    return frozenset(flags)


def cpu_int8_wins() -> bool:
    """Whether `dtype = auto` picks dynamic int8 on this CPU: an x86 CPU (PyTorch's fbgemm
    kernels) without AMX.

    Measured with `benchmarks/encoder_throughput.py` on the 2B architecture, first pass
    (README "Speed"): int8 4.0x float32 and 1.2-1.55x bfloat16 on a 2-core EPYC with
    AVX512-BF16; 2.25x float32 on a 2-core EPYC with AVX2 only, where bfloat16 is emulated
    (over 50x slower than int8); cosine to float32 >= 0.995. Not measured: AMX (its bf16
    tiles may well beat int8, so those keep bfloat16) and ARM (PyTorch's qnnpack kernels).
    """
    import torch

    engines = getattr(torch.backends.quantized, "supported_engines", ())
    amx = "amx_bf16" in _cpu_flags() and cpu_has_fast_bf16()
    return "fbgemm" in engines and not amx


_DTYPE_NAMES = {
    "float32": "float32",
    "fp32": "float32",
    "float": "float32",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float16": "float16",
    "fp16": "float16",
    "half": "float16",
}
INT8 = "int8"
"""Precision choice: float32 activations with dynamic int8 weights in every linear layer
(CPU only, `torch.ao.quantization.quantize_dynamic`)."""


def select_dtype(requested: str | Any, device: torch.device | str) -> torch.dtype:
    """The floating-point dtype of the weights. auto: bf16 on a CUDA GPU that supports it
    (else fp32), fp32 on mps, on the CPU bf16 only with native bf16 instructions (else
    fp32). Explicit: float32, bfloat16, float16. (int8 is a precision, not a dtype: see
    `select_precision`.)"""
    import torch

    if isinstance(requested, torch.dtype):
        return requested
    device = torch.device(device) if isinstance(device, str) else device
    name = str(requested or "auto").strip().lower().removeprefix("torch.")
    if name == "auto":
        if device.type == "cuda":
            if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
                return torch.bfloat16
            return torch.float32
        if device.type == "cpu" and cpu_has_fast_bf16():
            return torch.bfloat16
        return torch.float32
    if name not in _DTYPE_NAMES:
        raise UserError(f"Unknown dtype {requested!r}; use auto, float32, bfloat16 or float16.")
    dtype = getattr(torch, _DTYPE_NAMES[name])
    if dtype == torch.float16:
        log.warning("float16 is known to be numerically unstable for Qwen2-VL; prefer bfloat16.")
    return dtype


def select_precision(
    requested: str | Any, device: torch.device | str, *, device_was_auto: bool = False
) -> str:
    """The precision a `dtype` setting gives on a device: int8, bfloat16, float32 or float16.

    auto on a CPU is int8 where `cpu_int8_wins`, else as `select_dtype`; on a GPU as
    `select_dtype`. int8 runs on the CPU only: asked for on a GPU it is an error, unless
    the GPU was picked automatically (`device_was_auto`: a library tagged with int8 on a
    CPU, opened where there is a GPU), where the GPU's automatic precision runs instead.
    """
    import torch

    device = torch.device(device) if isinstance(device, str) else device
    name = str(requested or "auto").strip().lower()
    if name in (INT8, "qint8"):
        if device.type == "cpu":
            return INT8
        if not device_was_auto:
            raise UserError(
                f"Precision int8 runs on the CPU only, not on {device.type}; choose the "
                "dtype auto, bfloat16 or float32 there.",
                setting="dtype",
            )
        fallback = _dtype_name(select_dtype("auto", device))
        log.warning("int8 runs on the CPU only; using %s on %s instead", fallback, device)
        return fallback
    if name == "auto" and device.type == "cpu" and cpu_int8_wins():
        return INT8
    return _dtype_name(select_dtype(requested, device))


def quantize_int8(model: Any) -> Any:
    """Dynamic int8 weights for every `nn.Linear` of a float32 model, in place.

    Weights get one scale per output channel: cosine to float32 0.996 on the 2B model and
    0.9985 on the golden images, against 0.994 and 0.9976 with one scale per tensor, at
    the same speed (AVX2 CPU). Activations stay
    float32 and are quantised per batch on the fly (PyTorch's own `quantize_dynamic`, the
    x86/fbgemm kernels; no extra package). Embeddings, norms, the patch convolution and
    attention itself stay float32.
    """
    import warnings

    import torch
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    model.float()
    with warnings.catch_warnings():  # torch.ao eager quantisation announces its move
        warnings.simplefilter("ignore")
        spec = {torch.nn.Linear: per_channel_dynamic_qconfig}
        quantize_dynamic(model, spec, dtype=torch.qint8, inplace=True)
    return model


def _is_quantized(model: Any) -> bool:
    try:
        from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear
    except ImportError:  # pragma: no cover
        return False
    return any(isinstance(m, DynamicLinear) for m in model.modules())


def _is_oom(exc: BaseException) -> bool:
    import torch

    oom_type = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)
    if isinstance(exc, (oom_type, torch.cuda.OutOfMemoryError, MemoryError)):
        return True
    if isinstance(exc, RuntimeError):
        msg = str(exc).lower()
        return "out of memory" in msg or "can't allocate memory" in msg
    return False


# --------------------------------------------------------------------------- encoder


@dataclass(frozen=True)
class _Item:
    """One sequence to embed: prompt token ids and, for a photo, its prepared image."""

    ids: list[int]
    image: PreparedImage | None = None


class GmeEncoder:
    """Embeds texts and photos with GME. Load once, use from one thread.

    Vectors are float32, L2-normalised, independent of what else is in a batch.
    `model_id` names the weights (for caching vectors); image vectors also depend on
    the token budget, which `image_model_id` includes.
    """

    model_id: str
    dim: int
    device: torch.device
    dtype: torch.dtype
    min_image_tokens: int
    max_image_tokens: int

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        revision: str | None = None,
        device: str = "auto",
        dtype: str = "auto",
        min_image_tokens: int = DEFAULT_MIN_IMAGE_TOKENS,
        max_image_tokens: int = DEFAULT_MAX_IMAGE_TOKENS,
        local_files_only: bool | None = None,
        progress: ProgressCallback | None = None,
    ) -> None:
        model = str(model).strip()
        torch_device = select_device(device)
        min_image_tokens, max_image_tokens = resolve_image_budget(
            min_image_tokens, max_image_tokens, torch_device.type
        )
        _check_budget(min_image_tokens, max_image_tokens)
        precision = select_precision(
            dtype, torch_device, device_was_auto=(device or "auto").strip().lower() == "auto"
        )
        int8 = precision == INT8
        torch_dtype = select_dtype("float32" if int8 else precision, torch_device)
        folder, model_id = locate_model(
            model, revision, local_files_only=local_files_only, progress=progress
        )

        if progress is not None:
            progress(f"Loading model {model}", None, None)
        log.info(
            "Loading GME model %s (%s) on %s in %s", model, model_id, torch_device, torch_dtype
        )
        hf_model, tokenizer = _load(folder, torch_dtype)
        try:
            hf_model.to(torch_device)
        except Exception as exc:
            if _is_oom(exc):
                raise ModelError(
                    f"Not enough memory on {torch_device} to load the model in {torch_dtype}; "
                    "try the device cpu or another precision.",
                    setting="device",
                ) from None
            raise
        if int8:
            quantize_int8(hf_model)
        self._setup(hf_model, tokenizer, model_id, min_image_tokens, max_image_tokens)
        if progress is not None:
            progress(f"Model ready on {self.device} ({self.precision})", None, None)

    @classmethod
    def from_model(
        cls,
        model: Any,
        tokenizer: Any,
        *,
        model_id: str = "in-memory",
        min_image_tokens: int = DEFAULT_MIN_IMAGE_TOKENS,
        max_image_tokens: int = DEFAULT_MAX_IMAGE_TOKENS,
    ) -> GmeEncoder:
        """Wrap an already loaded `Qwen2VLForConditionalGeneration` (on its device and dtype)
        and its tokenizer: for benchmarks and tests with random weights."""
        _check_budget(min_image_tokens, max_image_tokens)
        encoder = cls.__new__(cls)
        encoder._setup(model.eval(), tokenizer, model_id, min_image_tokens, max_image_tokens)
        return encoder

    def _setup(
        self, model: Any, tokenizer: Any, model_id: str, min_tokens: int, max_tokens: int
    ) -> None:
        config = model.config
        text_config = getattr(config, "text_config", None) or config
        vision_config = config.vision_config
        geometry = (
            getattr(vision_config, "patch_size", None),
            getattr(vision_config, "spatial_merge_size", None),
            getattr(vision_config, "temporal_patch_size", None),
        )
        if geometry != (PATCH_SIZE, MERGE_SIZE, TEMPORAL_PATCH_SIZE):
            raise ModelError(
                f"Unsupported vision geometry (patch, merge, temporal) = {geometry}; GME uses "
                f"({PATCH_SIZE}, {MERGE_SIZE}, {TEMPORAL_PATCH_SIZE})."
            )
        inner = model.model
        self._model = model
        self._visual = getattr(inner, "visual", None) or model.visual
        self._lm = getattr(inner, "language_model", None) or inner
        self._tokenizer = tokenizer
        self._image_token_id = int(config.image_token_id)
        _check_special_tokens(tokenizer, config)
        pad = getattr(tokenizer, "pad_token_id", None)
        self._pad_id = int(
            pad if pad is not None else (getattr(text_config, "pad_token_id", 0) or 0)
        )
        self._templates: dict[str, tuple[list[int], list[int]]] = {}
        self._prefixes: dict[tuple[int, ...], list[tuple[Any, Any]] | None] = {}
        self._cache_kw = _cache_keyword(self._lm)
        self._batch_token_limit: int | None = None
        self.model_id = model_id
        self.dim = int(text_config.hidden_size)
        param = next(model.parameters())
        self.device = param.device
        self.dtype = param.dtype
        self.min_image_tokens = min_tokens
        self.max_image_tokens = max_tokens
        self.precision = INT8 if _is_quantized(model) else _dtype_name(self.dtype)

    def image_model_id_for(self, min_tokens: int, max_tokens: int) -> str:
        """Identity of image vectors made at another budget (a coarse first pass)."""
        return f"{self.model_id}|image-tokens={min_tokens}-{max_tokens}"

    # -- prompts

    @property
    def image_model_id(self) -> str:
        """Identity of image vectors: the weights plus the image token budget."""
        return self.image_model_id_for(self.min_image_tokens, self.max_image_tokens)

    def _tokenize(self, text: str) -> list[int]:
        return list(self._tokenizer(text, add_special_tokens=False)["input_ids"])

    def prompt_ids(self, text: str, instruction: str) -> list[int]:
        """Token ids of the full prompt for a text."""
        return self._tokenize(_PROMPT.format(instruction=instruction, content=text))

    def _image_prompt_ids(self, n_tokens: int, instruction: str) -> list[int]:
        template = self._templates.get(instruction)
        if template is None:
            ids = self._tokenize(_PROMPT.format(instruction=instruction, content=_IMAGE_CONTENT))
            where = [i for i, t in enumerate(ids) if t == self._image_token_id]
            if len(where) != 1:
                raise ModelError(
                    f"The tokenizer does not map {_IMAGE_PAD} to the config's image token id "
                    f"{self._image_token_id}; the checkpoint is inconsistent."
                )
            template = (ids[: where[0]], ids[where[0] + 1 :])
            self._templates[instruction] = template
        before, after = template
        return [*before, *([self._image_token_id] * n_tokens), *after]

    # -- public embedding API

    def embed_texts(
        self, texts: Sequence[str], instruction: str = QUERY_INSTRUCTION, batch_size: int = 32
    ) -> np.ndarray:
        """float32 [len(texts), dim], L2-normalised; texts are queries by default."""
        items = [_Item(self.prompt_ids(t, instruction)) for t in texts]
        return self._embed_grouped(items, batch_size, key=lambda it: len(it.ids))

    def embed_prepared(
        self, images: Sequence[PreparedImage], instruction: str = DOCUMENT_INSTRUCTION
    ) -> np.ndarray:
        """float32 [len(images), dim] for prepared images, in one forward where memory allows.

        On out-of-memory the batch is halved and each half retried (recursively); a single
        image that still does not fit moves the model to the CPU (logged) and goes on there.
        Results stay in input order; no image is lost or embedded twice.
        """
        items = [_Item(self._image_prompt_ids(im.n_tokens, instruction), im) for im in images]
        return self._embed_items(items)

    def embed_images(
        self,
        images: Sequence[Image.Image],
        batch_size: int = 4,
        instruction: str = DOCUMENT_INSTRUCTION,
    ) -> np.ndarray:
        """Prepare (resize to the token budget), batch by similar size and embed; input order."""
        prepared = [
            prepare_image(im, min_tokens=self.min_image_tokens, max_tokens=self.max_image_tokens)
            for im in images
        ]
        items = [_Item(self._image_prompt_ids(p.n_tokens, instruction), p) for p in prepared]
        return self._embed_grouped(items, batch_size, key=lambda it: len(it.ids))

    # -- batching

    def _embed_grouped(
        self, items: list[_Item], batch_size: int, key: Callable[[_Item], int]
    ) -> np.ndarray:
        """Embed in batches of similar length (less padding); results in input order."""
        out = np.zeros((len(items), self.dim), dtype=np.float32)
        order = sorted(range(len(items)), key=lambda i: key(items[i]))
        step = max(1, int(batch_size))
        for start in range(0, len(order), step):
            chunk = order[start : start + step]
            out[chunk] = self._embed_items([items[i] for i in chunk])
        return out

    def _embed_items(self, items: list[_Item]) -> np.ndarray:
        if not items:
            return np.zeros((0, self.dim), dtype=np.float32)
        # After an out-of-memory, split up front into batches that are known to fit.
        parts: list[list[_Item]] = []
        for item in items:
            if parts and self._fits([*parts[-1], item]):
                parts[-1].append(item)
            else:
                parts.append([item])
        return np.concatenate([self._run_with_backoff(part) for part in parts])

    def _fits(self, batch: list[_Item]) -> bool:
        limit = self._batch_token_limit
        return limit is None or _padded_tokens(batch) <= limit

    def _run_with_backoff(self, batch: list[_Item]) -> np.ndarray:
        try:
            return self._forward(batch)
        except Exception as exc:
            if not _is_oom(exc):
                raise
            self._release_memory()
            if len(batch) > 1:
                tokens = _padded_tokens(batch)
                limit = max(1, tokens // 2)
                if self._batch_token_limit is None or limit < self._batch_token_limit:
                    self._batch_token_limit = limit
                half = len(batch) // 2
                log.info(
                    "Out of memory on %s with %d items (%d tokens); retrying in halves",
                    self.device,
                    len(batch),
                    tokens,
                )
                return np.concatenate(
                    [self._run_with_backoff(batch[:half]), self._run_with_backoff(batch[half:])]
                )
            if self.device.type == "cpu":
                raise ModelError(
                    f"Out of memory embedding one item of {_padded_tokens(batch)} tokens on the "
                    "CPU; lower the image token budget or close other programs.",
                    setting="max_image_tokens",
                ) from exc
            self._fall_back_to_cpu(exc)
            return self._run_with_backoff(batch)

    def _fall_back_to_cpu(self, exc: BaseException) -> None:
        import torch

        cpu = torch.device("cpu")
        dtype = select_dtype("auto", cpu)
        log.warning(
            "Out of memory on %s even for a single item (%s); moving the model to the CPU "
            "(%s) and continuing there, much slower. Lower the image token budget to stay on %s.",
            self.device,
            str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
            _dtype_name(dtype),
            self.device.type,
        )
        self._model.to(device=cpu, dtype=dtype)
        self._release_memory()
        self.device = cpu
        self.dtype = dtype
        self.precision = _dtype_name(dtype)
        self._batch_token_limit = None
        self._prefixes.clear()

    def _release_memory(self) -> None:
        import gc

        import torch

        gc.collect()
        if self.device.type == "cuda" and torch.cuda.is_available():
            torch.cuda.empty_cache()
        elif self.device.type == "mps":
            mps = getattr(torch, "mps", None)
            if mps is not None and hasattr(mps, "empty_cache"):
                mps.empty_cache()

    # -- the forward pass

    def _prefix_states(self, prefix: tuple[int, ...]) -> list[tuple[Any, Any]] | None:
        """Every layer's keys and values of a prompt prefix ([1, kv heads, n, head dim]),
        computed once and kept; None where this transformers version's cache cannot be
        read back (the prefix is then computed with each batch, as before)."""
        if prefix in self._prefixes:
            return self._prefixes[prefix]
        import torch

        states = None
        if self._cache_kw is not None:
            try:
                from transformers import DynamicCache

                ids = torch.tensor([prefix], dtype=torch.long, device=self.device)
                positions = torch.arange(len(prefix), device=self.device).view(1, 1, -1)
                cache = DynamicCache()
                with torch.inference_mode():
                    self._lm(
                        inputs_embeds=self._lm.embed_tokens(ids),
                        position_ids=positions.expand(3, 1, -1),
                        use_cache=True,
                        **{self._cache_kw: cache},
                    )
                states = _cache_states(cache)
            except Exception as exc:
                if _is_oom(exc):
                    raise
                log.debug("Prompt prefix not cached: %s", exc)
                states = None
        self._prefixes[prefix] = states
        return states

    def _forward(self, batch: Sequence[_Item]) -> np.ndarray:
        """One forward over a batch: float32 [len(batch), dim], L2-normalised.

        Photos' prompts all start with the same tokens (system prompt, instruction, up to
        the image): attention is causal, so those tokens' keys and values in every layer
        never depend on the photo. They are computed once (`_prefix_states`) and each
        batch runs only from the image on, with the prefix as a cache: the same vectors,
        about 15 fewer tokens per photo through the language model (a fifth of it at a
        first pass's 64 image tokens). Only for prompts up to `PREFIX_CACHE_MAX_TOKENS`."""
        import torch

        device = self.device
        lengths = [len(item.ids) for item in batch]
        width = max(lengths)
        skip, states = 0, None
        before = self._shared_image_prefix(batch) if width <= PREFIX_CACHE_MAX_TOKENS else None
        if before:
            states = self._prefix_states(before)
            skip = len(before) if states is not None else 0
        ids = torch.full((len(batch), width - skip), self._pad_id, dtype=torch.long)
        for row, item in enumerate(batch):  # right padding
            ids[row, : len(item.ids) - skip] = torch.as_tensor(item.ids[skip:], dtype=torch.long)
        ids = ids.to(device)
        images = [item.image for item in batch if item.image is not None]
        with torch.inference_mode():
            embeds = self._lm.embed_tokens(ids)
            if images:
                pixels = torch.from_numpy(np.concatenate([im.pixel_values for im in images]))
                grid = torch.tensor([im.grid_thw for im in images], dtype=torch.long)
                out = self._visual(
                    pixels.to(device=device, dtype=self._visual.dtype), grid_thw=grid.to(device)
                )
                features = getattr(out, "pooler_output", out)
                mask = ids == self._image_token_id
                if int(mask.sum()) != features.shape[0]:
                    raise RuntimeError(
                        f"{int(mask.sum())} image tokens but {features.shape[0]} image features"
                    )
                embeds[mask] = features.to(embeds.dtype)
            # Plain sequential positions, the same in all three M-RoPE sections.
            positions = torch.arange(skip, width, device=device).view(1, 1, width - skip)
            positions = positions.expand(3, len(batch), width - skip)
            extra: dict[str, Any] = {"use_cache": False}
            if states is not None:
                from transformers import DynamicCache

                cache = DynamicCache()
                for layer, (keys, values) in enumerate(states):
                    n = len(batch)
                    cache.update(
                        keys.expand(n, *keys.shape[1:]), values.expand(n, *values.shape[1:]), layer
                    )
                extra = {"use_cache": True, self._cache_kw: cache}
            hidden = self._lm(inputs_embeds=embeds, position_ids=positions, **extra)
            hidden = hidden.last_hidden_state
            last = torch.as_tensor(lengths, device=device) - 1 - skip
            pooled = hidden[torch.arange(len(batch), device=device), last].float()
            pooled = torch.nn.functional.normalize(pooled, p=2, dim=-1)
        return pooled.cpu().numpy()

    def _shared_image_prefix(self, batch: Sequence[_Item]) -> tuple[int, ...] | None:
        """The prompt tokens before the image, where every item of the batch is a photo
        whose prompt starts with the same ones (a template's own prefix)."""
        first = batch[0].ids
        for before, _ in self._templates.values():
            n = len(before)
            if n and all(
                item.image is not None and len(item.ids) > n and item.ids[:n] == before
                for item in batch
            ):
                return tuple(first[:n])
        return None


PREFIX_CACHE_MAX_TOKENS = 512
"""Longest prompt that runs with the cached prefix. Beyond it the prefix is a sliver of
the sequence, and attention over a cache takes an explicit mask instead of the plain
causal kernel: at the published budget's ~1,250 tokens that measured slower on a CPU."""


def _cache_keyword(lm: Any) -> str | None:
    """The name the language model's forward takes a key-value cache by."""
    import inspect

    try:
        params = inspect.signature(lm.forward).parameters
    except (TypeError, ValueError):
        return None
    for name in ("cache", "past_key_values"):
        if name in params:
            return name
    return None


def _cache_states(cache: Any) -> list[tuple[Any, Any]] | None:
    """[(keys, values)] per layer of a filled `DynamicCache`, across transformers versions."""
    layers = getattr(cache, "layers", None)
    if layers:
        states = [(layer.keys, layer.values) for layer in layers]
    elif getattr(cache, "key_cache", None):
        states = list(zip(cache.key_cache, cache.value_cache, strict=True))
    else:
        return None
    if any(k is None or v is None for k, v in states):
        return None
    return states


def _padded_tokens(batch: Sequence[_Item]) -> int:
    """Cost proxy of a batch: rows x padded length, plus the vision patches."""
    width = max(len(item.ids) for item in batch)
    patches = sum(item.image.pixel_values.shape[0] for item in batch if item.image is not None)
    return len(batch) * width + patches


def _dtype_name(dtype: Any) -> str:
    return str(dtype).removeprefix("torch.")


def _check_special_tokens(tokenizer: Any, config: Any) -> None:
    """The tokenizer's vision tokens must be the ids the config (and the model) use."""
    expected = {
        _IMAGE_PAD: getattr(config, "image_token_id", None),
        _VISION_START: getattr(config, "vision_start_token_id", None),
        _VISION_END: getattr(config, "vision_end_token_id", None),
    }
    for token, config_id in expected.items():
        token_id = tokenizer.convert_tokens_to_ids(token)
        if config_id is None or token_id is None or int(token_id) != int(config_id):
            raise ModelError(
                f"The checkpoint's tokenizer maps {token} to {token_id} but its config says "
                f"{config_id}; the tokenizer does not belong to this model."
            )


def _load(folder: Path, dtype: torch.dtype) -> tuple[Any, Any]:
    """Load the model (native transformers Qwen2-VL, safetensors only) and tokenizer."""
    import transformers
    from transformers import AutoTokenizer, Qwen2VLForConditionalGeneration

    major_minor = tuple(int(x) for x in re.findall(r"\d+", transformers.__version__)[:2])
    dtype_kw = "dtype" if major_minor >= (4, 56) else "torch_dtype"
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), trust_remote_code=False)
    except Exception as exc:
        raise ModelError(
            f"Cannot load the tokenizer from {folder}: {exc}. The folder must hold the "
            "checkpoint's tokenizer files (tokenizer.json or vocab.json + merges.txt)."
        ) from None
    hf_logging = transformers.utils.logging
    bar_was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # loading takes seconds; our caller reports it
    try:
        model = Qwen2VLForConditionalGeneration.from_pretrained(
            str(folder),
            use_safetensors=True,
            trust_remote_code=False,
            attn_implementation="sdpa",
            **{dtype_kw: dtype},
        )
    except Exception as exc:
        if _is_oom(exc):
            raise ModelError(
                f"Not enough memory to load the model from {folder} in {_dtype_name(dtype)}."
            ) from None
        raise ModelError(
            f"Cannot load the GME model from {folder}: {exc}. Download it again or choose "
            "another model.",
            setting="model",
        ) from None
    finally:
        if bar_was_on:
            hf_logging.enable_progress_bar()
    model.eval()
    model.requires_grad_(False)
    return model, tokenizer


__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_REVISION",
    "DOCUMENT_INSTRUCTION",
    "QUERY_INSTRUCTION",
    "GmeEncoder",
    "PreparedImage",
    "auto_image_budget",
    "folder_model_id",
    "prepare_image",
    "prepare_resized",
    "quantize_int8",
    "resolve_image_budget",
    "select_device",
    "select_dtype",
    "select_precision",
    "target_size",
]
