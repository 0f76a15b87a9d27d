"""Download a hub checkpoint into the Hugging Face cache on purpose: its size first,
then the files with one progress (bytes done / total, speed, time left), a cancel that
stops within a second while data flows, and a resume that fetches only the bytes still
missing.

huggingface_hub 2.x does not resume an interrupted file: it downloads into a temporary
file unique to each call and deletes it on failure. So the files are fetched here, each
into `blobs/<etag>.incomplete` of the cache with HTTP Range requests, and renamed to the
blob huggingface_hub expects; `snapshot_download` then links the snapshot and records the
file listing, exactly as if it had downloaded them itself. No torch, no Qt.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from albumtagger.config import DEFAULT_MODEL
from albumtagger.errors import ModelError

log = logging.getLogger(__name__)

# Files fetched from the hub: weights (safetensors only), config and tokenizer.
HUB_FILES = ["*.json", "*.safetensors", "merges.txt", "vocab.txt", "*.model"]


def download_hint(repo_id: str, revision: str) -> str:
    """How to get the model by hand: huggingface_hub's `hf` command (`huggingface-cli`
    is gone from the versions albumtagger installs)."""
    rev = f" --revision {revision}" if revision and revision != "main" else ""
    return (
        f"run albumtagger once online, or download it with `hf download {repo_id}{rev} "
        "--local-dir FOLDER` and choose that folder as the model"
    )


PROGRESS_INTERVAL_S = 0.1
"""Progress is reported at most this often (and once at the end)."""
SPEED_WINDOW_S = 5.0
"""Speed is the bytes fetched over about this many seconds."""
RETRIES = 3
"""Reconnections (resuming where the file stopped) before the download gives up."""
DISK_MARGIN = 64 << 20
"""Free space kept beyond the bytes still to download."""


class Cancelled(Exception):
    """The download was cancelled; what was fetched is kept and a resume goes on from it."""


class DownloadInterrupted(ModelError):
    """The connection was lost (or the disk filled up): what was fetched is kept."""


@dataclass(frozen=True)
class RemoteFile:
    name: str
    size: int
    etag: str
    """The blob name huggingface_hub gives the file (LFS sha256, else the git blob id)."""


@dataclass(frozen=True)
class DownloadPlan:
    """What downloading a checkpoint takes: its needed files, and what is already here."""

    repo_id: str
    revision: str
    commit: str
    files: tuple[RemoteFile, ...]
    have: int
    """Bytes already on this computer (whole files, and parts of interrupted ones)."""
    cached: bool
    """Every needed file is in the cache: nothing to download."""

    @property
    def total(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def remaining(self) -> int:
        return max(0, self.total - self.have)


@dataclass(frozen=True)
class DownloadProgress:
    done: int
    total: int
    speed: float | None
    """Bytes per second over the last few seconds (None until it can be told)."""
    eta_s: float | None
    file: str = ""

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total else 0.0


ProgressFn = Callable[[DownloadProgress], None]


def size_text(n: float) -> str:
    """Bytes for people: 512 B, 3.4 MB, 4.41 GB (decimal units, as the hub shows)."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            value = n / scale
            return f"{value:.2f} {unit}" if value < 10 and unit == "GB" else f"{value:.1f} {unit}"
    return f"{int(n)} B"


class Meter:
    """Bytes done of a total, and the speed and time left computed from them (the one
    place both are computed)."""

    def __init__(self, total: int, done: int = 0, clock: Callable[[], float] = time.monotonic):
        self.total = total
        self.done = done
        self.file = ""
        self._clock = clock
        self._fetched = 0
        self._samples: deque[tuple[float, int]] = deque([(clock(), 0)])

    def add(self, n: int) -> None:
        """`n` bytes arrived (negative: bytes thrown away to start a file again)."""
        self.done += n
        if n > 0:
            self._fetched += n
        now = self._clock()
        self._samples.append((now, self._fetched))
        while len(self._samples) > 2 and now - self._samples[1][0] >= SPEED_WINDOW_S:
            self._samples.popleft()

    def snapshot(self) -> DownloadProgress:
        now = self._clock()
        t0, f0 = self._samples[0]
        speed = (self._fetched - f0) / (now - t0) if now - t0 >= 0.5 else None
        left = max(0, self.total - self.done)
        eta = left / speed if speed else (0.0 if not left else None)
        return DownloadProgress(self.done, self.total, speed, eta, self.file)


def _hub_errors() -> dict[str, type[BaseException]]:
    from huggingface_hub import errors

    return {
        "gated": errors.GatedRepoError,
        "repo": errors.RepositoryNotFoundError,
        "revision": errors.RevisionNotFoundError,
        "entry": errors.EntryNotFoundError,
        "offline": errors.OfflineModeIsEnabled,
        "http": errors.HfHubHTTPError,
    }


def _as_model_error(exc: BaseException, repo_id: str, revision: str) -> BaseException:
    """The ModelError that says in plain words why the hub refused or failed."""
    import httpx2

    e = _hub_errors()
    hint = download_hint(repo_id, revision)
    if isinstance(exc, e["gated"]):
        return ModelError(
            f"Model {repo_id} is gated on the hub: accept its terms on the model's page and log "
            "in with `hf auth login`, or download it yourself and choose that folder.",
            setting="model",
        )
    if isinstance(exc, e["revision"]):
        return ModelError(
            f"Model {repo_id} has no revision {revision!r} on the hub; check the model and "
            "revision settings.",
            setting="revision",
        )
    if isinstance(exc, (e["repo"], e["entry"])):
        return ModelError(
            f"Model {repo_id}@{revision} was not found on the hub (and no folder of that name "
            f"exists); pass a GME hub id such as {DEFAULT_MODEL} or a checkpoint folder.",
            setting="model",
        )
    if isinstance(exc, e["offline"]):
        return ModelError(
            "Offline mode is on (HF_HUB_OFFLINE), so nothing can be downloaded; unset it, or "
            f"{hint}.",
            setting="model",
        )
    if isinstance(exc, (httpx2.TransportError, TimeoutError, ConnectionError)):
        return DownloadInterrupted(
            f"The connection to the model hub was lost ({_first_line(exc) or type(exc).__name__})."
            " What was downloaded is kept: resume when the network is back."
        )
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return DownloadInterrupted(
            f"The disk is full ({exc.filename or 'the model cache'}). What was downloaded is "
            "kept: free some space and resume."
        )
    if isinstance(exc, e["http"]):
        return DownloadInterrupted(
            f"The model hub answered with an error ({_first_line(exc)}). What was downloaded "
            "is kept: try again later."
        )
    return ModelError(f"Cannot download {repo_id}@{revision}: {exc}. Or {hint}.")


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else ""


def _storage(repo_id: str, cache_dir: str | Path | None) -> Path:
    from huggingface_hub import constants
    from huggingface_hub.file_download import repo_folder_name

    root = Path(cache_dir if cache_dir is not None else constants.HF_HUB_CACHE).expanduser()
    return root / repo_folder_name(repo_id=repo_id, repo_type="model")


def plan_download(
    repo_id: str,
    revision: str,
    *,
    cache_dir: str | Path | None = None,
    timeout: float = 10.0,
) -> DownloadPlan:
    """The needed files of `repo_id@revision` with their sizes (one hub call, the same
    file patterns as `locate_model`), and how much of them is already here."""
    from huggingface_hub import HfApi, try_to_load_from_cache
    from huggingface_hub.utils import filter_repo_objects

    try:
        info = HfApi().model_info(repo_id, revision=revision, files_metadata=True, timeout=timeout)
    except Exception as exc:
        raise _as_model_error(exc, repo_id, revision) from None
    commit = info.sha or revision
    siblings = {s.rfilename: s for s in info.siblings or []}
    files = []
    for name in filter_repo_objects(sorted(siblings), allow_patterns=HUB_FILES):
        s = siblings[name]
        size = s.lfs.size if s.lfs is not None else s.size
        etag = s.lfs.sha256 if s.lfs is not None else (s.blob_id or "")
        files.append(RemoteFile(name, int(size or 0), etag))
    blobs = _storage(repo_id, cache_dir) / "blobs"
    have, cached = 0, True
    for f in files:
        hit = try_to_load_from_cache(repo_id, f.name, cache_dir=cache_dir, revision=commit)
        if isinstance(hit, str) or (f.etag and (blobs / f.etag).is_file()):
            have += f.size
            cached = cached and isinstance(hit, str)
            continue
        cached = False
        part = blobs / f"{f.etag}.incomplete"
        if f.etag and part.is_file():
            have += min(part.stat().st_size, f.size)
    return DownloadPlan(repo_id, revision, commit, tuple(files), have, cached and bool(files))


class _Reporter:
    """Throttled progress calls; a failing callback never stops the download."""

    def __init__(self, meter: Meter, progress: ProgressFn | None) -> None:
        self.meter = meter
        self._progress = progress
        self._last = 0.0

    def __call__(self, force: bool = False) -> None:
        if self._progress is None:
            return
        now = time.monotonic()
        if not force and now - self._last < PROGRESS_INTERVAL_S:
            return
        self._last = now
        try:
            self._progress(self.meter.snapshot())
        except Exception:
            log.exception("download progress callback failed")


def _check_cancel(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled("The download was cancelled.")


def _fetch_file(
    repo_id: str,
    commit: str,
    f: RemoteFile,
    blobs: Path,
    meter: Meter,
    report: _Reporter,
    cancel: threading.Event | None,
) -> None:
    """One file into `blobs/<etag>`, resuming `blobs/<etag>.incomplete` by Range requests."""
    import httpx2
    from huggingface_hub import constants, get_hf_file_metadata, hf_hub_url
    from huggingface_hub.utils import (
        WeakFileLock,
        build_hf_headers,
        get_session,
        hf_raise_for_status,
    )

    meta = get_hf_file_metadata(hf_hub_url(repo_id, f.name, revision=commit))
    etag = meta.etag or f.etag
    size = meta.size if meta.size is not None else f.size
    blob = blobs / etag
    if blob.is_file():
        return
    part = blobs / f"{etag}.incomplete"
    locks = blobs.parent.parent / ".locks" / blobs.parent.name
    locks.mkdir(parents=True, exist_ok=True)
    headers = build_hf_headers()
    headers["Accept-Encoding"] = "identity"  # byte offsets must be those of the file
    timeout = httpx2.Timeout(constants.HF_HUB_DOWNLOAD_TIMEOUT)
    with WeakFileLock(locks / f"{etag}.lock"):
        if blob.is_file():
            return
        have = part.stat().st_size if part.is_file() else 0
        if have > size:
            have = 0
            part.unlink()
        counted = min(have, f.size)  # what the plan counted as already here
        meter.add(have - counted)
        failures = 0
        with part.open("ab") as out:
            while have < size:
                _check_cancel(cancel)
                request = dict(headers)
                if have:
                    request["Range"] = f"bytes={have}-"
                try:
                    with get_session().stream(
                        "GET", meta.location, headers=request, timeout=timeout
                    ) as response:
                        hf_raise_for_status(response)
                        if have and response.status_code != 206:  # Range ignored: start over
                            out.seek(0)
                            out.truncate()
                            meter.add(-have)
                            have = 0
                        for chunk in response.iter_bytes():
                            _check_cancel(cancel)
                            out.write(chunk)
                            have += len(chunk)
                            meter.add(len(chunk))
                            failures = 0
                            report()
                except (httpx2.TransportError, TimeoutError, ConnectionError) as exc:
                    failures += 1
                    if failures > RETRIES:
                        raise
                    log.warning("Download of %s stopped (%s); resuming", f.name, exc)
                    out.flush()
                    for _ in range(10):
                        _check_cancel(cancel)
                        time.sleep(0.1)
                    continue
                if have < size:  # the server closed early: ask for the rest
                    failures += 1
                    if failures > RETRIES:
                        raise httpx2.RemoteProtocolError(
                            f"{f.name}: the server sent {have:,} of {size:,} bytes"
                        )
        if have != size:
            part.unlink(missing_ok=True)
            raise ModelError(
                f"{f.name} came with {have:,} bytes instead of {size:,}; download it again."
            )
        os.replace(part, blob)


def download_model(
    repo_id: str,
    revision: str,
    *,
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
    cache_dir: str | Path | None = None,
) -> Path:
    """Download `repo_id@revision` (the files `locate_model` needs) into the Hugging Face
    cache and return its snapshot folder. `progress` gets a `DownloadProgress` about ten
    times a second; setting `cancel` raises `Cancelled` at the next chunk, keeping what
    was fetched for the next call. Raises `ModelError` (`DownloadInterrupted` when a
    resume can go on) saying what went wrong."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.utils import tqdm as hf_tqdm

    plan = plan_download(repo_id, revision, cache_dir=cache_dir)
    meter = Meter(plan.total, plan.have)
    report = _Reporter(meter, progress)
    report(force=True)
    blobs = _storage(repo_id, cache_dir) / "blobs"

    class _CancellingTqdm(hf_tqdm):  # type: ignore[misc, valid-type]
        """Silent bars for the final `snapshot_download`, which links what is here."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

        def update(self, n: float | None = 1) -> bool | None:
            _check_cancel(cancel)
            return super().update(n)

    try:
        if not plan.cached:
            blobs.mkdir(parents=True, exist_ok=True)
            free = shutil.disk_usage(blobs).free
            if free < plan.remaining + DISK_MARGIN:
                raise DownloadInterrupted(
                    "Not enough free disk space for the model: it needs "
                    f"{size_text(plan.remaining)} more and {blobs} has {size_text(free)} free. "
                    "Free some space and resume."
                )
            for f in plan.files:
                _check_cancel(cancel)
                meter.file = f.name
                _fetch_file(repo_id, plan.commit, f, blobs, meter, report, cancel)
        meter.file = ""
        folder = snapshot_download(
            repo_id,
            revision=plan.revision,
            allow_patterns=HUB_FILES,
            cache_dir=cache_dir,
            tqdm_class=_CancellingTqdm,
        )
    except (Cancelled, ModelError):
        raise
    except Exception as exc:
        raise _as_model_error(exc, repo_id, revision) from None
    finally:
        report(force=True)
    return Path(folder)
