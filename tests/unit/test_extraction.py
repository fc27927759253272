"""Batched extraction against the seed's unbatched path; layer and input validation; the on-disk cache."""
from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

import seed_reference as seed
from seed_paths import EMB_RTOL, NLL_ATOL, assert_matches_seed, max_rel_diff, seed_path, subset
from ua_helpers import _io
from ua_helpers.inputs import batching, extraction
from ua_helpers.inputs.data import PairSet
from ua_helpers.inputs.extraction import cache_key, extract, get_layer_embedding, get_nll, resolve_layers


# --------------------------------------------------------------------------- equivalence with the seed
@pytest.fixture(scope="module")
def tiny_seed(tiny_lm, small_pairs):
    layers = list(range(tiny_lm.num_layers + 1))
    return layers, *seed_path(tiny_lm, small_pairs, layers)


def test_small_pairs_have_varied_lengths(tiny_lm, small_pairs):
    lengths = [len(tiny_lm.tokenizer(t)["input_ids"]) for t in small_pairs.stmt_a + small_pairs.stmt_b]
    assert min(lengths) <= 4 and max(lengths) >= 40  # padding is really exercised


@pytest.mark.parametrize("batch_size", [1, 3, 32])
def test_batched_extract_equals_seed_path(tiny_lm, small_pairs, tiny_seed, batch_size):
    layers, emb, nll, pref = tiny_seed
    ext = extract(tiny_lm, small_pairs, layers="all", batch_size=batch_size, cache=False, progress=False)
    assert ext.layers == layers
    assert ext.emb_a.shape == (len(layers), small_pairs.n_pairs, tiny_lm.d_model)
    assert_matches_seed(ext, emb, nll, pref)


def test_extract_token_counts_and_layer_access(tiny_lm, small_pairs):
    ext = extract(tiny_lm, small_pairs, layers=[1, 3], cache=False, progress=False)
    expected = [len(tiny_lm.tokenizer(t)["input_ids"]) for t in small_pairs.stmt_a]
    np.testing.assert_array_equal(ext.n_tokens_a, expected)
    a, b = ext.layer(3)
    np.testing.assert_array_equal(a, ext.emb_a[1])
    np.testing.assert_array_equal(b, ext.emb_b[1])
    with pytest.raises(ValueError, match="layer 2 was not extracted"):
        ext.layer(2)


def test_last_token_pooling(tiny_lm, small_pairs):
    import torch

    ext = extract(tiny_lm, small_pairs, layers="all", pooling="last", batch_size=5, cache=False,
                  progress=False)
    texts = list(small_pairs.stmt_a) + list(small_pairs.stmt_b)
    ref = []
    for text in texts:
        inputs = tiny_lm.tokenizer(text, return_tensors="pt")
        with torch.no_grad():
            hidden = tiny_lm.model(**inputs, output_hidden_states=True).hidden_states
        ref.append([h[0, -1].numpy() for h in hidden])
    ref = np.transpose(np.array(ref), (1, 0, 2))  # [layer, statement, d_model]
    ours = np.concatenate([ext.emb_a, ext.emb_b], axis=1)
    assert max_rel_diff(ours, ref) <= EMB_RTOL
    mean = extract(tiny_lm, small_pairs, layers="all", cache=False, progress=False)
    assert not np.allclose(mean.emb_a, ext.emb_a)  # the option really changes the pooling


def test_reference_functions_are_the_seeds(tiny_lm, small_pairs):
    """The package's reference path (``extraction.get_*``) is the seed's code."""
    text_a, text_b = small_pairs.stmt_a[0], small_pairs.stmt_b[0]
    for layer in (0, tiny_lm.num_layers):
        np.testing.assert_array_equal(
            extraction.get_layer_embedding(text_a, tiny_lm.model, tiny_lm.tokenizer, layer),
            seed.get_layer_embedding(text_a, tiny_lm.model, tiny_lm.tokenizer, layer))
    assert extraction.get_output_preference(text_a, text_b, tiny_lm.model, tiny_lm.tokenizer) == \
        seed.get_output_preference(text_a, text_b, tiny_lm.model, tiny_lm.tokenizer)


# --------------------------------------------------------------------------- layers and inputs
@pytest.mark.parametrize("spec, num_layers, expected", [
    ("paper", 32, [0, 4, 8, 12, 16, 20, 24, 28, 32]),  # the seed's LAYERS_TO_TEST for Pythia-6.9B
    ("paper", 30, [0, 4, 8, 12, 16, 20, 24, 28, 30]),  # the last block is always included
    ("paper", 4, [0, 4]),
    ("all", 4, [0, 1, 2, 3, 4]),
    (" ALL ", 2, [0, 1, 2]),
    ([3, 1, 1], 4, [1, 3]),
    ((0, 4), 4, [0, 4]),
    (np.array([2, 0]), 4, [0, 2]),
    ("1, 3", 4, [1, 3]),
    ("2", 4, [2]),
    (2, 4, [2]),
])
def test_resolve_layers(spec, num_layers, expected):
    assert resolve_layers(spec, num_layers) == expected


@pytest.mark.parametrize("spec, match", [
    ([0, 5], r"layer 5 is out of range.*0\.\.4"),
    ("-1", r"layer -1 is out of range.*0\.\.4"),
    (7, r"layer 7 is out of range.*0\.\.4"),
    ("one,two", "'paper', 'all' or a list of integers"),
    ([1.5], "not an integer"),
    ([True], "not an integer"),
    ([], "no layers"),
])
def test_resolve_layers_errors(spec, match):
    with pytest.raises(ValueError, match=match):
        resolve_layers(spec, 4)


def test_extract_layer_out_of_range_names_layer_and_range(tiny_lm, small_pairs):
    with pytest.raises(ValueError, match=r"layer 9 .*0\.\.4"):
        extract(tiny_lm, small_pairs, layers=[0, 9], cache=False, progress=False)


def test_too_short_statement_names_pair_side_and_category(tiny_lm):
    assert len(tiny_lm.tokenizer("A")["input_ids"]) == 1
    pairs = PairSet(["The sky is blue today.", "Water boils at a high temperature.", "Cats purr."],
                    ["Grass is green.", "A", "Dogs bark loudly."],
                    ["colours", "physics", "animals"], sha256="short", source="test", name="short")
    with pytest.raises(ValueError, match=r"statement B of pair 1 \(category 'physics'\) has 1 token"):
        extract(tiny_lm, pairs, layers="all", cache=False, progress=False)


@pytest.mark.parametrize("kwargs, match", [
    ({"pooling": "max"}, "pooling must be one of"),
    ({"pooling": "Mean"}, "pooling must be one of"),
    ({"batch_size": 0}, "batch_size must be a positive integer"),
    ({"batch_size": -3}, "batch_size must be a positive integer"),
    ({"batch_size": 2.5}, "batch_size must be a positive integer"),
    ({"batch_size": "8"}, "batch_size must be a positive integer"),
])
def test_bad_pooling_and_batch_size(tiny_lm, small_pairs, kwargs, match):
    with pytest.raises(ValueError, match=match):
        extract(tiny_lm, small_pairs, cache=False, progress=False, **kwargs)


# --------------------------------------------------------------------------- the cache
@pytest.fixture
def count_forward(monkeypatch):
    """Count calls of the batched forward pass."""
    calls = []
    original = extraction._forward_batch

    def counting(*args, **kwargs):
        calls.append(len(args[1]))
        return original(*args, **kwargs)

    monkeypatch.setattr(extraction, "_forward_batch", counting)
    return calls


def test_second_extract_comes_from_cache(tiny_lm, small_pairs, tmp_path, monkeypatch, count_forward):
    monkeypatch.setenv("UA_CACHE_DIR", str(tmp_path))
    first = extract(tiny_lm, small_pairs, layers="paper", batch_size=8, progress=False)
    n_calls = len(count_forward)
    assert n_calls == 3 and sum(count_forward) == 2 * small_pairs.n_pairs  # one pass per statement
    path = tmp_path / "extractions" / f"extraction-{first.meta['cache_key']}.npz"
    assert first.meta["cache_file"] == str(path) and path.is_file()
    second = extract(tiny_lm, small_pairs, layers="paper", batch_size=8, progress=False)
    assert len(count_forward) == n_calls  # no forward pass
    assert second.meta["cache_file"] == str(path)
    for name, value in first.arrays().items():
        np.testing.assert_array_equal(second.arrays()[name], value, err_msg=name)
    assert second.layers == first.layers
    assert second.meta["model"] == tiny_lm.describe()
    assert second.meta["dataset"]["sha256"] == small_pairs.sha256
    # batch_size does not change the numbers, so it is not part of the key
    third = extract(tiny_lm, small_pairs, layers="paper", batch_size=2, progress=False)
    assert len(count_forward) == n_calls and third.meta["cache_file"] == str(path)


def test_cache_key_depends_on_everything_that_determines_the_numbers(tiny_lm, small_pairs, replication_pairs,
                                                                      tmp_path, count_forward):
    base = dict(fingerprint=tiny_lm.fingerprint, dtype="float32", dataset_sha256=small_pairs.sha256,
                layers=[0, 4], pooling="mean")
    key = cache_key(**base)
    assert cache_key(**base) == key
    for change in ({"layers": [0, 3]}, {"layers": "all"}, {"pooling": "last"}, {"dtype": "float16"},
                   {"dataset_sha256": replication_pairs.sha256}, {"fingerprint": "hub:other@main"},
                   {"representation": "token-embeddings"}, {"representation": "random-tokens"}, {"prefix": "bos"}):
        assert cache_key(**{**base, **change}) != key, change
    # the seed draws random-token vectors only: it keys that representation and no other
    assert cache_key(**base, seed=7) == key
    rt = {**base, "representation": "random-tokens"}
    assert cache_key(**rt, seed=7) != cache_key(**rt, seed=8)
    # and through extract: each variation is computed, none is served the other's file
    keys = set()
    for layers, pooling, pairs in (([0, 4], "mean", small_pairs), ([1, 4], "mean", small_pairs),
                                   ([0, 4], "last", small_pairs), ([0, 4], "mean", subset(small_pairs, range(6)))):
        before = len(count_forward)
        ext = extract(tiny_lm, pairs, layers=layers, pooling=pooling, cache=tmp_path, progress=False)
        assert len(count_forward) > before
        keys.add(ext.meta["cache_key"])
    assert len(keys) == 4 and len(list(tmp_path.glob("extraction-*.npz"))) == 4


def test_model_fingerprint_changes_with_the_weights(tiny_model_dir, tmp_path):
    import shutil

    from ua_helpers.inputs.models import model_fingerprint

    copy = shutil.copytree(tiny_model_dir, tmp_path / "copy")
    assert model_fingerprint(str(copy)) != model_fingerprint(str(tiny_model_dir))  # another directory
    before = model_fingerprint(str(copy))
    (copy / "model.safetensors").write_bytes((copy / "model.safetensors").read_bytes() + b"\0")
    assert model_fingerprint(str(copy)) != before


def test_interrupted_cache_write_leaves_nothing_behind(tiny_lm, small_pairs, tmp_path, monkeypatch,
                                                      count_forward):
    def broken_savez(file, *args, **kwargs):
        file.write(b"PK\x03\x04 half an npz")
        raise KeyboardInterrupt("simulated crash while writing the cache")

    with monkeypatch.context() as m:
        m.setattr(np, "savez", broken_savez)
        with pytest.raises(KeyboardInterrupt):
            extract(tiny_lm, small_pairs, layers=[0, 2], cache=tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []  # neither the final file nor a temporary one
    key = cache_key(tiny_lm.fingerprint, tiny_lm.dtype, small_pairs.sha256, [0, 2], "mean")
    assert extraction.load_cached(key, tmp_path) is None
    before = len(count_forward)
    ext = extract(tiny_lm, small_pairs, layers=[0, 2], cache=tmp_path, progress=False)
    assert len(count_forward) > before  # recomputed
    assert ext.meta["cache_file"] == str(tmp_path / f"extraction-{key}.npz")
    assert extraction.load_cached(key, tmp_path) is not None


@pytest.mark.parametrize("damage", ["garbage", "truncated", "missing_array"])
def test_corrupt_cache_file_is_ignored_with_a_warning(tiny_lm, small_pairs, tmp_path, count_forward, damage):
    good = extract(tiny_lm, small_pairs, layers=[0, 4], cache=tmp_path, progress=False)
    path = tmp_path / f"extraction-{good.meta['cache_key']}.npz"
    raw = path.read_bytes()
    if damage == "garbage":
        path.write_bytes(b"not an npz file at all")
    elif damage == "truncated":
        path.write_bytes(raw[: len(raw) // 2])
    else:
        arrays, meta = _io.load_arrays(path)
        del arrays["emb_b"]
        _io.save_arrays(path, arrays, meta)
    before = len(count_forward)
    with pytest.warns(UserWarning, match="ignoring unreadable extraction cache"):
        again = extract(tiny_lm, small_pairs, layers=[0, 4], cache=tmp_path, progress=False)
    assert len(count_forward) > before  # recomputed
    np.testing.assert_array_equal(again.emb_b, good.emb_b)
    assert extraction.load_cached(good.meta["cache_key"], tmp_path) is not None  # and repaired


def test_cache_file_holds_no_pickled_objects(tiny_lm, small_pairs, tmp_path):
    ext = extract(tiny_lm, small_pairs, layers=[0, 4], cache=tmp_path, progress=False)
    with np.load(ext.meta["cache_file"], allow_pickle=False) as z:
        assert set(z.files) >= {"nll_a", "nll_b", "n_tokens_a", "n_tokens_b", "emb_a", "emb_b", "layers",
                                "__meta__"}
        assert all(z[name].dtype != object for name in z.files)
        assert z["emb_a"].dtype == np.float32
    arrays, meta = _io.load_arrays(ext.meta["cache_file"])
    assert meta["cache_key"] == ext.meta["cache_key"] and meta["layers"] == [0, 4]


def test_load_arrays_refuses_pickles(tmp_path):
    path = tmp_path / "objects.npz"
    np.savez(path, evil=np.array([{"a": 1}], dtype=object), __meta__=np.array("{}"))
    with pytest.raises(ValueError, match="allow_pickle"):
        _io.load_arrays(path)


def test_save_arrays_roundtrip_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "a.npz"
    _io.save_arrays(path, {"x": np.arange(3)}, {"k": np.float32(1.5), "bad": float("nan")})
    arrays, meta = _io.load_arrays(path)
    np.testing.assert_array_equal(arrays["x"], [0, 1, 2])
    assert meta == {"k": 1.5, "bad": None}

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", fail)
    with pytest.raises(OSError, match="disk full"):
        _io.save_arrays(path, {"x": np.arange(5)}, {})
    arrays, _ = _io.load_arrays(path)  # the old file is intact
    np.testing.assert_array_equal(arrays["x"], [0, 1, 2])
    assert [p.name for p in tmp_path.iterdir()] == ["a.npz"]


# --------------------------------------------------------------------------- bounds: context and memory
def test_context_length_is_the_models_position_limit(tiny_lm):
    assert tiny_lm.model.config.max_position_embeddings == 512
    assert tiny_lm.tokenizer.model_max_length > 10**9  # transformers' "not set"
    assert batching.context_length(tiny_lm) == 512


def test_statement_longer_than_the_context_is_refused_naming_the_pair(tiny_lm, small_pairs):
    long_text = " ".join(small_pairs.stmt_a) * 3
    n_tokens = len(tiny_lm.tokenizer(long_text)["input_ids"])
    assert n_tokens > 512
    pairs = PairSet(list(small_pairs.stmt_a[:3]), [small_pairs.stmt_b[0], long_text, small_pairs.stmt_b[2]],
                    list(small_pairs.category[:3]), sha256="long", source="test", name="long")
    with pytest.raises(ValueError, match=rf"statement B of pair 1 \(category '{small_pairs.category[1]}'\) has "
                                         rf"{n_tokens} tokens, more than the 512 of .*context"):
        extract(tiny_lm, pairs, layers="all", cache=False, progress=False)


@pytest.mark.parametrize("batch_size", [1, 3, 8, 32])
def test_batches_are_todays_slices_where_the_budget_does_not_bind(batch_size):
    lengths = np.random.default_rng(0).integers(2, 60, size=50)
    order = np.argsort(lengths, kind="stable")
    planned = batching.plan_batches(lengths, batch_size, 10**18, per_token=1000, per_pair=16)
    expected = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    assert [list(b) for b in planned] == [list(b) for b in expected]


def test_batches_respect_the_memory_budget_whatever_batch_size_says():
    rng = np.random.default_rng(1)
    lengths = np.concatenate([rng.integers(2, 30, size=200), [400, 450, 2000]])
    per_token, per_pair, budget = 600_000, 36, 200 * 2**20
    planned = batching.plan_batches(lengths, 100_000, budget, per_token, per_pair)
    assert sorted(np.concatenate(planned).tolist()) == list(range(len(lengths)))  # each statement once
    for batch in planned:
        t = lengths[batch].max()
        cost = len(batch) * (t * per_token + t * t * per_pair)
        assert cost <= budget or len(batch) == 1, (len(batch), t, cost)
    assert [len(b) for b in planned if lengths[b].max() == 2000] == [1]  # alone, though over the budget
    assert len(planned) > 3


def test_budget_changes_batches_not_results(tiny_lm, small_pairs, tiny_seed, count_forward, monkeypatch):
    """Default budget: the same batches (and bit-identical numbers) as slicing by count; a tight budget: more,
    smaller batches whose numbers still equal the seed's path."""
    layers, emb, nll, pref = tiny_seed
    default = extract(tiny_lm, small_pairs, layers="all", batch_size=8, cache=False, progress=False)
    n_default = list(count_forward)
    with monkeypatch.context() as m:  # the previous batching: slices of the length order
        m.setattr(extraction, "plan_batches", lambda lengths, bs, *args: [
            o[i : i + bs] for o in [np.argsort(lengths, kind="stable")] for i in range(0, len(o), bs)])
        sliced = extract(tiny_lm, small_pairs, layers="all", batch_size=8, cache=False, progress=False)
    for name, value in default.arrays().items():
        np.testing.assert_array_equal(sliced.arrays()[name], value, err_msg=name)
    assert default.meta["n_batches"] == len(n_default) == 3
    per_token, per_pair = batching.bytes_per_token(tiny_lm)
    budget = 20 * per_token + 400 * per_pair  # room for one statement of 20 tokens
    count_forward.clear()
    tight = extract(tiny_lm, small_pairs, layers="all", batch_size=8, cache=False, progress=False,
                    max_batch_bytes=budget)
    assert len(count_forward) > len(n_default) and tight.meta["max_batch_bytes"] == budget
    assert_matches_seed(tight, emb, nll, pref)


@pytest.mark.parametrize("value", [0, -1, 2.5, True, "1e9"])
def test_bad_max_batch_bytes(tiny_lm, small_pairs, value):
    with pytest.raises(ValueError, match="max_batch_bytes must be a positive integer"):
        extract(tiny_lm, small_pairs, cache=False, progress=False, max_batch_bytes=value)


def test_bytes_per_token_counts_logits_and_hidden_states(tiny_lm):
    per_token, per_pair = batching.bytes_per_token(tiny_lm)
    vocab = tiny_lm.model.config.vocab_size
    assert per_token == 12 * vocab + (tiny_lm.num_layers + 1) * tiny_lm.d_model * 4
    assert per_pair == 4 * tiny_lm.model.config.num_attention_heads


# --------------------------------------------------------------------------- the seed-path check of a run
from ua_helpers.inputs import seedcheck  # noqa: E402


def test_seed_tolerances_follow_precision_and_depth():
    e32, p32 = seedcheck.seed_tolerances("float32", 30, [2.0, 20.0])
    assert e32 == pytest.approx(seedcheck.EMB_FACTOR * np.sqrt(31) * 2.0**-23, rel=1e-12)
    np.testing.assert_allclose(p32, seedcheck.PREF_FACTOR * np.sqrt(31) * 2.0**-23 * np.array([2.0, 20.0]),
                               rtol=1e-12)
    e16, _ = seedcheck.seed_tolerances("float16", 30)
    ebf, _ = seedcheck.seed_tolerances("bfloat16", 30)
    assert e16 / e32 == pytest.approx(2.0**13, rel=1e-12) and ebf / e16 == pytest.approx(2.0**3, rel=1e-12)
    assert seedcheck.seed_tolerances("float32", 4)[0] < e32
    assert seedcheck.seed_tolerances("float32", 30, 0.1)[1] == seedcheck.seed_tolerances("float32", 30, 1.0)[1]
    with pytest.raises(ValueError, match="dtype must be one of"):
        seedcheck.seed_tolerances("float64", 30)
    with pytest.raises(ValueError, match="num_layers"):
        seedcheck.seed_tolerances("float32", -1)


@pytest.fixture(scope="module")
def tiny_ext(tiny_lm, small_pairs):
    return extract(tiny_lm, small_pairs, layers="paper", batch_size=32, cache=False, progress=False)


def test_seed_check_passes_on_a_true_extraction(tiny_lm, small_pairs, tiny_ext):
    check = seedcheck.check_against_seed(tiny_lm, small_pairs, tiny_ext, n_sample=4, seed=3)
    assert len(check) == 4 and check.index.is_monotonic_increasing
    assert check.attrs == {"dtype": "float32", "num_layers": 4, "embeddings": True}
    assert set(check.columns) >= {"category", seedcheck.EMB_COLUMN, seedcheck.PREF_COLUMN, "nll scale"}
    assert (check[seedcheck.EMB_COLUMN] <= check["embedding tolerance"]).all()
    seedcheck.assert_matches_seed(check, "float32")
    again = seedcheck.check_against_seed(tiny_lm, small_pairs, tiny_ext, n_sample=4, seed=3)
    assert list(again.index) == list(check.index)  # seeded sample


def test_one_forward_per_input_gives_the_seed_functions_bit_for_bit(tiny_lm, small_pairs):
    """The seed's functions over the wrapper return exactly what they return over the model, from one pass."""
    text_a, text_b = small_pairs.stmt_a[0], small_pairs.stmt_b[0]
    wrapped = seedcheck.OneForwardPerInput(tiny_lm.model)
    for layer in range(tiny_lm.num_layers + 1):
        for text in (text_a, text_b):
            direct = get_layer_embedding(text, tiny_lm.model, tiny_lm.tokenizer, layer)
            np.testing.assert_array_equal(get_layer_embedding(text, wrapped, tiny_lm.tokenizer, layer), direct)
    for text in (text_a, text_b):
        assert get_nll(text, wrapped, tiny_lm.tokenizer) == get_nll(text, tiny_lm.model, tiny_lm.tokenizer)
    assert wrapped.passes == 2  # one per statement, not n_layers + 2
    ids = tiny_lm.tokenizer(text_a, return_tensors="pt")["input_ids"]
    with pytest.raises(ValueError, match="labels=input_ids"):
        wrapped(input_ids=ids, labels=ids.flip(-1) + 1)


@pytest.mark.parametrize("damage", ["embedding", "preference"])
def test_seed_check_fails_loudly_on_a_wrong_extraction(tiny_lm, small_pairs, tiny_ext, damage):
    import dataclasses

    emb_a, nll_b = tiny_ext.emb_a.copy(), tiny_ext.nll_b.copy()
    if damage == "embedding":  # one flipped exponent bit's worth: a component doubled
        emb_a[-1, :, 0] *= 2
    else:
        nll_b += 1e-3  # far below what a reader would notice, far above rounding
    wrong = dataclasses.replace(tiny_ext, emb_a=emb_a, nll_b=nll_b)
    check = seedcheck.check_against_seed(tiny_lm, small_pairs, wrong, n_sample=3, seed=0)
    with pytest.raises(seedcheck.SeedPathMismatch, match=rf"beyond rounding:\n  pair {check.index[0]}: "):
        seedcheck.assert_matches_seed(check, "float32")


def test_seed_check_arguments(tiny_lm, small_pairs, tiny_ext):
    with pytest.raises(ValueError, match="n_sample"):
        seedcheck.check_against_seed(tiny_lm, small_pairs, tiny_ext, n_sample=0)
    with pytest.raises(ValueError, match="pass the pairs it was computed from"):
        seedcheck.check_against_seed(tiny_lm, subset(small_pairs, range(5)), tiny_ext)
    check = seedcheck.check_against_seed(tiny_lm, small_pairs, tiny_ext, n_sample=1)
    with pytest.raises(ValueError, match="computed in float32, not float16"):
        seedcheck.assert_matches_seed(check, "float16")
    nan = check.copy()
    nan[seedcheck.EMB_COLUMN] = np.nan
    with pytest.raises(seedcheck.SeedPathMismatch):
        seedcheck.assert_matches_seed(nan)


def test_seed_check_scope_follows_what_the_original_functions_compute(tiny_lm, small_pairs, tmp_path):
    assert seedcheck.check_scope("mean", "hidden-states", "none")[0] == "full"
    assert seedcheck.check_scope("last", "hidden-states", "none")[0] == "preference"
    assert seedcheck.check_scope("mean", "random-tokens", "none")[0] == "preference"
    assert seedcheck.check_scope("mean", "hidden-states", "bos")[0] == "none"
    rand = extract(tiny_lm, small_pairs, layers=[0, 2], cache=tmp_path, progress=False, representation="random-tokens")
    check = seedcheck.check_against_seed(tiny_lm, small_pairs, rand, n_sample=3, embeddings=False)
    assert check[seedcheck.EMB_COLUMN].isna().all() and check.attrs["embeddings"] is False
    seedcheck.assert_matches_seed(check)  # the preference agrees; the geometry is not compared
    wrong = check.copy()
    wrong[seedcheck.PREF_COLUMN] = 1.0
    with pytest.raises(seedcheck.SeedPathMismatch):
        seedcheck.assert_matches_seed(wrong)
    with pytest.raises(ValueError, match="cannot check this extraction's embeddings"):
        seedcheck.check_against_seed(tiny_lm, small_pairs, rand, n_sample=1)
    bos = extract(tiny_lm, small_pairs, layers=[0, 2], cache=tmp_path, progress=False, prefix="bos")
    with pytest.raises(ValueError, match="not applicable"):
        seedcheck.check_against_seed(tiny_lm, small_pairs, bos, n_sample=1, embeddings=False)


# --------------------------------------------------------------------------- representations and the BOS prefix
def test_token_ids_are_stored_and_cached(tiny_lm, small_pairs, tmp_path):
    ext = extract(tiny_lm, small_pairs, layers=[0, 2], cache=tmp_path, progress=False)
    ids, offsets, digit = ext.require_tokens()
    want = [tiny_lm.tokenizer(t)["input_ids"] for t in list(small_pairs.stmt_a) + list(small_pairs.stmt_b)]
    assert [ids[offsets[j]:offsets[j + 1]].tolist() for j in range(len(want))] == want
    assert np.diff(offsets).tolist() == ext.n_tokens_a.tolist() + ext.n_tokens_b.tolist()
    tokens = tiny_lm.tokenizer.convert_ids_to_tokens(ids.tolist())
    assert digit.tolist() == [any(c.isdigit() for c in t) for t in tokens]
    again = extraction.load_cached(ext.meta["cache_key"], tmp_path)
    for name in ("token_ids", "token_offsets", "token_has_digit"):
        np.testing.assert_array_equal(getattr(again, name), getattr(ext, name), err_msg=name)
    assert again.meta["representation"] == "hidden-states" and again.meta["prefix"] == "none"


def test_token_embeddings_and_random_tokens_replace_only_the_geometry(tiny_lm, small_pairs, tmp_path):
    layers = [0, 2, tiny_lm.num_layers]
    hidden = extract(tiny_lm, small_pairs, layers=layers, cache=tmp_path, progress=False)
    emb = extract(tiny_lm, small_pairs, layers=layers, cache=tmp_path, progress=False,
                  representation="token-embeddings")
    rand = extract(tiny_lm, small_pairs, layers=layers, cache=tmp_path, progress=False,
                   representation="random-tokens", seed=5)
    n = small_pairs.n_pairs
    table = tiny_lm.model.get_input_embeddings().weight.detach().numpy()
    ids, offsets, _ = hidden.require_tokens()
    loop = np.array([table[ids[offsets[j] + 1:offsets[j + 1]]].mean(axis=0) for j in range(2 * n)])
    # Means of <= 70 rows of size <= ~4 (N(0, 1) vectors; the table's rows are N(0, 0.1)), summed in float32 on one
    # side (pairwise: ~log2(70) * 2**-24 * 4 ~ 2e-6 at worst) and in float64 then stored as float32 (2**-24 * 4):
    # 1e-5 bounds both with room, and a wrong row or position moves a mean by ~0.01 or more.
    for ext, want in ((emb, loop), (rand, extraction.random_token_embeddings(ids, offsets, tiny_lm.d_model, 5))):
        for li in range(len(layers)):  # the same vectors at every layer
            assert_allclose(ext.emb_a[li], want[:n], rtol=0, atol=1e-5)
            assert_allclose(ext.emb_b[li], want[n:], rtol=0, atol=1e-5)
        np.testing.assert_array_equal(ext.nll_a, hidden.nll_a)  # the preference is the model's, unchanged
        np.testing.assert_array_equal(ext.nll_b, hidden.nll_b)
    # GPT-NeoX adds no position embedding: layer 0 of the hidden states is the token-embedding table
    assert_allclose(hidden.emb_a[0], emb.emb_a[0], rtol=0, atol=1e-5)  # the same rows, pooled as above
    assert len({hidden.meta["cache_key"], emb.meta["cache_key"], rand.meta["cache_key"]}) == 3
    with pytest.raises(ValueError, match="representation"):
        extract(tiny_lm, small_pairs, layers=[0], cache=False, progress=False, representation="tokens")


def test_bos_prefix_scores_every_word(tiny_lm, small_pairs, tmp_path):
    plain = extract(tiny_lm, small_pairs, layers=[0, 2], cache=tmp_path, progress=False)
    bos = extract(tiny_lm, small_pairs, layers=[0, 2], cache=tmp_path, progress=False, prefix="bos")
    bos_id = tiny_lm.tokenizer.bos_token_id
    ids, offsets, _ = bos.require_tokens()
    plain_ids, plain_offsets, _ = plain.require_tokens()
    for j in range(2 * small_pairs.n_pairs):
        seq = ids[offsets[j]:offsets[j + 1]].tolist()
        assert seq == [bos_id] + plain_ids[plain_offsets[j]:plain_offsets[j + 1]].tolist()
    np.testing.assert_array_equal(bos.n_tokens_a, plain.n_tokens_a + 1)
    assert bos.meta["prefix"] == "bos" and bos.meta["prefix_token_id"] == bos_id
    # the NLL now scores the first word too: the seed's loss on the prefixed ids
    import torch

    i = 3
    seq = torch.tensor([ids[offsets[i]:offsets[i + 1]].tolist()])
    with torch.no_grad():
        loss = tiny_lm.model(input_ids=seq, labels=seq).loss.item()
    assert bos.nll_a[i] == pytest.approx(loss, abs=NLL_ATOL)
    assert bos.meta["cache_key"] != plain.meta["cache_key"]


def test_prefix_token_id_prefers_bos_then_end_of_text():
    from types import SimpleNamespace

    assert batching.prefix_token_id(SimpleNamespace(bos_token_id=1, eos_token_id=2), "none") is None
    assert batching.prefix_token_id(SimpleNamespace(bos_token_id=1, eos_token_id=2), "bos") == 1
    assert batching.prefix_token_id(SimpleNamespace(bos_token_id=None, eos_token_id=2), "bos") == 2
    with pytest.raises(ValueError, match="neither"):
        batching.prefix_token_id(SimpleNamespace(bos_token_id=None, eos_token_id=None), "bos")
    with pytest.raises(ValueError, match="prefix must be"):
        batching.prefix_token_id(SimpleNamespace(bos_token_id=1), "eos")
