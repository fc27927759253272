"""The embedded model (``smollm2-135m``, a GGUF de-quantized into the cache on first load): its shape, a second
load read from the verified cache without converting again, a flipped bit found and converted again, and the
one-time cost of hashing the converted directory."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from cache_stubs import flip_bit
from seed_paths import assert_matches_seed, max_rel_diff, seed_path, subset

from ua_helpers.inputs import _cache, models
from ua_helpers.inputs.extraction import extract
from ua_helpers.inputs.models import load_model

#: Every test here loads the embedded model (~40 s the first time: the conversion).
pytestmark = pytest.mark.slow


def _refuse_conversion(*args, **kwargs):
    raise AssertionError("the GGUF was de-quantized again although its converted cache is complete")


def test_embedded_model_loads_and_a_second_load_reads_the_cache(smollm2, monkeypatch):
    assert smollm2.name == "smollm2-135m" and smollm2.dtype == "float32"
    assert smollm2.num_layers == 30 and smollm2.d_model == 576
    assert smollm2.fingerprint.startswith("gguf:")
    monkeypatch.setattr(models, "_convert_gguf", _refuse_conversion)  # the second load reads the cache only
    again = load_model("smollm2-135m", device="cpu")
    assert again.fingerprint == smollm2.fingerprint
    for p, q in zip(list(smollm2.model.parameters())[:5], list(again.model.parameters())[:5]):
        assert torch.equal(p, q)


def test_embedded_model_flipped_bit_is_reconverted(smollm2, monkeypatch):
    """One flipped exponent bit in the converted weights is found at load; the model is converted again, once."""
    gguf = models.embedded_gguf_path("smollm2-135m")
    converted = models._converted_target(gguf)
    record = json.loads((converted / "complete.json").read_text())
    assert set(record["files"]) >= {"model.safetensors", "config.json", "tokenizer.json"}
    assert smollm2.fingerprint.endswith(f"+st:{_cache.content_digest(record)}")
    weights = converted / "model.safetensors"
    header = int.from_bytes(weights.read_bytes()[:8], "little")
    flip_bit(weights, 8 + header + 4 * 1000 + 3, bit=6)  # a float32 exponent bit of an early tensor
    _cache._file_sha256.cache_clear()  # as a new process would
    conversions = []
    real_convert = models._convert_gguf

    def counting(*args, **kwargs):
        conversions.append(args[0])
        return real_convert(*args, **kwargs)

    monkeypatch.setattr(models, "_convert_gguf", counting)
    with pytest.warns(UserWarning, match=r"model\.safetensors does not match the SHA-256"):
        again = load_model("smollm2-135m", device="cpu")
    assert len(conversions) == 1  # converted again, once
    assert again.fingerprint == smollm2.fingerprint
    for p, q in zip(smollm2.model.parameters(), again.model.parameters()):
        assert torch.equal(p, q)


def test_embedded_model_verification_cost(smollm2):
    """Hashing the converted directory (~540 MB) is what a new process pays once to trust it, and only once."""
    gguf = models.embedded_gguf_path("smollm2-135m")
    converted = models._converted_target(gguf)
    _cache._file_sha256.cache_clear()
    record = _cache.verify_dir(converted)
    first = _cache._file_sha256.cache_info()
    _cache.verify_dir(converted)
    second = _cache._file_sha256.cache_info()
    assert first.misses == len(record["files"])  # every recorded file hashed once
    assert second.misses == first.misses and second.hits == first.hits + first.misses  # then never again


def test_embedded_model_extract_equals_seed_path(smollm2, replication_pairs):
    pairs = subset(replication_pairs, [0, 57, 130, 229])
    layers = list(range(smollm2.num_layers + 1))
    emb, nll, pref = seed_path(smollm2, pairs, layers)
    for batch_size in (1, 3, 32):
        ext = extract(smollm2, pairs, layers="all", batch_size=batch_size, cache=False, progress=False)
        assert_matches_seed(ext, emb, nll, pref)
        print(f"smollm2-135m batch_size={batch_size}: max emb rel diff "
              f"{max_rel_diff(np.concatenate([ext.emb_a, ext.emb_b], axis=1), emb):.2e}, max NLL diff "
              f"{np.abs(np.concatenate([ext.nll_a, ext.nll_b]) - nll).max():.2e}")
