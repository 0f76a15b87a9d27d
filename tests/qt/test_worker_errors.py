"""How the worker names an error for the window: one classification for opening a
library, its job's steps and the calls it answers."""

from __future__ import annotations

import pytest

from albumtagger.app.worker import classify
from albumtagger.errors import (
    LibraryOfflineError,
    ModelError,
    SidecarError,
    UnknownTagError,
    UserError,
)
from albumtagger.library.lock import LibraryBusyError


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (ModelError("no model"), "model"),
        (LibraryOfflineError("unplugged"), "offline"),
        (LibraryBusyError("the CLI writes it", None), "busy"),
        (SidecarError("too new"), "user"),
        (UnknownTagError("no such tag"), "user"),
        (UserError("do this"), "user"),
    ],
)
def test_errors_the_person_can_act_on_keep_their_message(error: Exception, kind: str) -> None:
    assert classify(error) == (kind, str(error))


def test_anything_else_is_a_bug_named_by_its_type() -> None:
    assert classify(KeyError("x")) == ("bug", "KeyError: 'x'")
