"""Tests of ua_helpers.analysis.controls (random-token baseline, shuffled-pairing null, lexical covariates) and of the
token-level representations in ua_helpers.inputs.extraction, each checked by an independent route (a direct loop)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from numpy.testing import assert_allclose

from ua_helpers.analysis import controls, inference, metrics, multiplicity
from ua_helpers.inputs import extraction
from ua_helpers.inputs.extraction import Extraction
from ua_helpers.report import findings
from inference_data import evidence_of

NAMES = list(metrics.METRIC_NAMES)
N_PAIRS = 230
D_MODEL = 48
VOCAB = 3000
# Float64 sums of at most a few thousand terms of size <= ~50 (norms, cosines, NLLs) agree to ~n * eps * scale:
# 1e4 * 2.2e-16 * 50 ~ 1e-10; r values are ratios of such sums, so 1e-9 covers them with room.
TOL = 1e-9


# --------------------------------------------------------------------------------------------------- fixtures
def _corpus(seed: int, n_pairs: int = N_PAIRS):
    """Token ids of 2 * n_pairs statements: Zipf-like ids (low id = frequent, as BPE ranks), 3-20 tokens each."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, 21, 2 * n_pairs)
    ids = np.minimum(rng.zipf(1.3, lengths.sum()), VOCAB) - 1  # the id is the frequency rank
    token_ids, offsets = extraction.flatten_tokens(np.split(ids, np.cumsum(lengths)[:-1]))
    digit = (token_ids % 17) == 3
    return token_ids, offsets, digit


def _lexical_nll(token_ids, offsets, rng):
    """An NLL per statement driven by its tokens only: longer and more frequent-worded statements score lower."""
    lengths = np.diff(offsets)
    owner = np.repeat(np.arange(lengths.size), lengths)
    freq = np.bincount(owner, np.log1p(token_ids), lengths.size) / lengths
    return 6.0 - 0.9 * np.log(lengths) + 0.35 * freq + rng.normal(scale=0.25, size=lengths.size)


def _extraction(token_ids, offsets, digit, emb, nll, layers, pooling="mean", representation="hidden-states"):
    n = emb.shape[1] // 2
    lengths = np.diff(offsets)
    return Extraction(nll_a=nll[:n], nll_b=nll[n:], n_tokens_a=lengths[:n], n_tokens_b=lengths[n:],
                      emb_a=np.ascontiguousarray(emb[:, :n]), emb_b=np.ascontiguousarray(emb[:, n:]),
                      layers=list(layers), meta={"pooling": pooling, "representation": representation,
                                                 "prefix": "none"},
                      token_ids=token_ids, token_offsets=offsets, token_has_digit=digit)


@pytest.fixture(scope="module")
def small():
    """A random extraction of 40 pairs at layers 0, 3, 6 with token ids: small enough for loops."""
    rng = np.random.default_rng(5)
    ids, offsets, digit = _corpus(11, 40)
    emb = rng.normal(size=(3, 80, 16)) + 1.0
    emb[1:, 7] *= 20  # a statement far from the rest
    return _extraction(ids, offsets, digit, emb, _lexical_nll(ids, offsets, rng), [0, 3, 6])


def _texts(n, seed=0):
    rng = np.random.default_rng(seed)
    return ([("a" * int(k)) for k in rng.integers(5, 60, n)], [("b" * int(k)) for k in rng.integers(5, 60, n)],
            list(np.repeat(["p", "q", "r", "s", "t"], -(-n // 5))[:n]))


# --------------------------------------------------------------------------------------------------- pooling
@pytest.mark.parametrize("pooling", ["mean", "last"])
def test_pool_token_vectors_equals_a_loop(small, pooling):
    ids, offsets = small.token_ids, small.token_offsets
    vocab = np.unique(ids)
    table = np.random.default_rng(0).normal(size=(vocab.size, 5))
    got = extraction.pool_token_vectors(table, ids, offsets, pooling, vocab_ids=vocab)
    row = {int(t): table[k] for k, t in enumerate(vocab)}
    for j in range(offsets.size - 1):
        seq = ids[offsets[j]:offsets[j + 1]]
        keep = seq[1:] if pooling == "mean" else seq[-1:]
        assert_allclose(got[j], np.mean([row[int(t)] for t in keep], axis=0), rtol=0, atol=1e-12)
    full = np.zeros((int(ids.max()) + 1, 5))
    full[vocab] = table
    assert_allclose(extraction.pool_token_vectors(full, ids, offsets, pooling), got, rtol=0, atol=0)


def test_pool_token_vectors_refuses_bad_input(small):
    ids, offsets = small.token_ids, small.token_offsets
    with pytest.raises(ValueError, match="pooling"):
        extraction.pool_token_vectors(np.zeros((VOCAB, 2)), ids, offsets, "max")
    with pytest.raises(ValueError, match=">= 2 tokens"):
        extraction.pool_token_vectors(np.zeros((VOCAB, 2)), ids, np.array([0, 1, ids.size]), "mean")
    with pytest.raises(ValueError, match="lacks some"):
        extraction.pool_token_vectors(np.zeros((2, 2)), ids, offsets, "mean", vocab_ids=np.array([0, 1]))


def test_random_token_vectors_depend_only_on_seed_and_id():
    a = extraction.random_token_vectors([5, 17, 900], 8, seed=3)
    b = extraction.random_token_vectors([900, 5], 8, seed=3)
    assert_allclose(a[[2, 0]], b, rtol=0, atol=0)  # the same id gets the same vector, whatever else is drawn
    ss = np.random.SeedSequence([3, 17], spawn_key=(3,))
    assert_allclose(a[1], np.random.default_rng(ss).standard_normal(8), rtol=0, atol=0)
    assert not np.allclose(a, extraction.random_token_vectors([5, 17, 900], 8, seed=4))
    with pytest.raises(ValueError, match="seed"):
        extraction.random_token_vectors([1], 8, seed=-1)
    with pytest.raises(ValueError, match="d_model"):
        extraction.random_token_vectors([1], 0)


def test_random_token_embeddings_equal_a_loop(small):
    ids, offsets = small.token_ids, small.token_offsets
    got = extraction.random_token_embeddings(ids, offsets, 6, seed=9)
    for j in (0, 17, offsets.size - 2):
        seq = ids[offsets[j] + 1:offsets[j + 1]]
        want = np.mean([extraction.random_token_vectors([t], 6, 9)[0] for t in seq], axis=0)
        assert_allclose(got[j], want, rtol=0, atol=1e-12)


# --------------------------------------------------------------------------------------------------- the null
def test_statement_terms_give_the_additive_metrics(small):
    for li in range(len(small.layers)):
        terms = controls.statement_terms(small.emb_a[li], small.emb_b[li], k=5)
        m = metrics.compute_pair_metrics(small.emb_a[li], small.emb_b[li], k=5)
        assert set(terms) == set(controls.ADDITIVE_METRICS)
        for name, (ta, tb) in terms.items():
            assert_allclose(ta - tb, m[name], rtol=0, atol=TOL)


def test_pairing_permutations_are_seeded_permutations():
    p = controls.pairing_permutations(30, 50, seed=2)
    assert p.shape == (50, 30) and (np.sort(p, axis=1) == np.arange(30)).all()
    assert (p == controls.pairing_permutations(30, 50, seed=2)).all()
    assert not (p == controls.pairing_permutations(30, 50, seed=3)).all()
    assert not (p == multiplicity.permutation_indices(30, 50, seed=2)).all()  # a stream of its own


def test_shuffled_null_equals_recomputing_the_metrics_on_repaired_statements(small):
    k = 5
    null = controls.shuffled_pairing_null(small.emb_a, small.emb_b, small.nll_a, small.nll_b, small.layers, k=k,
                                          n_shuffles=40, seed=7)
    perms = controls.pairing_permutations(small.n_pairs, 40, seed=7)
    for s in (0, 13, 39):
        p = perms[s]
        y = small.nll_b[p] - small.nll_a  # NLL(B_pi(i)) - NLL(A_i)
        for li in range(len(small.layers)):
            m = metrics.compute_pair_metrics(small.emb_a[li], small.emb_b[li][p], k=k)  # the re-paired data
            for mi, name in enumerate(NAMES):
                assert null.r_null[li, mi, s] == pytest.approx(np.corrcoef(m[name], y)[0, 1], abs=TOL)
    for li in range(len(small.layers)):
        m = metrics.compute_pair_metrics(small.emb_a[li], small.emb_b[li], k=k)
        for mi, name in enumerate(NAMES):
            assert null.r_observed[li, mi] == pytest.approx(np.corrcoef(m[name], small.preference)[0, 1], abs=TOL)
            if name in controls.ADDITIVE_METRICS:
                ta, tb = controls.statement_terms(small.emb_a[li], small.emb_b[li], k)[name]
                assert null.r_a[li, mi] == pytest.approx(np.corrcoef(ta, small.nll_a)[0, 1], abs=TOL)
                assert null.r_b[li, mi] == pytest.approx(np.corrcoef(tb, small.nll_b)[0, 1], abs=TOL)
            else:
                assert np.isnan(null.r_a[li, mi]) and np.isnan(null.r_b[li, mi])


def test_shuffled_null_p_values_and_table_by_loop(small):
    null = controls.shuffled_pairing_null(small.emb_a, small.emb_b, small.nll_a, small.nll_b, small.layers, k=5,
                                          n_shuffles=200, seed=1)
    table = null.table(0.9)
    p = null.p_values()
    for i, row in enumerate(table.itertuples()):
        li, mi = divmod(i, len(NAMES))
        dist = null.r_null[li, mi]
        med = np.median(dist)
        count = sum(abs(v - med) >= abs(row.r_observed - med) * (1 - 1e-12) for v in dist)
        assert row.p_value == pytest.approx((1 + count) / 201) and p[li, mi] == row.p_value
        assert (row.layer, row.metric) == (small.layers[li], NAMES[mi])
        assert row.null_mean == pytest.approx(dist.mean()) and row.null_median == pytest.approx(med)
        assert row.null_ci_lower == pytest.approx(np.quantile(dist, 0.05))
        assert row.null_ci_upper == pytest.approx(np.quantile(dist, 0.95))


def test_shuffled_null_refuses_bad_input(small):
    with pytest.raises(ValueError, match="n_layers"):
        controls.shuffled_pairing_null(small.emb_a, small.emb_b, small.nll_a, small.nll_b, [0, 3])
    with pytest.raises(ValueError, match="finite"):
        controls.shuffled_pairing_null(small.emb_a, small.emb_b, small.nll_a[:-1], small.nll_b, small.layers)
    with pytest.raises(ValueError, match="unknown metrics"):
        controls.shuffled_pairing_null(small.emb_a, small.emb_b, small.nll_a, small.nll_b, small.layers,
                                       metric_names=["volume"])


# --------------------------------------------------------------------------------------------------- baseline
def test_baseline_seeds_exclude_the_run_seed():
    assert controls.baseline_seeds(42) == [43, 44, 45, 46, 47]
    assert 42 not in controls.baseline_seeds(42, 8) and len(controls.baseline_seeds(0, 8)) == 8
    with pytest.raises(ValueError, match="seed"):
        controls.baseline_seeds(-1)


def test_random_token_baseline_equals_a_loop(small):
    base = controls.random_token_baseline(small, [3, 8], k=5)
    assert base.values.shape == (2, len(NAMES), small.n_pairs) and base.r.shape == (2, len(NAMES))
    ids, offsets = small.token_ids, small.token_offsets
    for si, s in enumerate([3, 8]):
        pooled = np.array([np.mean(extraction.random_token_vectors(ids[offsets[j] + 1:offsets[j + 1]], 16, s),
                                   axis=0) for j in range(offsets.size - 1)])
        m = metrics.compute_pair_metrics(pooled[:small.n_pairs], pooled[small.n_pairs:], k=5)
        for mi, name in enumerate(NAMES):
            assert_allclose(base.values[si, mi], m[name], rtol=0, atol=TOL)
            assert base.r[si, mi] == pytest.approx(np.corrcoef(m[name], small.preference)[0, 1], abs=TOL)
    assert_allclose(base.mean_values(), base.values.mean(axis=0))


def test_controls_need_token_ids(small):
    bare = Extraction(small.nll_a, small.nll_b, small.n_tokens_a, small.n_tokens_b, small.emb_a, small.emb_b,
                      small.layers, dict(small.meta))
    with pytest.raises(ValueError, match="no token ids"):
        controls.random_token_baseline(bare, [1])


# --------------------------------------------------------------------------------------------------- lexical
def test_lexical_covariates_by_loop(small):
    stmt_a, stmt_b, cats = _texts(small.n_pairs)
    cov = controls.lexical_covariates(small, stmt_a, stmt_b, cats)
    assert list(cov) == list(controls.COVARIATE_DESCRIPTIONS)
    ids, offsets, digit = small.require_tokens()

    def feats(j):
        seq, dig = ids[offsets[j] + 1:offsets[j + 1]], digit[offsets[j] + 1:offsets[j + 1]]
        return len(seq), np.mean(np.log1p(seq)), np.mean(dig)

    n = small.n_pairs
    for i in (0, 9, n - 1):
        (na, fa, da), (nb, fb, db) = feats(i), feats(n + i)
        assert cov["tokens"][i, 0] == nb - na
        assert cov["log_tokens"][i, 0] == pytest.approx(np.log(nb) - np.log(na))
        assert cov["inv_sqrt_tokens"][i, 0] == pytest.approx(nb ** -0.5 - na ** -0.5)
        assert cov["frequency"][i, 0] == pytest.approx(fb - fa)
        assert cov["digits"][i, 0] == pytest.approx(db - da)
        assert cov["length"][i, 0] == len(stmt_b[i]) - len(stmt_a[i])
    assert cov["category"].shape == (n, 4)
    with pytest.raises(ValueError, match="n_pairs"):
        controls.lexical_covariates(small, stmt_a[:-1], stmt_b, cats)


def _residual_r(x, y, covs):
    """Partial r by the textbook route: residuals of both on [1, covariates] by least squares, then Pearson r."""
    design = np.column_stack([np.ones(len(y)), covs])
    ex = x - design @ np.linalg.lstsq(design, x, rcond=None)[0]
    ey = y - design @ np.linalg.lstsq(design, y, rcond=None)[0]
    return np.corrcoef(ex, ey)[0, 1], len(y) - 2 - (np.linalg.matrix_rank(design) - 1)


def test_lexical_controls_equal_the_textbook_partial_r(small):
    values = metrics.compute_all_layers(small.emb_a, small.emb_b, k=5)
    stmt_a, stmt_b, cats = _texts(small.n_pairs)
    cov = controls.lexical_covariates(small, stmt_a, stmt_b, cats)
    rt = np.random.default_rng(2).normal(size=(len(NAMES), small.n_pairs))
    lex = controls.lexical_controls(values, small.preference, small.layers, NAMES, cov, rt, ci_level=0.9)
    common = np.column_stack(list(cov.values()))
    from scipy import stats as sps

    for row in lex.itertuples():
        li, mi = small.layers.index(row.layer), NAMES.index(row.metric)
        extra = [rt[mi]] + ([values[0, mi]] if row.layer > 0 else [])
        r, df = _residual_r(values[li, mi], small.preference, np.column_stack([common, *extra]))
        assert row.partial_r == pytest.approx(r, abs=1e-9) and row.df == df
        t = abs(r) * np.sqrt(df / (1 - r**2))
        assert row.p_value == pytest.approx(2 * sps.t.sf(t, df), rel=1e-9)
        half = sps.norm.ppf(0.95) / np.sqrt(df - 1)
        assert row.ci_lower == pytest.approx(np.tanh(np.arctanh(r) - half))
        assert row.ci_upper == pytest.approx(np.tanh(np.arctanh(r) + half))
    assert_allclose(lex["p_holm"], multiplicity.holm(lex["p_value"].to_numpy()))


def test_lexical_controls_without_layer_0_say_so(small):
    values = metrics.compute_all_layers(small.emb_a, small.emb_b, k=5)
    cov = {"tokens": (small.n_tokens_b - small.n_tokens_a)[:, None].astype(float)}
    rt = np.random.default_rng(2).normal(size=(len(NAMES), small.n_pairs))
    lex = controls.lexical_controls(values[1:], small.preference, small.layers[1:], NAMES, cov, rt)
    assert lex["partial_r"].isna().all() and (lex["note"] == "layer 0 was not extracted").all()
    with pytest.raises(ValueError, match="metric_values"):
        controls.lexical_controls(values, small.preference, small.layers[1:], NAMES, cov, rt)


# --------------------------------------------------------------------------------------------------- the block
def test_controls_block_layout_and_sentence(small):
    values = metrics.compute_all_layers(small.emb_a, small.emb_b, k=5)
    stmt_a, stmt_b, cats = _texts(small.n_pairs)
    ctrl = controls.compute_controls(small, values, stmt_a, stmt_b, cats, k=5, seed=4, n_shuffles=1000)
    block = ctrl.to_json()
    json.dumps(block, allow_nan=False)
    assert block["representation"] == "hidden-states" and block["prefix"] == "none"
    rt = block["random_tokens"]
    assert rt["seeds"] == controls.baseline_seeds(4) and len(rt["tests"]) == len(small.layers) * len(NAMES)
    t0 = rt["tests"][0]
    assert set(t0) >= {"layer", "metric", "r_mean", "r_min", "r_max", "r"} and len(t0["r"]) == 5
    assert t0["r_min"] <= t0["r_mean"] <= t0["r_max"] and t0["r"] == rt["tests"][len(NAMES)]["r"]  # every layer
    sp = block["shuffled_pairing"]
    assert sp["n_shuffles"] == 1000 and sp["seed"] == 4
    assert set(sp["tests"][0]) >= {"layer", "metric", "r_observed", "null_mean", "null_median", "null_ci_lower",
                                   "null_ci_upper", "p_value"}
    assert {(s["layer"], s["metric"]) for s in sp["statement_level"]} == {
        (l, m) for l in small.layers for m in controls.ADDITIVE_METRICS}
    lex = block["lexical"]
    assert lex["frequency_proxy"] == controls.FREQUENCY_PROXY
    assert [c["name"] for c in lex["covariates"]] == list(controls.COVARIATE_DESCRIPTIONS)
    tokens = next(c for c in lex["covariates"] if c["name"] == "tokens")
    assert tokens["r"] == pytest.approx(np.corrcoef(small.n_tokens_b - small.n_tokens_a, small.preference)[0, 1])
    assert set(lex["tests"][0]) >= {"layer", "metric", "partial_r", "ci_lower", "ci_upper", "p_value", "p_holm"}
    text = findings.read_controls({"controls": block})
    lo = min(min(t["r"]) for t in rt["tests"])
    assert f"r from {lo:+.3f} " in text and "1,000 re-pairings" in text
    inside = sum(t["null_ci_lower"] <= t["r_observed"] <= t["null_ci_upper"] for t in sp["tests"])
    assert f"leaves {inside} of {len(sp['tests'])} tests" in text
    assert findings.read_controls(block) == text  # the block alone reads the same
    with pytest.raises(ValueError, match="controls"):
        findings.read_controls({"model": "m"})


# --------------------------------------------------------------------------------------------------- rung 6
def _analyse(ext, seed=1, n_resamples=1000):
    """The run's analysis of notebook 4 on an extraction: extended statistics, controls, the ladder."""
    values = metrics.compute_all_layers(ext.emb_a, ext.emb_b, k=10)
    stmt_a = ["x" * int(n) * 4 for n in ext.n_tokens_a]  # characters follow tokens, as in text
    stmt_b = ["x" * int(n) * 4 for n in ext.n_tokens_b]
    cats = list(np.repeat(["c1", "c2", "c3", "c4", "c5"], -(-ext.n_pairs // 5))[:ext.n_pairs])
    extended = inference.extended_analysis(
        values, ext.preference, ext.layers, NAMES, n_tokens_a=ext.n_tokens_a, n_tokens_b=ext.n_tokens_b,
        len_a=[len(s) for s in stmt_a], len_b=[len(s) for s in stmt_b], categories=cats,
        n_bootstrap=n_resamples, n_permutations=n_resamples, seed=seed)
    block = controls.compute_controls(ext, values, stmt_a, stmt_b, cats, k=10, seed=seed, n_shuffles=1000).to_json()
    return evidence_of(values, ext.preference, ext.emb_a, ext.emb_b, ext.layers, NAMES, extended.tests,
                                   controls=block)


@pytest.mark.parametrize("rep_seed", [1001, 2002, 3003])
def test_a_random_token_representation_never_reaches_rung_6(rep_seed):
    """The model-free representation (seeds other than the baseline's) goes through the whole ladder: with a
    lexical preference it looks like a finding on the lower rungs, and rung 6 must reject every test."""
    ids, offsets, digit = _corpus(rep_seed)
    nll = _lexical_nll(ids, offsets, np.random.default_rng(rep_seed))
    pooled = extraction.random_token_embeddings(ids, offsets, D_MODEL, rep_seed)
    layers = [0, 4, 8]
    emb = np.broadcast_to(pooled.astype(np.float32), (len(layers), *pooled.shape))
    ext = _extraction(ids, offsets, digit, emb, nll, layers, representation="random-tokens")
    assert rep_seed not in controls.baseline_seeds(1)
    ev = _analyse(ext, seed=1)
    levels = [t["level"] for t in ev["tests"]]
    assert max(levels) >= 3  # the representation carries the lexical signal: it passes the family-wise rung ...
    assert ev["levels"][6]["count"] == 0 and max(levels) < 6  # ... and never the rung beyond lexical controls
    assert all(not t["passes"]["beyond_lexical"] for t in ev["tests"])


def test_a_pair_level_signal_beyond_lexical_reaches_rung_6():
    """The same data with a planted pair-level signal above layer 0 (within-pair similarity that the preference
    follows, independent of the tokens) reaches rung 6 there, and only there."""
    rng = np.random.default_rng(7)
    ids, offsets, digit = _corpus(7)
    n = N_PAIRS
    pooled = extraction.random_token_embeddings(ids, offsets, D_MODEL, 7)
    rho = rng.uniform(-0.9, 0.9, n)  # the planted pair-level quantity
    g, h = rng.normal(size=(2, n, D_MODEL))
    deep_a, deep_b = g, rho[:, None] * g + np.sqrt(1 - rho**2)[:, None] * h  # cos(A_i, B_i) ~ rho_i
    emb = np.stack([pooled, np.concatenate([deep_a, deep_b]), np.concatenate([deep_a, deep_b])]).astype(np.float32)
    nll = _lexical_nll(ids, offsets, rng)
    nll[n:] += 0.8 * rho  # the preference NLL(B) - NLL(A) follows rho beyond the tokens
    ext = _extraction(ids, offsets, digit, emb, nll, [0, 4, 8])
    ev = _analyse(ext, seed=3)
    top = {(t["layer"], t["metric"]) for t in ev["tests"] if t["level"] == 6}
    assert {(4, "within_pair_sim"), (8, "within_pair_sim")} <= top
    assert all(layer > 0 for layer, _ in top)
