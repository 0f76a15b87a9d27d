"""Model safety: only safetensors weights, never a checkpoint's own Python code, and no
network at all in offline mode."""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import pytest

from albumtagger.errors import ModelError
from albumtagger.model import files as model_files
from albumtagger.model.files import locate_model
from tests.conftest import GOLDEN_MODEL


def _copy_golden(tmp_path: Path) -> Path:
    folder = tmp_path / "checkpoint"
    shutil.copytree(GOLDEN_MODEL, folder)
    return folder


def _edit_json(path: Path, **changes: object) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    data.update(changes)
    path.write_text(json.dumps(data), encoding="utf-8")


def test_the_golden_checkpoint_is_accepted(tmp_path: Path) -> None:
    folder, _ = locate_model(str(_copy_golden(tmp_path)))
    assert folder.name == "checkpoint"


def test_pickle_weights_only_are_refused(tmp_path: Path) -> None:
    folder = _copy_golden(tmp_path)
    for weights in folder.glob("*.safetensors"):
        weights.unlink()
    # A pickle: loading it would run whatever it says.
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x04cos\nsystem\n(S'echo pwned'\ntR.")
    with pytest.raises(ModelError) as info:
        locate_model(str(folder))
    message = str(info.value)
    assert "safetensors" in message and str(folder) in message


@pytest.mark.parametrize(
    ("file", "changes"),
    [
        ("config.json", {"auto_map": {"AutoModel": "modeling_evil.EvilModel"}}),
        ("config.json", {"trust_remote_code": True}),
        ("tokenizer_config.json", {"auto_map": {"AutoTokenizer": ["tok_evil.Tok", None]}}),
        ("preprocessor_config.json", {"auto_map": {"AutoProcessor": "proc_evil.Proc"}}),
    ],
)
def test_a_checkpoint_asking_for_remote_code_is_refused(
    tmp_path: Path, file: str, changes: dict[str, object]
) -> None:
    folder = _copy_golden(tmp_path)
    _edit_json(folder / file, **changes)
    (folder / "modeling_evil.py").write_text("raise SystemExit('remote code ran')\n")
    with pytest.raises(ModelError) as info:
        locate_model(str(folder))
    message = str(info.value)
    assert "code" in message and next(iter(changes)) in message and file in message


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Any attempt to open a connection is recorded and fails."""
    attempts: list[object] = []

    def connect(self, address, *args, **kwargs):
        attempts.append(address)
        raise AssertionError(f"network access attempted in offline mode: {address}")

    def create_connection(address, *args, **kwargs):
        attempts.append(address)
        raise AssertionError(f"network access attempted in offline mode: {address}")

    def getaddrinfo(host, *args, **kwargs):
        attempts.append(host)
        raise AssertionError(f"name lookup attempted in offline mode: {host}")

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect)
    monkeypatch.setattr(socket, "create_connection", create_connection)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return attempts


@pytest.mark.parametrize("revision", [None, "main", "0123456789abcdef0123456789abcdef01234567"])
def test_offline_mode_never_touches_the_network(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_network: list[object], revision
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.chdir(tmp_path)  # no folder named like the hub id
    with pytest.raises(ModelError) as info:
        locate_model("someone/not-cached-model", revision)
    assert no_network == []
    message = str(info.value)
    assert "not downloaded" in message and "offline" in message


def test_offline_mode_for_the_default_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_network: list[object]
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelError):
        locate_model(model_files.DEFAULT_MODEL)
    assert no_network == []
