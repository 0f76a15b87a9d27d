"""Where a GME checkpoint's files are: a local folder, or a hub id in the local cache
(downloaded when allowed). Needs no torch, so a model that cannot be had is reported
before anything heavy is imported.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from albumtagger.config import DEFAULT_MODEL
from albumtagger.errors import ModelError
from albumtagger.model.download import HUB_FILES, download_hint, download_model, size_text

log = logging.getLogger(__name__)

DEFAULT_REVISION = "9cfa6413f704a7c1cf5064d240748e10c876b286"
"""Hub commit of DEFAULT_MODEL that albumtagger pins (the revision MTEB pins too)."""

# Files whose content defines a local checkpoint's identity (tokenizer included: it
# decides text token ids).
_IDENTITY_FILES = (
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.json",
    "merges.txt",
    "special_tokens_map.json",
    "added_tokens.json",
)
_FULL_HASH_LIMIT = 8 << 20
_SAMPLE_COUNT = 64
_SAMPLE_SIZE = 64 << 10
_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
_HUB_ID_RE = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")

ProgressCallback = Callable[[str, "int | None", "int | None"], None]
"""progress(message, done, total): download and load status; done/total in bytes or None."""


def _looks_like_hub_id(model: str) -> bool:
    return bool(_HUB_ID_RE.match(model)) and not model.startswith((".", "~"))


def _file_digest(path: Path, h: Any) -> None:
    """Feed a file into a hash: fully if small, else header + size + evenly spaced samples."""
    size = path.stat().st_size
    h.update(f"{path.name}\0{size}\0".encode())
    with path.open("rb") as fh:
        if size <= _FULL_HASH_LIMIT:
            h.update(fh.read())
            return
        head = fh.read(8)
        h.update(head)
        if path.suffix == ".safetensors" and len(head) == 8:
            header_len = int.from_bytes(head, "little")
            if 0 < header_len <= 100 << 20:
                h.update(fh.read(header_len))
        for i in range(_SAMPLE_COUNT):
            fh.seek(max(0, size - _SAMPLE_SIZE) * i // (_SAMPLE_COUNT - 1))
            h.update(fh.read(_SAMPLE_SIZE))


def folder_model_id(folder: Path) -> str:
    """A cheap identity for a local checkpoint that changes when its weights change.

    A folder inside the Hugging Face cache (`models--ORG--NAME/snapshots/COMMIT`) is
    `ORG/NAME@COMMIT`, the same as loading it by hub id. Any other folder is
    `local:sha256:<16 hex>` over the config, the tokenizer files and every safetensors
    file (small files whole; large ones by size, header and 64 evenly spaced 64 KiB
    samples), so it survives copying or renaming the folder but not a change of weights.
    """
    folder = folder.resolve()
    parts = folder.parts
    if (
        len(parts) >= 3
        and parts[-2] == "snapshots"
        and parts[-3].startswith("models--")
        and _COMMIT_RE.match(parts[-1])
    ):
        repo = parts[-3][len("models--") :].replace("--", "/")
        return f"{repo}@{parts[-1]}"
    h = hashlib.sha256(b"albumtagger-model-id-1\0")
    files = [folder / name for name in _IDENTITY_FILES if (folder / name).is_file()]
    files += sorted(folder.glob("*.safetensors"))
    for path in files:
        _file_digest(path, h)
    return f"local:sha256:{h.hexdigest()[:16]}"


def _check_checkpoint_folder(folder: Path) -> dict[str, Any]:
    """Refuse, with a clear message, a folder that is not a Qwen2-VL safetensors checkpoint."""
    if not folder.exists():
        raise ModelError(
            f"Model folder {folder} does not exist. Choose a folder holding a GME checkpoint "
            f"as the model, or a hub id such as {DEFAULT_MODEL}.",
            setting="model",
        )
    if not folder.is_dir():
        raise ModelError(
            f"The model {folder} is a file; choose the folder that holds the checkpoint.",
            setting="model",
        )
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise ModelError(
            f"{folder} is not a Qwen2-VL (GME) checkpoint: it has no config.json. Pass the "
            "folder that holds config.json, the tokenizer and the .safetensors weights."
        )
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"Cannot read {config_path}: {exc}. Download the model again.") from None
    model_type = config.get("model_type") if isinstance(config, dict) else None
    if model_type != "qwen2_vl":
        raise ModelError(
            f"{folder} holds a {model_type or 'unknown'!s} model, not a Qwen2-VL (GME) one; "
            f"albumtagger needs a GME checkpoint such as {DEFAULT_MODEL}."
        )
    remote = _remote_code_request(folder, config)
    if remote:
        raise ModelError(
            f"{folder} asks to run its own Python code ({remote}); albumtagger never runs code "
            f"that comes with a model. Use a plain GME checkpoint such as {DEFAULT_MODEL}."
        )
    if not any(folder.glob("*.safetensors")):
        raise ModelError(
            f"{folder} has no .safetensors weights; albumtagger loads safetensors only "
            f"(download {DEFAULT_MODEL}, which has them)."
        )
    return config


def _remote_code_request(folder: Path, config: dict[str, Any]) -> str:
    """What in the checkpoint asks for remote code (`auto_map`, `trust_remote_code`), or ''."""
    found: list[str] = []
    sources = [("config.json", config)]
    for name in ("tokenizer_config.json", "preprocessor_config.json", "processor_config.json"):
        try:
            data = json.loads((folder / name).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue
        if isinstance(data, dict):
            sources.append((name, data))
    for name, data in sources:
        for key in ("auto_map", "trust_remote_code"):
            if data.get(key):
                found.append(f"{key} in {name}")
    return ", ".join(found)


def env_offline() -> bool:
    """Whether HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) asks for no network at all."""
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on"):
            return True
    try:
        from huggingface_hub import constants

        return bool(constants.HF_HUB_OFFLINE)
    except ImportError:  # pragma: no cover
        return False


HUB_PROBE_TIMEOUT_S = 3.0


def hub_reachable(timeout: float = HUB_PROBE_TIMEOUT_S) -> bool:
    """Whether the model hub answers a TCP connection within `timeout` seconds (name
    lookup included), so that an unreachable hub fails at once, not after retries."""
    import socket
    import threading
    from urllib.parse import urlparse

    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    host, port = url.hostname or "", url.port or (443 if url.scheme == "https" else 80)
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, name="albumtagger-hub-probe", daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


_downloads_allowed = True


def set_downloads_allowed(allowed: bool) -> None:
    """Whether `locate_model` may download a checkpoint that is not cached (the CLI: yes;
    the app: no, it downloads only when the person asks, with `model_download`)."""
    global _downloads_allowed
    _downloads_allowed = bool(allowed)


def downloads_allowed() -> bool:
    return _downloads_allowed


def hub_revision(model: str, revision: str | None) -> str:
    """The revision a hub id is fetched at: the one given, else the pinned commit of the
    default model, else "main"."""
    return (revision or "").strip() or (DEFAULT_REVISION if model == DEFAULT_MODEL else "main")


def is_hub_model(model: str) -> bool:
    """Whether `model` names a hub checkpoint (a hub id that is no existing folder)."""
    model = str(model).strip()
    return _looks_like_hub_id(model) and not Path(model).expanduser().exists()


def _progress_lines(repo_id: str, progress: ProgressCallback | None) -> Callable[[Any], None]:
    """A `model_download` progress callback for the CLI: `progress(message, done, total)`
    when given, else a log line every few seconds."""
    last = [0.0]

    def report(p: Any) -> None:
        parts = [f"Downloading {repo_id}: {size_text(p.done)} of {size_text(p.total)}"]
        if p.speed:
            parts.append(f"{size_text(p.speed)}/s")
        if p.eta_s is not None and p.done < p.total:
            parts.append(f"about {round(p.eta_s)} s left")
        message = " \u00b7 ".join(parts)
        if progress is not None:
            progress(message, p.done, p.total)
            return
        now = time.monotonic()
        if now - last[0] >= 5.0 or p.done >= p.total:
            last[0] = now
            log.info("%s", message)

    return report


def _snapshot(
    repo_id: str, revision: str, local_files_only: bool, progress: ProgressCallback | None
) -> Path:
    """Local folder of a hub checkpoint, downloading it (safetensors only) if allowed."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    def cached() -> Path:
        return Path(
            snapshot_download(
                repo_id, revision=revision, allow_patterns=HUB_FILES, local_files_only=True
            )
        )

    local_only = local_files_only or not _downloads_allowed
    try:
        # A pinned commit that is already cached needs no network at all.
        if local_only or _COMMIT_RE.match(revision):
            return cached()
    except LocalEntryNotFoundError:
        if local_files_only:
            raise ModelError(
                f"Model {repo_id}@{revision} is not downloaded and the hub is offline; "
                f"{download_hint(repo_id, revision)}. (No folder named {repo_id} exists "
                "either.)",
                setting="model",
            ) from None
        if not _downloads_allowed:
            raise ModelError(
                f"Model {repo_id}@{revision} is not downloaded on this computer yet "
                "(about 9 GB for the 2B model); download it, or choose a folder that holds it.",
                setting="model",
            ) from None
    if not hub_reachable():
        raise ModelError(
            f"Model {repo_id}@{revision} is not downloaded and the hub cannot be reached; "
            f"{download_hint(repo_id, revision)}.",
            setting="model",
        )
    log.info("Downloading %s@%s (about 9 GB for the 2B model, once)", repo_id, revision)
    return download_model(repo_id, revision, progress=_progress_lines(repo_id, progress))


def locate_model(
    model: str,
    revision: str | None = None,
    *,
    local_files_only: bool | None = None,
    progress: ProgressCallback | None = None,
) -> tuple[Path, str]:
    """(checkpoint folder, model id) of a hub id or local folder, downloading a hub
    checkpoint that is not cached when allowed. Raises `ModelError` saying what to do."""
    model = str(model).strip()
    offline = env_offline() if local_files_only is None else bool(local_files_only)
    path = Path(model).expanduser()
    if not path.exists() and _looks_like_hub_id(model):
        rev = hub_revision(model, revision)
        folder = _snapshot(model, rev, offline, progress)
        model_id = f"{model}@{folder.name if _COMMIT_RE.match(folder.name) else rev}"
        _check_checkpoint_folder(folder)
        return folder, model_id
    if revision:
        log.warning("Ignoring revision %s: model %s is a local folder", revision, model)
    _check_checkpoint_folder(path)
    try:
        return path, folder_model_id(path)
    except OSError as exc:
        raise ModelError(f"Cannot read the model files in {path}: {exc}") from None
