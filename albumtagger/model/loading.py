"""Loading the GME model the settings ask for, and how many photos it takes at once.

`check_model` fails fast (before torch is imported) on a budget that cannot be or a
model that cannot be had; `check_model_folder` says what is wrong with a folder chosen as
the model; `load_encoder` builds the encoder; `default_batch_size` is the
automatic batch size per device.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from albumtagger.config import Settings
from albumtagger.errors import ModelError, UserError

if TYPE_CHECKING:
    from albumtagger.model.encoder import GmeEncoder


def check_model(settings: Settings) -> None:
    """Fail fast, before torch is imported (or a model process started), when the
    settings ask for a budget that cannot be or a model that cannot be had."""
    from albumtagger.config import DEFAULT_MODEL
    from albumtagger.model.files import locate_model

    m = settings.model
    low, high = m.min_image_tokens, m.max_image_tokens
    if 0 < low < 4 or 0 < high < 4 or (low and high and high < low):
        raise UserError(
            "The image token budget needs 4 <= minimum image tokens <= maximum image tokens "
            "(0 for either: automatic).",
            setting="min_image_tokens",
        )
    locate_model(m.model or DEFAULT_MODEL, m.revision or None)


def check_model_folder(folder: Path) -> None:
    """Refuse a folder chosen as the model that is no GME checkpoint (needs no torch):
    the `ModelError` says what is missing, what the folder holds instead, and what to
    choose."""
    from albumtagger.model.files import locate_model

    try:
        locate_model(os.path.abspath(folder))
    except ModelError as exc:
        folder = Path(folder)
        if not folder.is_dir():
            raise
        inside = _checkpoint_inside(folder)
        if inside is not None:
            advice = f"Its folder \u201c{inside}\u201d has a config.json: choose that one."
        else:
            advice = f"{folder_contents(folder)}: choose the folder you downloaded the model into."
        raise ModelError(f"{exc}\n\n{advice}", setting="model") from None


def _checkpoint_inside(folder: Path) -> str | None:
    """The name of a folder in `folder` that has a config.json (a model one level down)."""
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.is_dir() and os.path.isfile(os.path.join(entry.path, "config.json")):
                    return entry.name
    except OSError:
        pass
    return None


_KINDS = {".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF", ".heic": "HEIC"}
_MAX_ENTRIES = 10_000


def folder_contents(folder: Path) -> str:
    """What a folder holds, in a few words ("It holds 12 JPEG files and 2 folders")."""
    kinds: Counter[str] = Counter()
    try:
        with os.scandir(folder) as entries:
            for i, entry in enumerate(entries):
                if i >= _MAX_ENTRIES:
                    break
                if entry.is_dir():
                    kinds["folder"] += 1
                else:
                    suffix = os.path.splitext(entry.name)[1].lower()
                    kind = _KINDS.get(suffix) or (suffix[1:].upper() if suffix else "other")
                    kinds[f"{kind} file"] += 1
    except OSError as exc:
        return f"It cannot be read ({exc.strerror or exc})"
    if not kinds:
        return "It is empty"
    parts = [f"{n} {kind}{'' if n == 1 else 's'}" for kind, n in kinds.most_common(3)]
    if len(kinds) > 3:
        rest = sum(kinds.values()) - sum(n for _, n in kinds.most_common(3))
        parts.append(f"{rest} other{'' if rest == 1 else 's'}")
    text = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return f"It holds {text}"


def load_encoder(settings: Settings) -> GmeEncoder:
    """The GME encoder the settings ask for (imports torch, so only when needed)."""
    from albumtagger.config import DEFAULT_MODEL
    from albumtagger.model.encoder import GmeEncoder

    check_model(settings)
    m = settings.model
    return GmeEncoder(
        m.model or DEFAULT_MODEL,
        revision=m.revision or None,
        device=m.device,
        dtype=m.dtype,
        min_image_tokens=m.min_image_tokens,
        max_image_tokens=m.max_image_tokens,
    )


def default_batch_size(encoder: GmeEncoder, requested: int, max_tokens: int | None = None) -> int:
    """Photos per forward: the setting, else 16 on a CUDA GPU (the out-of-memory back-off
    halves it where that does not fit), 4 on mps; on a CPU about `CPU_BATCH_TOKENS` image
    tokens per forward, 2 to 8 photos (`max_tokens`: the budget the batch runs at, the
    encoder's by default): 2 at the CPU budget and above (compute-bound: bigger batches
    gain nothing and hold more pixels), 4 at a first pass's 64 tokens, where a photo's
    sequence is short enough that more rows keep the matrix kernels fuller (8 measured
    slower again on a 2-core CPU: the activations outgrow the caches)."""
    if requested > 0:
        return requested
    if encoder.device.type == "cpu":
        tokens = max(1, int(max_tokens or encoder.max_image_tokens))
        return max(2, min(8, CPU_BATCH_TOKENS // tokens))
    return {"cuda": 16, "mps": 4}.get(encoder.device.type, 2)


CPU_BATCH_TOKENS = 256
"""Image tokens per forward on a CPU with the automatic batch size."""
