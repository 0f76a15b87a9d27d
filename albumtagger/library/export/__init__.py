"""Export formats: the library's tags written where other programs read them.

A format is one module here with a class that follows `Exporter` (its own options are
the class's fields), named in `FORMATS`; `exporter(name, **options)` makes one.
"""

from __future__ import annotations

from collections.abc import Callable

from albumtagger.errors import UsageError
from albumtagger.library.export.base import Exporter, ExportError, ExportReport
from albumtagger.library.export.xmp_sidecars import XmpSidecars

__all__ = ["FORMATS", "ExportError", "ExportReport", "Exporter", "exporter"]

FORMATS: dict[str, Callable[..., Exporter]] = {
    "xmp": XmpSidecars,
}
"""Export formats by name."""


def exporter(name: str, /, **options: object) -> Exporter:
    """The exporter of format `name`, made with its own `options` (XMP: `style`)."""
    try:
        make = FORMATS[name]
    except KeyError:
        known = ", ".join(sorted(FORMATS))
        raise UsageError(f"There is no export format {name!r}; use one of {known}.") from None
    return make(**options)
