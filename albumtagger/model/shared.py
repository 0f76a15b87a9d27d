"""One loaded model for several libraries: the app keeps every library watched and tagged,
each in its own worker thread, and they share the weights instead of loading a copy
each. Calls that run the model take turns (a lock per loaded model), so the model's own
state (its out-of-memory back-off) is never changed by two threads at once."""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from typing import Any

from albumtagger.config import DEFAULT_MODEL, Settings
from albumtagger.model.loading import load_encoder


class SharedEncoder:
    """An encoder (its own image token budget) over weights other libraries use too."""

    def __init__(self, encoder: Any, lock: threading.Lock) -> None:
        self._encoder = encoder
        self._lock = lock

    def __getattr__(self, name: str) -> Any:
        return getattr(self._encoder, name)

    def embed_texts(self, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return self._encoder.embed_texts(*args, **kwargs)

    def embed_prepared(self, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return self._encoder.embed_prepared(*args, **kwargs)

    def embed_images(self, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return self._encoder.embed_images(*args, **kwargs)


def _weights_key(settings: Settings) -> tuple[str, str, str, str]:
    m = settings.model
    return (m.model or DEFAULT_MODEL, m.revision, m.device, m.dtype)


class EncoderPool:
    """Loads each model (name, revision, device, precision) once; libraries with other
    image token budgets get their own view of the same weights."""

    def __init__(self, load: Callable[[Settings], Any] = load_encoder) -> None:
        self._load = load
        self._lock = threading.Lock()
        self._loaded: dict[tuple[str, str, str, str], tuple[Any, threading.Lock]] = {}

    def get(self, settings: Settings) -> SharedEncoder:
        """The encoder these settings ask for, loading its weights on first use (a second
        library asking meanwhile waits for them instead of loading its own)."""
        from albumtagger.model.encoder import _check_budget, resolve_image_budget

        key = _weights_key(settings)
        with self._lock:
            if key in self._loaded and not getattr(self._loaded[key][0], "alive", True):
                del self._loaded[key]  # its process ended (out of memory?): load it again
            if key not in self._loaded:
                self._loaded[key] = (self._load(settings), threading.Lock())
            base, lock = self._loaded[key]
        m = settings.model
        budget = resolve_image_budget(m.min_image_tokens, m.max_image_tokens, base.device.type)
        if budget == (base.min_image_tokens, base.max_image_tokens):
            return SharedEncoder(base, lock)
        _check_budget(*budget)
        view = copy.copy(base)
        view.min_image_tokens, view.max_image_tokens = budget
        return SharedEncoder(view, lock)

    def loaded(self) -> int:
        """How many models are in memory."""
        with self._lock:
            return len(self._loaded)

    def close(self) -> None:
        """Let go of every model (a model in a process of its own stops)."""
        with self._lock:
            loaded, self._loaded = list(self._loaded.values()), {}
        for encoder, _ in loaded:
            close = getattr(encoder, "close", None)
            if close is not None:
                close()
