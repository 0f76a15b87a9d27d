"""Which precision `dtype = auto` picks (int8 on CPUs where it is measured faster), and
that a library keeps the precision it was first tagged with."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from albumtagger.config import load_settings, replace_section
from albumtagger.errors import UserError
from albumtagger.library.folder import open_library
from albumtagger.model import encoder as enc_mod
from albumtagger.model.encoder import ASSUME_NO_BF16_ENV, select_precision
from albumtagger.service.indexing import (
    MODEL_SOURCE_KEY,
    index_folder,
    library_settings,
    model_source,
    needs_model,
)
from albumtagger.tagging.tagger import library_tagger
from tests.conftest import make_photo

needs_fbgemm = pytest.mark.skipif(
    "fbgemm" not in torch.backends.quantized.supported_engines,
    reason="dynamic int8 needs PyTorch's x86 (fbgemm) kernels",
)


def _flags(monkeypatch: pytest.MonkeyPatch, *flags: str) -> None:
    monkeypatch.setattr(enc_mod, "_cpu_flags", lambda: frozenset(flags))


@needs_fbgemm
def test_auto_is_int8_on_a_cpu_without_fast_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    _flags(monkeypatch, "avx2", "avx512_bf16")
    monkeypatch.setenv(ASSUME_NO_BF16_ENV, "1")
    assert not enc_mod.cpu_has_fast_bf16()
    assert select_precision("auto", "cpu") == "int8"
    assert select_precision("float32", "cpu") == "float32"
    assert select_precision("bf16", "cpu") == "bfloat16"
    monkeypatch.setattr(enc_mod, "cpu_int8_wins", lambda: False)  # e.g. ARM: no fbgemm
    assert select_precision("auto", "cpu") == "float32"


@needs_fbgemm
def test_auto_with_fast_bf16_follows_the_measured_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ASSUME_NO_BF16_ENV, raising=False)
    _flags(monkeypatch, "avx2", "avx512_bf16")
    assert enc_mod.cpu_has_fast_bf16()
    assert select_precision("auto", "cpu") == "int8"  # measured 1.55x bfloat16
    _flags(monkeypatch, "avx512_bf16", "amx_bf16")  # AMX: not measured, keeps bfloat16
    assert select_precision("auto", "cpu") == "bfloat16"
    monkeypatch.setenv(ASSUME_NO_BF16_ENV, "1")
    assert select_precision("auto", "cpu") == "int8"


def test_int8_runs_on_the_cpu_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    cuda = torch.device("cuda")
    assert select_precision("auto", cuda) == "bfloat16"
    with pytest.raises(UserError, match="CPU only"):
        select_precision("int8", cuda)
    # a library tagged with int8 on a CPU, opened where device auto finds a GPU
    assert select_precision("int8", cuda, device_was_auto=True) == "bfloat16"


@needs_fbgemm
def test_library_records_the_resolved_precision_and_keeps_it(
    golden_env: dict, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ALBUMTAGGER_DTYPE", "auto")
    monkeypatch.setenv(ASSUME_NO_BF16_ENV, "1")
    auto = load_settings()
    assert auto.model.dtype == "auto"
    make_photo(tmp_path / "album" / "a.jpg", 1)
    library = open_library(tmp_path / "album", tmp_path / "data")
    index_folder(library, auto)
    recorded = json.loads(library.store.get_setting(MODEL_SOURCE_KEY))
    assert recorded["dtype"] == "int8"  # auto resolved once, on this CPU
    assert not needs_model(library, auto, library_tagger(library.store, auto))

    # auto keeps the library's precision, even where auto would now pick another one
    monkeypatch.setattr(enc_mod, "cpu_int8_wins", lambda: False)
    assert library_settings(library.store, auto).model.dtype == "int8"
    # a precision set on purpose wins, and becomes the library's
    float32 = replace_section(auto, "model", dtype="float32")
    assert library_settings(library.store, float32).model.dtype == "float32"
    assert needs_model(library, float32, library_tagger(library.store, float32))
    library.close()

    # int8 asked for stays recorded as int8 where a GPU ran it in its own precision
    gpu = SimpleNamespace(min_image_tokens=256, max_image_tokens=1280, precision="bfloat16")
    assert model_source(replace_section(auto, "model", dtype="int8"), gpu)["dtype"] == "int8"
    assert model_source(auto, gpu)["dtype"] == "bfloat16"
