"""Which photo of a group of near duplicates to keep: the sharpest (the variance of the
Laplacian of a small grey copy: blur and shake lower it) or the largest (pixels, then
bytes). Reads the files: call it off the GUI thread."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

SHARPNESS_PIXELS = 512
"""Longest side of the grey copy that sharpness is measured on (so that photos of
different sizes compare)."""
RULES = ("sharpest", "largest")


@dataclass(frozen=True)
class KeepFacts:
    """What choosing among near duplicates looks at, for one photo."""

    photo_id: int
    pixels: int
    size: int
    """Bytes."""
    sharpness: float
    """Variance of the Laplacian (-1 when the file could not be read)."""


def sharpness(path: Path) -> float:
    """The variance of the Laplacian of the photo's grey copy at most `SHARPNESS_PIXELS`
    a side, or -1.0 when it cannot be read."""
    try:
        with Image.open(path) as image:
            image.draft("L", (SHARPNESS_PIXELS, SHARPNESS_PIXELS))
            grey = image.convert("L")
        grey.thumbnail((SHARPNESS_PIXELS, SHARPNESS_PIXELS))
    except (OSError, ValueError, Image.DecompressionBombError):
        return -1.0
    a = np.asarray(grey, dtype=np.float32)
    if a.shape[0] < 3 or a.shape[1] < 3:
        return 0.0
    lap = a[1:-1, :-2] + a[1:-1, 2:] + a[:-2, 1:-1] + a[2:, 1:-1] - 4 * a[1:-1, 1:-1]
    return float(lap.var())


def pick_keep(facts: Sequence[KeepFacts], rule: str) -> int:
    """The photo to keep by `rule` ("sharpest": sharpness, then pixels and bytes;
    "largest": pixels, then bytes, then sharpness); ties go to the lower id."""
    if rule not in RULES:
        raise ValueError(f"keep rule {rule!r}; use one of {RULES}")

    def key(f: KeepFacts) -> tuple:
        if rule == "sharpest":
            return (f.sharpness, f.pixels, f.size, -f.photo_id)
        return (f.pixels, f.size, f.sharpness, -f.photo_id)

    return max(facts, key=key).photo_id
