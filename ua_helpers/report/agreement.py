"""Sign agreement with a reference (e.g. the published Pythia-6.9B results) beside its permutation null.

"15 of 45 tests have the reference's sign" needs a chance level. The binomial's 22.5 of 45 assumes 45
independent tests, but neighbouring layers and metrics are nearly the same test: under no association at all,
the 45 signs move together, and the count of agreements spreads far wider than a binomial's. The null here keeps
the run's geometry and the reference's signs and permutes the run's preference: each permutation recomputes all
the run's r (one shared permutation for every test, as the max-statistic test) and counts the agreements.
Layers are matched to the reference by relative depth exactly as :func:`ua_helpers.report.results.compare_results`
matches them (it is called here), so the observed count is the comparison page's.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from scipy import stats as sps

from .._checks import (
    check_positive_int,
    check_seed,
    check_table_inputs,
    row_notes,
    zscore_rows,
)
from ..analysis.bootstrap import pearson
from ..analysis.multiplicity import permutation_chunks
from . import results as results_mod
from ._markdown import p_phrase
from .blocks import Results

#: Central interval of the null distribution that is reported.
NULL_INTERVAL = 0.95


def _matched(r: np.ndarray, layers: Sequence[int], metric_names: Sequence[str], num_layers: int,
             reference: dict[str, Any]):
    """The run's tests matched to the reference by :func:`results.compare_results` (its table)."""
    ours = {"num_layers": int(num_layers),
            "results": {str(layer): {m: {"r": None if not np.isfinite(r[i, j]) else float(r[i, j]),
                                         "ci_lower": None, "ci_upper": None, "p_value": None,
                                         "includes_zero": True}
                                     for j, m in enumerate(metric_names)}
                        for i, layer in enumerate(layers)}}
    return results_mod.compare_results(ours, reference)


def sign_agreement_null(metric_values, preference, layers: Sequence[int], metric_names: Sequence[str], *,
                        num_layers: int, reference: dict[str, Any], reference_source: str,
                        n_permutations: int = 10000, seed: int = 42) -> dict[str, Any]:
    """Count the tests whose r has the reference's sign, and that count's distribution under permutation.

    Parameters
    ----------
    metric_values, preference, layers, metric_names : the standard arrays of :mod:`ua_helpers.analysis`
    num_layers : int
        The model's number of blocks (relative depth = layer / num_layers).
    reference : dict
        A results dict (``results.load_results("published")`` or another run's).
    reference_source : str
        Where the reference came from (``"published"`` or its path), recorded for readers.
    n_permutations, seed : int
        Permutations of the preference: the rows of :func:`ua_helpers.analysis.multiplicity.permutation_indices` for this
        seed (the max-statistic test's).

    Returns
    -------
    dict
        JSON-ready: the ``comparison.sign_agreement_null`` block of results.json (layout: ``results.schema.json``).
    """
    flat, y = check_table_inputs(metric_values, preference, layers, metric_names)  # [tests, n], [n]
    n_permutations = check_positive_int("n_permutations", n_permutations)
    seed = check_seed(seed)
    n_layers, n_metrics, n = len(layers), len(metric_names), flat.shape[1]
    if np.ptp(y) == 0:
        raise ValueError("preference is constant: no correlation and no null to compare with")
    ok = np.array([note == "" for note in row_notes(flat)])
    yz = zscore_rows(y[None])[0]
    xz = np.zeros_like(flat)
    xz[ok] = zscore_rows(flat[ok])
    r = np.full(len(flat), np.nan)
    r[ok] = pearson(flat[ok], y)[:, 0]
    r = r.reshape(n_layers, n_metrics)
    table = _matched(r, layers, metric_names, num_layers, reference)
    if table.empty:
        raise ValueError("no test of this run matches a test of the reference (no metric in common)")
    row_of = {(int(layer), m): i * n_metrics + j for i, layer in enumerate(layers)
              for j, m in enumerate(metric_names)}
    idx = np.array([row_of[(int(layer), m)] for layer, m in zip(table["layer"], table["metric"])])
    ref_sign = np.sign(table["ref_r"].to_numpy(dtype=float))  # NaN where the reference has no r: never agrees
    live = ok[idx]  # a constant metric has no r: it never agrees, under the null as observed
    observed = int(table["same_sign"].sum())
    x, s = xz[idx[live]], ref_sign[live]
    null = np.empty(n_permutations, dtype=np.int64)
    start = 0
    for perm in permutation_chunks(n, n_permutations, seed):
        r_perm = x @ yz[perm].T / n  # [tests, chunk]
        null[start:start + len(perm)] = (np.sign(r_perm) == s[:, None]).sum(axis=0)
        start += len(perm)
    k = len(table)
    tail = (1 - NULL_INTERVAL) / 2
    lo, hi = np.quantile(null, [tail, 1 - tail], method="inverted_cdf")
    p_at_most = (1 + int((null <= observed).sum())) / (1 + n_permutations)
    p_at_least = (1 + int((null >= observed).sum())) / (1 + n_permutations)
    b_lo, b_hi = sps.binom.ppf([tail, 1 - tail], k, 0.5)
    return {
        "n_tests": k, "observed": observed, "n_permutations": n_permutations, "seed": seed,
        "null_mean": float(null.mean()), "null_sd": float(null.std()), "null_median": float(np.median(null)),
        "null_interval": NULL_INTERVAL, "null_ci_lower": int(lo), "null_ci_upper": int(hi),
        "null_counts": np.bincount(null, minlength=k + 1).tolist(),
        "p_at_most": p_at_most, "p_at_least": p_at_least, "p_value": min(1.0, 2 * min(p_at_most, p_at_least)),
        "binomial_mean": k / 2, "binomial_ci_lower": int(b_lo), "binomial_ci_upper": int(b_hi),
        "tests": [{"layer": int(t.layer), "metric": str(t.metric), "ref_layer": int(t.ref_layer),
                   "ref_sign": None if not np.isfinite(sg) else int(sg),
                   "r": None if not np.isfinite(t.r) else float(t.r)}
                  for t, sg in zip(table.itertuples(), ref_sign)],
        "reference": {"model": str(reference.get("model")), "n_pairs": reference.get("n_pairs"),
                      "source": str(reference_source)},
    }


def applies_to(block: dict[str, Any] | None, comparison) -> bool:
    """Whether a stored null was computed against the same reference signs as a comparison table.

    Parameters
    ----------
    block : dict or None
        ``results["comparison"]["sign_agreement_null"]``.
    comparison : pandas.DataFrame
        :func:`ua_helpers.report.results.compare_results` of this run with the reference at hand.
    """
    if not block or comparison is None or len(comparison) != block.get("n_tests"):
        return False
    stored = {(t["layer"], t["metric"], t["ref_layer"], t["ref_sign"]) for t in block["tests"]}
    here = {(int(t.layer), str(t.metric), int(t.ref_layer),
             None if not np.isfinite(t.ref_r) else int(np.sign(t.ref_r))) for t in comparison.itertuples()}
    return stored == here and int(comparison["same_sign"].sum()) == block["observed"]


def read_sign_agreement(block: dict[str, Any]) -> str:
    """One paragraph: the observed count of agreeing signs beside its permutation null and the binomial's."""
    k, obs = block["n_tests"], block["observed"]
    where = ("below" if obs < block["null_ci_lower"] else "above" if obs > block["null_ci_upper"] else "inside")
    return (f"Signs agree with {block['reference']['model']} in {obs} of {k} matched tests. With this run's "
            f"preference permuted {block['n_permutations']:,} times (every r recomputed, the reference's signs "
            f"fixed), the count of agreements has mean {block['null_mean']:.1f} and a "
            f"{block['null_interval']:.0%} interval of {block['null_ci_lower']} to {block['null_ci_upper']}: "
            f"{obs} lies {where} it ({p_phrase('permutation p', block['p_value'])}, two-sided). A binomial over "
            f"{k} independent tests would put the interval at {block['binomial_ci_lower']} to "
            f"{block['binomial_ci_upper']} around {block['binomial_mean']:g}; the tests are not independent "
            f"(neighbouring layers and metrics move together), so the permutation interval is the reference.")


def read_chance_level(run_results: Results, comparison) -> str:
    """The run's stored chance level for a comparison table, or why there is none for this reference.

    Parameters
    ----------
    run_results : dict
        The run's results (its ``comparison.sign_agreement_null``, written by notebook 4).
    comparison : pandas.DataFrame
        :func:`ua_helpers.report.results.compare_results` of the run with the reference at hand.
    """
    block = (run_results.get("comparison") or {}).get("sign_agreement_null")
    if block is None:
        return ("This run's results.json has no chance level for the sign agreement (comparison."
                "sign_agreement_null): it was made before runs computed one. Run it again to add it.")
    if not applies_to(block, comparison):
        return (f"The chance level in this run's results.json was computed against {block['reference']['source']} "
                f"({block['reference']['model']}), whose signs differ from this reference's: it does not apply "
                "here. A run with reference_results naming this file computes the one that does.")
    return read_sign_agreement(block)
