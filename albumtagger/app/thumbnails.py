"""Thumbnails off the GUI thread: a QThreadPool reads the on-disk cache, a second one
makes the thumbnails that are not there yet (at a lower CPU priority: decoding photos is
background work), a QRunnable sends a QImage back, and the GUI thread keeps scaled
QPixmaps in a small LRU. Only what the grid paints is asked for; jobs for rows scrolled
away are taken back before they start."""

from __future__ import annotations

import logging
from collections import OrderedDict
from pathlib import Path

from PySide6.QtCore import (
    QBuffer,
    QByteArray,
    QIODevice,
    QObject,
    QRunnable,
    Qt,
    QThreadPool,
    QTimer,
    Signal,
)
from PySide6.QtGui import QImage, QImageReader, QPixmap

from albumtagger import priority
from albumtagger.errors import ImageError
from albumtagger.library.db.queries import PhotoSummary
from albumtagger.library.db.store import PhotoRow
from albumtagger.library.thumbnails import ThumbnailCache

log = logging.getLogger(__name__)

MAX_PIXMAPS = 1500
MAX_PENDING = 400


class _JobSignals(QObject):
    done = Signal(int, int, object, str)  # photo id, generation, QImage or None, problem


class _ThumbJob(QRunnable):
    def __init__(
        self,
        cache: ThumbnailCache,
        root: Path,
        summary: PhotoSummary,
        generation: int,
        signals: _JobSignals,
        current: list[int],
        size: int,
        background: bool,
    ) -> None:
        super().__init__()
        self._size = size
        self._background = background
        """The thumbnail is not cached: the photo is read and decoded, at a lower priority."""
        self.setAutoDelete(False)  # the loader keeps it until done (tryTake needs it)
        self._cache = cache
        self._root = root
        self._summary = summary
        self._generation = generation
        self._signals = signals
        self._current = current

    def run(self) -> None:
        s = self._summary
        if self._current[0] != self._generation:
            self._signals.done.emit(s.id, self._generation, None, "")
            return
        if self._background:
            priority.lower_this_thread()
        image: QImage | None = None
        problem = ""
        try:
            row = PhotoRow(
                s.id, s.path, s.size, 0, s.content_hash, s.width, s.height, s.status, s.error
            )
            thumb = self._cache.make(self._root, row)
            image = _decode(thumb.data, self._size)
            if image is None:
                problem = "unreadable thumbnail"
        except ImageError as exc:
            problem = exc.reason
        except OSError as exc:
            problem = exc.strerror or str(exc)
        except Exception as exc:  # a bug: keep the pool alive, say it in the log
            log.exception("thumbnail of %s failed", s.path)
            problem = str(exc)
        self._signals.done.emit(s.id, self._generation, image, problem)


def _decode(data: bytes, size: int) -> QImage | None:
    """Decode straight to the cell size (JPEG decoders scale while decoding)."""
    buffer = QBuffer()
    buffer.setData(QByteArray(data))
    buffer.open(QIODevice.OpenModeFlag.ReadOnly)
    reader = QImageReader(buffer)
    full = reader.size()
    if full.isValid() and (full.width() > size or full.height() > size):
        reader.setScaledSize(full.scaled(size, size, Qt.AspectRatioMode.KeepAspectRatio))
    image = reader.read()
    return None if image.isNull() else image


class ThumbnailLoader(QObject):
    """Pixmaps of photo thumbnails at the grid's size; `changed` after a batch arrives."""

    changed = Signal()

    def __init__(
        self,
        root: Path | None,
        cache: ThumbnailCache | None = None,
        *,
        size: int = 160,
        threads: int = 2,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.root = root
        self._cache = cache or ThumbnailCache()
        self._size = size
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(max(1, threads))
        self._makers = QThreadPool(self)
        self._makers.setMaxThreadCount(max(1, threads))
        self._signals = _JobSignals(self)  # dies with the loader, in the GUI thread
        self._signals.done.connect(self._on_done)
        self._generation = [0]
        self._pending: dict[int, _ThumbJob] = {}
        self._pixmaps: OrderedDict[int, QPixmap] = OrderedDict()
        self._failed: dict[int, str] = {}
        self._batch = QTimer(self)
        self._batch.setSingleShot(True)
        self._batch.setInterval(10)
        self._batch.timeout.connect(self.changed)
        self.loaded = 0
        """Thumbnails received since start (for tests and benchmarks)."""

    @property
    def size(self) -> int:
        return self._size

    def set_size(self, size: int) -> None:
        if size == self._size:
            return
        self._size = size
        self._pixmaps.clear()
        self._drop_pending()

    def set_root(self, root: Path | None) -> None:
        self.root = root
        self.clear()

    def clear(self) -> None:
        self._pixmaps.clear()
        self._failed.clear()
        self._drop_pending()

    def forget(self, photo_ids) -> None:
        for pid in photo_ids:
            self._pixmaps.pop(int(pid), None)
            self._failed.pop(int(pid), None)

    def problem(self, photo_id: int) -> str | None:
        return self._failed.get(photo_id)

    def pixmap(self, summary: PhotoSummary) -> QPixmap | None:
        """The pixmap if ready; otherwise ask for it (once) and return None."""
        pid = summary.id
        pix = self._pixmaps.get(pid)
        if pix is not None:
            self._pixmaps.move_to_end(pid)
            return pix
        if pid in self._failed or pid in self._pending or self.root is None:
            return None
        if summary.status == "missing":
            self._failed[pid] = "missing"
            return None
        cached = (  # a stat in the local cache: quick
            summary.content_hash is not None
            and summary.status != "pending"
            and summary.content_hash in self._cache
        )
        job = _ThumbJob(
            self._cache,
            self.root,
            summary,
            self._generation[0],
            self._signals,
            self._generation,
            self._size,
            not cached,
        )
        self._pending[pid] = job
        (self._pool if cached else self._makers).start(job)
        return None

    def retain(self, photo_ids: set[int]) -> None:
        """Take back queued jobs for photos no longer on screen."""
        if len(self._pending) <= MAX_PENDING // 4:
            return
        for pid in [p for p in self._pending if p not in photo_ids]:
            job = self._pending[pid]
            if self._pool.tryTake(job) or self._makers.tryTake(job):
                del self._pending[pid]

    def _drop_pending(self) -> None:
        self._generation[0] += 1
        for pid, job in list(self._pending.items()):
            if self._pool.tryTake(job) or self._makers.tryTake(job):
                del self._pending[pid]

    def _on_done(self, photo_id: int, generation: int, image: object, problem: str) -> None:
        job = self._pending.get(photo_id)
        if job is not None and job._generation == generation:
            del self._pending[photo_id]
        if generation != self._generation[0]:
            if not self._batch.isActive():
                self._batch.start()  # repaint: the view asks again at the new size
            return
        if isinstance(image, QImage):
            self.loaded += 1
            self._pixmaps[photo_id] = QPixmap.fromImage(image)
            while len(self._pixmaps) > MAX_PIXMAPS:
                self._pixmaps.popitem(last=False)
        else:
            self._failed[photo_id] = problem or "no thumbnail"
        if not self._batch.isActive():
            self._batch.start()

    def settled(self, photo_ids) -> bool:
        """Every one of these has its pixmap or is known to have none (nothing pending)."""
        return all(
            (int(p) in self._pixmaps or int(p) in self._failed) and int(p) not in self._pending
            for p in photo_ids
        )

    def busy(self) -> bool:
        return bool(self._pending)

    def shutdown(self) -> None:
        self._drop_pending()
        for pool in (self._pool, self._makers):
            pool.clear()
            pool.waitForDone(5000)
