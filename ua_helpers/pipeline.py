"""The stages as the notebooks call them: each takes a RunConfig, reuses what an earlier stage cached, and
returns a table or arrays. Any notebook can therefore run alone, in any order."""
from __future__ import annotations

import functools
import os
import platform
from pathlib import Path
from typing import Any

import numpy as np

from . import data, extraction, inference, metrics, models, plots, results, stats
from ._io import atomic_write
from .config import RunConfig

FIGURE_DPI = 80  # keeps figures stored in notebooks small


def configure(**params: Any) -> RunConfig:
    """Validate the notebook's parameters and create the run directory."""
    cfg = RunConfig.from_mapping(params)
    (cfg.run_path / "figures").mkdir(parents=True, exist_ok=True)
    return cfg


# --------------------------------------------------------------------------- environment and data
def environment() -> "pd.DataFrame":
    """Versions and hardware: what a reader needs to reproduce the numbers."""
    import pandas as pd
    import scipy
    import torch
    import transformers

    from . import __version__

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    rows = {
        "python": platform.python_version(), "ua_helpers": __version__, "torch": torch.__version__,
        "transformers": transformers.__version__, "numpy": np.__version__, "scipy": scipy.__version__,
        "cuda available": str(torch.cuda.is_available()), "GPU": gpu, "CPU cores": str(os.cpu_count()),
        "torch threads": str(torch.get_num_threads()),
    }
    return pd.DataFrame({"value": rows}).rename_axis("component")


@functools.lru_cache(maxsize=4)
def get_pairs(dataset: str) -> data.PairSet:
    """Load (once per kernel) the run's dataset."""
    return data.load_pairs(dataset)


def run_card(cfg: RunConfig) -> "pd.DataFrame":
    """The identity of the run: model, dataset and its sha256, and every parameter."""
    import pandas as pd

    pairs = get_pairs(cfg.dataset)
    rows = {"model": cfg.model, "revision": str(cfg.revision), "dataset": pairs.name,
            "dataset sha256": pairs.sha256, "n_pairs": str(pairs.n_pairs)}
    rows.update({k: str(v) for k, v in cfg.to_parameters().items()
                 if k not in ("model", "revision", "dataset", "run_dir", "repo_url")})
    return pd.DataFrame({"value": rows}).rename_axis("run")


def dataset_overview(pairs: data.PairSet) -> "pd.DataFrame":
    """One row per category: pair count, the dataset's own description, and an example pair."""
    import pandas as pd

    frame = pairs.to_frame()
    rows = []
    for cat, group in frame.groupby("category", sort=False):
        desc = pairs.descriptions.get(cat, {})
        rows.append({"category": cat, "n_pairs": len(group), "description": desc.get("description", ""),
                     "example A": group["stmt_a"].iloc[0], "example B": group["stmt_b"].iloc[0]})
    return pd.DataFrame(rows).set_index("category")


@functools.lru_cache(maxsize=2)
def get_tokenizer(model: str, revision: str | None):
    """Load (once per kernel) only the run's tokenizer: the setup notebook needs no weights."""
    return models.load_tokenizer(model, revision)


def token_lengths(cfg: RunConfig) -> "pd.DataFrame":
    """Mean token counts of A and B statements per category, with the model's own tokenizer."""
    tokenizer, pairs = get_tokenizer(cfg.model, cfg.revision), get_pairs(cfg.dataset)
    frame = pairs.to_frame().assign(
        tokens_a=[len(tokenizer(t)["input_ids"]) for t in pairs.stmt_a],
        tokens_b=[len(tokenizer(t)["input_ids"]) for t in pairs.stmt_b],
    )
    table = frame.groupby("category", sort=False)[["tokens_a", "tokens_b"]].mean()
    table.loc["all"] = frame[["tokens_a", "tokens_b"]].mean()
    return table.assign(difference=table["tokens_b"] - table["tokens_a"]).round(2)


def resolved(cfg: RunConfig) -> "pd.DataFrame":
    """What "auto" and "paper" become on this machine: device, dtype, the model's depth and the layers.

    Read from the model's configuration, without loading its weights.
    """
    import pandas as pd

    num_layers, d_model = models.model_shape(cfg.model, cfg.revision)
    device = models.resolve_device(cfg.device)
    rows = {"device": device, "dtype": models.resolve_dtype(cfg.dtype, device),
            "num_layers (blocks)": str(num_layers), "d_model": str(d_model),
            "layers (hidden_states indices)": str(extraction.resolve_layers(_layer_spec(cfg), num_layers)),
            "model fingerprint": models.model_fingerprint(cfg.model, cfg.revision)}
    return pd.DataFrame({"value": rows}).rename_axis("resolved")


def notebook_style() -> None:
    """Small inline figures, so that notebooks stored with their outputs stay small."""
    import matplotlib

    matplotlib.rcParams["figure.dpi"] = FIGURE_DPI


# --------------------------------------------------------------------------- model and extraction
@functools.lru_cache(maxsize=2)
def _load(model: str, revision: str | None, dtype: str, device: str) -> models.LoadedModel:
    return models.load_model(model, revision=revision, dtype=dtype, device=device)


def get_model(cfg: RunConfig) -> models.LoadedModel:
    """Load the run's model (once per kernel)."""
    return _load(cfg.model, cfg.revision, cfg.dtype, cfg.device)


def _layer_spec(cfg: RunConfig):
    return cfg.layers if isinstance(cfg.layers, str) else list(cfg.layers)


@functools.lru_cache(maxsize=2)
def _extraction(cfg: RunConfig, progress: bool) -> extraction.Extraction:
    pairs = get_pairs(cfg.dataset)
    key = extraction.cache_key(models.model_fingerprint(cfg.model, cfg.revision),
                               models.resolve_dtype(cfg.dtype, cfg.device), pairs.sha256, _layer_spec(cfg),
                               cfg.pooling)
    cached = extraction.load_cached(key)
    if cached is not None:  # an earlier stage (or run) did the work: no need to load the model
        return cached
    return extraction.extract(get_model(cfg), pairs, _layer_spec(cfg), batch_size=cfg.batch_size,
                              pooling=cfg.pooling, progress=progress)


def get_extraction(cfg: RunConfig, progress: bool = True) -> extraction.Extraction:
    """The run's NLL and pooled hidden states: from the cache, or one batched forward pass per statement."""
    return _extraction(cfg, progress)


def preference_table(cfg: RunConfig) -> "pd.DataFrame":
    """The preference NLL(B) - NLL(A) overall and per category: mean, sd, and the share of pairs preferring A."""
    ext = get_extraction(cfg, progress=False)
    frame = get_pairs(cfg.dataset).to_frame().assign(preference=ext.preference)
    def describe(v):
        return {"n": len(v), "mean": v.mean(), "sd": v.std(ddof=1), "prefers A": (v > 0).mean()}
    rows = {cat: describe(g["preference"]) for cat, g in frame.groupby("category", sort=False)}
    rows["all"] = describe(frame["preference"])
    import pandas as pd

    return pd.DataFrame(rows).T.astype({"n": int}).round(3)


def seed_path_check(cfg: RunConfig, n_sample: int = 5) -> "pd.DataFrame":
    """Compare the batched extraction with the seed's one-statement functions on a sample of pairs.

    Returns one row per sampled pair: the largest relative difference of the pooled embeddings over the
    extracted layers and both statements, and the absolute difference of the preference.
    """
    import pandas as pd

    lm, ext, pairs = get_model(cfg), get_extraction(cfg, progress=False), get_pairs(cfg.dataset)
    sample = np.random.default_rng(cfg.seed).choice(pairs.n_pairs, size=min(n_sample, pairs.n_pairs),
                                                    replace=False)
    rows = []
    for i in sorted(sample):
        rel = 0.0
        for li, layer in enumerate(ext.layers):
            for text, emb in ((pairs.stmt_a[i], ext.emb_a[li, i]), (pairs.stmt_b[i], ext.emb_b[li, i])):
                ref = extraction.get_layer_embedding(text, lm.model, lm.tokenizer, layer)
                rel = max(rel, float(np.abs(emb - ref).max() / (np.abs(ref).max() + 1e-12)))
        pref = extraction.get_output_preference(pairs.stmt_a[i], pairs.stmt_b[i], lm.model, lm.tokenizer)
        rows.append({"pair": int(i), "category": pairs.category[i], "max rel. diff. embedding": rel,
                     "abs. diff. preference": abs(pref - float(ext.preference[i]))})
    return pd.DataFrame(rows).set_index("pair")


# --------------------------------------------------------------------------- metrics and statistics
def get_metric_values(cfg: RunConfig) -> np.ndarray:
    """The five metrics for every extracted layer, shape (n_layers, n_metrics, n_pairs)."""
    ext = get_extraction(cfg, progress=False)
    return metrics.compute_all_layers(ext.emb_a, ext.emb_b, k=cfg.knn_k)


def metric_summary(cfg: RunConfig) -> "pd.DataFrame":
    """Mean and standard deviation of each metric per layer (layers as rows, metrics as column groups)."""
    import pandas as pd

    values, layers = get_metric_values(cfg), get_extraction(cfg, progress=False).layers
    frame = pd.DataFrame([{"layer": l, "metric": m, "mean": values[i, j].mean(), "sd": values[i, j].std()}
                          for i, l in enumerate(layers) for j, m in enumerate(metrics.METRIC_NAMES)])
    return frame.pivot(index="layer", columns="metric", values=["mean", "sd"]).round(4)


@functools.lru_cache(maxsize=2)
def get_correlations(cfg: RunConfig) -> "pd.DataFrame":
    """Every (layer, metric) correlated with the preference, with bootstrap CIs (one shared resample set)."""
    ext = get_extraction(cfg, progress=False)
    return stats.correlation_table(get_metric_values(cfg), ext.preference, ext.layers, metrics.METRIC_NAMES,
                                   n_bootstrap=cfg.n_bootstrap, ci_level=cfg.ci_level, seed=cfg.seed)


def headline(table: "pd.DataFrame", decimals: int = 2) -> str:
    """The per-layer r and CI as fixed-width text, rounded so that another CPU prints the same characters."""
    lines = [f"{'layer':>5}  {'metric':<22} {'r':>6}  {'CI':<16} CI excludes 0"]
    for row in table.itertuples():
        ci = f"[{row.ci_lower:+.{decimals}f}, {row.ci_upper:+.{decimals}f}]"
        lines.append(f"{row.layer:>5}  {row.metric:<22} {row.r:+.{decimals}f}  {ci:<16} "
                     f"{'yes ***' if not row.includes_zero else 'no'}")
    return "\n".join(lines)


def best_metric_table(table: "pd.DataFrame") -> "pd.DataFrame":
    """The seed's "best metric by layer": highest |r| per layer and whether its CI excludes zero."""
    import pandas as pd

    return pd.DataFrame(results.best_per_layer(table)).set_index("layer").round(3)


@functools.lru_cache(maxsize=2)
def get_extended(cfg: RunConfig) -> inference.ExtendedAnalysis:
    """Multiplicity corrections, permutation tests, Spearman, and confound control for every test of the run."""
    ext, pairs = get_extraction(cfg, progress=False), get_pairs(cfg.dataset)
    return inference.extended_analysis(
        get_metric_values(cfg), ext.preference, ext.layers, metrics.METRIC_NAMES,
        n_tokens_a=ext.n_tokens_a, n_tokens_b=ext.n_tokens_b, len_a=[len(s) for s in pairs.stmt_a],
        len_b=[len(s) for s in pairs.stmt_b], categories=pairs.category, n_bootstrap=cfg.n_bootstrap,
        n_permutations=cfg.n_permutations, ci_level=cfg.ci_level, seed=cfg.seed,
    )


#: The criteria of the survival table, from the seed's (uncorrected) to the strictest.
SURVIVAL_CRITERIA = {
    "excludes_zero": "bootstrap CI excludes 0 (the seed's criterion, uncorrected)",
    "survives_bh": "Benjamini-Hochberg q < 0.05 (false discovery rate)",
    "survives_holm": "Holm p < 0.05 (family-wise error)",
    "survives_maxstat": "max-|r| permutation p < 0.05 (family-wise error, dependence-aware)",
    "survives_confounds": "partial r's CI excludes 0 controlling for token count, length and category",
}


def survival_counts(cfg: RunConfig) -> "pd.DataFrame":
    """How many of the run's tests pass each criterion, from the seed's uncorrected one to confound control."""
    import pandas as pd

    tests = get_extended(cfg).tests
    return pd.DataFrame({"criterion": list(SURVIVAL_CRITERIA.values()),
                         "tests passing": [int(tests[c].sum()) for c in SURVIVAL_CRITERIA],
                         "of": len(tests)}).set_index("criterion")


def survival_table(cfg: RunConfig) -> "pd.DataFrame":
    """One row per test that excludes zero uncorrected: r, its partial r, and which criteria it survives."""
    tests = get_extended(cfg).tests
    cols = ["layer", "metric", "r", "partial_all_r", "partial_all_retained", *SURVIVAL_CRITERIA]
    table = tests.loc[tests["excludes_zero"], cols].copy()
    for c in SURVIVAL_CRITERIA:
        table[c] = table[c].map({True: "yes", False: "-"})
    return table.rename(columns={"partial_all_r": "partial r", "partial_all_retained": "retained"}).set_index(
        ["layer", "metric"]).round(3)


def survival_text(cfg: RunConfig) -> str:
    """The survival counts as plain text (what the regression tests compare)."""
    table = survival_counts(cfg)
    return "\n".join(f"{n:>3} / {of}  {criterion}" for criterion, (n, of) in table.iterrows())


def figure_confounds(cfg: RunConfig):
    """Raw r beside the partial r controlling for all confounds, per metric and layer."""
    return plots.plot_confounds(get_extended(cfg).tests)


# --------------------------------------------------------------------------- results and figures
def build_run_results(cfg: RunConfig) -> dict[str, Any]:
    """The results dict: the seed's schema plus dataset, parameters, model and extraction metadata."""
    ext, pairs = get_extraction(cfg, progress=False), get_pairs(cfg.dataset)
    table = get_correlations(cfg)
    model_meta = ext.meta.get("model", {})
    return results.build_results(
        table, model=cfg.model, n_pairs=pairs.n_pairs, n_bootstrap=cfg.n_bootstrap,
        num_layers=int(model_meta.get("num_layers", max(ext.layers))),
        extra={
            "dataset": data.describe(pairs),
            "parameters": {k: v for k, v in cfg.to_parameters().items() if k != "repo_url"},
            "model_info": model_meta,
            "extraction": {k: ext.meta.get(k) for k in ("pooling", "layers_spec", "batch_size", "cache_key",
                                                        "elapsed_s", "versions")},
            "ci_level": cfg.ci_level, "seed": cfg.seed, "knn_k": cfg.knn_k,
            "extended": get_extended(cfg).to_json(),
            "preference": {"mean": float(ext.preference.mean()), "sd": float(ext.preference.std(ddof=1)),
                           "share_prefers_a": float((ext.preference > 0).mean())},
        },
    )


def save_results(cfg: RunConfig, run_results: dict[str, Any]) -> Path:
    """Write ``run_results`` (from :func:`build_run_results`) as ``results.json`` in the run directory, atomically."""
    return results.write_results(cfg.run_path / "results.json", run_results)


def save_figure(fig, cfg: RunConfig, name: str) -> Path:
    """Save a figure as ``figures/<name>.png`` in the run directory (atomically)."""
    path = cfg.run_path / "figures" / f"{name}.png"
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110, bbox_inches="tight"))
    return path


def figure_layer_correlations(cfg: RunConfig):
    """The seed's 2x3 figure for this run."""
    return plots.plot_layer_correlations(get_correlations(cfg), n_pairs=get_pairs(cfg.dataset).n_pairs)


def figure_heatmap(cfg: RunConfig):
    return plots.plot_heatmap(get_correlations(cfg))


def figure_strongest(cfg: RunConfig, n: int = 3):
    """Scatter plots of the ``n`` (layer, metric) tests with the largest |r|, coloured by category."""
    import matplotlib.pyplot as plt

    table = get_correlations(cfg).dropna(subset=["r"])
    top = table.reindex(table["r"].abs().sort_values(ascending=False).index).head(n)
    values, ext = get_metric_values(cfg), get_extraction(cfg, progress=False)
    fig, axes = plt.subplots(1, len(top), figsize=(5 * len(top), 4), squeeze=False)
    for ax, row in zip(axes[0], top.itertuples()):
        x = values[ext.layers.index(row.layer), list(metrics.METRIC_NAMES).index(row.metric)]
        plots.plot_scatter(x, ext.preference, ax=ax, label=f"layer {row.layer} {row.metric}", r=row.r,
                           categories=get_pairs(cfg.dataset).category)
    fig.tight_layout()
    return fig


def comparison(cfg: RunConfig, ours: dict[str, Any]):
    """Side-by-side table against ``cfg.reference_results``; None (with the reason printed) if unavailable."""
    if not cfg.reference_results:
        return None
    try:
        reference = results.load_results(cfg.reference_results)
    except (FileNotFoundError, ValueError) as exc:
        print(f"reference results unavailable: {exc}")
        return None
    return results.compare_results(ours, reference)


def figure_preference(cfg: RunConfig):
    """The preference distribution, overall and per category."""
    return plots.plot_preference(get_extraction(cfg, progress=False).preference, get_pairs(cfg.dataset).category)


def figure_metric_distributions(cfg: RunConfig):
    """Each metric's distribution over pairs, layer by layer."""
    return plots.plot_metric_distributions(get_metric_values(cfg), get_extraction(cfg, progress=False).layers,
                                           metrics.METRIC_NAMES)


#: Agreement expected between the batched path and the seed's one-statement path, per dtype:
#: (max relative difference of embeddings, max absolute difference of the preference).
SEED_PATH_TOLERANCE = {"float32": (1e-4, 1e-4), "float16": (1e-2, 2e-2), "bfloat16": (5e-2, 1e-1)}


def seed_path_agrees(cfg: RunConfig, check: "pd.DataFrame") -> bool:
    """Whether :func:`seed_path_check`'s differences are within :data:`SEED_PATH_TOLERANCE` for the run's dtype."""
    emb_tol, pref_tol = SEED_PATH_TOLERANCE[get_model(cfg).dtype]
    return bool((check["max rel. diff. embedding"] <= emb_tol).all()
                and (check["abs. diff. preference"] <= pref_tol).all())
