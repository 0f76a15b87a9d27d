"""Reads of many rows, off the GUI thread.

Python's sqlite3 lets go of the GIL for every row it steps through. While the worker
thread runs Python (re-deciding a tag over 100k photos, say), each of those hand-overs
can cost the reading thread a whole GIL switch interval, so a 100k-row read on the GUI
thread would freeze the window for seconds. Photo ids, counts, grid pages and the tag
list are therefore read here, on a pool thread with read-only connections of its own,
and delivered to the GUI thread by a queued signal. A newer read of the same `key`
supersedes an older one (its result is dropped).
"""

from __future__ import annotations

import logging
import queue
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from albumtagger.library.db.queries import LibraryQueries

log = logging.getLogger(__name__)

THREADS = 2


class _Signals(QObject):
    done = Signal(str, int, object, bool)  # key, token, result, ok


class _ReadJob(QRunnable):
    def __init__(self, pool: ReadPool, key: str, token: int, fn) -> None:
        super().__init__()
        self._pool, self._key, self._token, self._fn = pool, key, token, fn

    def run(self) -> None:
        pool = self._pool
        if pool._tokens.get(self._key) != self._token and self._key:
            return  # superseded before it started
        queries = pool._connections.get()
        try:
            result, ok = self._fn(queries), True
        except Exception:
            log.exception("reading %s failed", self._key or "a page")
            result, ok = None, False
        finally:
            pool._connections.put(queries)
        pool._signals.done.emit(self._key, self._token, result, ok)


class ReadPool(QObject):
    """`read(key, fn, callback)`: `callback(fn(queries))` on the GUI thread, unless a newer
    read of the same non-empty key came first. Empty key: never superseded."""

    def __init__(self, db_path: Path, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._connections: queue.Queue[LibraryQueries] = queue.Queue()
        for _ in range(THREADS):
            self._connections.put(LibraryQueries(db_path))
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(THREADS)
        self._signals = _Signals(self)  # dies with the pool, in the GUI thread
        self._signals.done.connect(self._done)
        self._tokens: dict[str, int] = {}
        self._callbacks: dict[tuple[str, int], Callable[[Any], None]] = {}
        self._next = 0
        self._closed = False

    def read(
        self,
        key: str,
        fn: Callable[[LibraryQueries], Any],
        callback: Callable[[Any], None],
        *,
        failed: Callable[[], None] | None = None,
    ) -> None:
        if self._closed:
            return
        self._next += 1
        token = self._next
        if key:
            old = self._tokens.get(key)
            if old is not None:
                self._callbacks.pop((key, old), None)
            self._tokens[key] = token
        self._callbacks[(key, token)] = callback
        if failed is not None:
            self._callbacks[(key, -token)] = failed
        self._pool.start(_ReadJob(self, key, token, fn))

    def pending(self, key: str | None = None) -> bool:
        if key is None:
            return bool(self._callbacks)
        return any(k == key for k, t in self._callbacks if t > 0)

    def _done(self, key: str, token: int, result: object, ok: bool) -> None:
        callback = self._callbacks.pop((key, token), None)
        on_failure = self._callbacks.pop((key, -token), None)
        if key and self._tokens.get(key) == token:
            del self._tokens[key]
        if self._closed:
            return
        if ok and callback is not None:
            callback(result)
        elif not ok and on_failure is not None:
            on_failure()

    def shutdown(self) -> None:
        self._closed = True
        self._pool.clear()
        self._pool.waitForDone(30_000)
        while not self._connections.empty():
            self._connections.get().close()
        self._callbacks.clear()
