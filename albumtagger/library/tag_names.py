"""Tag names as the library stores them, and the text prompts a new name starts with."""

from __future__ import annotations

from albumtagger.errors import UsageError

MAX_TAG_NAME = 80


def clean_name(name: str) -> str:
    """A tag name as stored: trimmed, inner whitespace collapsed, lower case."""
    cleaned = " ".join(name.split()).lower()
    if not cleaned:
        raise UsageError("A tag name cannot be empty.")
    if len(cleaned) > MAX_TAG_NAME:
        raise UsageError(f"Tag names are at most {MAX_TAG_NAME} characters long.")
    return cleaned


def default_prompts(name: str) -> tuple[str, ...]:
    """The name itself, plus "a photo of NAME" for names of one or two words."""
    if len(name.split()) <= 2:
        return (name, f"a photo of {name}")
    return (name,)
