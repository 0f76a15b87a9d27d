"""The model in a process of its own (as the app runs it): the same vectors as in
process, each view's own image budget, a clear message when the process dies and a fresh
one after, and no torch in the parent."""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from albumtagger.config import load_settings, replace_section
from albumtagger.errors import ModelError
from albumtagger.model.encoder import QUERY_INSTRUCTION
from albumtagger.model.encoder_process import EncoderProcess
from albumtagger.model.loading import load_encoder
from albumtagger.model.shared import EncoderPool
from tests.conftest import REPO


def photos() -> list[Image.Image]:
    rng = np.random.default_rng(3)
    return [
        Image.fromarray(rng.integers(0, 255, (48 + 8 * i, 64, 3), dtype=np.uint8)) for i in range(3)
    ]


@pytest.fixture
def remote(golden_env):
    encoder = EncoderProcess(load_settings())
    yield encoder
    encoder.close()


def test_same_vectors_as_in_process(remote) -> None:
    local = load_encoder(load_settings())
    assert remote.model_id == local.model_id and remote.image_model_id == local.image_model_id
    assert remote.device.type == "cpu" and remote.dim == local.dim
    texts = ["a dog on a beach", "a red car"]
    assert np.allclose(
        remote.embed_texts(texts, QUERY_INSTRUCTION),
        local.embed_texts(texts, QUERY_INSTRUCTION),
        atol=1e-6,
    )
    assert np.allclose(remote.embed_images(photos()), local.embed_images(photos()), atol=1e-6)
    # a view with another image budget (as a library tagged at another budget gets)
    view = copy.copy(remote)
    view.min_image_tokens, view.max_image_tokens = 16, 64
    local.min_image_tokens, local.max_image_tokens = 16, 64
    assert np.allclose(view.embed_images(photos()), local.embed_images(photos()), atol=1e-6)
    assert remote.max_image_tokens == 16  # the view did not change the first one


def test_a_dead_model_process_says_so_and_the_pool_loads_a_fresh_one(golden_env) -> None:
    pool = EncoderPool(EncoderProcess)
    settings = load_settings()
    try:
        first = pool.get(settings)
        os.kill(first._process.pid, signal.SIGKILL)
        first._process.join(10)
        with pytest.raises(ModelError, match="stopped unexpectedly"):
            first.embed_texts(["a cat"], QUERY_INSTRUCTION)
        second = pool.get(settings)
        assert second._process is not first._process and second._process.is_alive()
        assert second.embed_texts(["a cat"], QUERY_INSTRUCTION).shape == (1, second.dim)
    finally:
        pool.close()
    assert not second._process.is_alive()


def test_a_model_that_cannot_load_is_a_model_error(golden_env, tmp_path) -> None:
    settings = replace_section(load_settings(), "model", model=str(tmp_path / "nowhere"))
    with pytest.raises(ModelError):
        EncoderProcess(settings)


def test_the_parent_never_imports_torch(golden_env) -> None:
    code = (
        "import sys\n"
        "from albumtagger.config import load_settings\n"
        "from albumtagger.model.encoder import QUERY_INSTRUCTION\n"
        "from albumtagger.model.encoder_process import EncoderProcess\n"
        "if __name__ == '__main__':\n"
        "    e = EncoderProcess(load_settings())\n"
        "    v = e.embed_texts(['a tree'], QUERY_INSTRUCTION)\n"
        "    e.close()\n"
        "    print(v.shape[0], 'torch' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env={**os.environ, **golden_env},
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    assert out.stdout.split() == ["1", "False"]
