"""albumtagger: a local AI photo tagger with a SQLite sidecar per folder."""

__version__ = "0.1.0"
