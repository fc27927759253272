"""The evidence ladder: how far each (layer, metric) test can be trusted, nested by construction.

Each test gets the highest level it reaches, and a level is reached only if every level below it is:

====  ==============================  ==================================================================
0     none                            (no criterion met)
1     CI excludes 0 (uncorrected)     percentile bootstrap CI of Pearson r excludes 0 (the original notebook's criterion)
2     FDR                             Benjamini-Hochberg q < alpha over the family of (layer, metric) tests
3     family-wise                     max-statistic permutation p < alpha (family-wise error)
4     robust                          Spearman rho's CI excludes 0 with r's sign, and no single pair's removal
                                      changes r's sign or its t-test verdict (leave-one-out)
5     adjusted for token count,       partial r (token-count and character-length differences and category)
      length and category             has r's sign and a multiplicity-adjusted p < alpha
6     beyond lexical                  partial r given lexical covariates (token count as n, log n and 1/sqrt(n),
                                      length, a frequency proxy, digit share, category), the same metric on a
                                      random-token representation and, above layer 0, the same metric at
                                      layer 0, has r's sign and a Holm-adjusted p < alpha
                                      (:func:`ua_helpers.analysis.controls.lexical_controls`)
====  ==============================  ==================================================================

So the count of tests at level >= k can only shrink as k grows. :func:`evidence_block` builds the JSON block
that ``results.json`` carries under ``"evidence"`` (layout: ``results.schema.json``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from .._checks import excludes_zero
from .._io import to_jsonable
from . import robustness as rb
from .redundancy import Redundancy

if TYPE_CHECKING:
    import pandas as pd

#: The evidence block's layout: 1 had rungs 0..5 (rung 5 "unconfounded"); 2 renames rung 5 "adjusted for token
#: count, length and category" (``passes["adjusted"]``) and adds rung 6 "beyond lexical" (``passes["beyond_lexical"]``).
#: 3 names each quantity as the extended block does (spearman_rho, spearman_ci_lower/upper, partial_all_r,
#: partial_all_ci_lower/upper, p_maxstat_spearman; they were rho, rho_ci_*, partial_r, partial_ci_*, p_maxstat_rho).
SCHEMA_VERSION = 3
#: (short name, criterion text) per level; level k's criterion is added to all of levels 1..k-1.
LEVELS = (
    ("none", "no criterion met"),
    ("CI excludes 0 (uncorrected)", "the percentile bootstrap CI of Pearson r excludes 0 (the original notebook's "
                                    "criterion; no correction for the number of tests)"),
    ("FDR", "Benjamini-Hochberg q < {alpha} over all (layer, metric) tests (false discovery rate)"),
    ("family-wise", "max-statistic permutation p < {alpha} over all (layer, metric) tests (family-wise error)"),
    ("robust", "Spearman rho's CI excludes 0 with the sign of r, and no single pair's removal changes r's sign or "
               "its t-test verdict (p < {alpha})"),
    ("adjusted for token count, length and category",
     "partial r controlling for the token-count difference, the character-length difference and the category keeps "
     "the sign of r with a {adjust}-adjusted p < {alpha}"),
    ("beyond lexical", "partial r given the lexical covariates (token count as n, log n and 1/sqrt(n), character "
                       "length, a token-frequency proxy, the share of digit tokens, the category), the same metric "
                       "on a random-token representation (mean over the baseline's seeds) and, above layer 0, the "
                       "same metric at layer 0 keeps the sign of r with a Holm-adjusted p < {alpha} over all tests"),
)
CRITERIA = ("ci", "bh", "maxstat", "robust", "adjusted", "beyond_lexical")
#: Columns the ladder needs from the lexical controls (``controls["lexical"]["tests"]``).
LEXICAL_COLUMNS = ("layer", "metric", "partial_r", "p_holm")
_ADJUST = {"holm": "Holm", "bh": "Benjamini-Hochberg"}
REQUIRED_COLUMNS = ("layer", "metric", "r", "ci_lower", "ci_upper", "p_bh", "p_maxstat", "spearman_rho",
                    "spearman_ci_lower", "spearman_ci_upper", "partial_all_r", "partial_all_ci_lower",
                    "partial_all_ci_upper")


def level_names() -> list[str]:
    """Return the short names of levels 0..6."""
    return [name for name, _ in LEVELS]


def criteria_text(alpha: float = 0.05, partial_adjust: str = "holm") -> list[str]:
    """Return the criterion text of levels 0..6 with ``alpha`` and the partial r's adjustment filled in."""
    return [text.format(alpha=f"{alpha:g}", adjust=_ADJUST[partial_adjust]) for _, text in LEVELS]


def _check_tests(tests, partial_adjust: str):
    if partial_adjust not in _ADJUST:
        raise ValueError(f"partial_adjust must be one of {sorted(_ADJUST)}; got {partial_adjust!r}")
    need = [*REQUIRED_COLUMNS, f"partial_all_p_{partial_adjust}"]
    missing = [c for c in need if c not in tests.columns]
    if missing:
        raise ValueError(f"tests lacks columns {missing}; pass inference.extended_analysis(...).tests")


def _lexical_frame(lexical, keys):
    """The lexical controls' rows matched to ``keys`` (layer, metric), or ValueError naming what is missing."""
    import pandas as pd

    lex = pd.DataFrame(lexical) if not isinstance(lexical, pd.DataFrame) else lexical
    missing = [c for c in LEXICAL_COLUMNS if c not in lex.columns]
    if missing:
        raise ValueError(f"lexical lacks columns {missing}; pass controls.lexical_controls(...) or "
                         "controls['lexical']['tests']")
    cols = [*LEXICAL_COLUMNS, *(c for c in ("ci_lower", "ci_upper") if c in lex.columns)]
    out = keys.merge(lex[cols].astype({"layer": int}), on=["layer", "metric"], how="left",
                     validate="one_to_one", indicator=True)
    if (out["_merge"] != "both").any():
        raise ValueError("lexical lacks some of the tests' (layer, metric) rows")
    return out.drop(columns="_merge")


def ladder(tests, loo, lexical, *, alpha: float = 0.05, partial_adjust: str = "holm") -> pd.DataFrame:
    """Assign each test the highest evidence level it reaches (see the module docstring).

    Parameters
    ----------
    tests : pandas.DataFrame
        ``inference.extended_analysis(...).tests``: one row per (layer, metric).
    loo : pandas.DataFrame
        :func:`ua_helpers.analysis.robustness.leave_one_out` on the same tests (matched on layer and metric).
    lexical : pandas.DataFrame or list of dict
        :func:`ua_helpers.analysis.controls.lexical_controls` for the same tests (or ``controls["lexical"]["tests"]``):
        at least :data:`LEXICAL_COLUMNS`; level 6 uses its ``partial_r`` and ``p_holm``.
    alpha : float, default=0.05
    partial_adjust : {"holm", "bh"}, default="holm"
        Which adjusted p-value of the partial r (``partial_all_p_holm`` or ``partial_all_p_bh``) level 5 uses.

    Returns
    -------
    pandas.DataFrame
        ``tests``' rows in their order with the columns layer, metric, one bool column per criterion in
        :data:`CRITERIA` (each tested on its own), level (int 0..6: the number of leading criteria met) and
        level_name.
    """
    import pandas as pd

    _check_tests(tests, partial_adjust)
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1); got {alpha}")
    keys = tests[["layer", "metric"]].astype({"layer": int})
    lo = keys.merge(loo[["layer", "metric", "loo_sign_change", "loo_verdict_change"]].astype({"layer": int}),
                    on=["layer", "metric"], how="left", validate="one_to_one")
    if lo["loo_sign_change"].isna().any():
        raise ValueError("loo lacks some of the tests' (layer, metric) rows")
    lex = _lexical_frame(lexical, keys)
    r = tests["r"].to_numpy(dtype=float)
    sign = np.sign(r)
    with np.errstate(invalid="ignore"):
        crit = {
            "ci": excludes_zero(tests["ci_lower"], tests["ci_upper"]),
            "bh": tests["p_bh"].to_numpy(dtype=float) < alpha,
            "maxstat": tests["p_maxstat"].to_numpy(dtype=float) < alpha,
            "robust": (excludes_zero(tests["spearman_ci_lower"], tests["spearman_ci_upper"])
                       & (np.sign(tests["spearman_rho"].to_numpy(dtype=float)) == sign)
                       & ~lo["loo_sign_change"].to_numpy(dtype=bool)
                       & ~lo["loo_verdict_change"].to_numpy(dtype=bool)),
            "adjusted": ((np.sign(tests["partial_all_r"].to_numpy(dtype=float)) == sign)
                         & (tests[f"partial_all_p_{partial_adjust}"].to_numpy(dtype=float) < alpha)),
            "beyond_lexical": ((np.sign(lex["partial_r"].to_numpy(dtype=float)) == sign)
                               & (lex["p_holm"].to_numpy(dtype=float) < alpha)),
        }
    crit = {k: v & np.isfinite(r) & (r != 0) for k, v in crit.items()}
    met = np.column_stack([*crit.values(), np.zeros(len(r), dtype=bool)])
    level = np.argmin(met, axis=1)  # index of the first criterion not met
    out = pd.DataFrame({"layer": keys["layer"].to_numpy(), "metric": keys["metric"].to_numpy(), **crit,
                        "level": level, "level_name": np.asarray(level_names(), dtype=object)[level]})
    return out


def level_counts(levels, units=None) -> list[int]:
    """Count the tests at level >= k for k = 0..6 (non-increasing by construction).

    Parameters
    ----------
    levels : array-like of int, shape (n_tests,)
    units : array-like of hashable, shape (n_tests,), optional
        Tests with the same unit (e.g. coinciding metrics at one layer) count once, at their highest level.

    Returns
    -------
    list of int, length 7
    """
    levels = np.asarray(levels, dtype=int)
    if units is not None:
        best: dict[Any, int] = {}
        for u, lv in zip(units, levels):
            best[u] = max(best.get(u, 0), int(lv))
        levels = np.fromiter(best.values(), dtype=int, count=len(best))
    return [int((levels >= k).sum()) for k in range(len(LEVELS))]


def evidence_block(tests, diagnostics: rb.Diagnostics, redundancy: Redundancy, *, controls: dict[str, Any],
                   stmt_a: Sequence[str] | None = None, stmt_b: Sequence[str] | None = None, alpha: float = 0.05,
                   partial_adjust: str = "holm") -> dict[str, Any]:
    """Build the ``"evidence"`` block of ``results.json``: each test's rung of the ladder, beside its diagnostics.

    The ladder computes nothing heavy itself: it reads the tests, the diagnostics and the controls it is given.

    Parameters
    ----------
    tests : pandas.DataFrame
        ``inference.extended_analysis(...).tests``, in (layer, metric) order.
    diagnostics : robustness.Diagnostics
        ``robustness.diagnose(...)`` of the same tests, at the same ``alpha``.
    redundancy : redundancy.Redundancy
        ``redundancy.redundancy(...)`` of the same data: metrics that coincide at a layer count once.
    controls : dict
        The run's ``controls`` block (``controls.compute_controls(...).to_json()``); level 6 reads its
        ``lexical.tests``.
    stmt_a, stmt_b : sequence of str, length n_pairs, optional
        Statement texts; when given, each massive-activation statement carries its ``text``.
    alpha : float, default=0.05
    partial_adjust : {"holm", "bh"}, default="holm"

    Returns
    -------
    dict
        JSON-ready (plain types, NaN as None); its layout is the ``evidence`` block of ``results.schema.json``.
    """
    _check_tests(tests, partial_adjust)
    order = [(int(layer), m) for layer, m in zip(tests["layer"], tests["metric"])]
    if (stmt_a is None) != (stmt_b is None):
        raise ValueError("pass both stmt_a and stmt_b, or neither")
    if not isinstance(controls, dict) or "lexical" not in controls:
        raise ValueError("controls must be the run's controls block (controls.compute_controls(...).to_json())")
    if len(diagnostics.loo) != len(tests) or list(zip(diagnostics.loo["layer"], diagnostics.loo["metric"])) != order:
        raise ValueError("diagnostics must be robustness.diagnose(...) of these tests (same rows, same order)")
    if diagnostics.alpha != alpha:
        raise ValueError(f"diagnostics were computed at alpha={diagnostics.alpha:g}; the ladder uses alpha={alpha:g}")
    loo = diagnostics.loo
    lad = ladder(tests, loo, controls["lexical"]["tests"], alpha=alpha, partial_adjust=partial_adjust)
    lex = _lexical_frame(controls["lexical"]["tests"], lad[["layer", "metric"]])
    rank_level = _rank_level(tests, alpha)
    dis = diagnostics.disagreement
    group_of: dict[tuple[int, str], int] = {}
    for gi, g in enumerate(redundancy.groups):
        for m in g["metrics"]:
            group_of[(g["layer"], m)] = gi
    units = [("g", group_of[k]) if k in group_of else ("t", k) for k in order]

    counts = level_counts(lad["level"])
    distinct = level_counts(lad["level"], units)
    crit_text = criteria_text(alpha, partial_adjust)
    levels = [{"level": k, "name": name, "criterion": crit_text[k], "count": counts[k],
               "count_distinct": distinct[k]} for k, name in enumerate(level_names())]

    p_adj = tests[f"partial_all_p_{partial_adjust}"].to_numpy(dtype=float)
    rows = []
    for i, (layer, metric) in enumerate(order):
        t, lv = tests.iloc[i], lad.iloc[i]
        rows.append({
            "layer": layer, "metric": metric, "level": lv["level"], "level_name": lv["level_name"],
            "passes": {c: lv[c] for c in CRITERIA},
            "r": t["r"], "ci_lower": t["ci_lower"], "ci_upper": t["ci_upper"], "p_bh": t["p_bh"],
            "p_maxstat": t["p_maxstat"], **{k: t[k] for k in ("spearman_rho", "spearman_ci_lower",
                                                                "spearman_ci_upper", "partial_all_r",
                                                                "partial_all_ci_lower", "partial_all_ci_upper")},
            "partial_p_adjusted": p_adj[i],
            "lexical_partial_r": lex["partial_r"].iat[i],
            "lexical_ci_lower": lex["ci_lower"].iat[i] if "ci_lower" in lex else None,
            "lexical_ci_upper": lex["ci_upper"].iat[i] if "ci_upper" in lex else None,
            "lexical_p_holm": lex["p_holm"].iat[i],
            "p_maxstat_se": t.get("p_maxstat_se"), "maxstat_uncertain": bool(t.get("maxstat_uncertain", False)),
            "p_maxstat_spearman": t.get("p_maxstat_spearman"), "rank_level": int(rank_level[i]),
            "most_influential_pair": loo["most_influential_pair"].iat[i], "loo_delta_r": loo["loo_delta_r"].iat[i],
            "loo_r_min": loo["loo_r_min"].iat[i], "loo_r_max": loo["loo_r_max"].iat[i],
            "loo_sign_change": loo["loo_sign_change"].iat[i], "loo_verdict_change": loo["loo_verdict_change"].iat[i],
            "r_without_massive": diagnostics.r_without_massive[i] if diagnostics.n_dropped[i] else None,
            "massive_changes": diagnostics.massive_changes[i],
            "disagreement": str(dis["kind"][i]), "group": group_of.get((layer, metric)),
        })
    st_rows = []
    for s in diagnostics.norms.statements().itertuples():
        row = {"pair": s.pair, "side": s.side, "layers": list(s.layers), "max_ratio": s.max_ratio}
        if stmt_a is not None:
            row["text"] = (stmt_a if s.side == "A" else stmt_b)[s.pair]
        st_rows.append(row)
    massive_ratio = diagnostics.massive_ratio
    disagreements = [{k: rows[i][k] for k in ("layer", "metric", "r", "ci_lower", "ci_upper", "spearman_rho",
                                              "spearman_ci_lower", "spearman_ci_upper")} | {"kind": rows[i]["disagreement"]}
                     for i in np.flatnonzero(dis["disagree"])]
    return to_jsonable({
        "schema_version": SCHEMA_VERSION, "alpha": alpha, "partial_adjust": partial_adjust,
        "levels": levels, "tests": rows, "redundant_groups": redundancy.groups,
        "redundancy": redundancy.per_layer.to_dict(orient="records"),
        "massive_activations": {"threshold": massive_ratio,
                                "per_layer": diagnostics.norms.per_layer.to_dict(orient="records"),
                                "statements": st_rows},
        "disagreements": disagreements,
        "criteria": {"leave_one_out": rb.LOO_CRITERION, "disagreement": rb.DISAGREEMENT_CRITERION,
                     "massive_activation": f"pooled hidden-state norm > {massive_ratio:g} x the layer's median "
                                           "over all 2 * n_pairs statements",
                     "coincide": f"|corr| > {redundancy.threshold:g} between two metrics' values across pairs at "
                                 "a layer"},
    })


def _rank_level(tests, alpha: float) -> np.ndarray:
    """Levels 1-3 on ranks: Spearman rho's CI excludes 0, then its BH q < alpha, then its max-statistic p < alpha.

    Tests without the rank columns (``spearman_p_bh``, ``p_maxstat_spearman``) reach at most what they have.
    """
    n = len(tests)

    def col(name):
        return tests[name].to_numpy(dtype=float) if name in tests.columns else np.full(n, np.nan)

    rho = col("spearman_rho")
    with np.errstate(invalid="ignore"):
        met = np.column_stack([excludes_zero(col("spearman_ci_lower"), col("spearman_ci_upper")),
                               col("spearman_p_bh") < alpha, col("p_maxstat_spearman") < alpha,
                               np.zeros(n, dtype=bool)])
    met[~(np.isfinite(rho) & (rho != 0))] = False
    return np.argmin(met, axis=1)


def evidence_table(results: dict[str, Any]) -> pd.DataFrame:
    """Return ``results["evidence"]["tests"]`` as a DataFrame (one row per (layer, metric)), for notebooks."""
    import pandas as pd

    ev = require_evidence(results)
    frame = pd.DataFrame(ev["tests"]).drop(columns=["passes"])
    return frame.astype({c: float for c in frame.columns if c in ("r", "spearman_rho", "partial_all_r", "r_without_massive")})


def ladder_table(results: dict[str, Any]) -> pd.DataFrame:
    """Return the ladder as a table: one row per level 1..6 with its criterion, count and distinct count."""
    import pandas as pd

    ev = require_evidence(results)
    rows = [{"level": lv["level"], "name": lv["name"], "criterion": lv["criterion"], "tests": lv["count"],
             "distinct findings": lv["count_distinct"]} for lv in ev["levels"][1:]]
    return pd.DataFrame(rows).set_index("level")


def require_evidence(results: dict[str, Any]) -> dict[str, Any]:
    """Return ``results["evidence"]``, or raise ValueError saying how to build it."""
    ev = results.get("evidence") if isinstance(results, dict) else None
    if not isinstance(ev, dict) or "levels" not in ev:
        raise ValueError("results lack an 'evidence' block; build it with evidence.evidence_block(...) and store "
                         "it under results['evidence']")
    check_version(ev)
    return ev


def check_version(ev: dict[str, Any], source: str = "these results") -> None:
    """Raise ValueError, in one line naming ``source``, when an evidence block is not of this ladder's layout."""
    version = ev.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ValueError(f"{source}: its evidence ladder is of layout version {version!r}, this version reads "
                         f"{SCHEMA_VERSION} (rungs 0-{len(LEVELS) - 1}, rung {len(LEVELS) - 1} "
                         f"{LEVELS[-1][0]!r}); run the analysis again with this version")
