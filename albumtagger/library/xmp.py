"""XMP sidecar export: tags as `dc:subject` keywords next to each photo.

Files are named `PHOTO.xmp` beside `PHOTO` (for `beach.jpg`: `beach.jpg.xmp`, the
darktable and digiKam convention) and written atomically. An XMP file that another
program wrote is never overwritten: only files carrying albumtagger's creator tool are.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from xml.sax.saxutils import escape

from albumtagger.errors import LibraryOfflineError
from albumtagger.library.folder import Library

log = logging.getLogger(__name__)

CREATOR = "albumtagger"

_TEMPLATE = """<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:dc="http://purl.org/dc/elements/1.1/"
    xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    xmp:CreatorTool="{creator}">
   <dc:subject>
    <rdf:Bag>
{items}
    </rdf:Bag>
   </dc:subject>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end="w"?>
"""


def xmp_text(keywords: list[str]) -> str:
    items = "\n".join(f"     <rdf:li>{escape(k)}</rdf:li>" for k in keywords)
    return _TEMPLATE.format(creator=CREATOR, items=items)


def _ours(path: Path) -> bool:
    try:
        head = path.read_text("utf-8", errors="replace")[:4096]
    except OSError:
        return False
    return f'xmp:CreatorTool="{CREATOR}"' in head


def export_xmp(library: Library) -> list[str]:
    """Write the accepted and confident suggested tags of every present photo.

    Returns the relative paths of the XMP files written.
    """
    if not library.is_online():
        raise LibraryOfflineError(
            f"The folder {library.root} is offline; connect it and export again."
        )
    store = library.store
    rows = {r.id: r for r in store.photos(statuses=("ok", "pending"))}
    keywords: dict[int, list[str]] = {pid: [] for pid in rows}
    for t in store.photo_tags(list(rows)):
        if t.state == "accepted" or (t.state == "suggested" and not t.fallback):
            keywords[t.photo_id].append(t.name)
    written: list[str] = []
    for pid, names in keywords.items():
        rel = rows[pid].path + ".xmp"
        target = library.root / rel
        if target.exists() and not _ours(target):
            log.warning("Not overwriting %s: another program wrote it", target)
            continue
        tmp = target.with_name(f".{target.name}.albumtagger-tmp")
        try:
            tmp.write_text(xmp_text(sorted(names)), encoding="utf-8")
            os.replace(tmp, target)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            log.warning("Cannot write %s: %s", target, exc)
            continue
        written.append(rel)
    return written
