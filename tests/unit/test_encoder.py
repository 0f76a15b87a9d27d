"""The GME encoder against the golden data (tiny random checkpoint, float32 on the CPU)."""

from __future__ import annotations

import json
import logging
import math
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from albumtagger.errors import ImageError, ModelError, UserError
from albumtagger.model import encoder as enc_mod
from albumtagger.model import files as model_files
from albumtagger.model.encoder import (
    DEFAULT_REVISION,
    DOCUMENT_INSTRUCTION,
    QUERY_INSTRUCTION,
    GmeEncoder,
    PreparedImage,
    folder_model_id,
    prepare_image,
    prepare_resized,
    select_device,
    select_dtype,
    target_size,
)

GOLDEN = Path(__file__).resolve().parent.parent / "data" / "gme-golden"
MODEL_DIR = GOLDEN / "model"
TOL = 1e-5


@pytest.fixture(scope="module")
def golden() -> dict:
    meta = json.loads((GOLDEN / "golden.json").read_text(encoding="utf-8"))
    arrays = np.load(GOLDEN / "golden.npz")
    meta["arrays"] = {name: arrays[name] for name in arrays.files}
    return meta


@pytest.fixture(scope="module")
def encoder() -> GmeEncoder:
    return GmeEncoder(str(MODEL_DIR), device="cpu", dtype="float32")


@pytest.fixture(scope="module")
def resized(golden) -> list[PreparedImage]:
    return [
        prepare_resized(Image.open(GOLDEN / "resized" / f"{Path(name).stem}.png"))
        for name in golden["images"]
    ]


def _original(name: str) -> Image.Image:
    with Image.open(GOLDEN / "images" / name) as im:
        return ImageOps.exif_transpose(im).convert("RGB")


def _assert_close(actual: np.ndarray, expected: np.ndarray) -> None:
    assert actual.dtype == np.float32
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, rtol=0, atol=TOL)


# --------------------------------------------------------------------------- texts


def test_constants_and_identity(encoder):
    assert QUERY_INSTRUCTION == "Find an image that matches the given text."
    assert DOCUMENT_INSTRUCTION == "You are a helpful assistant."
    assert len(DEFAULT_REVISION) == 40
    assert encoder.dim == 64
    assert encoder.device == torch.device("cpu")
    assert encoder.dtype == torch.float32
    assert (encoder.min_image_tokens, encoder.max_image_tokens) == (256, 1280)
    assert encoder.model_id.startswith("local:sha256:")
    assert encoder.model_id in encoder.image_model_id
    assert "256-1280" in encoder.image_model_id


def test_prompt_ids_match_golden(encoder, golden):
    for i, text in enumerate(golden["texts"]):
        expected = golden["arrays"][f"query_input_ids_{i}"].tolist()
        assert encoder.prompt_ids(text, QUERY_INSTRUCTION) == expected


def test_text_vectors_match_golden_in_one_batch(encoder, golden):
    texts = golden["texts"]
    _assert_close(encoder.embed_texts(texts), golden["arrays"]["text_query"])
    _assert_close(
        encoder.embed_texts(texts, instruction=DOCUMENT_INSTRUCTION),
        golden["arrays"]["text_document"],
    )


def test_text_vectors_match_golden_alone(encoder, golden):
    for i, text in enumerate(golden["texts"]):
        _assert_close(encoder.embed_texts([text])[0], golden["arrays"]["text_query"][i])
        _assert_close(
            encoder.embed_texts([text], DOCUMENT_INSTRUCTION)[0],
            golden["arrays"]["text_document"][i],
        )


def test_text_vectors_do_not_depend_on_batch_composition(encoder, golden):
    texts = golden["texts"]
    long_text = "a very long description of a crowded market street at night " * 8
    mixed = [long_text, texts[3], "x", *texts[::-1], long_text + "!"]
    vectors = encoder.embed_texts(mixed, batch_size=32)
    expected = golden["arrays"]["text_query"]
    for position, golden_index in {1: 3, 3: 4, 4: 3, 5: 2, 6: 1, 7: 0}.items():
        _assert_close(vectors[position], expected[golden_index])
    alone = encoder.embed_texts([long_text])[0]
    _assert_close(vectors[0], alone)
    _assert_close(vectors[2], encoder.embed_texts(["x"])[0])
    # small batches: results still in input order
    _assert_close(encoder.embed_texts(mixed, batch_size=2), vectors)
    norms = np.linalg.norm(vectors, axis=1)
    np.testing.assert_allclose(norms, 1.0, atol=1e-5)


def test_empty_inputs(encoder):
    assert encoder.embed_texts([]).shape == (0, 64)
    assert encoder.embed_prepared([]).shape == (0, 64)
    assert encoder.embed_images([]).shape == (0, 64)


# --------------------------------------------------------------------------- images


def test_grid_of_resized_images_matches_golden(golden, resized):
    for i, prepared in enumerate(resized):
        assert prepared.grid_thw == tuple(golden["arrays"][f"grid_thw_{i}"].tolist())
        t, h, w = prepared.grid_thw
        assert prepared.pixel_values.dtype == np.float32
        assert prepared.pixel_values.shape == (t * h * w, 3 * 2 * 14 * 14)
        assert prepared.n_tokens == t * h * w // 4


def test_image_vectors_from_resized_match_golden_alone(encoder, golden, resized):
    for i, prepared in enumerate(resized):
        _assert_close(encoder.embed_prepared([prepared])[0], golden["arrays"]["image"][i])


def test_image_vectors_from_resized_match_golden_in_mixed_batch(encoder, golden, resized):
    expected = golden["arrays"]["image"]
    _assert_close(encoder.embed_prepared(resized), expected)
    order = [3, 2, 0, 4, 1]
    _assert_close(encoder.embed_prepared([resized[i] for i in order]), expected[order])


def test_image_vectors_from_originals(encoder, golden):
    expected = golden["arrays"]["image"]
    originals = [_original(name) for name in golden["images"]]
    for i, image in enumerate(originals):
        grid = prepare_image(image, min_tokens=256, max_tokens=1280).grid_thw
        assert grid == tuple(golden["arrays"][f"grid_thw_{i}"].tolist()), golden["images"][i]
    vectors = encoder.embed_images(originals, batch_size=2)
    cosines = (vectors * expected).sum(axis=1)
    assert cosines.min() >= 0.999, dict(zip(golden["images"], cosines.tolist(), strict=True))


def test_prepare_image_is_thread_safe(golden):
    originals = [_original(name) for name in golden["images"]] * 3
    serial = [prepare_image(im).pixel_values for im in originals]
    with ThreadPoolExecutor(max_workers=4) as pool:
        parallel = list(pool.map(lambda im: prepare_image(im).pixel_values, originals))
    for a, b in zip(serial, parallel, strict=True):
        np.testing.assert_array_equal(a, b)


def test_prepare_image_converts_mode():
    rgba = Image.new("RGBA", (300, 200), (10, 200, 30, 128))
    prepared = prepare_image(rgba)
    expected = prepare_image(rgba.convert("RGB"))
    np.testing.assert_array_equal(prepared.pixel_values, expected.pixel_values)


def test_prepare_resized_refuses_other_sizes():
    with pytest.raises(ImageError):
        prepare_resized(Image.new("RGB", (300, 200)))


def _pil_processor():
    import transformers

    cls = getattr(transformers, "Qwen2VLImageProcessorPil", None)
    if cls is None:  # older transformers: the PIL processor has the plain name
        cls = transformers.Qwen2VLImageProcessor
    return cls(min_pixels=256 * 28 * 28, max_pixels=1280 * 28 * 28)


def _fetch_image_reference(image: Image.Image) -> Image.Image:
    """The published recipe's first resize (qwen_vl_utils.fetch_image), written out here."""
    factor, min_pixels, max_pixels = 28, 4 * 28 * 28, 16384 * 28 * 28
    height, width = image.height, image.width
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h_bar = math.floor(height / beta / factor) * factor
        w_bar = math.floor(width / beta / factor) * factor
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return image.resize((w_bar, h_bar), Image.Resampling.BICUBIC)


def test_preprocessing_matches_transformers_pil_processor(golden):
    processor = _pil_processor()
    for name in golden["images"]:
        resized_image = Image.open(GOLDEN / "resized" / f"{Path(name).stem}.png").convert("RGB")
        ref = processor(images=[resized_image], return_tensors="np")
        ours = prepare_resized(resized_image)
        assert tuple(ref["image_grid_thw"][0].tolist()) == ours.grid_thw
        np.testing.assert_allclose(ours.pixel_values, ref["pixel_values"], rtol=0, atol=1e-5)
        # from the original: the recipe's two resizes give the grid our one resize gives
        original = _original(name)
        ref = processor(images=[_fetch_image_reference(original)], return_tensors="np")
        assert tuple(ref["image_grid_thw"][0].tolist()) == prepare_image(original).grid_thw


# --------------------------------------------------------------------------- target_size


@pytest.mark.parametrize(
    "size",
    [(640, 480), (480, 640), (4032, 3024), (3024, 4032), (6000, 4000), (12000, 9000),
     (1920, 1080), (1080, 2400), (512, 512), (300, 1000), (40, 56), (1, 1), (10, 7),
     (5000, 200), (200, 5000), (2400, 1800)],
)  # fmt: skip
def test_target_size_properties(size):
    width, height = size
    w, h = target_size(width, height)
    assert w % 28 == 0 and h % 28 == 0
    tokens = (w // 28) * (h // 28)
    assert 256 <= tokens <= 1280, (size, (w, h), tokens)
    # aspect ratio kept as well as a 28-pixel grid allows
    assert abs(math.log((w / h) / (width / height))) <= math.log(1 + 2 * 28 / min(w, h)) + 1e-9


def test_target_size_scales_up_and_down():
    w, h = target_size(20, 20)
    assert (w // 28) * (h // 28) >= 256 and w == h
    w, h = target_size(12000, 9000)
    assert (w // 28) * (h // 28) <= 1280 and w > h
    assert target_size(644, 476) == (644, 476)  # already fits: unchanged


def test_target_size_custom_budget():
    w, h = target_size(4032, 3024, min_tokens=64, max_tokens=128)
    assert 64 <= (w // 28) * (h // 28) <= 128
    w, h = target_size(100, 100, min_tokens=1024, max_tokens=4096)
    assert (w // 28) * (h // 28) >= 1024


def test_target_size_extreme_panorama_is_clamped():
    # the recipe squashes it to 200:1 before fitting the token budget (which may widen it
    # again by rounding up), instead of refusing it
    w, h = target_size(100_000, 300)
    assert w % 28 == 0 and h % 28 == 0
    assert w / h < 300
    assert 256 <= (w // 28) * (h // 28) <= 1280


def test_target_size_rejects_bad_input():
    with pytest.raises(ImageError):
        target_size(0, 10)
    with pytest.raises(UserError):
        target_size(10, 10, min_tokens=100, max_tokens=10)


# --------------------------------------------------------------------------- back-off


def _fail_when(encoder, monkeypatch, predicate, exc_factory):
    """Make encoder._forward raise for batches matching predicate; record every call."""
    calls: list[tuple[int, bool]] = []
    real = encoder._forward

    def forward(batch):
        if predicate(batch):
            calls.append((len(batch), False))
            raise exc_factory()
        calls.append((len(batch), True))
        return real(batch)

    monkeypatch.setattr(encoder, "_forward", forward)
    monkeypatch.setattr(encoder, "_batch_token_limit", None)
    return calls


def test_oom_back_off_halves_batches(encoder, golden, resized, monkeypatch):
    items = resized + resized[:3]  # 8 images
    expected = golden["arrays"]["image"][[0, 1, 2, 3, 4, 0, 1, 2]]
    calls = _fail_when(
        encoder,
        monkeypatch,
        lambda batch: len(batch) > 2,
        lambda: torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"),
    )
    vectors = encoder.embed_prepared(items)
    _assert_close(vectors, expected)
    assert [n for n, ok in calls if not ok] == [8, 4, 4]
    assert [n for n, ok in calls if ok] == [2, 2, 2, 2]
    assert sum(n for n, ok in calls if ok) == len(items)  # none lost, none done twice
    assert encoder.device.type == "cpu"


def test_oom_back_off_remembers_what_fits(encoder, resized, monkeypatch):
    calls = _fail_when(
        encoder,
        monkeypatch,
        lambda batch: len(batch) > 1,
        lambda: RuntimeError("MPS backend out of memory (MPS allocated: 1 GB)"),
    )
    first = encoder.embed_prepared(resized[:2])
    assert [ok for _, ok in calls] == [False, True, True]
    calls.clear()
    second = encoder.embed_prepared(resized[:2])  # split up front this time
    assert [ok for _, ok in calls] == [True, True]
    _assert_close(second, first)


def test_other_errors_are_not_swallowed(encoder, resized, monkeypatch):
    calls = _fail_when(encoder, monkeypatch, lambda batch: True, lambda: RuntimeError("boom"))
    with pytest.raises(RuntimeError, match="boom"):
        encoder.embed_prepared(resized[:2])
    assert len(calls) == 1


def test_oom_on_single_image_falls_back_to_cpu(encoder, golden, resized, monkeypatch, caplog):
    monkeypatch.setattr(encoder, "device", torch.device("cuda"))
    monkeypatch.setattr(enc_mod, "select_dtype", lambda requested, device: torch.float32)
    calls = _fail_when(
        encoder,
        monkeypatch,
        lambda batch: encoder.device.type == "cuda",
        lambda: torch.cuda.OutOfMemoryError("CUDA out of memory"),
    )
    with caplog.at_level(logging.WARNING, logger=enc_mod.__name__):
        vectors = encoder.embed_prepared(resized[:3])
    _assert_close(vectors, golden["arrays"]["image"][:3])
    assert [ok for _, ok in calls] == [False, False, True, True]
    assert sum(n for n, ok in calls if ok) == 3
    assert encoder.device.type == "cpu"
    assert encoder.dtype == torch.float32
    assert any("moving the model to the CPU" in r.getMessage() for r in caplog.records)


def test_oom_on_single_item_on_cpu_is_a_model_error(encoder, resized, monkeypatch):
    _fail_when(encoder, monkeypatch, lambda batch: True, lambda: MemoryError())
    with pytest.raises(ModelError, match="image token budget"):
        encoder.embed_prepared(resized[:1])


def test_from_model_wraps_a_loaded_model(encoder, golden, resized):
    other = GmeEncoder.from_model(encoder._model, encoder._tokenizer, model_id="test")
    assert other.model_id == "test" and other.dim == encoder.dim
    _assert_close(other.embed_texts(golden["texts"]), golden["arrays"]["text_query"])
    _assert_close(other.embed_prepared(resized[:2]), golden["arrays"]["image"][:2])


# --------------------------------------------------------------------------- devices


def test_select_device_explicit():
    assert select_device("cpu") == torch.device("cpu")
    assert select_device("CPU") == torch.device("cpu")
    assert select_device("auto").type in ("cuda", "mps", "cpu")
    with pytest.raises(UserError):
        select_device("tpu")
    with pytest.raises(UserError):
        select_device("not a device")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_select_device_cuda_missing():
    with pytest.raises(UserError, match="cuda"):
        select_device("cuda")


def test_select_dtype_explicit():
    cpu = torch.device("cpu")
    assert select_dtype("float32", cpu) == torch.float32
    assert select_dtype("fp32", "cpu") == torch.float32
    assert select_dtype("bfloat16", cpu) == torch.bfloat16
    assert select_dtype("bf16", cpu) == torch.bfloat16
    assert select_dtype("float16", cpu) == torch.float16
    assert select_dtype(torch.bfloat16, cpu) == torch.bfloat16
    assert select_dtype("auto", torch.device("mps")) == torch.float32
    with pytest.raises(UserError):
        select_dtype("int8", cpu)


def test_select_dtype_auto(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(enc_mod, "cpu_has_fast_bf16", lambda: False)
    assert select_dtype("auto", cpu) == torch.float32
    monkeypatch.setattr(enc_mod, "cpu_has_fast_bf16", lambda: True)
    assert select_dtype("auto", cpu) == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert select_dtype("auto", torch.device("cuda")) == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert select_dtype("auto", torch.device("cuda")) == torch.float32


# --------------------------------------------------------------------------- model errors


def test_missing_folder_is_a_model_error(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        GmeEncoder(str(tmp_path / "no-such-model"), device="cpu")


def test_folder_without_config_is_a_model_error(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(ModelError, match=r"no config\.json"):
        GmeEncoder(str(tmp_path), device="cpu")


def test_non_qwen2_vl_folder_is_a_model_error(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "bert"}', encoding="utf-8")
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(ModelError, match="bert model, not a Qwen2-VL"):
        GmeEncoder(str(tmp_path), device="cpu")


def test_folder_without_safetensors_is_a_model_error(tmp_path):
    shutil.copy(MODEL_DIR / "config.json", tmp_path / "config.json")
    (tmp_path / "pytorch_model.bin").write_bytes(b"")
    with pytest.raises(ModelError, match="safetensors"):
        GmeEncoder(str(tmp_path), device="cpu")


def test_unknown_hub_id_offline_is_a_model_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelError, match="not downloaded") as info:
        GmeEncoder("nobody-here/not-a-gme-model", device="cpu")
    assert "choose that folder as the model" in str(info.value)
    assert info.value.setting == "model"  # the CLI names its option, the app its field
    assert "download" in str(info.value)


def test_progress_callback_and_budget():
    messages = []
    encoder = GmeEncoder(
        str(MODEL_DIR),
        device="cpu",
        dtype="float32",
        min_image_tokens=64,
        max_image_tokens=128,
        progress=lambda message, done, total: messages.append(message),
    )
    assert any(m.startswith("Loading model") for m in messages)
    assert any(m.startswith("Model ready on cpu") for m in messages)
    prepared = prepare_image(_original("large.jpg"), min_tokens=64, max_tokens=128)
    assert 64 <= prepared.n_tokens <= 128
    vector = encoder.embed_images([_original("large.jpg")])[0]
    _assert_close(vector, encoder.embed_prepared([prepared])[0])
    assert "64-128" in encoder.image_model_id


def test_invalid_token_budget_is_a_user_error():
    with pytest.raises(UserError):
        GmeEncoder(str(MODEL_DIR), device="cpu", min_image_tokens=2000, max_image_tokens=1000)


# --------------------------------------------------------------------------- model id


def test_folder_model_id_survives_copy_but_not_new_weights(encoder, tmp_path, monkeypatch):
    copy = tmp_path / "renamed-copy"
    shutil.copytree(MODEL_DIR, copy)
    assert folder_model_id(copy) == encoder.model_id
    weights = copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    changed = folder_model_id(copy)
    assert changed != encoder.model_id
    # large files are sampled, not read whole: a changed region still shows
    monkeypatch.setattr(model_files, "_FULL_HASH_LIMIT", 1024)
    sampled = folder_model_id(copy)
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    assert folder_model_id(copy) != sampled


def test_hub_cache_folder_model_id(tmp_path):
    commit = "0123456789abcdef0123456789abcdef01234567"
    snapshot = tmp_path / "models--Some-Org--some-model" / "snapshots" / commit
    snapshot.mkdir(parents=True)
    assert folder_model_id(snapshot) == f"Some-Org/some-model@{commit}"


def test_hub_id_loads_from_the_cache_offline(monkeypatch, tmp_path, golden):
    from huggingface_hub import constants

    commit = "89abcdef0123456789abcdef0123456789abcdef"
    repo = tmp_path / "hub" / "models--test-org--gme-tiny"
    shutil.copytree(MODEL_DIR, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit, encoding="utf-8")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.chdir(tmp_path)
    encoder = GmeEncoder("test-org/gme-tiny", device="cpu", dtype="float32", local_files_only=True)
    assert encoder.model_id == f"test-org/gme-tiny@{commit}"
    _assert_close(encoder.embed_texts(golden["texts"][:2]), golden["arrays"]["text_query"][:2])
    pinned = GmeEncoder("test-org/gme-tiny", revision=commit, device="cpu", local_files_only=True)
    assert pinned.model_id == encoder.model_id
    with pytest.raises(ModelError, match="not downloaded"):
        GmeEncoder("test-org/gme-tiny", revision="f" * 40, device="cpu", local_files_only=True)


# --------------------------------------------------------------------------- speed choices


def test_automatic_budget_by_device():
    assert enc_mod.auto_image_budget("cpu") == (64, 256)
    assert enc_mod.auto_image_budget("cuda") == (256, 1280)
    assert enc_mod.auto_image_budget("mps") == (256, 1280)
    resolve = enc_mod.resolve_image_budget
    assert resolve(0, 0, "cpu") == (64, 256)
    assert resolve(0, 0, "cuda") == (256, 1280)
    assert resolve(0, 128, "cpu") == (64, 128)
    assert resolve(0, 32, "cpu") == (32, 32)
    assert resolve(512, 0, "cpu") == (512, 512)
    assert resolve(100, 0, "cuda") == (100, 1280)
    assert resolve(16, 48, "cuda") == (16, 48)  # given ends always win


def test_cuda_selection_without_a_gpu(monkeypatch):
    """Device, dtype, budget, batch size and first pass as a CUDA machine gets them."""
    from types import SimpleNamespace

    from albumtagger.config import Settings, replace_section
    from albumtagger.model.loading import default_batch_size
    from albumtagger.service.indexing import first_pass_budget

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    device = select_device("auto")
    assert device.type == "cuda"
    assert select_device("cuda:0") == torch.device("cuda:0")
    assert select_dtype("auto", device) == torch.bfloat16
    low, high = enc_mod.resolve_image_budget(0, 0, device.type)
    assert (low, high) == (256, 1280)
    gpu = SimpleNamespace(device=device, min_image_tokens=low, max_image_tokens=high)
    assert default_batch_size(gpu, 0) == 16
    assert default_batch_size(gpu, 3) == 3
    assert first_pass_budget(Settings(), gpu) is None  # coarse first: CPU only by default
    forced = replace_section(Settings(), "model", coarse_first="on")
    assert first_pass_budget(forced, gpu) == (64, 64)
    with pytest.raises(UserError, match="CPU only"):
        enc_mod.select_precision("int8", torch.device("cuda:0"))

    cpu = SimpleNamespace(device=torch.device("cpu"), min_image_tokens=64, max_image_tokens=256)
    assert default_batch_size(cpu, 0) == 2
    assert first_pass_budget(Settings(), cpu) == (64, 64)
    off = replace_section(Settings(), "model", coarse_first="off")
    assert first_pass_budget(off, cpu) is None
    small = SimpleNamespace(device=torch.device("cpu"), min_image_tokens=4, max_image_tokens=16)
    assert first_pass_budget(Settings(), small) is None  # nothing smaller to start with


def test_int8_weights_stay_close_to_float32(encoder, golden):
    """Dynamic int8 linear weights: cosine >= 0.99 to float32 on the golden images."""
    int8 = GmeEncoder(str(MODEL_DIR), device="cpu", dtype="int8")
    assert int8.precision == "int8" and encoder.precision == "float32"
    images = [_original(name) for name in golden["images"]]
    cos = (int8.embed_images(images) * encoder.embed_images(images)).sum(1)
    assert cos.min() >= 0.99
    texts = ["a dog", "a beach at sunset"]
    assert (int8.embed_texts(texts) * encoder.embed_texts(texts)).sum(1).min() >= 0.99


def test_prepare_from_a_draft_decode_keeps_the_full_photos_grid():
    """A photo decoded smaller (JPEG draft) gets the grid of the whole photo."""
    rng = np.random.default_rng(3)
    full = Image.fromarray(rng.integers(0, 255, (3024, 4032, 3), dtype=np.uint8), "RGB")
    small = full.resize((504, 378), Image.Resampling.BOX)
    for low, high in ((64, 64), (256, 256), (64, 256), (256, 1280)):
        expected = prepare_image(full, min_tokens=low, max_tokens=high).grid_thw
        got = prepare_image(small, min_tokens=low, max_tokens=high, full_size=full.size)
        assert got.grid_thw == expected
