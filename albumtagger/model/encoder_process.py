"""The model in a process of its own (the app's way to run it).

Importing PyTorch loads large native libraries while holding the interpreter lock, and
parts of a forward pass hold it too: in the app's process either would freeze the window
for a moment. In a child process they cannot, the window's process never imports torch,
and a crash of native model code (an out-of-memory kill) ends the child, not the app:
the next call says so and the model is loaded again on the next use.

`EncoderProcess` offers what the pipeline, the tagger and the session use of a
`GmeEncoder`: `embed_texts`, `embed_prepared`, `embed_images`, `model_id`,
`image_model_id`, the image token budget, `device` (with `.type`), `precision`, `dim`.
Arguments and results travel pickled through a pipe (prepared patches of a photo are a
few hundred KB; vectors a few KB).

`ModelCheck` loads a model once in a short-lived child of its own, to see that it works
(the settings' Check), and ends it: the caller's process never holds the model.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import threading
import time
from typing import Any

from albumtagger import priority
from albumtagger.config import Settings
from albumtagger.errors import ModelError, UserError
from albumtagger.model.encoder import GmeEncoder
from albumtagger.model.files import downloads_allowed, set_downloads_allowed
from albumtagger.model.loading import check_model

log = logging.getLogger(__name__)

START_TIMEOUT_S = 900.0
"""Loading a model (from a slow disk) may take minutes; a child that says nothing for
this long is taken for dead."""

_CALLS = ("embed_texts", "embed_prepared", "embed_images")


class Device:
    """What callers read of a `torch.device`: its type and its name."""

    def __init__(self, kind: str, name: str) -> None:
        self.type = kind
        self._name = name

    def __str__(self) -> str:
        return self._name

    def __repr__(self) -> str:
        return f"Device({self._name!r})"


def _failure(exc: BaseException) -> tuple[str, str, str | None]:
    kind = "model" if isinstance(exc, ModelError) else "user" if isinstance(exc, UserError) else ""
    text = str(exc) if kind else f"{type(exc).__name__}: {exc}"
    return kind, text, getattr(exc, "setting", None)


def _serve(conn: Any, settings: Settings, allow_downloads: bool, idle: bool) -> None:
    """The child: load the model, then answer calls until told to stop."""
    from albumtagger.model.loading import load_encoder

    # Background work: the window's process comes first (on a machine with few cores the
    # scheduler would otherwise keep it waiting behind a forward pass).
    priority.use_idle_policy(idle)
    priority.lower_this_process()  # before PyTorch starts its threads: they inherit it
    set_downloads_allowed(allow_downloads)
    try:
        encoder = load_encoder(settings)
    except BaseException as exc:
        conn.send(("error", _failure(exc)))
        return
    conn.send(
        (
            "ok",
            {
                "model_id": encoder.model_id,
                "dim": encoder.dim,
                "device": (encoder.device.type, str(encoder.device)),
                "precision": encoder.precision,
                "budget": (encoder.min_image_tokens, encoder.max_image_tokens),
            },
        )
    )
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        method, budget, args, kwargs = message
        try:
            if method not in _CALLS:
                raise TypeError(f"no call {method!r}")
            encoder.min_image_tokens, encoder.max_image_tokens = budget
            conn.send(("ok", getattr(encoder, method)(*args, **kwargs)))
        except BaseException as exc:
            log.debug("model call %s failed", method, exc_info=True)
            conn.send(("error", _failure(exc)))


class EncoderProcess:
    """A GME encoder running in a child process. Calls take turns (one pipe)."""

    image_model_id_for = GmeEncoder.image_model_id_for
    image_model_id = GmeEncoder.image_model_id

    def __init__(self, settings: Settings) -> None:
        """Start the child and wait until the model is loaded (ModelError if it cannot
        be; a model that is not there fails at once, before a process starts)."""
        check_model(settings)
        context = mp.get_context("spawn")  # never fork a process with Qt's threads
        self._conn, child = context.Pipe()
        self._process = context.Process(
            target=_serve,
            args=(child, settings, downloads_allowed(), priority.idle_policy_used()),
            name="albumtagger-model",
            daemon=True,
        )
        self._process.start()
        child.close()
        self._lock = threading.Lock()
        try:
            info = self._receive(START_TIMEOUT_S)
        except BaseException:
            self.close()
            raise
        self.model_id: str = info["model_id"]
        self.dim: int = info["dim"]
        self.device = Device(*info["device"])
        self.precision: str = info["precision"]
        self.min_image_tokens, self.max_image_tokens = info["budget"]

    def _receive(self, timeout: float | None = None) -> Any:
        try:
            if timeout is not None and not self._conn.poll(timeout):
                raise EOFError
            status, value = self._conn.recv()
        except (EOFError, OSError):
            raise self._gone() from None
        if status == "error":
            kind, text, setting = value
            raise (UserError if kind == "user" else ModelError)(text, setting=setting)
        return value

    def _gone(self) -> ModelError:
        code = self._process.exitcode
        return ModelError(
            "The model stopped unexpectedly"
            + (f" (exit code {code})" if code is not None else "")
            + "; it may have run out of memory. It is loaded again on the next use; "
            "a smaller image token budget or another precision needs less."
        )

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            if not self.alive:
                raise self._gone()
            budget = (self.min_image_tokens, self.max_image_tokens)
            self._conn.send((method, budget, args, kwargs))
            return self._receive()

    def embed_texts(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("embed_texts", *args, **kwargs)

    def embed_prepared(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("embed_prepared", *args, **kwargs)

    def embed_images(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("embed_images", *args, **kwargs)

    @property
    def alive(self) -> bool:
        return self._process.is_alive()

    def close(self, timeout: float = 10.0) -> None:
        """Stop the child (it finishes the call it runs, if any)."""
        with contextlib.suppress(OSError, ValueError):
            self._conn.send(None)
        self._process.join(timeout)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(timeout)
        self._conn.close()


def _check(conn: Any, settings: Settings, allow_downloads: bool, idle: bool) -> None:
    """A check's child: load the model, say what loaded and how long it took, and end."""
    from albumtagger.model.loading import load_encoder

    priority.use_idle_policy(idle)
    priority.lower_this_process()
    set_downloads_allowed(allow_downloads)
    t0 = time.perf_counter()
    try:
        encoder = load_encoder(settings)
    except BaseException as exc:
        conn.send(("error", _failure(exc)))
        return
    conn.send(
        (
            "ok",
            {
                "model_id": encoder.model_id,
                "device": str(encoder.device),
                "precision": encoder.precision,
                "seconds": time.perf_counter() - t0,
            },
        )
    )


class ModelCheck:
    """Loads the model `settings` name in a child process of its own, which ends once it
    has said how that went. `result` never blocks; `cancel` ends the child at once."""

    def __init__(self, settings: Settings) -> None:
        context = mp.get_context("spawn")  # never fork a process with Qt's threads
        self._conn, child = context.Pipe(duplex=False)
        self.process = context.Process(
            target=_check,
            args=(child, settings, downloads_allowed(), priority.idle_policy_used()),
            name="albumtagger-model-check",
            daemon=True,
        )
        self.process.start()
        child.close()
        self._result: tuple[bool, str] | None = None

    def result(self) -> tuple[bool, str] | None:
        """(loaded, what to tell the person) once the child has answered or ended."""
        if self._result is not None:
            return self._result
        try:
            if not self._conn.poll():
                if self.process.is_alive() or self._conn.poll():
                    return None
                raise EOFError  # it ended without a word
            status, value = self._conn.recv()
        except (EOFError, OSError):
            code = self.process.exitcode
            self._result = (
                False,
                "The model does not load: its process stopped"
                + (f" (exit code {code})" if code is not None else "")
                + "; it may have run out of memory. A smaller precision needs less.",
            )
        else:
            if status == "ok":
                self._result = (
                    True,
                    f"The model loads: {value['model_id']} on {value['device']} "
                    f"({value['precision']}) in {value['seconds']:.1f} s.",
                )
            else:
                self._result = (False, f"The model does not load: {value[1]}")
        self.cancel()  # it has nothing more to do: the model goes with it now
        return self._result

    def cancel(self, timeout: float = 5.0) -> None:
        """End the child (if it still runs) and wait for it to go."""
        if self.process.is_alive():
            self.process.terminate()
        self.process.join(timeout)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout)
        self._conn.close()
