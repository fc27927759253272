"""Figures: the seed's 2x3 per-metric error-bar figure, a layer x metric heatmap, and scatter plots.

Sized for a page: at most :data:`WIDTH` inches wide, so a figure saved at 110 dpi shows near its own size in the
book at 1280 px and its text stays at 9 px or more; every panel has labelled axes, and legends sit outside the
data (in a spare panel or below the axes).
"""
from __future__ import annotations

import numpy as np

from .._checks import excludes_zero
from ._markdown import fmt_r

#: Figure width in inches (8 in at 110 dpi: 880 px, about the book's text column at 1280 px).
WIDTH = 8.0
#: Font sizes in points for panel titles and legends, tick labels, and figure titles.
TEXT_PT, TICK_PT, TITLE_PT = 9, 9, 11


def plot_layer_correlations(table, title: str | None = None, n_pairs: int | None = None, coinciding=()):
    """Draw r with its bootstrap CI against layer, one panel per metric (the seed's figure).

    Red stars mark tests whose CI excludes zero, uncorrected for the number of tests (not "significant").
    Where ``table`` has Spearman columns (``spearman_rho``, ``spearman_ci_lower``, ``spearman_ci_upper``, as in
    ``ExtendedAnalysis.tests``), Spearman's rho and its CI are drawn beside r as hollow orange squares. The
    y-range is the seed's [-0.5, 0.5] widened where a CI reaches beyond it (the seed's fixed range clipped
    Pythia-6.9B's layer-0 margin_asymmetry at r = -0.68). A metric that coincides at a layer with one drawn in an
    earlier panel (``coinciding``) is the same finding there: its r at those layers is grey, without its rho.

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`ua_helpers.analysis.stats.correlation_table`, :func:`ua_helpers.report.results.results_table` or
        ``ExtendedAnalysis.tests`` (which adds Spearman).
    title : str, optional
    n_pairs : int, optional
    coinciding : sequence of dict, optional
        Each with ``layer`` and ``metrics`` (``results["evidence"]["redundant_groups"]``).

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    metrics = list(dict.fromkeys(table["metric"]))
    fig, axes = plt.subplots(2, 3, figsize=(WIDTH, 5.4))
    axes = axes.flatten()
    spearman = ("spearman_rho", "spearman_ci_lower", "spearman_ci_upper")
    has_rho = all(c in table.columns for c in spearman)
    cols = ["ci_lower", "ci_upper", "r"] + (list(spearman) if has_rho else [])
    extent = np.nanmax(np.abs(table[cols].to_numpy(dtype=float)), initial=0.0)
    ylim = max(0.5, float(np.ceil((extent + 0.02) * 10) / 10))
    step = float(np.min(np.diff(np.sort(table["layer"].unique())))) if table["layer"].nunique() > 1 else 1.0
    group_of = {(int(g["layer"]), m): list(g["metrics"]) for g in coinciding for m in g["metrics"]}
    for k, (ax, metric) in enumerate(zip(axes, metrics)):
        rows = table[table["metric"] == metric].sort_values("layer")
        layers, r = rows["layer"].to_numpy(), rows["r"].to_numpy(dtype=float)
        yerr = np.array([r - rows["ci_lower"].to_numpy(dtype=float), rows["ci_upper"].to_numpy(dtype=float) - r])
        same = [[m for m in group_of.get((int(l), metric), []) if m in metrics[:k]] for l in layers]
        dup = np.array([bool(x) for x in same], dtype=bool)
        ax.plot(layers, r, "-", color="blue", alpha=0.4)
        ax.errorbar(layers[~dup], r[~dup], yerr=yerr[:, ~dup], fmt="o", capsize=3, markersize=4, color="blue",
                    ecolor="blue", alpha=0.7, label="Pearson r, bootstrap CI")
        if dup.any():
            ax.errorbar(layers[dup], r[dup], yerr=yerr[:, dup], fmt="o", capsize=3, markersize=4, color="0.6",
                        ecolor="0.6", label="the same finding as an earlier panel")
        if has_rho:
            rho = rows["spearman_rho"].to_numpy(dtype=float)
            ryerr = np.array([rho - rows["spearman_ci_lower"].to_numpy(dtype=float),
                              rows["spearman_ci_upper"].to_numpy(dtype=float) - rho])
            ax.errorbar(layers[~dup] + 0.25 * step, rho[~dup], yerr=ryerr[:, ~dup], fmt="s--", capsize=2,
                        markersize=4, markerfacecolor="none", color="tab:orange", alpha=0.8,
                        label="Spearman rho, bootstrap CI")
        sig = excludes_zero(rows["ci_lower"], rows["ci_upper"])
        ax.scatter(layers[sig], r[sig], color="red", s=60, zorder=5, marker="*",
                   label="CI of r excludes 0 (uncorrected)")
        ax.axhline(y=0, color="black", linestyle="--", alpha=0.5)
        ax.set_xlabel("layer")
        ax.set_ylabel("r")
        ax.set_title(metric, fontsize=TEXT_PT, fontweight="bold")
        if dup.any():
            others = ", ".join(dict.fromkeys(m for x in same for m in x))
            ax.set_title(f"{metric}\n(grey: = {others})", fontsize=TEXT_PT)
        ax.grid(True, alpha=0.3)
        ax.set_ylim(-ylim, ylim)
    for ax in axes[len(metrics):]:
        ax.axis("off")
    legend = {}
    for ax in axes[:len(metrics)]:
        for h, l in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(l, h)
    handles, labels = list(legend.values()), list(legend)
    if len(metrics) < len(axes):  # a spare panel holds the legend
        axes[len(metrics)].legend(handles, labels, loc="center", frameon=False, fontsize=TEXT_PT)
    else:
        fig.legend(handles, labels, loc="lower center", ncol=3, frameon=False, fontsize=TEXT_PT)
    n_text = f" (n = {n_pairs})" if n_pairs else ""
    fig.suptitle(title or f"Pair-level correlations{n_text}; red stars: CI excludes 0 (uncorrected)",
                 fontsize=TITLE_PT, fontweight="bold")
    fig.tight_layout(rect=(0, 0 if len(metrics) < len(axes) else 0.08, 1, 1))
    return fig


def plot_heatmap(table, title: str = "Pearson r by layer and metric (* = CI excludes 0, uncorrected)"):
    """Draw a layer x metric heatmap of r, with r printed in each cell and '*' where the CI excludes zero.

    The '*' is the seed's uncorrected criterion, not a claim of significance; the title says so.
    """
    import matplotlib.pyplot as plt

    pivot = table.pivot(index="metric", columns="layer", values="r")
    metrics = list(dict.fromkeys(table["metric"]))
    pivot = pivot.loc[metrics]
    excludes = table.assign(_excl=excludes_zero(table["ci_lower"], table["ci_upper"]))
    sig = excludes.pivot(index="metric", columns="layer", values="_excl").astype(bool).loc[metrics]
    fig, ax = plt.subplots(figsize=(min(WIDTH, 2.6 + 0.6 * pivot.shape[1]), 0.9 + 0.45 * pivot.shape[0]))
    im = ax.imshow(pivot.to_numpy(dtype=float), cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
    ax.set_xticks(range(pivot.shape[1]), [str(c) for c in pivot.columns])
    ax.set_yticks(range(pivot.shape[0]), pivot.index)
    ax.set_xlabel("layer")
    for i in range(pivot.shape[0]):
        for j in range(pivot.shape[1]):
            v = pivot.iat[i, j]
            text = fmt_r(v) + ("*" if sig.iat[i, j] else "")
            ax.text(j, i, text, ha="center", va="center", fontsize=TEXT_PT)
    fig.colorbar(im, ax=ax, label="r")
    ax.set_ylabel("metric")
    ax.set_title(title, fontsize=TEXT_PT)
    fig.tight_layout()
    return fig


def plot_scatter(x, preference, ax=None, label: str = "", r: float | None = None, categories=None,
                 legend: bool = True):
    """Scatter one metric against the preference, coloured by category, with a least-squares line.

    ``legend=False`` leaves the categories' legend to the caller (a figure legend outside the panels).
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(5, 4))
    x, y = np.asarray(x, dtype=float), np.asarray(preference, dtype=float)
    if categories is None:
        ax.scatter(x, y, s=10, alpha=0.6)
    else:
        cats = np.asarray(categories)
        for cat in dict.fromkeys(cats):
            m = cats == cat
            ax.scatter(x[m], y[m], s=10, alpha=0.7, label=cat)
        if legend:
            ax.legend(fontsize=TEXT_PT, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    if np.ptp(x) > 0:
        slope, intercept = np.polyfit(x, y, 1)
        xs = np.linspace(x.min(), x.max(), 2)
        ax.plot(xs, slope * xs + intercept, color="black", lw=1)
    ax.axhline(0, color="grey", lw=0.5)
    ax.xaxis.set_major_locator(plt.MaxNLocator(nbins=4))  # a narrow panel's tick labels stay apart
    ax.set_xlabel(label)
    ax.set_ylabel("preference = NLL(B) - NLL(A)")
    if r is not None:
        ax.set_title(f"{label}: r = {fmt_r(r)}", fontsize=TEXT_PT)
    return ax


def plot_preference(preference, categories, title: str = "Output preference NLL(B) - NLL(A)"):
    """Histogram of the preference over all pairs, and one box per category (> 0: the model prefers A)."""
    import matplotlib.pyplot as plt

    y, cats = np.asarray(preference, dtype=float), np.asarray(categories)
    names = list(dict.fromkeys(cats))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(WIDTH, 3.2), gridspec_kw={"width_ratios": [1, 1.6]})
    ax1.hist(y, bins=30, color="steelblue", alpha=0.8)
    ax1.axvline(0, color="black", lw=1)
    ax1.set_xlabel("NLL(B) - NLL(A)")
    ax1.set_ylabel("pairs")
    ax1.set_title("all pairs", fontsize=TEXT_PT)
    ax2.boxplot([y[cats == c] for c in names], vert=False, showfliers=True)
    ax2.set_yticks(range(1, len(names) + 1), names)
    ax2.axvline(0, color="black", lw=1)
    ax2.set_xlabel("NLL(B) - NLL(A)")
    ax2.set_ylabel("category")
    ax2.set_title("per category", fontsize=TEXT_PT)
    fig.suptitle(title, fontsize=TITLE_PT)
    fig.tight_layout()
    return fig


def robust_limits(values, k: float = 3.0, flatten: float = 2.0) -> tuple[float, float] | None:
    """Return an axis range that keeps the bulk of ``values`` readable, or None when the full range does.

    ``values`` has shape (n_groups, n) (a box per row) or (n,). The bulk is the union over rows of Tukey's far
    fences, ``k`` interquartile ranges beyond the quartiles (k = 3: "far out"), cut to the data and padded by 5%.
    The range is returned only where the full data span more than ``flatten`` times it (the bulk would be
    squeezed into less than half the axis); values beyond it are to be drawn on the edge and marked.
    """
    v = np.atleast_2d(np.asarray(values, dtype=float))
    lows, highs = [], []
    for row in v:
        row = row[np.isfinite(row)]
        if row.size:
            q1, q3 = np.percentile(row, [25, 75])
            lows.append(q1 - k * (q3 - q1))
            highs.append(q3 + k * (q3 - q1))
    finite = v[np.isfinite(v)]
    if not lows:
        return None
    lo, hi = max(min(lows), finite.min()), min(max(highs), finite.max())
    if hi <= lo or finite.max() - finite.min() <= flatten * (hi - lo):
        return None
    pad = 0.05 * (hi - lo)
    return lo - pad, hi + pad


def plot_metric_distributions(values, layers, metric_names):
    """One panel per metric: the distribution of its per-pair values at each layer (box plots, outliers shown).

    A panel whose extreme values would flatten its boxes (see :func:`robust_limits`) keeps a range that shows the
    bulk; each layer with values beyond it gets a red triangle on the edge, and the panel's title says how many
    values lie beyond and how far the farthest goes.
    """
    import matplotlib.pyplot as plt

    values = np.asarray(values, dtype=float)  # [layer, metric, pair]
    fig, axes = plt.subplots(2, 3, figsize=(WIDTH, 5.8))
    axes = axes.flatten()
    for j, (ax, name) in enumerate(zip(axes, metric_names)):
        ax.boxplot([values[i, j] for i in range(len(layers))], showfliers=True, flierprops={"markersize": 2})
        ax.set_xticks(range(1, len(layers) + 1), [str(l) for l in layers], fontsize=TICK_PT)
        ax.axhline(0, color="grey", lw=0.5)
        ax.set_xlabel("layer")
        ax.set_ylabel("value per pair")
        ax.set_title(name, fontsize=TEXT_PT, fontweight="bold")
        limits = robust_limits(values[:, j])
        if limits is None:
            continue
        lo, hi = limits
        ax.set_ylim(lo, hi)
        n_out, farthest = 0, 0.0
        for i in range(len(layers)):
            v = values[i, j][np.isfinite(values[i, j])]
            for edge, beyond, marker in ((hi, v > hi, "^"), (lo, v < lo, "v")):
                if beyond.any():
                    ax.scatter([i + 1], [edge], marker=marker, color="red", s=22, zorder=4, clip_on=False)
                    n_out += int(beyond.sum())
                    farthest = max(farthest, float(np.max(np.abs(v[beyond]))))
        far = f"{farthest:,.0f}" if farthest >= 100 else f"{farthest:.3g}"
        ax.set_title(f"{name}\n{n_out} values beyond the axis (red), up to ±{far}", fontsize=TEXT_PT)
    for ax in axes[len(metric_names):]:
        ax.axis("off")
    fig.tight_layout()
    return fig


def plot_confounds(tests, title: str | None = None):
    """Draw raw r and partial r (all covariates) against layer with their CIs, one panel per metric.

    Parameters
    ----------
    tests : pandas.DataFrame
        ``ExtendedAnalysis.tests`` (needs layer, metric, r, ci_lower, ci_upper, partial_all_r,
        partial_all_ci_lower, partial_all_ci_upper).
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    need = ["layer", "metric", "r", "ci_lower", "ci_upper", "partial_all_r", "partial_all_ci_lower",
            "partial_all_ci_upper"]
    missing = [c for c in need if c not in tests.columns]
    if missing:
        raise ValueError(f"tests lacks columns {missing}; pass ExtendedAnalysis.tests")
    metrics = list(dict.fromkeys(tests["metric"]))
    if not metrics:
        raise ValueError("tests is empty")
    ncols = min(3, len(metrics))
    nrows = -(-len(metrics) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(WIDTH, 2.6 * nrows + 0.4), squeeze=False, sharey=True)
    flat_axes = axes.ravel()
    layer_values = np.sort(tests["layer"].unique())
    step = float(np.min(np.diff(layer_values))) if len(layer_values) > 1 else 1.0
    offset = 0.15 * step
    series = (("r", "ci_lower", "ci_upper", "raw r", "tab:blue", -offset),
              ("partial_all_r", "partial_all_ci_lower", "partial_all_ci_upper",
               "partial r (tokens + length + category)", "tab:orange", offset))
    for ax, metric in zip(flat_axes, metrics):
        rows = tests[tests["metric"] == metric].sort_values("layer")
        layer = rows["layer"].to_numpy(dtype=float)
        for col, lo, hi, label, color, dx in series:
            r = rows[col].to_numpy(dtype=float)
            yerr = [r - rows[lo].to_numpy(dtype=float), rows[hi].to_numpy(dtype=float) - r]
            ax.errorbar(layer + dx, r, yerr=yerr, fmt="o-", capsize=2, markersize=4, color=color, label=label)
        ax.axhline(0, color="black", linestyle="--", alpha=0.5)
        ax.set_title(metric, fontsize=TEXT_PT, fontweight="bold")
        ax.set_xlabel("layer")
        ax.set_ylabel("r")
        ax.tick_params(labelleft=True)
        ax.grid(True, alpha=0.3)
    for ax in flat_axes[len(metrics):]:
        ax.axis("off")
    handles, labels = flat_axes[0].get_legend_handles_labels()
    if len(metrics) < flat_axes.size:  # a spare panel holds the legend
        flat_axes[len(metrics)].legend(handles, labels, loc="center", frameon=False, fontsize=TEXT_PT)
        bottom = 0.0
    else:
        fig.legend(handles, labels, loc="lower center", ncol=2, frameon=False, fontsize=TEXT_PT)
        bottom = 0.08
    fig.suptitle(title or "Raw vs confound-controlled correlation with output preference", fontsize=TITLE_PT,
                 fontweight="bold")
    fig.tight_layout(rect=(0, bottom, 1, 1))
    return fig


def plot_strongest(values, preference, table, layers, metric_names, categories, n: int = 3, coinciding=()):
    """Scatter the ``n`` (layer, metric) tests with the largest |r|: metric value against preference, by category.

    Metrics that coincide at a layer (``coinciding``: the evidence block's ``redundant_groups``) are one finding
    and take one panel, titled with all their names.

    Parameters
    ----------
    values : ndarray of shape (n_layers, n_metrics, n_pairs)
    preference : ndarray of shape (n_pairs,)
    table : pandas.DataFrame
        One row per (layer, metric) with ``r`` (a correlation or results table).
    layers, metric_names : sequences matching ``values``' first two axes
    categories : sequence of str, length n_pairs
    n : int, default=3
    coinciding : sequence of dict, optional
        Each with ``layer`` and ``metrics`` (``results["evidence"]["redundant_groups"]``).

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    group_of = {(int(g["layer"]), m): tuple(g["metrics"]) for g in coinciding for m in g["metrics"]}
    ranked = table.dropna(subset=["r"])
    ranked = ranked.reindex(ranked["r"].abs().sort_values(ascending=False, kind="stable").index)
    top, seen = [], set()
    for row in ranked.itertuples():
        unit = (int(row.layer), group_of.get((int(row.layer), row.metric), (row.metric,)))
        if unit not in seen:
            seen.add(unit)
            top.append((row, unit[1]))
        if len(top) == n:
            break
    fig, axes = plt.subplots(1, max(len(top), 1), figsize=(WIDTH, 3.3), squeeze=False, sharey=True)
    for ax, (row, names) in zip(axes[0], top):
        x = values[list(layers).index(row.layer), list(metric_names).index(row.metric)]
        plot_scatter(x, preference, ax=ax, label=f"layer {row.layer} {row.metric}", r=row.r, categories=categories,
                     legend=False)
        if len(names) > 1:
            others = " = ".join(m for m in names if m != row.metric)
            ax.set_title(f"layer {row.layer} {row.metric}\n(= {others}): r = {fmt_r(row.r)}", fontsize=TEXT_PT)
    for ax in axes[0][1:]:
        ax.set_ylabel("preference")
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 3), frameon=False, fontsize=TEXT_PT,
                   markerscale=1.5)
    fig.tight_layout(rect=(0, 0.06 * ((len(labels) + 2) // 3) if handles else 0, 1, 1))
    return fig


def plot_levels(table, reference=None, title: str | None = None, reference_label: str = "published",
                pair_metric: str | None = None):
    """Draw r with its CI against relative depth for each level (category, random bins, pair).

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`ua_helpers.report.levels_tables.levels_table`: level, layer, relative_depth, r, ci_lower, ci_upper,
        n. The x-axis is relative depth (layer / num_layers), or the layer where depth is unknown.
    reference : pandas.DataFrame, optional
        The same kind of table for another run (e.g. :func:`~ua_helpers.report.levels_tables.published_levels_table`),
        drawn in the same colours with open markers and dashed lines.
    title : str, optional
    reference_label : str, default="published"
    pair_metric : str, optional
        The metric behind the pair-level rows, named in the legend.

    Returns
    -------
    matplotlib.figure.Figure
        The legend sits below the axes, off the data.
    """
    import matplotlib.pyplot as plt

    colors = {"category": "tab:red", "bins": "tab:blue", "pair": "tab:green"}
    fig, ax = plt.subplots(figsize=(WIDTH, 4.6))
    for frame, dashed in ((table, False), (reference, True)):
        if frame is None or len(frame) == 0:
            continue
        depth = frame["relative_depth"].to_numpy(dtype=float)
        use_depth = bool(np.all(np.isfinite(depth)))
        for i, (level, rows) in enumerate(frame.groupby("level", sort=True, observed=True)):
            rows = rows.sort_values("layer")
            x = rows["relative_depth" if use_depth else "layer"].to_numpy(dtype=float)
            x = x + (i - 1) * (0.008 if use_depth else 0.25) + (0.004 if dashed and use_depth else 0.0)
            r = rows["r"].to_numpy(dtype=float)
            yerr = np.abs([r - rows["ci_lower"].to_numpy(dtype=float), rows["ci_upper"].to_numpy(dtype=float) - r])
            n = rows["n"].iloc[0]
            what = f"pairs, {pair_metric}" if level == "pair" and pair_metric else level
            label = f"{what} (n = {n})" + (f", {reference_label}" if dashed else "")
            ax.errorbar(x, r, yerr=yerr, fmt="o--" if dashed else "o-", capsize=3, color=colors.get(level),
                        mfc="white" if dashed else colors.get(level), alpha=0.6 if dashed else 0.9, label=label)
    ax.axhline(0, color="black", linestyle=":", linewidth=1)
    ax.set_ylim(-1.05, 1.05)
    depth_known = bool(np.all(np.isfinite(table["relative_depth"].to_numpy(dtype=float))))
    ax.set_xlabel("relative depth (layer / number of blocks)" if depth_known else "layer")
    ax.set_ylabel("Pearson r (UA or metric vs preference)")
    ax.set_title(title or "Three levels of one question: r by depth, with bootstrap CIs", fontsize=TEXT_PT + 1)
    ax.legend(fontsize=TEXT_PT, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.14), frameon=False)
    fig.tight_layout()
    return fig


def plot_norms(norms_a, norms_b, layers, threshold: float = 10.0,
               title: str = "Pooled hidden-state norms relative to each layer's median"):
    """Draw, per layer, the norms of all 2 * n_pairs pooled statements divided by the layer's median (log scale).

    Every statement is a dot; the dashed line is the massive-activation threshold (see
    :func:`ua_helpers.analysis.robustness.norm_diagnostics`, whose ``norms_a`` / ``norms_b`` this takes).

    Parameters
    ----------
    norms_a, norms_b : ndarray of shape (n_layers, n_pairs)
    layers : sequence of int, length n_layers
    threshold : float, default=10.0
    """
    import matplotlib.pyplot as plt

    pooled = np.concatenate([np.asarray(norms_a, dtype=float), np.asarray(norms_b, dtype=float)], axis=1)
    if pooled.ndim != 2 or pooled.shape[0] != len(layers):
        raise ValueError(f"norms must be (n_layers, n_pairs) with {len(layers)} layers; got {pooled.shape}")
    ratio = pooled / np.median(pooled, axis=1, keepdims=True)  # [layer, 2 * pair]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    jitter = np.random.default_rng(0).uniform(-0.25, 0.25, ratio.shape[1])  # fixed seed: same figure every run
    for i in range(len(layers)):
        above = ratio[i] > threshold
        ax.scatter(i + jitter[~above], ratio[i, ~above], s=4, color="grey", alpha=0.5)
        ax.scatter(i + jitter[above], ratio[i, above], s=18, color="red", zorder=3)
    ax.axhline(threshold, color="red", linestyle="--", lw=1, label=f"{threshold:g}x median")
    ax.set_yscale("log")
    ax.set_xticks(range(len(layers)), [str(l) for l in layers])
    ax.set_xlabel("layer")
    ax.set_ylabel("norm / layer median")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=TEXT_PT, frameon=False)
    ax.set_title(title, fontsize=TEXT_PT + 1)
    fig.tight_layout()
    return fig


def plot_depth_overview(table, num_layers: int, reference=None, reference_num_layers: int | None = None,
                        random_tokens=None, shuffled=None, label: str = "this run",
                        reference_label: str = "Pythia-6.9B (published)", columns: int = 2):
    """Draw r against relative depth, one small panel per metric: this run beside a reference, with control bands.

    The book's key figure. Relative depth is layer / num_layers, so models of different depth line up. Where the
    run has controls, each panel shows the random-token baseline's r range (min to max over its seeds; a model-free
    geometry, so one band across all depths) and the shuffled-pairing null interval per layer.

    Parameters
    ----------
    table : pandas.DataFrame
        One row per (layer, metric) with ``r``, ``ci_lower``, ``ci_upper`` (:func:`ua_helpers.report.results.results_table`).
    num_layers : int
        The run's number of blocks (layer ``num_layers`` is the last).
    reference : pandas.DataFrame, optional
        The same kind of table for the reference run, drawn dashed with open markers.
    reference_num_layers : int, optional
        The reference's number of blocks; required with ``reference``.
    random_tokens : pandas.DataFrame, optional
        ``controls["random_tokens"]["tests"]``: layer, metric, r_min, r_max.
    shuffled : pandas.DataFrame, optional
        ``controls["shuffled_pairing"]["tests"]``: layer, metric, null_ci_lower, null_ci_upper.
    label, reference_label : str
    columns : {2, 1}, default=2
        Panels per row: two for a page column on a desktop, one for a phone (the same figure, stacked).

    Returns
    -------
    matplotlib.figure.Figure
        Panels in ``table``'s metric order, the legend in the cell after the last.
    """
    import matplotlib.pyplot as plt

    if reference is not None and not reference_num_layers:
        raise ValueError("reference_num_layers is required with a reference table")
    if not num_layers or num_layers < 1:
        raise ValueError(f"num_layers must be a positive integer; got {num_layers!r}")
    if columns not in (1, 2):
        raise ValueError(f"columns must be 1 or 2; got {columns!r}")
    metrics = list(dict.fromkeys(table["metric"]))
    n_cells = len(metrics) + 1  # one cell for the legend
    n_rows = -(-n_cells // columns)
    ratios = [1.0] * n_rows
    if columns == 1:
        ratios[-1] = 0.55  # the legend's row
    fig, axes = plt.subplots(n_rows, columns, figsize=(6.4 if columns == 2 else 3.6, 1.55 * sum(ratios) + 0.2),
                             sharex=True, sharey=True, squeeze=False, gridspec_kw={"height_ratios": ratios})
    axes = axes.ravel()
    ours_color, ref_color = "tab:blue", "tab:gray"
    for ax, metric in zip(axes, metrics):
        _control_bands(ax, metric, random_tokens, shuffled, x_scale=num_layers, alpha=0.25,
                       labels=("random-token r range", "shuffled-pairing null interval"))
        if reference is not None:
            ref = reference[reference["metric"] == metric].sort_values("layer")
            x = ref["layer"].to_numpy(dtype=float) / reference_num_layers
            ax.plot(x, ref["r"].to_numpy(dtype=float), "o--", color=ref_color, mfc="white", markersize=4,
                    linewidth=1.2, label=reference_label)
        rows = table[table["metric"] == metric].sort_values("layer")
        _r_panel(ax, rows, metric, label=label, color=ours_color, x_scale=num_layers, xlabel="relative depth",
                 text_size=10, markersize=4, linewidth=1.5)
    values = [table[["r", "ci_lower", "ci_upper"]].to_numpy(dtype=float)]
    if reference is not None:
        values.append(reference[["r"]].to_numpy(dtype=float))
    extent = max(float(np.nanmax(np.abs(v), initial=0.0)) for v in values)
    ylim = min(1.0, max(0.5, float(np.ceil((extent + 0.05) * 10) / 10)))
    axes[0].set_ylim(-ylim, ylim)
    axes[0].set_xlim(-0.03, 1.03)
    handles = {}
    for ax in axes[:len(metrics)]:
        for h, l in zip(*ax.get_legend_handles_labels()):
            if l not in handles:
                handles[l] = h
    for ax in axes[len(metrics):]:
        ax.axis("off")
    axes[len(metrics)].legend(list(handles.values()), list(handles), loc="center", frameon=False, fontsize=10)
    fig.tight_layout()
    return fig


#: The controls figure's size: 4.2 in at 100 dpi is 420 px wide, a phone's text column, with 8 pt text.
CONTROLS_FIGSIZE, CONTROLS_DPI = (4.2, 5.4), 100


def plot_controls(table, random_tokens, shuffled, *, extra=None):
    """Draw r by layer for each metric beside its controls: one small panel per metric, readable at 420 px.

    Each panel holds this run's r (blue, with its CI band), the random-token baseline's range of r over its seeds
    (orange band: a model-free geometry, the same at every layer), the token-embedding line (purple, dashed: this
    run's r at layer 0, which is the token-embedding layer) and the shuffled-pairing null interval per layer
    (green). ``extra`` adds other runs' r (the neutral set, the BOS prefix) as thin lines.

    Parameters
    ----------
    table : pandas.DataFrame
        One row per (layer, metric) with ``r``, ``ci_lower``, ``ci_upper`` (:func:`ua_helpers.report.results.results_table`).
    random_tokens : pandas.DataFrame or None
        ``controls["random_tokens"]["tests"]``: layer, metric, r_min, r_max.
    shuffled : pandas.DataFrame or None
        ``controls["shuffled_pairing"]["tests"]``: layer, metric, null_ci_lower, null_ci_upper.
    extra : dict of str to pandas.DataFrame, optional
        Label -> another run's table (layer, metric, r), drawn as a thin line per metric.

    Returns
    -------
    matplotlib.figure.Figure
        :data:`CONTROLS_FIGSIZE`, panels in ``table``'s metric order, the legend in the cell after the last.
    """
    import matplotlib.pyplot as plt

    metrics = list(dict.fromkeys(table["metric"]))
    if not metrics:
        raise ValueError("table has no tests to draw")
    n_rows = -(-(len(metrics) + 1) // 2)
    fig, axes = plt.subplots(n_rows, 2, figsize=(CONTROLS_FIGSIZE[0], CONTROLS_FIGSIZE[1] * n_rows / 3),
                             sharex=True, sharey=True, squeeze=False)
    axes = axes.ravel()
    extra_styles = [("tab:brown", "s"), ("tab:pink", "^"), ("tab:olive", "v")]
    values = [table[["r", "ci_lower", "ci_upper"]].to_numpy(dtype=float)]
    for ax, metric in zip(axes, metrics):
        rows = table[table["metric"] == metric].sort_values("layer")
        values += _control_bands(ax, metric, random_tokens, shuffled, x_scale=1.0, alpha=0.3,
                                 labels=("random tokens (range)", "shuffled pairing (null)"))
        zero = rows[rows["layer"] == 0]
        if len(zero) and np.isfinite(float(zero["r"].iloc[0])):
            ax.axhline(float(zero["r"].iloc[0]), color="tab:purple", linewidth=1.2, linestyle="--",
                       label="layer 0 (token embeddings)")
        for (label, other), (color, marker) in zip((extra or {}).items(), extra_styles):
            o = other[other["metric"] == metric].sort_values("layer")
            if len(o):
                ax.plot(o["layer"].to_numpy(dtype=float), o["r"].to_numpy(dtype=float), marker=marker,
                        color=color, markersize=2.5, linewidth=0.9, label=label)
                values.append(o[["r"]].to_numpy(dtype=float))
        _r_panel(ax, rows, metric, label="this run", color="tab:blue", x_scale=1.0, xlabel="layer", text_size=7,
                 markersize=3, linewidth=1.3, zero_width=0.6)
    extent = max(float(np.nanmax(np.abs(v), initial=0.0)) for v in values)
    ylim = min(1.0, max(0.3, float(np.ceil((extent + 0.05) * 10) / 10)))
    axes[0].set_ylim(-ylim, ylim)
    handles: dict = {}
    for ax in axes[:len(metrics)]:
        for h, l in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(l, h)
    for ax in axes[len(metrics):]:
        ax.axis("off")
    axes[len(metrics)].legend(list(handles.values()), list(handles), loc="center", frameon=False, fontsize=7)
    fig.tight_layout(pad=0.4)
    return fig


def _control_bands(ax, metric: str, random_tokens, shuffled, *, x_scale: float, alpha: float,
                   labels: tuple[str, str]) -> list[np.ndarray]:
    """Draw one metric's random-token r range (a band across the panel) and shuffled-pairing null interval.

    ``random_tokens`` and ``shuffled`` are the controls block's test rows as DataFrames (either may be None);
    layers are divided by ``x_scale``. Returns the values drawn, for the caller's axis range.
    """
    drawn: list[np.ndarray] = []
    if random_tokens is not None and len(random_tokens):
        rt = random_tokens[random_tokens["metric"] == metric]
        if len(rt):
            lo, hi = float(rt["r_min"].min()), float(rt["r_max"].max())
            ax.axhspan(lo, hi, color="tab:orange", alpha=alpha, linewidth=0, label=labels[0])
            drawn.append(np.array([lo, hi]))
    if shuffled is not None and len(shuffled):
        sh = shuffled[shuffled["metric"] == metric].sort_values("layer")
        if len(sh):
            ax.fill_between(sh["layer"].to_numpy(dtype=float) / x_scale, sh["null_ci_lower"].to_numpy(dtype=float),
                            sh["null_ci_upper"].to_numpy(dtype=float), color="tab:green", alpha=alpha, linewidth=0,
                            label=labels[1])
            drawn.append(sh[["null_ci_lower", "null_ci_upper"]].to_numpy(dtype=float))
    return drawn


def _r_panel(ax, rows, metric: str, *, label: str, color: str, x_scale: float, xlabel: str, text_size: float,
             markersize: float, linewidth: float, zero_width: float = 0.8) -> None:
    """Draw one metric's r by layer with its CI band (``rows``: its rows of a results table), labelled axes."""
    x = rows["layer"].to_numpy(dtype=float) / x_scale
    ax.fill_between(x, rows["ci_lower"].to_numpy(dtype=float), rows["ci_upper"].to_numpy(dtype=float),
                    color=color, alpha=0.15, linewidth=0, label=f"{label}: 95% CI")
    ax.plot(x, rows["r"].to_numpy(dtype=float), "o-", color=color, markersize=markersize, linewidth=linewidth,
            label=f"{label}: r")
    ax.axhline(0, color="black", linewidth=zero_width, linestyle=":")
    ax.set_title(metric, fontsize=text_size + 1)
    ax.grid(True, alpha=0.3)
    ax.tick_params(labelsize=text_size, labelleft=True, labelbottom=True)
    ax.set_ylabel("r", fontsize=text_size)
    ax.set_xlabel(xlabel, fontsize=text_size)
