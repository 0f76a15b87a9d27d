"""A local stand-in for the Hugging Face hub: a threaded HTTP server that answers the
calls `snapshot_download` and `albumtagger.model.download` make for one small
repo (model info with file sizes, the file tree, HEAD and GET with Range on resolve
URLs), can be slowed down, and records what it was asked."""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

COMMIT = "0123456789abcdef0123456789abcdef01234567"
LFS_SUFFIXES = (".safetensors", ".bin")


@dataclass(frozen=True)
class HubFile:
    name: str
    data: bytes

    @property
    def lfs(self) -> bool:
        return self.name.endswith(LFS_SUFFIXES)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def blob_id(self) -> str:
        return hashlib.sha1(b"blob %d\0" % len(self.data) + self.data).hexdigest()

    @property
    def etag(self) -> str:
        return self.sha256 if self.lfs else self.blob_id


@dataclass
class Served:
    method: str
    path: str
    range: str = ""
    sent: int = 0


@dataclass
class FakeHub:
    repo_id: str
    files: dict[str, HubFile]
    url: str = ""
    rate: float = 0.0
    """Bytes per second per file download (0: as fast as possible)."""
    gated: bool = False
    log: list[Served] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def gets(self, name: str) -> list[Served]:
        with self.lock:
            return [s for s in self.log if s.method == "GET" and s.path.endswith("/" + name)]

    def sent(self) -> int:
        """Bytes of file content sent so far."""
        with self.lock:
            return sum(s.sent for s in self.log if s.method == "GET")


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    repo = re.escape(hub.repo_id)
    info_re = re.compile(rf"^/api/models/{repo}/revision/([^/]+)$")
    tree_re = re.compile(rf"^/api/models/{repo}/tree/([^/]+)$")
    resolve_re = re.compile(rf"^/{repo}/resolve/([^/]+)/(.+)$")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # quiet
            pass

        def _json(self, payload: object, status: int = 200) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _error(self, status: int, code: str) -> None:
            body = json.dumps({"error": code}).encode()
            self.send_response(status)
            self.send_header("X-Error-Code", code)
            self.send_header("X-Error-Message", code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _record(self, path: str) -> Served:
            served = Served(self.command, path, self.headers.get("Range", ""))
            with hub.lock:
                hub.log.append(served)
            return served

        def do_HEAD(self) -> None:
            self._serve()

        def do_GET(self) -> None:
            self._serve()

        def _serve(self) -> None:
            path = unquote(urlsplit(self.path).path)
            served = self._record(path)
            if m := info_re.match(path):
                if m.group(1) not in (COMMIT, "main"):
                    return self._error(404, "RevisionNotFound")
                return self._json(
                    {
                        "id": hub.repo_id,
                        "modelId": hub.repo_id,
                        "sha": COMMIT,
                        "private": False,
                        "gated": "manual" if hub.gated else False,
                        "siblings": [
                            {
                                "rfilename": f.name,
                                "size": len(f.data),
                                "blobId": f.blob_id,
                                **(
                                    {
                                        "lfs": {
                                            "size": len(f.data),
                                            "sha256": f.sha256,
                                            "pointerSize": 134,
                                        }
                                    }
                                    if f.lfs
                                    else {}
                                ),
                            }
                            for f in hub.files.values()
                        ],
                    }
                )
            if tree_re.match(path):
                return self._json(
                    [
                        {
                            "type": "file",
                            "path": f.name,
                            "size": len(f.data),
                            "oid": f.blob_id,
                            **(
                                {"lfs": {"oid": f.sha256, "size": len(f.data), "pointerSize": 134}}
                                if f.lfs
                                else {}
                            ),
                        }
                        for f in hub.files.values()
                    ]
                )
            m = resolve_re.match(path)
            if not m:
                return self._error(404, "RepoNotFound")
            if m.group(1) not in (COMMIT, "main"):
                return self._error(404, "RevisionNotFound")
            f = hub.files.get(m.group(2))
            if f is None:
                return self._error(404, "EntryNotFound")
            if hub.gated:
                return self._error(403, "GatedRepo")
            start = 0
            if rng := re.match(r"bytes=(\d+)-$", self.headers.get("Range", "")):
                start = int(rng.group(1))
            body = f.data[start:]
            self.send_response(206 if start else 200)
            self.send_header("X-Repo-Commit", COMMIT)
            self.send_header("Accept-Ranges", "bytes")
            if f.lfs:
                self.send_header("X-Linked-Etag", f'"{f.etag}"')
                self.send_header("X-Linked-Size", str(len(f.data)))
            self.send_header("ETag", f'"{f.etag}"')
            self.send_header("Content-Length", str(len(body)))
            if start:
                self.send_header("Content-Range", f"bytes {start}-{len(f.data) - 1}/{len(f.data)}")
            self.end_headers()
            if self.command == "HEAD":
                return
            step = 16 << 10
            try:
                for i in range(0, len(body), step):
                    chunk = body[i : i + step]
                    self.wfile.write(chunk)
                    self.wfile.flush()
                    with hub.lock:
                        served.sent += len(chunk)
                    if hub.rate:
                        time.sleep(len(chunk) / hub.rate)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

    return Handler


@contextmanager
def serve(hub: FakeHub) -> Iterator[FakeHub]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
    server.daemon_threads = True
    thread = threading.Thread(
        target=server.serve_forever, args=(0.05,), name="fake-hub", daemon=True
    )
    thread.start()
    hub.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield hub
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def repo_from_folder(repo_id: str, folder: Path) -> FakeHub:
    files = {p.name: HubFile(p.name, p.read_bytes()) for p in sorted(folder.iterdir())}
    files["README.md"] = HubFile("README.md", b"# not needed: no pattern asks for it\n")
    return FakeHub(repo_id, files)


def point_hub_at(hub: FakeHub, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make huggingface_hub (already imported) talk to `hub` and cache into `cache`."""
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", hub.url)
    monkeypatch.setattr(
        constants,
        "HUGGINGFACE_CO_URL_TEMPLATE",
        hub.url + "/{repo_id}/resolve/{revision}/{filename}",
    )
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
