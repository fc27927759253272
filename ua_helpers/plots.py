"""Figures: the seed's 2x3 per-metric error-bar figure, a layer x metric heatmap, and scatter plots."""
from __future__ import annotations

import numpy as np


def plot_layer_correlations(table, title: str | None = None, n_pairs: int | None = None):
    """Draw r with its bootstrap CI against layer, one panel per metric (the seed's figure).

    Red stars mark tests whose CI excludes zero, uncorrected for the number of tests (not "significant").
    Where ``table`` has Spearman columns (``spearman_rho``, ``spearman_ci_lower``, ``spearman_ci_upper``, as in
    ``ExtendedAnalysis.tests``), Spearman's rho and its CI are drawn beside r as hollow orange squares. The
    y-range is the seed's [-0.5, 0.5] widened where a CI reaches beyond it (the seed's fixed range clipped
    Pythia-6.9B's layer-0 margin_asymmetry at r = -0.68).

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`ua_helpers.stats.correlation_table`, :func:`ua_helpers.results.results_table` or
        ``ExtendedAnalysis.tests`` (which adds Spearman).

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    metrics = list(dict.fromkeys(table["metric"]))
    fig, axes = plt.subplots(2, 3, figsize=(15, 8.5))
    axes = axes.flatten()
    spearman = ("spearman_rho", "spearman_ci_lower", "spearman_ci_upper")
    has_rho = all(c in table.columns for c in spearman)
    cols = ["ci_lower", "ci_upper", "r"] + (list(spearman) if has_rho else [])
    extent = np.nanmax(np.abs(table[cols].to_numpy(dtype=float)), initial=0.0)
    ylim = max(0.5, float(np.ceil((extent + 0.02) * 10) / 10))
    step = float(np.min(np.diff(np.sort(table["layer"].unique())))) if table["layer"].nunique() > 1 else 1.0
    for ax, metric in zip(axes, metrics):
        rows = table[table["metric"] == metric].sort_values("layer")
        layers, r = rows["layer"].to_numpy(), rows["r"].to_numpy(dtype=float)
        yerr = [r - rows["ci_lower"].to_numpy(dtype=float), rows["ci_upper"].to_numpy(dtype=float) - r]
        ax.errorbar(layers, r, yerr=yerr, fmt="o-", capsize=5, capthick=2, markersize=8,
                    color="blue", ecolor="blue", alpha=0.7, label="Pearson r, bootstrap CI")
        if has_rho:
            rho = rows["spearman_rho"].to_numpy(dtype=float)
            ryerr = [rho - rows["spearman_ci_lower"].to_numpy(dtype=float),
                     rows["spearman_ci_upper"].to_numpy(dtype=float) - rho]
            ax.errorbar(layers + 0.2 * step, rho, yerr=ryerr, fmt="s--", capsize=3, markersize=6,
                        markerfacecolor="none", color="tab:orange", alpha=0.8, label="Spearman rho, bootstrap CI")
        sig = ((rows["ci_lower"] > 0) | (rows["ci_upper"] < 0)).to_numpy(dtype=bool)
        ax.scatter(layers[sig], r[sig], color="red", s=150, zorder=5, marker="*",
                   label="CI of r excludes 0 (uncorrected)")
        ax.axhline(y=0, color="black", linestyle="--", alpha=0.5)
        ax.set_xlabel("Layer")
        ax.set_ylabel("r")
        ax.set_title(metric, fontweight="bold")
        ax.grid(True, alpha=0.3)
        ax.set_ylim(-ylim, ylim)
    for ax in axes[len(metrics):]:
        ax.axis("off")
    if len(metrics) < len(axes):  # a spare panel holds the legend
        handles, labels = axes[0].get_legend_handles_labels()
        axes[len(metrics)].legend(handles, labels, loc="center", frameon=False)
    n_text = f" (n={n_pairs})" if n_pairs else ""
    fig.suptitle(title or f"Pair-Level Correlations{n_text} - red stars = CI excludes 0 (uncorrected)",
                 fontsize=14, fontweight="bold", y=1.0)
    fig.tight_layout()
    return fig


def plot_heatmap(table, title: str = "Pearson r by layer and metric (* = CI excludes 0, uncorrected)"):
    """Draw a layer x metric heatmap of r, with r printed in each cell and '*' where the CI excludes zero.

    The '*' is the seed's uncorrected criterion, not a claim of significance; the title says so.
    """
    import matplotlib.pyplot as plt

    pivot = table.pivot(index="metric", columns="layer", values="r")
    metrics = list(dict.fromkeys(table["metric"]))
    pivot = pivot.loc[metrics]
    excludes = table.assign(_excl=(table["ci_lower"] > 0) | (table["ci_upper"] < 0))
    sig = excludes.pivot(index="metric", columns="layer", values="_excl").astype(bool).loc[metrics]
    fig, ax = plt.subplots(figsize=(1.0 + 0.75 * pivot.shape[1], 0.6 + 0.55 * pivot.shape[0]))
    im = ax.imshow(pivot.to_numpy(dtype=float), cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
    ax.set_xticks(range(pivot.shape[1]), [str(c) for c in pivot.columns])
    ax.set_yticks(range(pivot.shape[0]), pivot.index)
    ax.set_xlabel("Layer")
    for i in range(pivot.shape[0]):
        for j in range(pivot.shape[1]):
            v = pivot.iat[i, j]
            text = "n/a" if np.isnan(v) else f"{v:+.2f}" + ("*" if sig.iat[i, j] else "")
            ax.text(j, i, text, ha="center", va="center", fontsize=8)
    fig.colorbar(im, ax=ax, label="r")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_scatter(x, preference, ax=None, label: str = "", r: float | None = None, categories=None):
    """Scatter one metric against the preference, coloured by category, with a least-squares line."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(5, 4))
    x, y = np.asarray(x, dtype=float), np.asarray(preference, dtype=float)
    if categories is None:
        ax.scatter(x, y, s=12, alpha=0.6)
    else:
        cats = np.asarray(categories)
        for cat in dict.fromkeys(cats):
            m = cats == cat
            ax.scatter(x[m], y[m], s=12, alpha=0.7, label=cat)
        ax.legend(fontsize=6, loc="best")
    if np.ptp(x) > 0:
        slope, intercept = np.polyfit(x, y, 1)
        xs = np.linspace(x.min(), x.max(), 2)
        ax.plot(xs, slope * xs + intercept, color="black", lw=1)
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xlabel(label)
    ax.set_ylabel("preference = NLL(B) - NLL(A)")
    if r is not None:
        ax.set_title(f"{label}: r = {r:+.3f}", fontsize=9)
    return ax


def plot_preference(preference, categories, title: str = "Output preference NLL(B) - NLL(A)"):
    """Histogram of the preference over all pairs, and one box per category (> 0: the model prefers A)."""
    import matplotlib.pyplot as plt

    y, cats = np.asarray(preference, dtype=float), np.asarray(categories)
    names = list(dict.fromkeys(cats))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4), gridspec_kw={"width_ratios": [1, 2]})
    ax1.hist(y, bins=30, color="steelblue", alpha=0.8)
    ax1.axvline(0, color="black", lw=1)
    ax1.set_xlabel("NLL(B) - NLL(A)")
    ax1.set_ylabel("pairs")
    ax1.set_title("all pairs")
    ax2.boxplot([y[cats == c] for c in names], vert=False, showfliers=True)
    ax2.set_yticks(range(1, len(names) + 1), names)
    ax2.axvline(0, color="black", lw=1)
    ax2.set_xlabel("NLL(B) - NLL(A)")
    ax2.set_title("per category")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_metric_distributions(values, layers, metric_names):
    """One panel per metric: the distribution of its per-pair values at each layer (box plots, outliers shown)."""
    import matplotlib.pyplot as plt

    values = np.asarray(values, dtype=float)  # [layer, metric, pair]
    fig, axes = plt.subplots(2, 3, figsize=(15, 7))
    axes = axes.flatten()
    for j, (ax, name) in enumerate(zip(axes, metric_names)):
        ax.boxplot([values[i, j] for i in range(len(layers))], showfliers=True, flierprops={"markersize": 3})
        ax.set_xticks(range(1, len(layers) + 1), [str(l) for l in layers])
        ax.axhline(0, color="grey", lw=0.5)
        ax.set_xlabel("Layer")
        ax.set_title(name, fontweight="bold")
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
    fig, axes = plt.subplots(nrows, ncols, figsize=(5 * ncols, 3.8 * nrows), squeeze=False, sharey=True)
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
            ax.errorbar(layer + dx, r, yerr=yerr, fmt="o-", capsize=3, markersize=5, color=color, label=label)
        ax.axhline(0, color="black", linestyle="--", alpha=0.5)
        ax.set_title(metric, fontweight="bold")
        ax.set_xlabel("Layer")
        ax.grid(True, alpha=0.3)
    for ax in axes[:, 0]:
        ax.set_ylabel("r")
    for ax in flat_axes[len(metrics):]:
        ax.axis("off")
    handles, labels = flat_axes[0].get_legend_handles_labels()
    if len(metrics) < flat_axes.size:  # a spare panel holds the legend
        flat_axes[len(metrics)].legend(handles, labels, loc="center", frameon=False)
        bottom = 0.0
    else:
        fig.legend(handles, labels, loc="lower center", ncol=2, frameon=False)
        bottom = 0.06
    fig.suptitle(title or "Raw vs confound-controlled correlation with output preference", fontweight="bold")
    fig.tight_layout(rect=(0, bottom, 1, 1))
    return fig


def plot_strongest(values, preference, table, layers, metric_names, categories, n: int = 3):
    """Scatter the ``n`` (layer, metric) tests with the largest |r|: metric value against preference, by category.

    Parameters
    ----------
    values : ndarray of shape (n_layers, n_metrics, n_pairs)
    preference : ndarray of shape (n_pairs,)
    table : pandas.DataFrame
        One row per (layer, metric) with ``r`` (a correlation or results table).
    layers, metric_names : sequences matching ``values``' first two axes
    categories : sequence of str, length n_pairs

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    ranked = table.dropna(subset=["r"])
    top = ranked.reindex(ranked["r"].abs().sort_values(ascending=False).index).head(n)
    fig, axes = plt.subplots(1, max(len(top), 1), figsize=(5 * max(len(top), 1), 4), squeeze=False)
    for ax, row in zip(axes[0], top.itertuples()):
        x = values[list(layers).index(row.layer), list(metric_names).index(row.metric)]
        plot_scatter(x, preference, ax=ax, label=f"layer {row.layer} {row.metric}", r=row.r, categories=categories)
    fig.tight_layout()
    return fig


def plot_levels(table, reference=None, title: str | None = None, reference_label: str = "published"):
    """Draw r with its CI against relative depth for each level (category, random bins, pair).

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`ua_helpers.levels_tables.levels_table`: level, layer, relative_depth, r, ci_lower, ci_upper,
        n. The x-axis is relative depth (layer / num_layers), or the layer where depth is unknown.
    reference : pandas.DataFrame, optional
        The same kind of table for another run (e.g. :func:`~ua_helpers.levels_tables.published_levels_table`),
        drawn in the same colours with open markers and dashed lines.
    title : str, optional
    reference_label : str, default="published"

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    colors = {"category": "tab:red", "bins": "tab:blue", "pair": "tab:green"}
    fig, ax = plt.subplots(figsize=(8, 4.5))
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
            label = f"{level} (n = {n})" + (f", {reference_label}" if dashed else "")
            ax.errorbar(x, r, yerr=yerr, fmt="o--" if dashed else "o-", capsize=3, color=colors.get(level),
                        mfc="white" if dashed else colors.get(level), alpha=0.6 if dashed else 0.9, label=label)
    ax.axhline(0, color="black", linestyle=":", linewidth=1)
    ax.set_ylim(-1.05, 1.05)
    depth_known = bool(np.all(np.isfinite(table["relative_depth"].to_numpy(dtype=float))))
    ax.set_xlabel("relative depth (layer / number of blocks)" if depth_known else "layer")
    ax.set_ylabel("Pearson r (UA or metric vs preference)")
    ax.set_title(title or "Three levels of one question: r by depth, with bootstrap CIs")
    ax.legend(fontsize=8, ncol=2, loc="best")
    fig.tight_layout()
    return fig


def plot_norms(norms_a, norms_b, layers, threshold: float = 10.0,
               title: str = "Pooled hidden-state norms relative to each layer's median"):
    """Draw, per layer, the norms of all 2 * n_pairs pooled statements divided by the layer's median (log scale).

    Every statement is a dot; the dashed line is the massive-activation threshold (see
    :func:`ua_helpers.robustness.norm_diagnostics`, whose ``norms_a`` / ``norms_b`` this takes).

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
    ax.set_xlabel("Layer")
    ax.set_ylabel("norm / layer median")
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig
