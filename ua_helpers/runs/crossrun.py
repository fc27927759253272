"""Across models and checkpoints: one table, sign flips, a figure and a book page from several completed runs.

Runs of different models have different depths, so layers are compared by **normalized depth**
``depth = layer / num_layers`` (0 = the embeddings, 1 = the last block), as :func:`ua_helpers.report.results.compare_results`
does for two runs. :func:`write_crossrun_page` writes the book's cross-run page (``ua-book build --sweep-root``):
one ``#`` title and no role beyond MyST's ``{figure}``, so it builds under ``-W -n``; incomplete runs are left out
with a warning.
"""
from __future__ import annotations

import json
import math
import os
import warnings
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from . import rundir
from . import choices
from .._io import atomic_write, atomic_write_text
from ..report._markdown import MISSING, Markup, is_missing, md_code, md_table_escaped

PAGE = "crossrun.md"
FIGURE = "crossrun.png"
#: Columns of :func:`crossrun_table`.
TABLE_COLUMNS = ("run", "model", "revision", "layer", "num_layers", "depth", "metric", "r", "ci_lower",
                 "ci_upper", "includes_zero")


class CrossRunError(ValueError):
    """No complete run to compare, or a run directory that cannot be read."""


# --------------------------------------------------------------------------- finding runs
def sweep_run_dirs(root: str | os.PathLike) -> list[Path]:
    """The run directories of a sweep root, in the sweep file's order.

    Reads ``<root>/sweep.json`` (written by ``ua-book sweep``) where present; otherwise every sub-directory that
    holds a ``manifest.json``, by name. Incomplete runs are included here and left out by the functions below;
    entries the sweep recorded as ``unavailable`` (a requirement unmet, never run) are not listed.
    """
    root = Path(root).expanduser()
    index = root / "sweep.json"
    if index.is_file():
        state = json.loads(index.read_text(encoding="utf-8"))
        return [root / entry.get("run_dir", entry["name"]) for entry in state.get("entries", [])
                if entry.get("status") != "unavailable"]
    if not root.is_dir():
        raise CrossRunError(f"{root} is not a directory")
    return sorted(p for p in root.iterdir() if (p / "manifest.json").is_file())


def _as_run_dirs(run_dirs: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Path]:
    """A sequence of run directories as given; a single path is a run directory or a sweep root."""
    if isinstance(run_dirs, (str, os.PathLike)):
        path = Path(run_dirs).expanduser()
        return [path] if (path / "manifest.json").is_file() else sweep_run_dirs(path)
    return [Path(p).expanduser() for p in run_dirs]


def load_complete_runs(run_dirs) -> list[rundir.Run]:
    """Read each complete run (:func:`ua_helpers.runs.rundir.load_run`); leave out the others with a warning.

    Parameters
    ----------
    run_dirs : sequence of paths, or one path
        Run directories made by ``ua-book run`` / ``ua-book sweep``; a single path may also be a sweep root.

    Returns
    -------
    list of ua_helpers.runs.rundir.Run
        One per complete run, in the given order; their directories' names are distinct.
    """
    runs, names = [], set()
    for path in _as_run_dirs(run_dirs):
        try:
            run = rundir.load_run(path)
        except rundir.RunDirError as exc:
            warnings.warn(f"left out {path}: {exc}", stacklevel=2)
            continue
        if run.name in names:
            raise CrossRunError(f"two runs are named {run.name!r}; run directories must have distinct names")
        names.add(run.name)
        runs.append(run)
    if not runs:
        raise CrossRunError("no complete run among the given directories")
    return runs


# --------------------------------------------------------------------------- tables
def crossrun_table(run_dirs):
    """Stack every complete run's correlations, one row per (run, layer, metric), with normalized depth.

    Parameters
    ----------
    run_dirs : sequence of paths, or one path (a run directory or a sweep root)

    Returns
    -------
    pandas.DataFrame
        Columns :data:`TABLE_COLUMNS`: run, model, revision, layer, num_layers, depth (= layer / num_layers,
        0 to 1), metric, r, ci_lower, ci_upper, includes_zero; sorted by run (in the given order), metric and
        depth. ``r`` and the CI are NaN where the run recorded none (a constant metric).
    """
    return _table_of(load_complete_runs(run_dirs))


def _table_of(runs: list[rundir.Run]):
    import pandas as pd

    from ..report.results import results_table

    frames = []
    for order, run in enumerate(runs):
        res = run.results
        table = results_table(res)
        num_layers = int(res.get("num_layers") or table["layer"].max() or 1)
        frames.append(table.assign(
            run=run.name, model=res.get("model"), revision=run.revision, num_layers=num_layers,
            depth=table["layer"] / num_layers, includes_zero=table["includes_zero"].astype(bool), _order=order,
        ))
    table = pd.concat(frames, ignore_index=True)
    table = table.sort_values(["_order", "metric", "depth"], kind="stable").drop(columns="_order")
    return table[list(TABLE_COLUMNS)].reset_index(drop=True)


def sign_flips(table):
    """Find where r changes sign along depth, per run and metric.

    A flip is a pair of consecutive layers (by depth, layers with an undefined r left out) whose r have
    opposite signs; its depth is that of the layer where the new sign first appears. ``n_flips_ci`` counts the
    flips along the layers whose CI excludes zero only, i.e. between confidently positive and confidently
    negative correlations.

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`crossrun_table`.

    Returns
    -------
    pandas.DataFrame
        One row per (run, metric): run, metric, n_layers, sign_first and sign_last (``"+"``, ``"-"`` or ``""``),
        n_flips, first_flip_layer and first_flip_depth (missing, ``<NA>``/NaN, without a flip), flip_depths (list),
        n_flips_ci.
    """
    import pandas as pd

    def signs(r: np.ndarray) -> np.ndarray:
        return np.sign(r[(r != 0) & ~np.isnan(r)])

    def flips(rows) -> list[int]:  # positions (in rows) where the sign differs from the previous defined r
        s = np.sign(rows["r"].to_numpy(dtype=float))
        keep = np.flatnonzero((s != 0) & ~np.isnan(s))
        return [int(keep[i]) for i in range(1, len(keep)) if s[keep[i]] != s[keep[i - 1]]]

    out = []
    for (run, metric), rows in table.groupby(["run", "metric"], sort=False):
        rows = rows.sort_values("depth", kind="stable").reset_index(drop=True)
        where = flips(rows)
        confident = rows[~rows["includes_zero"].astype(bool)].reset_index(drop=True)
        s = signs(rows["r"].to_numpy(dtype=float))
        out.append({
            "run": run, "metric": metric, "n_layers": len(rows),
            "sign_first": {1.0: "+", -1.0: "-"}.get(float(s[0]), "") if len(s) else "",
            "sign_last": {1.0: "+", -1.0: "-"}.get(float(s[-1]), "") if len(s) else "",
            "n_flips": len(where),
            "first_flip_layer": int(rows["layer"][where[0]]) if where else None,
            "first_flip_depth": float(rows["depth"][where[0]]) if where else None,
            "flip_depths": [float(rows["depth"][i]) for i in where],
            "n_flips_ci": len(flips(confident)),
        })
    frame = pd.DataFrame(out, columns=["run", "metric", "n_layers", "sign_first", "sign_last", "n_flips",
                                       "first_flip_layer", "first_flip_depth", "flip_depths", "n_flips_ci"])
    return frame.astype({"first_flip_layer": "Int64", "first_flip_depth": float})


def runs_table(run_dirs):
    """One row per complete run: run, model, revision, dtype, dataset, dataset sha256, n_pairs, num_layers,
    n_bootstrap."""
    return _runs_of(load_complete_runs(run_dirs))


def _runs_of(runs: list[rundir.Run]):
    import pandas as pd

    rows = []
    for run in runs:
        res, ds = run.results, run.dataset
        rows.append({"run": run.name, "model": res.get("model"), "revision": run.revision,
                     "dtype": run.model.get("dtype"), "dataset": ds.get("name"), "dataset sha256": ds.get("sha256"),
                     "n_pairs": res.get("n_pairs"), "num_layers": res.get("num_layers"),
                     "n_bootstrap": res.get("n_bootstrap")})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- figure
def plot_crossrun(table):
    """Draw r against normalized depth, one panel per metric and one line per run.

    Parameters
    ----------
    table : pandas.DataFrame
        Rows of :func:`crossrun_table`; a filled marker is a layer whose CI excludes zero (dashed line: r = 0).

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.figure import Figure

    metrics = list(dict.fromkeys(table["metric"]))
    runs = list(dict.fromkeys(table["run"]))
    ncols = min(3, len(metrics))
    nrows = math.ceil(len(metrics) / ncols)
    fig = Figure(figsize=(4.6 * ncols, 3.4 * nrows + 0.6), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    colors = [f"C{i % 10}" for i in range(len(runs))]
    styles = ["-", "--", "-.", ":"]
    extent = np.nanmax(np.abs(table["r"].to_numpy(dtype=float)), initial=0.0)
    ylim = max(0.5, float(np.ceil((extent + 0.05) * 10) / 10))
    for k, (ax, metric) in enumerate(zip(axes, metrics)):
        for i, run in enumerate(runs):
            rows = table[(table["metric"] == metric) & (table["run"] == run)].sort_values("depth")
            if rows.empty:
                continue
            depth, r = rows["depth"].to_numpy(dtype=float), rows["r"].to_numpy(dtype=float)
            sig = ~rows["includes_zero"].to_numpy(dtype=bool)
            ax.plot(depth, r, styles[(i // 10) % len(styles)], color=colors[i], lw=1.5, label=run)
            ax.plot(depth[sig], r[sig], "o", color=colors[i], ms=5)
            ax.plot(depth[~sig], r[~sig], "o", mfc="white", color=colors[i], ms=4)
        ax.axhline(0, color="black", ls="--", lw=0.8, alpha=0.6)
        ax.set_xlim(-0.03, 1.03)
        ax.set_xticks([0, 0.25, 0.5, 0.75, 1])
        ax.set_ylim(-ylim, ylim)
        ax.set_title(metric, fontsize=10, fontweight="bold")
        if k + ncols >= len(metrics):  # no panel below this one
            ax.set_xlabel("normalized depth (layer / num_layers)")
        if k % ncols == 0:
            ax.set_ylabel("Pearson r")
        ax.grid(alpha=0.3)
    for ax in axes[len(metrics):]:
        ax.set_visible(False)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(len(runs), 4), fontsize=9, frameon=False)
    fig.suptitle("Pearson r of each metric with the output preference, by normalized depth", fontsize=11)
    return fig


# --------------------------------------------------------------------------- the page
_md_table = md_table_escaped


def _code(value: Any) -> str:
    return Markup(MISSING if is_missing(value) else md_code(value).replace("|", "\\|"))


def crossrun_markdown(table, flips, runs, figure: str = FIGURE, stability: str = "") -> str:
    """The page's MyST markdown from :func:`crossrun_table`, :func:`sign_flips`, :func:`runs_table` and the
    result in words (:func:`stability_markdown`, placed after the introduction)."""
    datasets = sorted({str(s) for s in runs["dataset sha256"].dropna()})
    same_data = (f"All runs use the same statement pairs (dataset SHA-256 {md_code(datasets[0][:12])}…)."
                 if len(datasets) == 1 else
                 f"**The runs use {len(datasets)} different datasets** (see their SHA-256 below): their numbers are "
                 "not directly comparable.")
    n_runs, n_flip = len(runs), int((flips["n_flips"] > 0).sum())
    parts = [
        "# Across models and checkpoints\n",
        f"This page puts {n_runs} run{'s' if n_runs != 1 else ''} side by side: different models, training "
        "checkpoints of one model, or one model under different design choices (pooling, dtype, dataset, "
        "orientation). Each run correlated the same five pair-level metrics with the output "
        "preference NLL(B) − NLL(A) at each tested layer. Because the models differ in depth, layers are "
        "placed at their normalized depth, layer / num_layers (0 = the embeddings, 1 = the last block). "
        + same_data + "\n",
        stability,
        "## Correlation by normalized depth\n",
        f"```{{figure}} {figure}\n:alt: Pearson r against normalized depth, one panel per metric and one line "
        "per run\n:width: 100%\n\nPearson r of each metric with the output preference, one line per run. Filled "
        "markers: the 95% bootstrap CI excludes zero (uncorrected for the number of tests); open markers: it "
        "includes zero.\n```\n",
        "## Where the sign of r flips\n",
        "For each run and metric: the sign of r at the first and last tested layer, how often r changes sign "
        "between consecutive layers, and the normalized depth at which the first change appears. A flip between "
        "two correlations near zero says little; the last column counts only flips between layers whose CI "
        f"excludes zero. {n_flip} of {len(flips)} run–metric curves change sign at least once.\n",
        _md_table(["run", "metric", "sign first → last", "flips", "first flip at depth (layer)",
                   "flip depths", "flips, CI excluding zero"],
                  [[f["run"], f["metric"], f"{f['sign_first'] or '0'} → {f['sign_last'] or '0'}", f["n_flips"],
                    "none" if f["n_flips"] == 0 else MISSING if is_missing(f["first_flip_depth"])
                    else f"{f['first_flip_depth']:.2f} ({int(f['first_flip_layer'])})",
                    f["flip_depths"], f["n_flips_ci"]] for f in flips.to_dict("records")]),
        "## The runs\n",
        _md_table(["run", "model", "revision", "dtype", "dataset", "dataset SHA-256", "pairs", "blocks",
                   "bootstrap resamples"],
                  [[r["run"], _code(r["model"]), _code(r["revision"]), r["dtype"], r["dataset"],
                    _code(r["dataset sha256"]), r["n_pairs"], r["num_layers"], r["n_bootstrap"]]
                   for r in runs.to_dict("records")]),
    ]
    return "\n".join(parts)


def write_crossrun_page(run_dirs, dest_dir: str | os.PathLike) -> Path:
    """Write the cross-run page ``crossrun.md`` and its figure ``crossrun.png`` into ``dest_dir``.

    Parameters
    ----------
    run_dirs : sequence of paths, or one path
        Run directories; a single path may be a sweep root (see :func:`sweep_run_dirs`). Incomplete runs are
        left out with a warning.
    dest_dir : path
        The folder of the page (e.g. the staged ``book/``); created if missing. The figure is embedded with a
        path relative to the page.

    Returns
    -------
    pathlib.Path
        The page's path, ``dest_dir/crossrun.md``.
    """
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    loaded = load_complete_runs(run_dirs)
    table, runs = _table_of(loaded), _runs_of(loaded)
    fig = plot_crossrun(table)
    atomic_write(dest / FIGURE, lambda f: fig.savefig(f, format="png", dpi=100))
    words = choices.stability_markdown(choices.choice_effects(loaded), choices.stable_findings(loaded),
                                       loaded[0].name)
    return atomic_write_text(dest / PAGE, crossrun_markdown(table, sign_flips(table), runs, FIGURE, words))
