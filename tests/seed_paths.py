"""The seed's own extraction path (one forward per layer per statement, two NLL passes per pair) and the tolerance
within which a batched extraction must match it, shared by the tiny-model tests (unit) and the embedded model's
(e2e)."""
from __future__ import annotations

import math

import numpy as np
from numpy.testing import assert_allclose
from tiny_models import TINY

import seed_reference as seed
from ua_helpers.inputs.data import PairSet

# Batched (right-padded, masked) and the seed's unbatched float32 forwards form the same sums in another order.
# Each layer of the tiny model sums about 3 x hidden (Q/K/V, output, MLP-in projections) + sequence length
# (attention; <= 64 tokens here) + intermediate (MLP-out) terms, each sum rounding by <= terms x eps32 relative
# (gamma_n), and the residual stream adds up the layers' errors.
_TERMS = TINY["num_hidden_layers"] * (3 * TINY["hidden_size"] + 64 + TINY["intermediate_size"])
EMB_RTOL = _TERMS * float(np.finfo(np.float32).eps)  # ~1.8e-4 of the seed vector's largest |component|
# an NLL is a log-softmax over the 600-token vocabulary of logits from those states: of size ~log(600), it
# inherits their relative error, plus one for the vocabulary's sum
NLL_ATOL = (math.log(600) + 1) * EMB_RTOL  # ~1.4e-3


def seed_path(lm, pairs, layers):
    """The seed's sequential extraction: one pass per layer per statement, two NLL passes per pair."""
    texts = list(pairs.stmt_a) + list(pairs.stmt_b)
    emb = np.stack([[seed.get_layer_embedding(t, lm.model, lm.tokenizer, layer) for t in texts]
                    for layer in layers])  # [layer, statement, d_model]
    nll = np.array([seed.get_nll(t, lm.model, lm.tokenizer) for t in texts])
    pref = np.array([seed.get_output_preference(a, b, lm.model, lm.tokenizer)
                     for a, b in zip(pairs.stmt_a, pairs.stmt_b)])
    return emb, nll, pref


def max_rel_diff(ours: np.ndarray, ref: np.ndarray) -> float:
    """Largest |ours - ref| over each vector, relative to that reference vector's largest |component|."""
    return float((np.abs(ours - ref) / np.abs(ref).max(axis=-1, keepdims=True)).max())


def assert_matches_seed(ext, emb, nll, pref):
    n = ext.n_pairs
    ours = np.concatenate([ext.emb_a, ext.emb_b], axis=1)
    assert ours.dtype == np.float32 and ours.shape == emb.shape
    assert max_rel_diff(ours, emb) <= EMB_RTOL
    assert_allclose(np.concatenate([ext.nll_a, ext.nll_b]), nll, rtol=0, atol=NLL_ATOL)
    assert_allclose(ext.preference, pref, rtol=0, atol=2 * NLL_ATOL)
    assert_allclose(ext.preference, nll[n:] - nll[:n], rtol=0, atol=2 * NLL_ATOL)


def subset(pairs: PairSet, idx) -> PairSet:
    return PairSet([pairs.stmt_a[i] for i in idx], [pairs.stmt_b[i] for i in idx],
                   [pairs.category[i] for i in idx], sha256=f"{pairs.sha256}:{list(idx)}", source=pairs.source,
                   name=pairs.name)
