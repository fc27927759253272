"""Side by side: the seed notebook's sequential pipeline against ua_helpers, on the same model, pairs and layers.

Three stages are timed in one run:

1. extraction: the seed's loop (per pair two NLL passes with ``get_output_preference`` and one
   ``get_layer_embedding`` pass per layer per statement, batch size 1) against one batched
   ``ua_helpers.inputs.extraction.extract(..., cache=False)``;
2. metrics: the seed's per-row loops with scikit-learn ``NearestNeighbors`` against
   ``ua_helpers.analysis.metrics.compute_pair_metrics``;
3. statistics: the seed's Python-loop bootstrap (``np.random.choice`` and ``scipy.stats.pearsonr`` per resample)
   against ``ua_helpers.analysis.stats.correlation_table`` for L layers x 5 metrics x B resamples.

The seed's loops are slow, so they may be measured on a subset (``--n-pairs`` pairs, ``--seed-tests`` tests) and
extrapolated linearly (per statement, per test); the output says which figures are measured and which are
extrapolated. ua_helpers' figures are always measured on the whole workload. The seed's code is the verbatim copy
in ``tests/seed_reference.py``.

    python benchmarks/bench_pipeline.py                         # smollm2-135m, ua-230 or replication-230
    python benchmarks/bench_pipeline.py --n-pairs 230 --seed-tests 45   # measure the seed on everything (slow)
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the seed's functions, copied verbatim
sys.path.insert(0, str(REPO))

import seed_reference as seed  # noqa: E402
from ua_helpers.analysis import bootstrap, metrics, stats
from ua_helpers.inputs import data, extraction, models  # noqa: E402

SHARED_UA230 = REPO.parent / "shared" / "data" / "ua-230" / "dataset.json"


def default_dataset() -> str:
    """ua-230 where a local copy is known ($UA_230_PATH or the shared folder), else the bundled replication set."""
    if os.environ.get(data.UA230_ENV) and Path(os.environ[data.UA230_ENV]).is_file():
        return "ua-230"
    if SHARED_UA230.is_file():
        os.environ[data.UA230_ENV] = str(SHARED_UA230)
        return "ua-230"
    return "replication-230"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", default="smollm2-135m", help="model name, directory or .gguf file")
    p.add_argument("--dataset", default=None,
                   help="dataset (default: ua-230 if $UA_230_PATH or ../shared has it, else replication-230)")
    p.add_argument("--layers", default="all", help="layers to extract: 'all', 'paper' or a comma list")
    p.add_argument("--stats-layers", default="paper",
                   help="layers whose metrics enter the statistics stage ('paper' is the seed's 9-layer grid)")
    p.add_argument("--n-pairs", type=int, default=10,
                   help="pairs on which the seed's extraction loop is measured (then extrapolated per statement)")
    p.add_argument("--n-bootstrap", type=int, default=10000, help="bootstrap resamples per test")
    p.add_argument("--seed-tests", type=int, default=5,
                   help="tests on which the seed's bootstrap loop is measured (then extrapolated to all tests)")
    p.add_argument("--batch-size", type=int, default=32, help="statements per forward pass for ua_helpers")
    p.add_argument("--device", default="cpu")
    return p.parse_args(argv)


def load_average() -> str:
    try:
        return " ".join(f"{v:.1f}" for v in os.getloadavg()) + " (1, 5, 15 min)"
    except (AttributeError, OSError):
        return "n/a"


def fmt_s(seconds: float) -> str:
    return f"{seconds:,.2f}" if seconds < 100 else f"{seconds:,.0f}"


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    dataset = args.dataset or default_dataset()
    started = dt.datetime.now()
    print(f"# bench_pipeline  {started:%Y-%m-%d %H:%M}")
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPU cores, torch threads {torch.get_num_threads()}, "
          f"torch {torch.__version__}, python {platform.python_version()}")
    print(f"load average at start: {load_average()} (other processes slow both paths down)")

    t = time.perf_counter()
    lm = models.load_model(args.model, device=args.device)
    load_s = time.perf_counter() - t
    pairs = data.load_pairs(dataset)
    layers = extraction.resolve_layers(args.layers, lm.num_layers)
    stats_layers = extraction.resolve_layers(args.stats_layers, lm.num_layers)
    missing = sorted(set(stats_layers) - set(layers))
    if missing:
        raise SystemExit(f"--stats-layers {missing} are not among the extracted --layers")
    n, n_statements = pairs.n_pairs, 2 * pairs.n_pairs
    print(f"model: {lm.name} ({lm.num_layers} blocks, d_model {lm.d_model}, {lm.dtype}, {lm.device}; "
          f"loaded in {load_s:.1f} s, not counted)")
    print(f"dataset: {pairs.name} ({n} pairs = {n_statements} statements, sha256 {pairs.sha256[:12]})")
    print(f"layers: {len(layers)} extracted ({layers[0]}..{layers[-1]}); statistics on {len(stats_layers)} "
          f"layers {stats_layers} x {len(metrics.METRIC_NAMES)} metrics x {args.n_bootstrap} resamples")

    # warm-up (first-call overheads of both paths)
    seed.get_nll(pairs.stmt_a[0], lm.model, lm.tokenizer)
    extraction._forward_batch(lm, [lm.tokenizer(pairs.stmt_a[0])["input_ids"]], layers[:1], "mean")

    # ------------------------------------------------------------------ 1. extraction
    t = time.perf_counter()
    ext = extraction.extract(lm, pairs, layers=layers, batch_size=args.batch_size, cache=False, progress=False)
    ours_extract_s = time.perf_counter() - t

    k = min(max(args.n_pairs, 1), n)
    subset = np.unique(np.linspace(0, n - 1, k).round().astype(int))  # spread over the categories
    t = time.perf_counter()
    seed_pref, seed_emb_a, seed_emb_b = [], [], []
    for i in subset:  # the seed's section-3 loop
        stmt_a, stmt_b = pairs.stmt_a[i], pairs.stmt_b[i]
        seed_pref.append(seed.get_output_preference(stmt_a, stmt_b, lm.model, lm.tokenizer))
        seed_emb_a.append([seed.get_layer_embedding(stmt_a, lm.model, lm.tokenizer, layer) for layer in layers])
        seed_emb_b.append([seed.get_layer_embedding(stmt_b, lm.model, lm.tokenizer, layer) for layer in layers])
    seed_subset_s = time.perf_counter() - t
    seed_extract_s = seed_subset_s / (2 * len(subset)) * n_statements
    extract_measured = len(subset) == n

    ours_emb = np.concatenate([ext.emb_a[:, subset], ext.emb_b[:, subset]], axis=1)  # [layer, stmt, d_model]
    ref_emb = np.concatenate([np.transpose(seed_emb_a, (1, 0, 2)), np.transpose(seed_emb_b, (1, 0, 2))], axis=1)
    emb_rel = float((np.abs(ours_emb - ref_emb) / np.abs(ref_emb).max(axis=-1, keepdims=True)).max())
    pref_diff = float(np.abs(ext.preference[subset] - np.array(seed_pref)).max())

    # ------------------------------------------------------------------ 2. metrics
    idx_layers = [layers.index(layer) for layer in stats_layers]
    t = time.perf_counter()
    values = np.stack([[m for m in metrics.compute_pair_metrics(ext.emb_a[i], ext.emb_b[i]).values()]
                       for i in idx_layers])  # [layer, metric, pair]
    ours_metrics_s = time.perf_counter() - t
    t = time.perf_counter()
    seed_values = np.stack([[m for m in seed.compute_pair_metrics(ext.emb_a[i], ext.emb_b[i]).values()]
                            for i in idx_layers])
    seed_metrics_s = time.perf_counter() - t
    scale = np.abs(seed_values).max(axis=-1, keepdims=True)
    metric_diff = float((np.abs(values - seed_values) / scale).max())

    # ------------------------------------------------------------------ 3. statistics
    pref = ext.preference
    n_tests = values.shape[0] * values.shape[1]
    t = time.perf_counter()
    table = stats.correlation_table(values, pref, stats_layers, metrics.METRIC_NAMES, n_bootstrap=args.n_bootstrap,
                                    seed=42)
    ours_stats_s = time.perf_counter() - t

    flat = values.reshape(n_tests, n)
    chosen = np.unique(np.linspace(0, n_tests - 1, min(max(args.seed_tests, 1), n_tests)).round().astype(int))
    seed_ci, same_ci, ours_ci = [], [], []
    seed_stats_subset_s = 0.0
    for tst in chosen:
        t = time.perf_counter()
        idx = seed.seed_indices(n, args.n_bootstrap, seed=42)  # np.random.choice per resample, as the seed
        r, lo, hi, p = seed.bootstrap_correlation(flat[tst], pref, idx)  # pearsonr per resample, as the seed
        seed_stats_subset_s += time.perf_counter() - t
        seed_ci.append((lo, hi))
        # ours on the seed's very resamples (exact check) and on its own stream (Monte Carlo agreement)
        rs = bootstrap.bootstrap_pearson(flat[tst], pref, idx)[0]
        same_ci.append(np.nanpercentile(rs, [2.5, 97.5]))
        ours_ci.append(table.iloc[tst][["ci_lower", "ci_upper"]].to_numpy(dtype=float))
    seed_stats_s = seed_stats_subset_s / len(chosen) * n_tests
    stats_measured = len(chosen) == n_tests
    ci_same = float(np.abs(np.array(same_ci) - np.array(seed_ci)).max())
    ci_mc = float(np.abs(np.array(ours_ci) - np.array(seed_ci)).max())

    # ------------------------------------------------------------------ report
    def how(measured: bool, part: str, seconds: float) -> str:
        return "measured" if measured else f"extrapolated from {part} ({fmt_s(seconds)} s measured)"

    rows = [
        (f"extraction: {n_statements} statements x {len(layers)} layers", seed_extract_s, ours_extract_s,
         how(extract_measured, f"{2 * len(subset)} statements", seed_subset_s)),
        (f"metrics: {len(stats_layers)} layers x 5 metrics", seed_metrics_s, ours_metrics_s, "measured"),
        (f"statistics: {n_tests} tests x {args.n_bootstrap} resamples", seed_stats_s, ours_stats_s,
         how(stats_measured, f"{len(chosen)} tests", seed_stats_subset_s)),
    ]
    total_seed, total_ours = sum(r[1] for r in rows), sum(r[2] for r in rows)
    rows.append(("total", total_seed, total_ours, ""))
    w = max(len(r[0]) for r in rows)
    print()
    print(f"{'stage':<{w}}  {'seed (s)':>9}  {'ours (s)':>9}  {'speed-up':>9}  seed figure")
    print(f"{'-' * w}  {'-' * 9}  {'-' * 9}  {'-' * 9}  {'-' * 11}")
    for name, s, o, note in rows:
        print(f"{name:<{w}}  {fmt_s(s):>9}  {fmt_s(o):>9}  {s / o:>8.0f}x  {note}")
    print("(ours: always measured on the whole workload; batch size "
          f"{args.batch_size}, {ext.meta['elapsed_s']:.2f} s inside extract)")
    print()
    print("agreement on what was measured:")
    print(f"  embeddings, {2 * len(subset)} statements x {len(layers)} layers: max relative difference "
          f"{emb_rel:.1e} (test tolerance 1e-4)")
    print(f"  preference NLL(B) - NLL(A), {len(subset)} pairs: max |difference| {pref_diff:.1e} (tolerance 2e-4)")
    print(f"  metrics, {n_tests} tests x {n} pairs: max difference relative to each metric's scale {metric_diff:.1e}")
    print(f"  bootstrap CI, {len(chosen)} tests, the seed's own resamples: max |dCI| {ci_same:.1e}")
    print(f"  bootstrap CI, {len(chosen)} tests, ours from its own seeded stream: max |dCI| {ci_mc:.4f} "
          "(Monte Carlo error)")
    print(f"\nfinished in {(dt.datetime.now() - started).total_seconds():.0f} s wall clock; "
          f"load average at the end: {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
