"""Synthetic data for the evidence ladder and the sentences read from it: 80 pairs at layers 0, 4, 8 and 12 with
one massive-activation statement, their extended analysis and evidence block (shared by test_evidence.py and
test_findings.py), and random test tables in which every combination of criteria occurs."""
from __future__ import annotations

import functools

import numpy as np
import pandas as pd
from inference_data import evidence_of

from ua_helpers.analysis import controls, inference, metrics

LAYERS = [0, 4, 8, 12]
NAMES = list(metrics.METRIC_NAMES)
N = 80


def arrays(seed=0, n=N, d=12):
    rng = np.random.default_rng(seed)
    emb_a = rng.normal(size=(len(LAYERS), n, d)) + 2.0
    emb_b = rng.normal(size=(len(LAYERS), n, d)) + 2.0
    emb_a[2:, 5] *= 25.0  # one massive-activation statement at layers 8 and 12
    values = metrics.compute_all_layers(emb_a, emb_b)
    preference = 0.5 * values[0, 0] / values[0, 0].std() + rng.normal(size=n)
    cats = np.repeat(["x", "y", "z", "w"], n // 4).tolist()
    tok_a = rng.integers(5, 20, n)
    tok_b = tok_a + rng.integers(-3, 4, n)
    return emb_a, emb_b, values, preference, cats, tok_a, tok_b


def lexical_block(values, preference, cats, tok_a, tok_b):
    """A controls block holding the lexical controls of synthetic data (what evidence_block reads)."""
    rng = np.random.default_rng(3)
    covariates = {"tokens": (tok_b - tok_a)[:, None].astype(float), "category": controls.category_dummies(cats)}
    lex = controls.lexical_controls(values, preference, LAYERS, NAMES, covariates,
                                    rng.normal(size=(len(NAMES), len(preference))))
    return {"lexical": {"tests": lex.to_dict(orient="records")}}


@functools.lru_cache(maxsize=None)
def evidence_case() -> dict:
    """Synthetic data, its extended analysis and its evidence block as a results dict (built once a process;
    callers must not change it: deep-copy first)."""
    emb_a, emb_b, values, preference, cats, tok_a, tok_b = arrays()
    ext = inference.extended_analysis(values, preference, LAYERS, NAMES, n_tokens_a=tok_a, n_tokens_b=tok_b,
                                      len_a=5 * tok_a, len_b=5 * tok_b + 1, categories=cats, n_bootstrap=300,
                                      n_permutations=300, seed=1)
    stmt_a = [f"statement A {i}" for i in range(N)]
    stmt_b = [f"statement B {i}" for i in range(N)]
    ctrl = lexical_block(values, preference, cats, tok_a, tok_b)
    ev = evidence_of(values, preference, emb_a, emb_b, LAYERS, NAMES, ext.tests, controls=ctrl,
                                 stmt_a=stmt_a, stmt_b=stmt_b)
    results = {"model": "tiny-model", "n_pairs": N, "ci_level": 0.95, "dataset": {"name": "toy-set"},
               "model_info": {"dtype": "float32", "device": "cpu"}, "evidence": ev}
    return {"tests": ext.tests, "values": values, "preference": preference, "results": results, "controls": ctrl}


def random_tests(rng, n_tests=400, nan_share=0.05):
    """A tests table whose columns are drawn independently (every combination of criteria occurs)."""
    r = rng.uniform(-0.5, 0.5, n_tests)
    r[rng.random(n_tests) < nan_share] = np.nan
    half = rng.uniform(0.02, 0.3, n_tests)
    rho = r + rng.normal(scale=0.2, size=n_tests)
    shalf = rng.uniform(0.02, 0.3, n_tests)
    partial = r + rng.normal(scale=0.2, size=n_tests)
    frame = pd.DataFrame({
        "layer": np.arange(n_tests) // 5, "metric": np.tile(NAMES, n_tests // 5 + 1)[:n_tests],
        "r": r, "ci_lower": r - half, "ci_upper": r + half, "p_bh": rng.random(n_tests) ** 6,
        "p_maxstat": rng.random(n_tests) ** 6, "spearman_rho": rho, "spearman_ci_lower": rho - shalf,
        "spearman_ci_upper": rho + shalf, "partial_all_r": partial, "partial_all_ci_lower": partial - half,
        "partial_all_ci_upper": partial + half, "partial_all_p_holm": rng.random(n_tests) ** 6,
        "partial_all_p_bh": rng.random(n_tests) ** 6})
    loo = frame[["layer", "metric"]].assign(loo_sign_change=rng.random(n_tests) < 0.2,
                                            loo_verdict_change=rng.random(n_tests) < 0.2)
    lexical = frame[["layer", "metric"]].assign(partial_r=r + rng.normal(scale=0.2, size=n_tests),
                                                p_holm=rng.random(n_tests) ** 6)
    return frame, loo, lexical
