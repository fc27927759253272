"""Findings in words, generated from a results dict only (what ``results.json`` holds).

The book and the notebooks call the same functions on the same file, so they print the same sentences, and no
number is typed into prose. The word "significant" is used only together with the correction behind it
("significant after correction at a false discovery rate ...", "significant family-wise ..."); an uncorrected
CI that excludes 0 is called just that.

- :func:`summarize` / :func:`markdown`: the run's findings -- the strongest results with their numbers and
  evidence level, what does not hold up and why, what the run cannot say;
- ``read_*``: one interpretation sentence for a table or figure (:func:`read_ladder`,
  :func:`read_correlation_table`, :func:`read_figure_layers`, :func:`read_disagreements`, :func:`read_massive`,
  :func:`read_single_pairs`, :func:`read_confounds`, :func:`read_redundancy`, :func:`read_scope`).

The ladder and the block they read are built by :func:`ua_helpers.analysis.evidence.evidence_block`.
"""
from __future__ import annotations

import functools
from typing import Any

import numpy as np

from .._checks import excludes_zero
from ..analysis.evidence import level_names, require_evidence
from ._markdown import Markup, fmt_ci, fmt_r, md_text, p_phrase
from .blocks import Evidence, EvidenceTest, Results
from .results import model_record

_ADJUST = {"holm": "Holm", "bh": "Benjamini-Hochberg"}
_TEXT_CHARS = 60


def _markup(func):
    """Mark what ``func`` returns (a sentence or a list of them) as :class:`~ua_helpers.report._markdown.Markup`.

    Every sentence here is Markdown that is safe to display: text from a dataset, a model or a results file
    (statement texts, names) is escaped where it enters (:func:`~ua_helpers.report._markdown.md_text`); the rest is
    generated and holds no markup. Metric names are checked by the results schema.
    """
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        out = func(*args, **kwargs)
        return [Markup(s) for s in out] if isinstance(out, list) else Markup(out)
    return wrapper


# --------------------------------------------------------------------------------------------------------------
# Formatting
# --------------------------------------------------------------------------------------------------------------

def _join(items) -> str:
    items = [str(i) for i in items]
    if len(items) <= 2:
        return " and ".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def layer_label(layer, *, capital: bool = False) -> str:
    """Name a layer in generated text: ``"layer 0 (token embeddings)"`` for index 0, else ``"layer 12"``.

    Index 0 of ``hidden_states`` is the model's input embedding of each token, before any block: a finding there
    is a property of which tokens a statement holds, and the text says so wherever it names the layer.
    """
    text = f"layer {int(layer)}" + (" (token embeddings)" if int(layer) == 0 else "")
    return text[0].upper() + text[1:] if capital else text


def _layers(layers) -> str:
    layers = [int(layer) for layer in layers]
    if len(layers) == 1:
        return layer_label(layers[0])
    return "layers " + _join(f"{layer} (token embeddings)" if layer == 0 else layer for layer in layers)


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def _pct(results: Results) -> str:
    return f"{100 * float(results.get('ci_level', 0.95)):g}%"


def _alpha(ev) -> str:
    return f"{ev['alpha']:g}"


def _units(ev) -> list[dict[str, Any]]:
    """Merge coinciding metrics of a layer into one finding; lead test = highest level, then largest |r|."""
    groups: dict[Any, list[dict]] = {}
    for t in ev["tests"]:
        key = ("g", t["group"]) if t["group"] is not None else ("t", t["layer"], t["metric"])
        groups.setdefault(key, []).append(t)
    units = []
    for members in groups.values():
        lead = max(members, key=lambda t: (t["level"], abs(t["r"]) if t["r"] is not None else -1))
        units.append({"lead": lead, "others": [t["metric"] for t in members if t is not lead],
                      "level": lead["level"]})
    return units


def _group_corr(ev, test) -> float | None:
    if test["group"] is None:
        return None
    return ev["redundant_groups"][test["group"]]["min_abs_corr"]


# --------------------------------------------------------------------------------------------------------------
# One test in words
# --------------------------------------------------------------------------------------------------------------

def _why_not_robust(t) -> str:
    reasons = []
    rho_excl = (t["spearman_ci_lower"] or 0) > 0 or (t["spearman_ci_upper"] or 0) < 0
    if not rho_excl:
        reasons.append(f"Spearman rho's CI {fmt_ci(t['spearman_ci_lower'], t['spearman_ci_upper'])} includes 0")
    elif np.sign(t["spearman_rho"]) != np.sign(t["r"]):
        reasons.append(f"Spearman rho = {fmt_r(t['spearman_rho'])} has the opposite sign")
    if t["loo_sign_change"] or t["loo_verdict_change"]:
        what = "sign" if t["loo_sign_change"] else "t-test verdict"
        reasons.append(f"removing a single pair changes its {what} (most influential: pair "
                       f"{t['most_influential_pair']}, r changes by {fmt_r(t['loo_delta_r'])})")
    return _join(reasons) or "it fails the robustness criterion"


def _verdict(t, ev) -> str:
    """What the test's level means, and why it goes no higher."""
    level, adjust = t["level"], _ADJUST[ev["partial_adjust"]]
    partial = (f"partial r = {fmt_r(t['partial_all_r'])} {fmt_ci(t['partial_all_ci_lower'], t['partial_all_ci_upper'])}, "
               f"{p_phrase(adjust + '-adjusted p', t['partial_p_adjusted'])}")
    if level == 0:
        return "its CI includes 0"
    if level == 1:
        return ("its CI excludes 0 without correction, but it is not significant after correction "
                f"({p_phrase('BH q', t['p_bh'])})")
    if level == 2:
        return (f"significant after correction at a false discovery rate of {_alpha(ev)} "
                f"({p_phrase('BH q', t['p_bh'])}) "
                f"but not family-wise ({p_phrase('max-statistic p', t['p_maxstat'])})")
    fw = f"significant family-wise ({p_phrase('max-statistic p', t['p_maxstat'])})"
    if level == 3:
        return f"{fw}, but not robust: {_why_not_robust(t)}"
    if level == 4:
        return (f"{fw} and robust to ranks and to single pairs, but not adjusted for token count, length and "
                f"category: {partial}")
    lexical = (f"partial r given lexical controls, random tokens and {layer_label(0)} = "
               f"{fmt_r(t.get('lexical_partial_r'))} "
               f"{fmt_ci(t.get('lexical_ci_lower'), t.get('lexical_ci_upper'))}, "
               f"{p_phrase('Holm-adjusted p', t.get('lexical_p_holm'))}")
    if level == 5:
        return (f"{fw}, robust to ranks and to single pairs, and adjusted for token count, length and category "
                f"({partial}), but not beyond lexical controls: {lexical}")
    return (f"{fw}, robust to ranks and to single pairs, adjusted for token count, length and category "
            f"({partial}), and beyond lexical controls ({lexical})")


@_markup
def describe_test(t: EvidenceTest, ev: Evidence, results: Results, others=()) -> str:
    """Return one sentence for one entry of ``results["evidence"]["tests"]``: numbers, level and its meaning."""
    name = t["metric"]
    if others:
        corr = _group_corr(ev, t)
        verb = "coincides" if len(others) == 1 else "coincide"
        name += (f" (one finding with {_join(others)}, which {verb} with it at this layer: |corr| >= "
                 f"{corr:.3f})")
    top = len(level_names()) - 1
    return (f"{layer_label(t['layer'], capital=True)}, {name}: r = {fmt_r(t['r'])}, {_pct(results)} CI "
            f"{fmt_ci(t['ci_lower'], t['ci_upper'])}; Spearman rho = {fmt_r(t['spearman_rho'])} "
            f"{fmt_ci(t['spearman_ci_lower'], t['spearman_ci_upper'])}. Evidence level {t['level']} of {top} "
            f"({t['level_name']}): "
            f"{_verdict(t, ev)}. {controls_verdict(t, results)}")


def beyond(r, lo, hi) -> bool:
    """Whether ``r`` lies beyond the interval ``[lo, hi]`` on its own side of 0 (the interval does not reach it).

    A control's interval that reaches r (or goes further from 0 than r) produces r without what the finding
    claims; only an r beyond it, away from 0, is more than the control gives. Missing bounds reach nothing.
    """
    if r is None or not np.isfinite(r) or r == 0:
        return False
    return bool((r > 0 and (hi is None or r > hi)) or (r < 0 and (lo is None or r < lo)))


def controls_verdict(t: EvidenceTest, results: Results) -> str:
    """Say which controls a test survives and which explain it, from ``results["controls"]`` (one sentence).

    A control *explains* the test where it reaches the test's r without what the finding claims: the random-token
    range reaches r on r's side of 0; layer 0 (token embeddings) has r's sign and at least its size (and at
    layer 0 the test is the token embeddings); the shuffled-pairing null interval reaches r on r's side (the
    real pairing adds nothing: a statement-level association); the partial r given the lexical covariates loses
    r's sign or its Holm-adjusted p is not below alpha. Otherwise the test *survives* it.
    """
    ctl = results.get("controls")
    if not isinstance(ctl, dict) or "random_tokens" not in ctl:
        return "Controls: none were computed for this run (it predates them), so none is known to explain it."
    layer, metric, r = int(t["layer"]), t["metric"], t["r"]
    if r is None or not np.isfinite(r):
        return "Controls: r is undefined, so no control applies."
    key = (layer, metric)
    find = lambda rows: next((x for x in rows or [] if (int(x["layer"]), x["metric"]) == key), None)  # noqa: E731
    sign = np.sign(r)
    survives, explains = [], []

    def reaches(lo, hi):
        return not beyond(r, lo, hi)

    rt = find(ctl["random_tokens"].get("tests"))
    if rt is not None:
        text = f"random tokens (r from {fmt_r(rt['r_min'])} to {fmt_r(rt['r_max'])})"
        (explains if reaches(rt["r_min"], rt["r_max"]) else survives).append(text)
    if layer == 0:
        explains.append("the token embeddings (the test is at layer 0, the input embedding of each token)")
    else:
        zero = ((results.get("results") or {}).get("0") or {}).get(metric)
        r0 = None if zero is None else zero.get("r")
        if r0 is not None and np.isfinite(r0):
            text = f"{layer_label(0)}, r = {fmt_r(r0)}"
            (explains if np.sign(r0) == sign and abs(r0) >= abs(r) else survives).append(text)
    sp = find((ctl.get("shuffled_pairing") or {}).get("tests"))
    if sp is not None and sp.get("null_ci_lower") is not None:
        if reaches(sp["null_ci_lower"], sp["null_ci_upper"]):
            explains.append(f"statement-level: re-pairing at random gives r = {fmt_r(sp['null_mean'])} "
                            f"{fmt_ci(sp['null_ci_lower'], sp['null_ci_upper'])}")
        else:
            survives.append(f"shuffled pairing (re-paired at random r = {fmt_r(sp['null_mean'])} "
                            f"{fmt_ci(sp['null_ci_lower'], sp['null_ci_upper'])}, "
                            f"{p_phrase('p', sp.get('p_value'))})")
    lx = find((ctl.get("lexical") or {}).get("tests"))
    alpha = float((results.get("evidence") or {}).get("alpha", 0.05))
    if lx is not None and lx.get("partial_r") is not None:
        text = (f"lexical covariates (partial r = {fmt_r(lx['partial_r'])}, "
                f"{p_phrase('Holm-adjusted p', lx.get('p_holm'))})")
        kept = (np.sign(lx["partial_r"]) == sign and lx.get("p_holm") is not None and lx["p_holm"] < alpha)
        (survives if kept else explains).append(text)
    return (f"Controls it survives: {'; '.join(survives) if survives else 'none'}. Controls that explain it: "
            f"{'; '.join(explains) if explains else 'none'}.")


# --------------------------------------------------------------------------------------------------------------
# Sentences for tables and figures
# --------------------------------------------------------------------------------------------------------------

@_markup
def read_ladder(results: Results) -> str:
    """Return the ladder's counts as one sentence (tests, and distinct findings where metrics coincide)."""
    ev = require_evidence(results)
    lv = ev["levels"]

    def count(k):
        c, d = lv[k]["count"], lv[k]["count_distinct"]
        return f"{c}" + (f" ({d} distinct)" if d != c else "")

    a = _alpha(ev)
    distinct = lv[0]["count_distinct"]
    head = f"Of {lv[0]['count']} (layer, metric) tests" + (
        f" ({distinct} distinct findings once coinciding metrics count once)" if distinct != lv[0]["count"] else "")
    return (f"{head}, {count(1)} have a {_pct(results)} CI that excludes 0 without correction; "
            f"{count(2)} are significant after correction at a false discovery rate of {a} (BH q < {a}); "
            f"{count(3)} are significant family-wise (max-statistic permutation p < {a}); "
            f"{count(4)} of these are also robust to ranks and to single pairs; "
            f"{count(5)} are also adjusted for token count, length and category; "
            f"and {count(6)} of these also hold beyond lexical controls (token-count forms, frequency, digits, the "
            f"same metric on random tokens and at {layer_label(0)}). Each level requires all below it, so the counts can "
            "only shrink.")


@_markup
def read_correlation_table(table_or_results, ci_level: float = 0.95) -> str:
    """Return a sentence reading the per-test correlation table (a DataFrame or a results dict)."""
    import pandas as pd

    if isinstance(table_or_results, dict):
        from .results import results_table

        table, ci_level = results_table(table_or_results), float(table_or_results.get("ci_level", ci_level))
    elif isinstance(table_or_results, pd.DataFrame):
        table = table_or_results
    else:
        raise ValueError(f"expected a results dict or a DataFrame; got {type(table_or_results).__name__}")
    missing = [c for c in ("layer", "metric", "r", "ci_lower", "ci_upper") if c not in table.columns]
    if missing:
        raise ValueError(f"table lacks columns {missing}")
    lo, hi = table["ci_lower"].to_numpy(dtype=float), table["ci_upper"].to_numpy(dtype=float)
    excl = excludes_zero(lo, hi)
    r = table["r"].to_numpy(dtype=float)
    if not np.isfinite(r).any():
        return f"None of the {len(table)} tests has a defined r."
    i = int(np.nanargmax(np.abs(r)))
    row = table.iloc[i]
    text = (f"{int(excl.sum())} of {len(table)} tests have a {100 * ci_level:g}% CI that excludes 0 without "
            f"correction (not by itself a claim of significance); the largest |r| is {fmt_r(row['r'])} "
            f"{fmt_ci(row['ci_lower'], row['ci_upper'])} ({row['metric']}, layer {int(row['layer'])}).")
    if isinstance(table_or_results, dict) and "evidence" in table_or_results:
        ev = table_or_results["evidence"]
        text += (f" {ev['levels'][2]['count']} are significant after correction at a false discovery rate of "
                 f"{_alpha(ev)}, {ev['levels'][3]['count']} of them family-wise.")
    elif "p_bh" in table.columns and "p_maxstat" in table.columns:
        text += (f" {int((table['p_bh'] < 0.05).sum())} have BH q < 0.05 and "
                 f"{int((table['p_maxstat'] < 0.05).sum())} a max-statistic p < 0.05 (before the ladder's other "
                 f"criteria).")
    return text


@_markup
def read_figure_layers(results: Results) -> str:
    """Return a sentence reading the per-layer figure: where each metric's CI excludes 0, and its sign."""
    ev = require_evidence(results)
    parts = []
    for metric in dict.fromkeys(t["metric"] for t in ev["tests"]):
        rows = [t for t in ev["tests"] if t["metric"] == metric and t["passes"]["ci"]]
        if not rows:
            continue
        pos = [t["layer"] for t in rows if t["r"] > 0]
        neg = [t["layer"] for t in rows if t["r"] < 0]
        sign = ("positive" if not neg else "negative" if not pos else
                f"negative at {_layers(neg)}, positive at {_layers(pos)}")
        corrected = [t["layer"] for t in rows if t["level"] >= 2]
        tail = ("" if not corrected else "; all significant after correction" if len(corrected) == len(rows)
                else f"; significant after correction at {_layers(corrected)}")
        parts.append(f"{metric} at {_layers([t['layer'] for t in rows])} ({sign}{tail})")
    if not parts:
        return "No metric has a CI that excludes 0 at any layer (stars would mark an uncorrected CI excluding 0)."
    return ("Stars mark a CI that excludes 0 without correction: " + "; ".join(parts) + ". "
            + read_disagreements(results))


@_markup
def read_disagreements(results: Results) -> str:
    """Return a sentence on the tests where Pearson r and Spearman rho disagree in sign or verdict."""
    ev = require_evidence(results)
    dis = ev["disagreements"]
    if not dis:
        return "Pearson r and Spearman rho agree in sign and verdict on every test."
    by: dict[tuple, list] = {}
    for d in dis:
        r_excl = (d["ci_lower"] or 0) > 0 or (d["ci_upper"] or 0) < 0
        by.setdefault((d["metric"], r_excl), []).append(d)
    parts = []
    for (metric, r_excl), ds in by.items():
        rs, rhos = ", ".join(fmt_r(d["r"]) for d in ds), ", ".join(fmt_r(d["spearman_rho"]) for d in ds)
        which = ("r's CI excludes 0, rho's does not" if r_excl and ds[0]["kind"] == "verdict" else
                 "rho's CI excludes 0, r's does not" if ds[0]["kind"] == "verdict" else
                 "both CIs exclude 0 with opposite signs")
        parts.append(f"{metric} at {_layers([d['layer'] for d in ds])} (r = {rs}; rho = {rhos}: {which})")
    return (f"Pearson and Spearman disagree on {_n(len(dis), 'test')}: " + "; ".join(parts)
            + ". A result that the rank correlation does not confirm is not counted as robust.")


@_markup
def read_massive(results: Results) -> str:
    """Return a sentence naming the massive-activation statements and the tests they drive."""
    ev = require_evidence(results)
    ma = ev["massive_activations"]
    st = ma["statements"]
    if not st:
        return (f"No statement's pooled hidden-state norm exceeds {ma['threshold']:g}x its layer's median "
                f"(largest ratio {max(p['max_ratio'] for p in ma['per_layer']):.1f}x).")
    names = []
    for s in st:
        text = s.get("text")
        quote = "" if text is None else (f' "{md_text(text[:_TEXT_CHARS])}' + ("..." if len(text) > _TEXT_CHARS else "")
                                         + '"')
        names.append(f"pair {s['pair']} {s['side']}{quote} ({_layers(s['layers'])}, up to {s['max_ratio']:.0f}x)")
    text = (f"{_n(len(st), 'statement')} have pooled hidden-state norms above {ma['threshold']:g}x their layer's "
            f"median (massive activations): " + "; ".join(names) + ".")
    driven = [t for t in ev["tests"] if t["massive_changes"]]
    if driven:
        text += (f" Without their pairs, {_n(len(driven), 'test')} change sign or t-test verdict: "
                 + "; ".join(f"{t['metric']} at {layer_label(t['layer'])} (r = {fmt_r(t['r'])} -> "
                             f"{fmt_r(t['r_without_massive'])})" for t in driven) + ".")
    else:
        text += " Removing their pairs changes no test's sign or t-test verdict."
    return text


@_markup
def read_single_pairs(results: Results) -> str:
    """Return a sentence on the tests whose CI excludes 0 but whose sign or verdict one pair can change."""
    ev = require_evidence(results)
    hit = [t for t in ev["tests"] if t["passes"]["ci"] and (t["loo_sign_change"] or t["loo_verdict_change"])]
    if not hit:
        return ("No test whose CI excludes 0 changes its sign or t-test verdict when any single pair is removed.")
    return (f"{_n(len(hit), 'test')} whose CI excludes 0 change sign or t-test verdict when one pair is removed: "
            + "; ".join(f"{t['metric']} at {layer_label(t['layer'])} (pair {t['most_influential_pair']}, "
                        f"r {fmt_r(t['r'])} -> {fmt_r(t['r'] + t['loo_delta_r'])})" for t in hit) + ".")


@_markup
def read_ranks(results: Results) -> str:
    """Return a sentence naming the tests that reach a level on ranks but not on Pearson, and the permutation
    verdicts within two Monte Carlo standard errors of alpha."""
    ev = require_evidence(results)
    names = level_names()
    up = [t for t in ev["tests"] if t.get("rank_level") is not None and t["rank_level"] > min(t["level"], 3)]
    if up:
        text = ("On ranks (Spearman rho: its CI, BH and max-statistic test) these tests reach a higher level than on "
                "Pearson r: " + "; ".join(
                    f"{t['metric']} at {layer_label(t['layer'])} (rho = {fmt_r(t['spearman_rho'])}, level {t['rank_level']} "
                    f"({names[t['rank_level']]}) on ranks, {t['level']} on Pearson)" for t in up) + ".")
    else:
        text = "No test reaches a higher level on ranks (Spearman rho) than on Pearson r."
    shaky = [t for t in ev["tests"] if t.get("maxstat_uncertain")]
    if shaky:
        verdicts = _join(f"{t['metric']} at {layer_label(t['layer'])} ({p_phrase('max-statistic p', t['p_maxstat'])})"
                         for t in shaky)
        text += (f" The family-wise verdict of {verdicts}"
                 + f" lies within two Monte Carlo standard errors of {_alpha(ev)}: more permutations could flip it.")
    return text


def read_confounds(results: Results) -> str:
    """Return a sentence on which family-wise results survive control for length and category."""
    ev = require_evidence(results)
    fw = [t for t in ev["tests"] if t["level"] >= 3]
    adjust = _ADJUST[ev["partial_adjust"]]
    if not fw:
        return "No test is significant family-wise, so confound control has nothing to confirm."
    lost = [t for t in fw if not t["passes"]["adjusted"]]
    text = (f"Of the {_n(len(fw), 'test')} significant family-wise, {len(fw) - len(lost)} keep their sign with a "
            f"{adjust}-adjusted p < {_alpha(ev)} once token count, length and category are controlled for")
    if lost:
        text += ("; these do not: " + "; ".join(
            f"{t['metric']} at {layer_label(t['layer'])} (r = {fmt_r(t['r'])}, partial r = {fmt_r(t['partial_all_r'])} "
            f"{fmt_ci(t['partial_all_ci_lower'], t['partial_all_ci_upper'])}, "
            f"{p_phrase('adjusted p', t['partial_p_adjusted'])})"
            for t in lost))
    return text + "."


@_markup
def read_redundancy(results: Results) -> str:
    """Return a sentence on coinciding metrics and how close the A and B centroids lie."""
    ev = require_evidence(results)
    red = {row["layer"]: row for row in ev["redundancy"]}
    by: dict[tuple, list] = {}
    for g in ev["redundant_groups"]:
        by.setdefault(tuple(g["metrics"]), []).append(g)
    cos = [row["cos_centroids"] for row in ev["redundancy"] if row["cos_centroids"] is not None]
    base = (f"At every layer cos(mu_A, mu_B) >= {min(cos):.3f}" if cos else "")
    if not by:
        return f"No two metrics coincide at any layer. {base}."
    parts = []
    for metrics_, gs in by.items():
        layers = [g["layer"] for g in gs]
        ratios = [red[l]["distance_ratio"] for l in layers]
        parts.append(f"{_join(metrics_)} coincide at {len(layers)} of {len(red)} layers, {_join(layers)} (|corr| >= "
                     f"{min(g['min_abs_corr'] for g in gs):.3f}; there ||mu_A - mu_B|| is {min(ratios):.2f} to "
                     f"{max(ratios):.2f} times the mean distance of a statement to its centroid)")
    return ("; ".join(parts) + f". {base}: when the two centroids nearly coincide, cosine "
            "to one is cosine to the other, so these metrics are one finding and the distinct counts count them "
            "once.")


@_markup
def read_scope(results: Results) -> str:
    """Return what this run cannot say: one model, one dataset, a correlation."""
    info = model_record(results)
    ds = results.get("dataset") or {}
    dtype = info.get("dtype") or (results.get("parameters") or {}).get("dtype", "unknown dtype")
    device = info.get("device")
    return (f"This run is one model ({md_text(results['model'])}, {md_text(dtype)}"
            + (f" on {md_text(device)}" if device else "")
            + f") on one dataset ({md_text(ds.get('name', 'unnamed'))}, n_pairs = {results['n_pairs']}). Its r is a "
            "correlation across statement pairs between hidden-state geometry and the output preference "
            "NLL(B) - NLL(A): it is not a causal effect, and it does not say whether other models, sizes, "
            "training stages or datasets behave alike.")


# --------------------------------------------------------------------------------------------------------------
# The findings
# --------------------------------------------------------------------------------------------------------------

@_markup
def strongest(results: Results, n: int = 3) -> list[str]:
    """Return one sentence per strongest finding: highest level first, then largest |r| (coinciding merged)."""
    ev = require_evidence(results)
    units = [u for u in _units(ev) if u["level"] >= 1]
    units.sort(key=lambda u: (-u["level"], -abs(u["lead"]["r"]), u["lead"]["layer"]))
    return [describe_test(u["lead"], ev, results, u["others"]) for u in units[:n]]


def _found(results, n_strongest) -> list[str]:
    ev = require_evidence(results)
    out = [read_ladder(results)]
    top = strongest(results, n_strongest)
    if ev["levels"][2]["count"] == 0:
        out.append("No test is significant after correction for the number of tests.")
    out += top if top else ["No test has a CI that excludes 0."]
    return out


def _caveats(results) -> list[str]:
    ev = require_evidence(results)
    out = []
    if ev["disagreements"]:
        out.append(read_disagreements(results))
    if ev["massive_activations"]["statements"]:
        out.append(read_massive(results))
    if any(t["passes"]["ci"] and (t["loo_sign_change"] or t["loo_verdict_change"]) for t in ev["tests"]):
        out.append(read_single_pairs(results))
    if any(t["level"] >= 3 and not t["passes"]["adjusted"] for t in ev["tests"]):
        out.append(read_confounds(results))
    if ev["redundant_groups"]:
        out.append(read_redundancy(results))
    return out


@_markup
def summarize(results: Results, n_strongest: int = 3) -> list[str]:
    """Return the run's findings as sentences: what was found, what does not hold up, what the run cannot say.

    Parameters
    ----------
    results : dict
        A results dict (``results.json``) with an ``"evidence"`` block.
    n_strongest : int, default=3
        How many of the strongest findings to describe.

    Returns
    -------
    list of str
    """
    return _found(results, n_strongest) + _caveats(results) + [read_scope(results)]


@_markup
def markdown(results: Results, n_strongest: int = 3, heading_level: int = 3) -> str:
    """Return the findings as Markdown: three headed sections of bullet points."""
    h = "#" * heading_level
    caveats = _caveats(results)
    lines = [f"{h} What this run found", ""] + [f"- {s}" for s in _found(results, n_strongest)]
    lines += ["", f"{h} What does not hold up", ""]
    lines += [f"- {s}" for s in caveats] if caveats else ["- Every diagnostic passed: no disagreement, no massive "
                                                         "activation, no coinciding metrics."]
    lines += ["", f"{h} What this run cannot say", "", read_scope(results), ""]
    return "\n".join(lines)


def read_controls(results: Results) -> str:
    """Return a few sentences reading a ``controls`` block: what each control explains.

    Parameters
    ----------
    results : dict
        A results dict holding ``"controls"`` (then level 6 of its ``"evidence"`` is read too), or the block itself
        (:meth:`Controls.to_json`).
    """
    ctrl = results.get("controls", results) if isinstance(results, dict) else None
    if not isinstance(ctrl, dict) or "random_tokens" not in ctrl:
        raise ValueError("results lack a 'controls' block; build it with controls.compute_controls(...).to_json()")
    rt = ctrl["random_tokens"]
    first = {t["metric"]: t for t in rt["tests"] if t["layer"] == rt["tests"][0]["layer"]}
    lo = min(t["r_min"] for t in first.values())
    hi = max(t["r_max"] for t in first.values())
    strongest = max(first.values(), key=lambda t: abs(t["r_mean"]))
    text = [f"A model-free representation (each token id a random vector, {len(rt['seeds'])} seeds) gives r from "
            f"{fmt_r(lo)} to {fmt_r(hi)} across the metrics, strongest for {strongest['metric']} "
            f"(mean r = {fmt_r(strongest['r_mean'])})."]
    sp = ctrl["shuffled_pairing"]
    inside = [t for t in sp["tests"] if t["r_observed"] is not None and t["null_ci_lower"] is not None
              and t["null_ci_lower"] <= t["r_observed"] <= t["null_ci_upper"]]
    pct = f"{100 * float(sp.get('ci_level', 0.95)):g}%"
    text.append(f"Re-pairing each A statement with a random B statement ({sp['n_shuffles']:,} re-pairings) leaves "
                f"{len(inside)} of {len(sp['tests'])} tests' observed r inside the null's {pct} interval: there the "
                "real pairing adds nothing to a statement-level association.")
    lex = ctrl["lexical"]
    covs = [c for c in lex["covariates"] if c["r"] is not None]
    if covs:
        top = max(covs, key=lambda c: abs(c["r"]))
        text.append(f"Of the lexical covariates, {top['name']} correlates most with the preference "
                    f"(r = {fmt_r(top['r'])}).")
    ev = results.get("evidence")
    if isinstance(ev, dict) and len(ev.get("levels", [])) > 6:
        reached = ev["levels"][6]["count"]
        text.append(f"{reached} of {len(lex['tests'])} tests keep their sign with a Holm-adjusted p < "
                    f"{ev['alpha']:g} given all of these and the same metric on random tokens and at layer 0 "
                    f"(token embeddings) (evidence level 6, {ev['levels'][6]['name']}).")
    return " ".join(text)
