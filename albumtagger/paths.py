"""Where albumtagger's bundled resources are, in a source checkout, a wheel or a bundle."""

from __future__ import annotations

import sys
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def resource(name: str) -> Path:
    """Path of a file from `resources/` (the vocabulary, icons, desktop files)."""
    candidates = [
        _PACKAGE / "resources" / name,  # installed wheel: mapped as albumtagger/resources
        _PACKAGE.parent / "resources" / name,  # source checkout or editable install
    ]
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        candidates.insert(0, Path(bundle) / "resources" / name)
    for path in candidates:
        if path.exists():
            return path
    raise FileNotFoundError(f"albumtagger resource {name!r} is missing from this installation")
