"""Tables of the three levels per layer, read from results.json's blocks or from the study's published files.

The project's ``category_level`` and ``option_a_bins`` blocks use the study's key names (``layer_results``,
``bootstrap_results``), so one reader serves this run and the published Pythia files alike.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ..inputs import published
from ._markdown import R_DECIMALS, fmt_ci, fmt_r

#: Level names, in order of group size: n = categories, random bins, pairs.
LEVELS = ("category", "bins", "pair")
#: Columns of :func:`levels_table`.
COLUMNS = ("level", "layer", "relative_depth", "r", "ci_lower", "ci_upper", "p_value", "includes_zero", "n", "note")
#: Pythia-6.9B's number of blocks (hidden_states indices 0..32).
PYTHIA_69B_LAYERS = 32


def _num(v) -> float:
    return np.nan if v is None else float(v)


def _rows(level: str, entries: Mapping[str, Any], n_default, num_layers: int | None, n_key: str) -> list[dict]:
    rows = []
    for layer, e in entries.items():
        lo, hi = _num(e.get("ci_lower")), _num(e.get("ci_upper"))
        rows.append({
            "level": level, "layer": int(layer),
            "relative_depth": int(layer) / num_layers if num_layers else np.nan,
            "r": _num(e.get("r")), "ci_lower": lo, "ci_upper": hi,
            "p_value": _num(e.get("p_value")),
            "includes_zero": bool(e["includes_zero"]) if "includes_zero" in e else not (lo > 0 or hi < 0),
            "n": e.get(n_key, n_default), "note": e.get("note", "") or "",
        })
    return rows


def levels_table(results: Mapping[str, Any], *, pair_metric: str | None = None, num_layers: int | None = None):
    """Return one row per (level, layer) from a results dict's level blocks.

    Parameters
    ----------
    results : mapping
        A results.json dict (``category_level``, ``option_a_bins`` and the pair-level ``results``), or a dict
        assembled from the published files (see :func:`published_levels_table`). Missing blocks give no rows.
    pair_metric : str, optional
        The pair-level metric to show as the ``"pair"`` level (e.g. ``"centroid_asymmetry"``); None: no pair rows.
    num_layers : int, optional
        The model's number of blocks, for ``relative_depth`` = layer / num_layers; defaults to
        ``results["num_layers"]`` (NaN when neither is known).

    Returns
    -------
    pandas.DataFrame
        Columns level, layer, relative_depth, r, ci_lower, ci_upper, p_value, includes_zero, n, note; n is the
        number of categories, bins or pairs behind each r.
    """
    import pandas as pd

    num_layers = num_layers or results.get("num_layers")
    rows: list[dict] = []
    cat = results.get("category_level")
    if cat:
        rows += _rows("category", cat["layer_results"], cat.get("n_categories"), num_layers, "n_categories")
    bins = results.get("option_a_bins")
    if bins:
        rows += _rows("bins", bins["bootstrap_results"], bins.get("k_bins"), num_layers, "n_bins")
    if pair_metric is not None:
        if pair_metric not in results.get("metrics_tested", [pair_metric]):
            raise ValueError(f"pair_metric {pair_metric!r} is not among the results' metrics "
                             f"{results.get('metrics_tested')}")
        entries = {layer: tests[pair_metric] for layer, tests in results["results"].items()}
        rows += _rows("pair", entries, results.get("n_pairs"), num_layers, "n")
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    frame["level"] = pd.Categorical(frame["level"], categories=list(LEVELS), ordered=True)
    return frame.sort_values(["level", "layer"], kind="stable").reset_index(drop=True)


def category_table(block: Mapping[str, Any], layer: int | str | None = None):
    """Return the per-category values of one layer, one row per category.

    Parameters
    ----------
    block : mapping
        A ``category_level`` block (then ``layer`` is required), or a published last-layer file (categories at
        its top level, beside ``_global_stats``).
    layer : int or str, optional

    Returns
    -------
    pandas.DataFrame
        Columns category, n_pairs, uniformity_a, uniformity_b, asymmetry, output_preference, pct_prefer_a.
    """
    import pandas as pd

    if "layer_results" in block:
        if layer is None:
            raise ValueError(f"layer is required for a category_level block; it has {list(block['layer_results'])}")
        cats = block["layer_results"][str(layer)]["categories"]
    else:
        cats = {k: v for k, v in block.items() if not k.startswith("_")}
    return pd.DataFrame([{"category": name, **{k: (np.nan if v is None else v) for k, v in vals.items()}}
                         for name, vals in cats.items()])


def distribution_table(block: Mapping[str, Any]):
    """Return Option A's distribution of r over random binnings: one row per (k, layer).

    Returns
    -------
    pandas.DataFrame
        Columns k, layer, r_mean, r_std, p_mean, n_valid, share_ci_excludes_zero.
    """
    import pandas as pd

    rows = [{"k": int(k), "layer": int(layer), **{key: (np.nan if v is None else v) for key, v in e.items()}}
            for k, layers in block["results_by_k"].items() for layer, e in layers.items()]
    return pd.DataFrame(rows)


def published_levels_table(pair_metric: str | None = None):
    """Return the published Pythia-6.9B levels per layer, read offline from the files shipped in the package.

    Parameters
    ----------
    pair_metric : str, optional
        Add the published pair-level (seed notebook) rows of this metric.

    Returns
    -------
    pandas.DataFrame
        As :func:`levels_table`, relative depth over Pythia-6.9B's 32 blocks.
    """
    results = {"category_level": published.load("pythia-6.9b_category_level_bootstrap_ci"),
               "option_a_bins": published.load("pythia-6.9b_option_a_bins")}
    if pair_metric is not None:
        results.update(published.load(published.PAIR_LEVEL))
    return levels_table(results, pair_metric=pair_metric, num_layers=PYTHIA_69B_LAYERS)


def published_scaling_table():
    """Return the published category-level r per layer of Pythia-410M, 1.4B, 6.9B and 12B (no CIs).

    Returns
    -------
    pandas.DataFrame
        Columns model, num_layers, layer, relative_depth, r, p_value.
    """
    import pandas as pd

    data = published.load("pythia_scaling_category_level_layers")
    rows = [{"model": name, "num_layers": int(m["n_layers"]), "layer": int(layer),
             "relative_depth": int(layer) / int(m["n_layers"]), "r": _num(e["correlation"]),
             "p_value": _num(e["p_value"])}
            for name, m in data["models"].items() for layer, e in m["layer_results"].items()]
    return pd.DataFrame(rows)


def levels_text(results: Mapping[str, Any]) -> str:
    """Return the category-level and random-bin r per layer as fixed-width text (what regression tests compare).

    Parameters
    ----------
    results : mapping
        A dict with ``category_level`` and ``option_a_bins`` blocks (``levels.analyse_levels``' output or a
        results.json dict).
    """
    table = levels_table(results)
    lines = [f"{'level':<9} {'layer':>5}  {'n':>3}  {'r':>6}  {'CI':<16} CI excludes 0"]
    for row in table.itertuples():
        lines.append(f"{row.level:<9} {row.layer:>5}  {row.n!s:>3}  {fmt_r(row.r):>6}  "
                     f"{fmt_ci(row.ci_lower, row.ci_upper):<16} "
                     f"{'no' if row.includes_zero else 'yes'}")
    return "\n".join(lines)


def read_levels(results: Mapping[str, Any]) -> str:
    """Return sentences reading the two group levels: where their CIs exclude 0, and how wide they are."""
    table = levels_table(results)
    parts = []
    bins = results.get("option_a_bins") or {}
    spread = (bins.get("results_by_k") or {}).get(str(bins.get("k_bins")))
    means = np.array([_num(e.get("r_mean")) for e in (spread or {}).values()])
    if np.isfinite(means).any():
        sds = np.array([_num(e.get("r_std")) for e in spread.values()])
        shares = np.array([_num(e.get("share_ci_excludes_zero")) for e in spread.values()])
        parts.append(f"Over {bins.get('n_binnings')} random binnings into {bins.get('k_bins')} bins (an answer that "
                     f"does not depend on one draw), the mean r per layer ranges from {fmt_r(np.nanmin(means))} to "
                     f"{fmt_r(np.nanmax(means))} (sd over binnings {np.nanmin(sds):.{R_DECIMALS}f} to "
                     f"{np.nanmax(sds):.{R_DECIMALS}f}), and "
                     f"at most {np.nanmax(shares):.0%} of binnings have an interval that excludes 0 at any layer.")
    for level, label in (("category", "category level"), ("bins", "study's one seeded binning (Option A)")):
        rows = table[table["level"] == level]
        if rows.empty:
            continue
        defined = rows[np.isfinite(rows["r"].to_numpy(dtype=float))]
        if defined.empty:
            parts.append(f"At the {label} r is undefined at every layer ({rows['note'].iloc[0]}).")
            continue
        n = defined["n"].iloc[0]
        excl = defined[~defined["includes_zero"]]
        width = float(np.nanmedian(defined["ci_upper"] - defined["ci_lower"]))
        where = ("at no layer" if excl.empty else
                 "at layer" + ("s " if len(excl) > 1 else " ") + ", ".join(str(int(v)) for v in excl["layer"]))
        parts.append(f"At the {label} (n = {n}), r ranges from {fmt_r(defined['r'].min())} to "
                     f"{fmt_r(defined['r'].max())} and its CI excludes 0 (uncorrected) {where}; the median CI is "
                     f"{width:.{R_DECIMALS}f} wide.")
    if not parts:
        return "This run has no group levels (category_level, option_a_bins): it predates them."
    return " ".join(parts) + (" With so few groups, a CI that excludes 0 at one layer is weak evidence: the "
                              "groups are few and the layers are not independent tests.")


#: The pair-level metric shown beside the two group levels, in the figure and in the book's table alike.
PAIR_METRIC = "centroid_asymmetry"
#: Why that metric: a rule fixed before any r is seen (picking the largest |r| of five per layer would be a
#: selection that inflates the pair level beside the group levels).
PAIR_METRIC_RULE = ("The pair level shows centroid_asymmetry at every layer: the original study's first pair-level "
                    "metric and the closest to Uniformity Asymmetry (each statement's similarity to its own side's "
                    "centroid), fixed in advance rather than picked for its r.")


def pair_level_metric(results: Mapping[str, Any]) -> str:
    """Return :data:`PAIR_METRIC` (see :data:`PAIR_METRIC_RULE`), after checking the results hold it."""
    tested = results.get("metrics_tested") or sorted({m for t in results["results"].values() for m in t})
    if PAIR_METRIC not in tested:
        raise ValueError(f"these results have no {PAIR_METRIC} tests (metrics: {tested}); the three-levels "
                         "comparison needs it")
    return PAIR_METRIC
