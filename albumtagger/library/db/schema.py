"""The sidecar's schema: the script of each version and the order they run in.

The version is kept in `PRAGMA user_version` as `major * 100 + minor`. `Store` runs the
migrations in order when it opens a sidecar, each in its own transaction, after a
verified backup. A newer minor version only adds (columns, tables, indexes), so this
version of albumtagger opens it as it is; a newer major version is refused.
"""

from __future__ import annotations

from albumtagger.library.db.sql import NEEDS_REVIEW_CONDITION, TAKEN_SQL

SCHEMA_MAJOR = 1
SCHEMA_VERSION = 105  # 1.5

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

# (version reached, script): ordered; each runs in its own transaction.
MIGRATIONS: tuple[tuple[int, str], ...] = (
    (100, _SCHEMA_1_0),
    (101, _SCHEMA_1_1),
    (102, _SCHEMA_1_2),
    (103, _SCHEMA_1_3),
    (104, _SCHEMA_1_4),
    (105, _SCHEMA_1_5),
)


def version_text(version: int) -> str:
    return f"{version // 100}.{version % 100}"


def statements(script: str) -> list[str]:
    """The statements of a migration script, one by one."""
    return [s.strip() for s in script.split(";") if s.strip()]
