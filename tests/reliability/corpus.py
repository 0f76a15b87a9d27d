"""A folder of hostile and awkward input, made on the spot, with what indexing must
make of each entry.

`build_corpus(root)` writes the files and returns `Entry`s: each says what the entry
is (its kind) and what must come of it:
- "ok": a photo, read and tagged;
- "damaged:<words>": a photo row with status damaged and those words in its reason;
- "problem:<words>": no photo row, reported by the scan (index --json scan.problems);
- "ignored": not considered at all (hidden, or not a photo file name).
"""

from __future__ import annotations

import os
import random
import socket
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from albumtagger.library import images
from tests.unit.test_images import encode, gradient, raw_png, two_halves, with_orientation


@dataclass(frozen=True)
class Entry:
    kind: str
    path: str
    """Relative to the root, POSIX style (as the library stores it)."""
    expect: str


def _noise(seed: int, size: tuple[int, int] = (64, 48)) -> Image.Image:
    rng = random.Random(seed)
    return Image.frombytes(
        "RGB", size, bytes(rng.randrange(256) for _ in range(size[0] * size[1] * 3))
    )


def _jpeg(seed: int, size: tuple[int, int] = (64, 48), **params: object) -> bytes:
    return encode(_noise(seed, size), "JPEG", quality=85, **params)


def _png_chunk(kind: bytes, payload: bytes, crc: int | None = None) -> bytes:
    crc = zlib.crc32(kind + payload) if crc is None else crc
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def _jpeg_with_size(width: int, height: int) -> bytes:
    """A small JPEG whose frame header claims width x height."""
    data = bytearray(_jpeg(901))
    i = 2
    while i < len(data):
        marker = data[i + 1]
        length = struct.unpack(">H", data[i + 2 : i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            data[i + 5 : i + 9] = struct.pack(">HH", height, width)
            return bytes(data)
        i += 2 + length
    raise AssertionError("no SOF marker")


def _broken_exif_jpeg() -> bytes:
    data = _jpeg(902)
    app1 = b"Exif\x00\x00" + b"MM\x00\x2a\x00\x00\x00\x08" + b"\xff\xff" + os.urandom(40)
    segment = b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1
    return data[:2] + segment + data[2:]


def _gif_bomb() -> bytes:
    # A GIF whose logical screen and only frame say 65535 x 65535.
    header = b"GIF89a" + struct.pack("<HH", 65535, 65535) + b"\x80\x00\x00" + bytes(6)
    frame = b"\x2c" + struct.pack("<HHHH", 0, 0, 65535, 65535) + b"\x00" + b"\x02\x02\x44\x01\x00"
    return header + frame + b"\x3b"


_XMP_BOMB = (
    b'<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">'
    + b"".join(
        f'<!ENTITY lol{i} "{("&lol%s;" % ("" if i == 1 else i - 1)) * 10}">'.encode()
        for i in range(1, 10)
    )
    + b']>\n<x:xmpmeta xmlns:x="adobe:ns:meta/">&lol9;</x:xmpmeta>\n'
)


def build_corpus(root: Path, *, outside: Path) -> list[Entry]:
    """Write the corpus under `root` (and a target photo under `outside`)."""
    root.mkdir(parents=True, exist_ok=True)
    entries: list[Entry] = []
    seed = [1000]

    def put(kind: str, rel: str, data: bytes, expect: str) -> None:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        entries.append(Entry(kind, rel, expect))

    def photo(kind: str, rel: str, expect: str = "ok", **params: object) -> None:
        seed[0] += 1
        put(kind, rel, _jpeg(seed[0], **params), expect)

    good_jpeg = _jpeg(1)
    good_png = encode(_noise(2), "PNG")
    # --- damaged and not images ----------------------------------------------------
    put("zero bytes", "empty.jpg", b"", "damaged:file is empty")
    put("truncated JPEG", "truncated.jpg", good_jpeg[: len(good_jpeg) // 2], "damaged:truncated")
    put("truncated PNG", "truncated.png", good_png[: len(good_png) // 2], "damaged:truncated")
    if images.WEBP_SUPPORTED:
        webp = encode(_noise(3), "WEBP", quality=80)
        put("truncated WebP", "truncated.webp", webp[: len(webp) // 2], "damaged:truncated")
    gif = encode(_noise(4).convert("P"), "GIF")
    put("truncated GIF", "truncated.gif", gif[: len(gif) // 2], "damaged:")
    tiff = encode(_noise(5), "TIFF")
    put("truncated TIFF", "truncated.tif", tiff[: len(tiff) // 3], "damaged:")
    heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64)
    if images.HEIF_SUPPORTED:
        put("truncated HEIC", "truncated.heic", heic, "damaged:")
    else:
        put("HEIC without its plugin", "phone.heic", heic, "ignored")
        put("HEIC data named .jpg", "heic-inside.jpg", heic, "damaged:pillow-heif")
    rng = random.Random(6)
    put(
        "random bytes .jpg",
        "noise.jpg",
        bytes(rng.randrange(256) for _ in range(3000)),
        "damaged:not a supported image format",
    )
    put(
        "random bytes .png",
        "noise.png",
        bytes(rng.randrange(256) for _ in range(3000)),
        "damaged:not a supported image format",
    )
    put(
        "PDF named .jpg",
        "document.jpg",
        b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n" + bytes(300),
        "damaged:PDF",
    )
    put(
        "HTML named .png",
        "page.png",
        b"<!DOCTYPE html><html><body>404</body></html>\n",
        "damaged:HTML",
    )
    put("JPEG XL named .jpg", "new-format.jpg", b"\xff\x0a" + bytes(200), "damaged:JPEG XL")
    put(
        "PNG with a bad CRC",
        "bad-crc.png",
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 8, 8, 2, 0, 0, 0), crc=0),
        "damaged:",
    )
    put("PNG of 0 x 0 pixels", "zero-size.png", raw_png(0, 0, 2, 8, b""), "damaged:")
    # --- too large ---------------------------------------------------------------
    put(
        "decompression bomb PNG (100k x 100k)",
        "bomb.png",
        raw_png(100_000, 100_000, 2, 8, b"\x00" * 64),
        "damaged:too large to open safely",
    )
    put("decompression bomb GIF (65535 x 65535)", "bomb.gif", _gif_bomb(), "damaged:too large")
    put(
        "huge dimensions in a JPEG header",
        "huge-header.jpg",
        _jpeg_with_size(65000, 65000),
        "damaged:too large to open safely",
    )
    put("very wide panorama (16000 x 4)", "panorama.png", encode(gradient(16000, 4), "PNG"), "ok")
    put("one pixel", "one-pixel.png", encode(Image.new("RGB", (1, 1), (9, 99, 199)), "PNG"), "ok")
    # --- unusual but valid ---------------------------------------------------------
    put("CMYK JPEG", "cmyk.jpg", encode(_noise(7).convert("CMYK"), "JPEG"), "ok")
    put("CMYK TIFF", "cmyk.tif", encode(_noise(8).convert("CMYK"), "TIFF"), "ok")
    grey16 = Image.fromarray(np.arange(64 * 48, dtype=np.uint16).reshape(48, 64) * 20)
    put("16-bit greyscale PNG", "grey16.png", encode(grey16, "PNG"), "ok")
    rows16 = b"".join(b"\x00" + bytes(rng.randrange(256) for _ in range(6 * 16)) for _ in range(12))
    put("16-bit colour PNG", "rgb16.png", raw_png(16, 12, 2, 16, rows16), "ok")
    palette = _noise(9).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    put(
        "palette PNG with transparency",
        "palette-alpha.png",
        encode(palette, "PNG", transparency=0),
        "ok",
    )
    put("GIF with transparency", "alpha.gif", encode(palette, "GIF", transparency=0), "ok")
    put("RGBA PNG", "rgba.png", encode(_noise(10).convert("RGBA"), "PNG"), "ok")
    put("LAB TIFF", "lab.tif", encode(_noise(11).convert("LAB"), "TIFF"), "ok")
    put("BMP", "old.bmp", encode(_noise(12), "BMP"), "ok")
    put("JPEG data named .png", "misnamed.png", _jpeg(13), "ok")
    put("upper-case suffix", "SHOUTING.JPG", _jpeg(14), "ok")
    for orientation in range(1, 9):
        source = two_halves((40 + orientation, 20))
        put(
            f"EXIF orientation {orientation}",
            f"orientation/o{orientation}.jpg",
            encode(source, "JPEG", exif=with_orientation(source, orientation)),
            "ok",
        )
    source = two_halves((41, 21))
    put(
        "EXIF orientation out of range (9)",
        "orientation/o9.jpg",
        encode(source, "JPEG", exif=with_orientation(source, 9)),
        "ok",
    )
    put("broken EXIF block", "broken-exif.jpg", _broken_exif_jpeg(), "ok")
    frames = [Image.new("RGB", (24, 24), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    put(
        "animated GIF",
        "animated.gif",
        encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50),
        "ok",
    )
    if images.WEBP_SUPPORTED:
        put(
            "animated WebP",
            "animated.webp",
            encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=50),
            "ok",
        )
    put(
        "animated PNG",
        "animated.png",
        encode(frames[0], "PNG", save_all=True, append_images=frames[1:], duration=50),
        "ok",
    )
    put(
        "multi-page TIFF",
        "pages.tif",
        encode(_noise(15), "TIFF", save_all=True, append_images=[_noise(16), _noise(17)]),
        "ok",
    )
    put(
        "MPO (two pictures)",
        "stereo.jpg",
        encode(_noise(18), "MPO", save_all=True, append_images=[_noise(19)]),
        "ok",
    )
    # --- names -----------------------------------------------------------------------
    photo("name with a newline", "new\nline.jpg")
    photo("name with quotes", 'it\'s "quoted".jpg')
    photo("name with emoji", "party 🎉😀.jpg")
    photo("right-to-left name (Arabic, RLO mark)", "صورة \u202egpj.jpg")
    photo("name with an SQL fragment", "x'); DROP TABLE photos;--.jpg")
    photo("name with markup", "<b>bold</b> &amp; <i>.jpg")
    photo("name with a terminal escape", "\x1b[31mred\x1b[0m.jpg")
    photo("name with a backslash and a tab", "back\\slash\tand tab.jpg")
    photo("name starting with a dash", "-rf.jpg")
    photo("very long name (251 bytes, its .xmp name 255)", "L" * 247 + ".jpg")
    photo("deep nesting (40 folders)", "/".join(f"d{i}" for i in range(40)) + "/deep.jpg")
    photo("folder named like a photo", "album.jpg/inside.jpg")
    photo("hidden file", ".hidden.jpg", expect="ignored")
    photo("photo in a hidden folder", ".trash/thrown.jpg", expect="ignored")
    put("not a photo name", "notes.txt", b"shopping list\n", "ignored")
    bad = os.fsencode(root) + b"/caf\xe9-latin1.jpg"
    with open(bad, "wb") as f:
        f.write(_jpeg(20))
    entries.append(
        Entry("name that is not UTF-8", "caf\\xe9-latin1.jpg", "problem:not valid UTF-8")
    )
    # --- XMP sidecars ---------------------------------------------------------------
    photo("XMP sidecar that is not XML", "with-bad-xmp.jpg")
    (root / "with-bad-xmp.jpg.xmp").write_bytes(os.urandom(300))
    photo("XMP sidecar with an entity-expansion bomb", "with-xmp-bomb.jpg")
    (root / "with-xmp-bomb.jpg.xmp").write_bytes(_XMP_BOMB)
    photo("XMP sidecar that is a FIFO", "with-fifo-xmp.jpg")
    os.mkfifo(root / "with-fifo-xmp.jpg.xmp")
    photo("XMP sidecar linked to /dev/zero", "with-zero-xmp.jpg")
    os.symlink("/dev/zero", root / "with-zero-xmp.jpg.xmp")
    # --- links, permissions, special files ---------------------------------------------
    outside.mkdir(parents=True, exist_ok=True)
    (outside / "elsewhere.jpg").write_bytes(_jpeg(21))
    os.symlink(outside / "elsewhere.jpg", root / "link-out.jpg")
    entries.append(
        Entry("symbolic link to a photo outside", "link-out.jpg", "problem:outside the folder")
    )
    photo("photo a symbolic link points to", "linked/target.jpg")
    os.symlink("linked/target.jpg", root / "link-to-photo.jpg")
    entries.append(Entry("symbolic link to a photo inside", "link-to-photo.jpg", "ok"))
    os.symlink(root, root / "loop")
    entries.append(Entry("symbolic link loop (folder)", "loop", "problem:symbolic link loop"))
    os.symlink(root / "self.jpg", root / "self.jpg")
    entries.append(Entry("symbolic link to itself", "self.jpg", "problem:symbolic link"))
    os.symlink(root / "nowhere.jpg", root / "dangling.jpg")
    entries.append(Entry("dangling symbolic link", "dangling.jpg", "problem:broken symbolic link"))
    photo("unreadable file (mode 000)", "locked.jpg", expect="damaged:Permission denied")
    os.chmod(root / "locked.jpg", 0)
    (root / "private").mkdir()
    (root / "private" / "secret.jpg").write_bytes(_jpeg(22))
    os.chmod(root / "private", 0)
    entries.append(Entry("unreadable folder (mode 000)", "private", "problem:Permission denied"))
    os.mkfifo(root / "pipe.jpg")
    entries.append(Entry("FIFO named .jpg", "pipe.jpg", "problem:not a file"))
    for device, name in (("/dev/zero", "zeros.jpg"), ("/dev/urandom", "urandom.png")):
        os.symlink(device, root / name)
        entries.append(Entry(f"link to {device} named like a photo", name, "problem:system folder"))
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(root / "socket.jpg"))
        entries.append(Entry("Unix socket named .jpg", "socket.jpg", "problem:not a file"))
    except OSError:
        pass  # paths too long for a socket address
    finally:
        sock.close()
    return entries


def restore_permissions(root: Path) -> None:
    for rel in ("locked.jpg", "private"):
        path = root / rel
        if path.exists():
            os.chmod(path, 0o755)


def kinds(entries: list[Entry]) -> list[str]:
    """The kinds of input, each once (orientations count as one kind)."""
    seen: dict[str, None] = {}
    for e in entries:
        seen.setdefault(
            "EXIF orientation"
            if e.kind.startswith("EXIF orientation") and "range" not in e.kind
            else e.kind,
            None,
        )
    return list(seen)
