"""Loading the GME model the settings ask for, and how many photos it takes at once.

`check_model` fails fast (before torch is imported) on a budget that cannot be or a
model that cannot be had; `load_encoder` builds the encoder; `default_batch_size` is the
automatic batch size per device.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from albumtagger.config import Settings
from albumtagger.errors import UserError

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
