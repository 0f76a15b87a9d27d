"""The app's typed client is the session's own interface: same names, same parameters."""

from __future__ import annotations

import inspect

from albumtagger.app.client import SessionClient
from albumtagger.service.session import LibrarySession


def _public_methods(cls: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(member)
        for name, member in vars(cls).items()
        if callable(member) and not name.startswith("_")
    }


def test_every_client_call_mirrors_a_session_method() -> None:
    session = _public_methods(LibrarySession)
    client = _public_methods(SessionClient)
    assert client, "the client has no calls"
    for name, signature in client.items():
        assert name in session, f"SessionClient.{name} has no LibrarySession.{name}"
        ours = [p for p in signature.parameters.values() if p.name != "on_reply"]
        theirs = list(session[name].parameters.values())
        assert [(p.name, p.kind, p.default) for p in ours] == [
            (p.name, p.kind, p.default) for p in theirs
        ], f"SessionClient.{name} takes {ours}, LibrarySession.{name} takes {theirs}"
