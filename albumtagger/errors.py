"""Typed errors.

`UserError` and its subclasses are problems the user can act on: their message says
what happened and what to do, and the CLI and GUI show it as it is. Anything else that
escapes the core is a bug and is reported as one.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem the user can fix; the message says how, in words of the app (never
    command-line flags). `setting` names the setting to change, if one is the fix (the
    CLI adds its option)."""

    def __init__(self, message: str = "", *, setting: str | None = None) -> None:
        super().__init__(message)
        self.setting = setting


class UsageError(UserError):
    """Wrong command-line usage (exit status 2)."""


class SidecarError(UserError):
    """The library's sidecar database cannot be used."""


class SchemaTooNewError(SidecarError):
    """The sidecar was written by a newer albumtagger with an incompatible schema."""


class LibraryOfflineError(UserError):
    """The library's root folder is missing or unreadable (a drive unplugged, say)."""


class ModelError(UserError):
    """The GME model cannot be found, downloaded or loaded."""


class ImageError(UserError):
    """A photo cannot be decoded; `reason` is recorded with the photo."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class NotFoundError(UserError):
    """A photo named by the user is not in the library."""


class UnknownTagError(UsageError):
    """A tag named by the user is not in the vocabulary."""
