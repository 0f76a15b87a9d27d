"""The sidecar's schema: the script of each version and the order they run in.

The version is kept in `PRAGMA user_version` as `major * 100 + minor`. `Store` runs the
migrations in order when it opens a sidecar, each in its own transaction, after a
verified backup. A newer minor version only adds (columns, tables, indexes), so this
version of albumtagger opens it as it is; a newer major version is refused.
"""

from __future__ import annotations

import re
import sqlite3

from albumtagger.library.db.sql import CARRIES_SQL, NEEDS_REVIEW_CONDITION, TAKEN_SQL

SCHEMA_MAJOR = 1
SCHEMA_VERSION = 106  # 1.6

_SCHEMA_1_0 = """
CREATE TABLE photos (
    id           INTEGER PRIMARY KEY,
    path         TEXT NOT NULL UNIQUE,
    size         INTEGER NOT NULL,
    mtime_ns     INTEGER NOT NULL,
    content_hash TEXT,
    width        INTEGER,
    height       INTEGER,
    status       TEXT NOT NULL DEFAULT 'pending'
                 CHECK (status IN ('pending', 'ok', 'damaged', 'missing')),
    error        TEXT,
    added_at     REAL NOT NULL,
    updated_at   REAL NOT NULL
);
CREATE INDEX photos_hash ON photos(content_hash);
CREATE INDEX photos_status ON photos(status);

CREATE TABLE embeddings (
    content_hash TEXT NOT NULL,
    model_id     TEXT NOT NULL,
    dtype        TEXT NOT NULL CHECK (dtype IN ('float16', 'float32')),
    dim          INTEGER NOT NULL,
    vector       BLOB NOT NULL,
    PRIMARY KEY (content_hash, model_id)
) WITHOUT ROWID;

CREATE TABLE tags (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE COLLATE NOCASE,
    prompts    TEXT NOT NULL,
    created_at REAL NOT NULL
);

CREATE TABLE tag_embeddings (
    model_id    TEXT NOT NULL,
    instruction TEXT NOT NULL,
    prompt      TEXT NOT NULL,
    dim         INTEGER NOT NULL,
    vector      BLOB NOT NULL,
    PRIMARY KEY (model_id, instruction, prompt)
) WITHOUT ROWID;

CREATE TABLE photo_tags (
    photo_id   INTEGER NOT NULL REFERENCES photos(id) ON DELETE CASCADE,
    tag_id     INTEGER NOT NULL REFERENCES tags(id) ON DELETE CASCADE,
    score      REAL,
    source     TEXT NOT NULL CHECK (source IN ('auto', 'user')),
    state      TEXT NOT NULL CHECK (state IN ('suggested', 'accepted', 'rejected')),
    fallback   INTEGER NOT NULL DEFAULT 0,
    confidence TEXT,
    updated_at REAL NOT NULL,
    PRIMARY KEY (photo_id, tag_id)
) WITHOUT ROWID;
CREATE INDEX photo_tags_by_tag ON photo_tags(tag_id, state, photo_id);

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""

_SCHEMA_1_1 = """
CREATE TABLE feedback (
    id             INTEGER PRIMARY KEY,
    photo_id       INTEGER NOT NULL REFERENCES photos(id) ON DELETE CASCADE,
    tag_id         INTEGER NOT NULL REFERENCES tags(id) ON DELETE CASCADE,
    action         TEXT NOT NULL CHECK (action IN ('accept', 'reject', 'add', 'remove')),
    score          REAL,
    positive       INTEGER NOT NULL,
    was_suggested  INTEGER NOT NULL,
    prev_state     TEXT,
    prev_source    TEXT,
    prev_score     REAL,
    prev_fallback  INTEGER,
    review         INTEGER NOT NULL DEFAULT 0,
    at             REAL NOT NULL,
    undone         INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX feedback_by_tag ON feedback(tag_id, undone);
ALTER TABLE tags ADD COLUMN threshold REAL;
ALTER TABLE tags ADD COLUMN events INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tags ADD COLUMN score_median REAL;
ALTER TABLE tags ADD COLUMN score_scale REAL;
"""

_SCHEMA_1_2 = """
ALTER TABLE feedback ADD COLUMN undo_data TEXT;
"""

_SCHEMA_1_3 = f"""
CREATE INDEX IF NOT EXISTS photo_tags_review ON photo_tags(photo_id) WHERE {NEEDS_REVIEW_CONDITION};
"""

_SCHEMA_1_4 = """
ALTER TABLE tags ADD COLUMN pinned_threshold REAL;
ALTER TABLE photos ADD COLUMN views INTEGER NOT NULL DEFAULT 0;
ALTER TABLE photos ADD COLUMN viewed_at REAL;
"""
# tags.pinned_threshold: a threshold the user set by hand (NULL: learned from answers).
# photos.views / viewed_at: how often and when the user last looked at a photo (the
# most-viewed photos are refined first).

_SCHEMA_1_5 = f"""
ALTER TABLE photos ADD COLUMN taken_at REAL;
CREATE INDEX photos_by_taken ON photos({TAKEN_SQL}, id);
"""
# photos.taken_at: when the photo was taken, from its EXIF (NULL: it does not say; the
# file's modification time stands in, as TAKEN_SQL says).


def _of(row: str, condition: str) -> str:
    """A `photo_tags` condition on a trigger's OLD or NEW row, as 0 or 1."""
    return "(" + re.sub(r"\b(state|fallback|confidence)\b", rf"{row}.\1", condition) + ")"


_CARRIED = {row: _of(row, CARRIES_SQL) for row in ("OLD", "NEW")}
_REVIEW = {row: _of(row, NEEDS_REVIEW_CONDITION) for row in ("OLD", "NEW")}


def _count_change(row: str, sign: str) -> str:
    return (
        f"UPDATE photos SET tags_carried = tags_carried {sign} {_CARRIED[row]}, "
        f"tags_to_review = tags_to_review {sign} {_REVIEW[row]} WHERE id = {row}.photo_id;"
    )


_SCHEMA_1_6 = f"""
ALTER TABLE photos ADD COLUMN tags_carried INTEGER NOT NULL DEFAULT 0;
ALTER TABLE photos ADD COLUMN tags_to_review INTEGER NOT NULL DEFAULT 0;
UPDATE photos SET
    tags_carried = (SELECT COUNT(*) FROM photo_tags WHERE photo_id = photos.id AND {CARRIES_SQL}),
    tags_to_review = (SELECT COUNT(*) FROM photo_tags
                      WHERE photo_id = photos.id AND {NEEDS_REVIEW_CONDITION});
CREATE INDEX photos_quick_counts ON photos(status, tags_carried, tags_to_review);
CREATE INDEX photos_quick_by_id ON photos(id, status, tags_carried, tags_to_review);
CREATE TRIGGER photo_tags_counts_insert AFTER INSERT ON photo_tags
WHEN {_CARRIED["NEW"]} OR {_REVIEW["NEW"]}
BEGIN
    {_count_change("NEW", "+")}
END;
CREATE TRIGGER photo_tags_counts_delete AFTER DELETE ON photo_tags
WHEN {_CARRIED["OLD"]} OR {_REVIEW["OLD"]}
BEGIN
    {_count_change("OLD", "-")}
END;
CREATE TRIGGER photo_tags_counts_update
AFTER UPDATE OF photo_id, state, fallback, confidence ON photo_tags
WHEN OLD.photo_id != NEW.photo_id OR {_CARRIED["OLD"]} != {_CARRIED["NEW"]}
    OR {_REVIEW["OLD"]} != {_REVIEW["NEW"]}
BEGIN
    {_count_change("OLD", "-")}
    {_count_change("NEW", "+")}
END;
"""
# photos.tags_carried / tags_to_review: how many of the photo's tag rows it carries
# (CARRIES_SQL) and how many need review (NEEDS_REVIEW_CONDITION), kept by the triggers
# in the transaction of every photo_tags write, so the quick-filter counts are one pass
# over photos_quick_counts (every photo) or photos_quick_by_id (the photos of a tag
# filter, without reading their rows). A change to either condition needs a migration
# that recounts and recreates the triggers.

# (version reached, script): ordered; each runs in its own transaction.
MIGRATIONS: tuple[tuple[int, str], ...] = (
    (100, _SCHEMA_1_0),
    (101, _SCHEMA_1_1),
    (102, _SCHEMA_1_2),
    (103, _SCHEMA_1_3),
    (104, _SCHEMA_1_4),
    (105, _SCHEMA_1_5),
    (106, _SCHEMA_1_6),
)

COUNT_TRIGGERS: tuple[str, ...] = (
    "photo_tags_counts_insert",
    "photo_tags_counts_delete",
    "photo_tags_counts_update",
)
"""The triggers of schema 1.6 that keep photos.tags_carried and tags_to_review."""


def version_text(version: int) -> str:
    return f"{version // 100}.{version % 100}"


def statements(script: str) -> list[str]:
    """The statements of a migration script, one by one (a trigger's body, semicolons
    and all, stays within its statement)."""
    out: list[str] = []
    part = ""
    for piece in script.split(";"):
        part += piece + ";"
        if sqlite3.complete_statement(part):
            if part.strip(" \n;"):
                out.append(part.strip()[:-1].strip())
            part = ""
    if part.strip(" \n;"):
        out.append(part.strip().rstrip(";").strip())
    return out
