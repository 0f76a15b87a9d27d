"""Typed calls to the session of the library on screen.

`SessionClient` has the methods of `LibrarySession` that the app uses, with the same
names and arguments. Each runs in the library's worker thread (`app.worker`), one
between two steps of its loop; `on_reply(reply)` gets the `Reply` in the GUI thread
(without it, an error is shown as a notice). Each returns False when no library is
open (nothing was sent).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from albumtagger.app.worker import Call, Reply

if TYPE_CHECKING:
    import numpy as np

    from albumtagger.config import Settings
    from albumtagger.library.export import Exporter
    from albumtagger.service.session import LibrarySession

OnReply = Callable[[Reply], None]
Send = Callable[[Call, "OnReply | None"], bool]


class SessionClient:
    """`send(call, on_reply)` hands a call to the worker of the library on screen."""

    def __init__(self, send: Send) -> None:
        self._send = send

    def _call(
        self, name: str, run: Callable[[LibrarySession], Any], on_reply: OnReply | None
    ) -> bool:
        return self._send(Call(name, run), on_reply)

    # -- settings and the model ---------------------------------------------------------

    def apply_settings(
        self, settings: Settings | None = None, *, on_reply: OnReply | None = None
    ) -> bool:
        return self._call("apply_settings", lambda s: s.apply_settings(settings), on_reply)

    # -- corrections and review ---------------------------------------------------------

    def correct(
        self, photo_ids: Sequence[int], tag: str, action: str, *, on_reply: OnReply | None = None
    ) -> bool:
        return self._call("correct", lambda s: s.correct(photo_ids, tag, action), on_reply)

    def learn_tag(
        self, tag: str, photo_ids: Sequence[int], *, on_reply: OnReply | None = None
    ) -> bool:
        return self._call("learn_tag", lambda s: s.learn_tag(tag, photo_ids), on_reply)

    def answer(
        self, photo_id: int, tag: str, yes: bool, *, on_reply: OnReply | None = None
    ) -> bool:
        return self._call("answer", lambda s: s.answer(photo_id, tag, yes), on_reply)

    def undo(self, *, on_reply: OnReply | None = None) -> bool:
        return self._call("undo", lambda s: s.undo(), on_reply)

    def redo(self, *, on_reply: OnReply | None = None) -> bool:
        return self._call("redo", lambda s: s.redo(), on_reply)

    def undo_activity(self, entry_id: int, *, on_reply: OnReply | None = None) -> bool:
        return self._call("undo_activity", lambda s: s.undo_activity(entry_id), on_reply)

    def activity(self, *, on_reply: OnReply | None = None) -> bool:
        return self._call("activity", lambda s: s.activity(), on_reply)

    def review_queue(self, limit: int = 20, *, on_reply: OnReply | None = None) -> bool:
        return self._call("review_queue", lambda s: s.review_queue(limit), on_reply)

    def review_remaining(self, *, on_reply: OnReply | None = None) -> bool:
        return self._call("review_remaining", lambda s: s.review_remaining(), on_reply)

    def note_view(self, photo_id: int, *, on_reply: OnReply | None = None) -> bool:
        return self._call("note_view", lambda s: s.note_view(photo_id), on_reply)

    # -- the vocabulary -----------------------------------------------------------------

    def add_tags(self, specs: Sequence[str], *, on_reply: OnReply | None = None) -> bool:
        return self._call("add_tags", lambda s: s.add_tags(specs), on_reply)

    def remove_tags(self, names: Sequence[str], *, on_reply: OnReply | None = None) -> bool:
        return self._call("remove_tags", lambda s: s.remove_tags(names), on_reply)

    def rename_tag(self, old: str, new: str, *, on_reply: OnReply | None = None) -> bool:
        return self._call("rename_tag", lambda s: s.rename_tag(old, new), on_reply)

    def set_prompts(
        self, tag: str, prompts: Sequence[str], *, on_reply: OnReply | None = None
    ) -> bool:
        return self._call("set_prompts", lambda s: s.set_prompts(tag, prompts), on_reply)

    def restore_default_vocabulary(self, *, on_reply: OnReply | None = None) -> bool:
        return self._call(
            "restore_default_vocabulary", lambda s: s.restore_default_vocabulary(), on_reply
        )

    def import_vocabulary(self, path: Path | str, *, on_reply: OnReply | None = None) -> bool:
        return self._call("import_vocabulary", lambda s: s.import_vocabulary(path), on_reply)

    # -- thresholds -------------------------------------------------------------------

    def pin_threshold(
        self, tag: str, value: float | None, *, on_reply: OnReply | None = None
    ) -> bool:
        return self._call("pin_threshold", lambda s: s.pin_threshold(tag, value), on_reply)

    def threshold_preview(
        self, tag: str, value: float | None, *, on_reply: OnReply | None = None
    ) -> bool:
        return self._call("threshold_preview", lambda s: s.threshold_preview(tag, value), on_reply)

    def tag_report(self, tag: str, *, on_reply: OnReply | None = None) -> bool:
        return self._call("tag_report", lambda s: s.tag_report(tag), on_reply)

    # -- vectors ------------------------------------------------------------------------

    def match(
        self, photo_id: int, texts: Sequence[str], *, on_reply: OnReply | None = None
    ) -> bool:
        return self._call("match", lambda s: s.match(photo_id, texts), on_reply)

    def search(
        self,
        text: str,
        top: int = 1000,
        restrict_to: np.ndarray | None = None,
        *,
        on_reply: OnReply | None = None,
    ) -> bool:
        return self._call("search", lambda s: s.search(text, top, restrict_to), on_reply)

    def search_with_cutoff(
        self,
        text: str,
        top: int = 1000,
        restrict_to: np.ndarray | None = None,
        *,
        on_reply: OnReply | None = None,
    ) -> bool:
        return self._call(
            "search_with_cutoff", lambda s: s.search_with_cutoff(text, top, restrict_to), on_reply
        )

    def similar(
        self,
        photo_id: int,
        top: int = 1000,
        restrict_to: np.ndarray | None = None,
        *,
        on_reply: OnReply | None = None,
    ) -> bool:
        return self._call("similar", lambda s: s.similar(photo_id, top, restrict_to), on_reply)

    def trash_photos(self, photo_ids: Sequence[int], *, on_reply: OnReply | None = None) -> bool:
        return self._call("trash_photos", lambda s: s.trash_photos(photo_ids), on_reply)

    def near_duplicates(self, min_cosine: float = 0.95, *, on_reply: OnReply | None = None) -> bool:
        return self._call("near_duplicates", lambda s: s.near_duplicates(min_cosine), on_reply)

    # -- export and clean-up ------------------------------------------------------------

    def export_tags(
        self,
        exporter: Exporter,
        *,
        include_suggested: bool = False,
        photo_ids: Sequence[int] | None = None,
        on_reply: OnReply | None = None,
    ) -> bool:
        return self._call(
            "export_tags",
            lambda s: s.export_tags(
                exporter, include_suggested=include_suggested, photo_ids=photo_ids
            ),
            on_reply,
        )

    def forget_missing(
        self, photo_ids: Sequence[int] | None = None, *, on_reply: OnReply | None = None
    ) -> bool:
        return self._call("forget_missing", lambda s: s.forget_missing(photo_ids), on_reply)
