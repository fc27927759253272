"""Descriptive tables of a run's inputs: the dataset, token lengths, the preference, the metric values.

Each function takes arrays or a :class:`~ua_helpers.inputs.data.PairSet` (never a run configuration) and returns a
``pandas.DataFrame`` for a notebook to show, or a sentence generated from the numbers it shows.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..inputs.data import PairSet


def dataset_overview(pairs: PairSet):
    """One row per category: pair count, the dataset's own description, and its first pair.

    Returns
    -------
    pandas.DataFrame
        Indexed by category, columns n_pairs, description, example A, example B.
    """
    import pandas as pd

    frame = pairs.to_frame()
    rows = []
    for cat, group in frame.groupby("category", sort=False):
        rows.append({"category": cat, "n_pairs": len(group),
                     "description": pairs.descriptions.get(cat, {}).get("description", ""),
                     "example A": group["stmt_a"].iloc[0], "example B": group["stmt_b"].iloc[0]})
    return pd.DataFrame(rows).set_index("category")


def token_lengths(pairs: PairSet, tokenizer):
    """Mean token counts of the A and B statements per category and overall, with ``tokenizer``.

    Returns
    -------
    pandas.DataFrame
        Indexed by category (and ``"all"``), columns tokens_a, tokens_b, difference (B − A).
    """
    frame = pairs.to_frame().assign(
        tokens_a=[len(tokenizer(t)["input_ids"]) for t in pairs.stmt_a],
        tokens_b=[len(tokenizer(t)["input_ids"]) for t in pairs.stmt_b],
    )
    table = frame.groupby("category", sort=False)[["tokens_a", "tokens_b"]].mean()
    table.loc["all"] = frame[["tokens_a", "tokens_b"]].mean()
    return table.assign(difference=table["tokens_b"] - table["tokens_a"]).round(2)


def preference_table(preference: np.ndarray, categories: Sequence[str]):
    """Summarize the preference NLL(B) − NLL(A) per category and overall.

    Parameters
    ----------
    preference : ndarray of shape (n_pairs,)
    categories : sequence of str, length n_pairs

    Returns
    -------
    pandas.DataFrame
        Indexed by category (and ``"all"``), columns n, mean, sd, prefers A (the share of pairs with
        preference > 0).
    """
    import pandas as pd

    pref = np.asarray(preference, dtype=np.float64)
    if pref.shape != (len(categories),):
        raise ValueError(f"preference {pref.shape} does not match {len(categories)} categories")
    frame = pd.DataFrame({"category": list(categories), "preference": pref})

    def summary(v):
        return {"n": len(v), "mean": v.mean(), "sd": v.std(ddof=1) if len(v) > 1 else np.nan,
                "prefers A": (v > 0).mean()}

    rows = {cat: summary(g["preference"]) for cat, g in frame.groupby("category", sort=False)}
    rows["all"] = summary(frame["preference"])
    return pd.DataFrame(rows).T.astype({"n": int}).round(3)


def read_preference(table) -> str:
    """One sentence that reads :func:`preference_table`: overall preference and the categories at either end."""
    cats = table.drop(index="all")
    overall = table.loc["all"]
    hi, lo = cats["mean"].idxmax(), cats["mean"].idxmin()
    one_sided = [c for c in cats.index if cats.loc[c, "prefers A"] in (0.0, 1.0)]
    text = (f"Over all {int(overall['n'])} pairs the model prefers statement A in "
            f"{overall['prefers A']:.0%} of pairs (mean preference {overall['mean']:+.3f} nats); the mean ranges "
            f"from {cats.loc[lo, 'mean']:+.3f} ({lo}) to {cats.loc[hi, 'mean']:+.3f} ({hi}).")
    if one_sided:
        text += (f" In {', '.join(one_sided)} every pair prefers the same side, so that category alone can drive "
                 "a pooled correlation.")
    return text


def metric_summary(values: np.ndarray, layers: Sequence[int], metric_names: Sequence[str]):
    """Mean and standard deviation of each metric per layer.

    Parameters
    ----------
    values : ndarray of shape (n_layers, n_metrics, n_pairs)
    layers : sequence of int, length n_layers
    metric_names : sequence of str, length n_metrics

    Returns
    -------
    pandas.DataFrame
        Layers as rows, one column per metric holding "mean ± sd" with three significant digits (the metrics'
        scales differ by orders of magnitude, so a fixed number of decimals would hide the small ones).
    """
    import pandas as pd

    values = np.asarray(values, dtype=np.float64)
    if values.shape[:2] != (len(layers), len(metric_names)):
        raise ValueError(f"values {values.shape} do not match {len(layers)} layers x {len(metric_names)} metrics")
    rows = {l: {m: f"{values[i, j].mean():.3g} ± {values[i, j].std():.3g}" for j, m in enumerate(metric_names)}
            for i, l in enumerate(layers)}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("layer")


def read_token_lengths(table) -> str:
    """One sentence that reads :func:`token_lengths`: the overall length gap between the sides and its extremes."""
    cats = table.drop(index="all")
    overall = table.loc["all", "difference"]
    widest = cats["difference"].abs().idxmax()
    side = "B" if overall > 0 else "A"
    return (f"Side {side} statements are longer by {abs(overall):.2f} tokens on average "
            f"(A: {table.loc['all', 'tokens_a']:.2f}, B: {table.loc['all', 'tokens_b']:.2f}); the widest gap is in "
            f"{widest} ({cats.loc[widest, 'difference']:+.2f} tokens, B − A).")


def read_centroids(per_layer) -> str:
    """One sentence that reads a centroid-geometry table (``redundancy.redundancy(...).per_layer``)."""
    cos = per_layer["cos_centroids"].to_numpy(dtype=float)
    ratio = per_layer["distance_ratio"].to_numpy(dtype=float)
    text = (f"cos(μ_A, μ_B) lies between {np.nanmin(cos):.3f} and {np.nanmax(cos):.3f} across layers, and the "
            f"centroids lie {np.nanmin(ratio):.2f}–{np.nanmax(ratio):.2f} statement spreads apart.")
    if np.nanmin(cos) >= 0.99:
        text += (" The two side centroids nearly coincide at every layer, so centroid_asymmetry and cross_centroid "
                 "measure almost the same thing here and count as one finding.")
    return text


def massive_table(diagnostics, pairs: PairSet):
    """The statements whose pooled norm exceeds the threshold at some layer, with their text.

    Parameters
    ----------
    diagnostics : robustness.NormDiagnostics
    pairs : PairSet

    Returns
    -------
    pandas.DataFrame
        One row per statement: pair, side, category, layers, max_ratio (norm / the layer's median), text.
    """
    table = diagnostics.statements()
    return table.assign(
        category=[pairs.category[int(p)] for p in table["pair"]],
        text=[(pairs.stmt_a if s == "A" else pairs.stmt_b)[int(p)] for p, s in zip(table["pair"], table["side"])],
    )[["pair", "side", "category", "layers", "max_ratio", "text"]].round({"max_ratio": 1})


def read_norms(diagnostics) -> str:
    """One sentence that reads :func:`massive_table`: how many statements, where, how extreme."""
    table = diagnostics.statements()
    if table.empty:
        return (f"No statement's pooled norm exceeds {diagnostics.threshold:g}× its layer's median: no handful of "
                "points can dominate the distances.")
    layers = sorted({int(l) for ls in table["layers"] for l in ls})
    return (f"{len(table)} statement(s) have pooled norms above {diagnostics.threshold:g}× their layer's median "
            f"(up to {table['max_ratio'].max():.0f}×, at layers {', '.join(map(str, layers))}); correlations of "
            "the distance-based metrics (margin, kNN density) at those layers can be driven by these few points, "
            "which notebook 4 checks by leaving them out.")
