"""The tag vocabulary: the default list, per-tag prompts, and cached tag vectors.

A tag's vector is the normalised mean of its prompts' vectors. Prompt vectors are
cached in the sidecar per model, instruction and prompt, so editing the vocabulary
re-scores the library from stored photo vectors without running the model on a photo.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from albumtagger import safe_io
from albumtagger.errors import UserError
from albumtagger.library.db.store import Store, TagRow
from albumtagger.library.tag_names import clean_name, default_prompts
from albumtagger.model.encoder import QUERY_INSTRUCTION
from albumtagger.paths import resource

log = logging.getLogger(__name__)


MAX_VOCABULARY_BYTES = 4 * 2**20


class TextEncoder(Protocol):
    """What vocabulary needs of an encoder (model.encoder.GmeEncoder fits)."""

    model_id: str

    def embed_texts(self, texts: Sequence[str], instruction: str = ...) -> np.ndarray: ...


@dataclass(frozen=True)
class TagSpec:
    name: str
    prompts: tuple[str, ...]


def parse_spec(line: str) -> TagSpec:
    """`name` or `name: prompt | prompt`."""
    name, sep, rest = line.partition(":")
    name = clean_name(name)
    prompts = tuple(p.strip() for p in rest.split("|") if p.strip()) if sep else ()
    return TagSpec(name, prompts or default_prompts(name))


def parse_vocabulary(text: str) -> list[TagSpec]:
    """One tag per line; blank lines and lines starting with # are ignored."""
    specs: dict[str, TagSpec] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            spec = parse_spec(line)
            specs.setdefault(spec.name, spec)
    return list(specs.values())


def read_vocabulary_file(path: Path) -> str:
    """The text of a vocabulary file the user gave: a regular file (a pipe or a device
    is refused, not read) of at most `MAX_VOCABULARY_BYTES`, in UTF-8."""
    try:
        return safe_io.read_regular(path, MAX_VOCABULARY_BYTES).decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{path} is not a UTF-8 text file; save it as UTF-8.") from None
    except safe_io.FileTooLargeError:
        raise UserError(
            f"{path} is larger than {MAX_VOCABULARY_BYTES // 2**20} MiB; a vocabulary file "
            "lists tags, one a line."
        ) from None
    except OSError as exc:
        raise UserError(f"Cannot read {path}: {exc.strerror or exc}.") from None


def default_vocabulary() -> list[TagSpec]:
    text = resource("vocabulary.txt").read_text("utf-8")
    return parse_vocabulary(text)


def seed_vocabulary(store: Store) -> bool:
    """Give a new library the default vocabulary (once). True if it did."""
    if store.get_setting("vocabulary_seeded") is not None:
        return False
    with store.transaction():
        store.add_tags((s.name, s.prompts) for s in default_vocabulary())
        store.set_setting("vocabulary_seeded", "default")
    return True


def embed_prompts(
    store: Store, encoder: TextEncoder, tags: Sequence[TagRow], *, batch_size: int = 32
) -> Iterator[tuple[int, int]]:
    """Embed and cache the tags' prompts that have no vector yet, a batch at a time.

    Yields (done, total) after each batch, so a first run on a CPU can show progress;
    each batch is stored at once, so an interrupted run keeps what it did.
    """
    prompts = list(dict.fromkeys(p for tag in tags for p in tag.prompts))
    cached = store.text_vectors(encoder.model_id, QUERY_INSTRUCTION, prompts)
    missing = [p for p in prompts if p not in cached]
    if missing:
        log.info("Embedding %d tag prompts", len(missing))
    for start in range(0, len(missing), batch_size):
        chunk = missing[start : start + batch_size]
        vectors = encoder.embed_texts(chunk, QUERY_INSTRUCTION)
        with store.transaction():
            store.put_text_vectors(
                encoder.model_id, QUERY_INSTRUCTION, zip(chunk, vectors, strict=True)
            )
        yield start + len(chunk), len(missing)


def tag_vectors(
    store: Store, encoder: TextEncoder, tags: Sequence[TagRow], *, batch_size: int = 32
) -> np.ndarray:
    """[len(tags), dim] float32 unit vectors; prompts not yet cached are embedded once."""
    for _ in embed_prompts(store, encoder, tags, batch_size=batch_size):
        pass
    if not tags:
        return np.zeros((0, 0), dtype=np.float32)
    prompts = [p for tag in tags for p in tag.prompts]
    cached = store.text_vectors(encoder.model_id, QUERY_INSTRUCTION, prompts)
    out = np.stack([np.mean([cached[p] for p in tag.prompts], axis=0) for tag in tags])
    out /= np.linalg.norm(out, axis=1, keepdims=True).clip(min=1e-12)
    return out.astype(np.float32)
