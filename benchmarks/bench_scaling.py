"""Time and peak memory of the analysis after extraction, from 230 to 23,000 synthetic pairs.

Synthetic embeddings of the paper's shape per pair (9 layers, d_model = 576, float32, as extraction returns them)
go through ``metrics.compute_all_layers`` (the five metrics; the kNN density is the O(n_pairs^2 d_model) part),
``stats.correlation_table`` (Pearson + percentile bootstrap CIs) and ``inference.extended_analysis``
(multiplicity, permutations, Spearman, confounds, per-category). Each size runs in its own subprocess, so its
peak resident memory (``ru_maxrss``, which includes the interpreter and the embeddings themselves) is its own;
"CPU s" is the child's user + system time for the three stages (wall time on a busy machine overstates the work).
Two ratios travel between machines: the metrics stage over the "floor" (the float64 dot products of every row
with every row, which a kNN density that ignores the symmetry of the cosines cannot avoid, timed alone; the
tiles of ``metrics.knn_density`` compute half of them, so the ratio can fall below 1), and the extended analysis
over the metrics.

    python benchmarks/bench_scaling.py [--sizes 230,2300,9200,23000] [--n-bootstrap 10000]
        [--n-permutations 10000] [--extended-max 23000] [--blas-threads 1] [--timeout 3600]

``--extended-max`` skips the extended analysis above that many pairs (its Spearman bootstrap is
O(n_bootstrap x n_tests x n_pairs)); a skipped stage prints "-".
"""
from __future__ import annotations

import argparse
import contextlib
import json
import platform
import resource
import subprocess
import sys
import time

import numpy as np

N_LAYERS, D_MODEL = 9, 576
#: Products per block of the floor's GEMMs (2**22 float64 = 32 MiB).
FLOOR_BLOCK_ELEMENTS = 2**22
CATEGORIES = ("ground_truth_numeric", "ground_truth_nonnumeric", "tech_philosophy", "lifestyle", "business",
              "scientific_facts")


def _rss_mib() -> float:
    """Peak resident memory of this process so far, MiB (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def _cpu_s() -> float:
    """CPU seconds (user + system) this process has used: less sensitive than wall time to a busy machine."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def make_embeddings(n_pairs: int, seed: int = 0):
    """Synthetic pooled hidden states: a shared direction per layer plus noise, B shifted from A; float32."""
    rng = np.random.default_rng(seed)
    shared = rng.normal(size=(N_LAYERS, 1, D_MODEL)).astype(np.float32)  # [n_layers, 1, d_model]
    emb_a = np.empty((N_LAYERS, n_pairs, D_MODEL), np.float32)  # [n_layers, n_pairs, d_model]
    emb_b = np.empty((N_LAYERS, n_pairs, D_MODEL), np.float32)
    for layer in range(N_LAYERS):  # one layer at a time keeps the float64 draws small
        emb_a[layer] = 2 * shared[layer] + rng.normal(size=(n_pairs, D_MODEL))
        emb_b[layer] = 2 * shared[layer] + rng.normal(size=(n_pairs, D_MODEL)) + 0.3
    tok_a = rng.integers(6, 25, n_pairs)
    tok_b = tok_a + rng.integers(-4, 5, n_pairs)
    return dict(emb_a=emb_a, emb_b=emb_b, n_tokens_a=tok_a, n_tokens_b=tok_b,
                len_a=5 * tok_a + rng.integers(0, 8, n_pairs), len_b=5 * tok_b + rng.integers(0, 8, n_pairs),
                categories=[CATEGORIES[i % len(CATEGORIES)] for i in range(n_pairs)], rng=rng)


def gemm_floor_s(emb_a, emb_b) -> float:
    """Seconds for the float64 dot products of every row with every row, and nothing else: per layer and side,
    the row-normalised embeddings times their transpose, in blocks of rows of FLOOR_BLOCK_ELEMENTS products (as
    the kNN density computed them before its tiles)."""
    n_pairs = emb_a.shape[1]
    block = max(1, FLOOR_BLOCK_ELEMENTS // n_pairs)
    elapsed = 0.0
    for side in (emb_a, emb_b):
        for layer in side:
            x = np.asarray(layer, dtype=np.float64)
            xn = x / np.linalg.norm(x, axis=1, keepdims=True)
            t0 = time.perf_counter()
            for start in range(0, n_pairs, block):
                xn[start:start + block] @ xn.T
            elapsed += time.perf_counter() - t0
    return elapsed


def run_child(n_pairs: int, n_bootstrap: int, n_permutations: int, extended: bool) -> dict:
    """Run the three stages on one size; return seconds and peak resident MiB after each."""
    from ua_helpers.analysis import inference, metrics, stats

    out: dict = {"n_pairs": n_pairs}
    t0 = time.perf_counter()
    d = make_embeddings(n_pairs)
    out["embeddings_s"], out["embeddings_mib"] = time.perf_counter() - t0, _rss_mib()

    t0, c0 = time.perf_counter(), _cpu_s()
    values = metrics.compute_all_layers(d["emb_a"], d["emb_b"], k=10)  # [n_layers, n_metrics, n_pairs]
    out["metrics_s"], out["metrics_mib"] = time.perf_counter() - t0, _rss_mib()
    out["metrics_cpu_s"] = _cpu_s() - c0
    out["floor_s"] = gemm_floor_s(d["emb_a"], d["emb_b"])  # not part of the analysis: excluded from CPU s
    c0 = _cpu_s()
    preference = 0.2 * values[4, 4] / values[4, 4].std() + d["rng"].normal(size=n_pairs)  # [n_pairs]
    layers, names = list(range(N_LAYERS)), list(metrics.METRIC_NAMES)

    t0 = time.perf_counter()
    stats.correlation_table(values, preference, layers, names, n_bootstrap=n_bootstrap, seed=42)
    out["correlation_s"], out["correlation_mib"] = time.perf_counter() - t0, _rss_mib()

    if extended:
        t0 = time.perf_counter()
        inference.extended_analysis(values, preference, layers, names, n_tokens_a=d["n_tokens_a"],
                                    n_tokens_b=d["n_tokens_b"], len_a=d["len_a"], len_b=d["len_b"],
                                    categories=d["categories"], n_bootstrap=n_bootstrap,
                                    n_permutations=n_permutations, seed=42)
        out["extended_s"], out["extended_mib"] = time.perf_counter() - t0, _rss_mib()
    out["analysis_cpu_s"] = _cpu_s() - c0 + out["metrics_cpu_s"]
    return out


def _blas_limit(threads: int | None):
    if threads is None:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=threads, user_api="blas")


def _fmt(row: dict, key: str, spec: str) -> str:
    return format(row[key], spec) if key in row else "-"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="230,2300,9200,23000")
    ap.add_argument("--n-bootstrap", type=int, default=10000)
    ap.add_argument("--n-permutations", type=int, default=10000)
    ap.add_argument("--extended-max", type=int, default=23000)
    ap.add_argument("--blas-threads", type=int, default=None)
    ap.add_argument("--timeout", type=float, default=3600.0, help="seconds per size")
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child is not None:
        with _blas_limit(args.blas_threads):
            row = run_child(args.child, args.n_bootstrap, args.n_permutations, args.child <= args.extended_max)
        print(json.dumps(row))
        return

    print(f"analysis scaling: {N_LAYERS} layers x d_model {D_MODEL}, 5 metrics, n_bootstrap={args.n_bootstrap}, "
          f"n_permutations={args.n_permutations}; {platform.machine()}, BLAS threads: "
          f"{args.blas_threads or 'default'}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print("floor s: every row's float64 dot products with every row, alone (the kNN density computes half of them); "
          "metrics/floor: the metrics stage over it (the kNN density is nearly all of it); ext./metrics: the "
          "extended analysis over the metrics")
    print(f"{'n_pairs':>8} {'metrics s':>10} {'corr. s':>8} {'extended s':>10} {'total s':>8} {'CPU s':>7} "
          f"{'peak MiB':>9} {'(after metrics':>15} {'corr.':>6} {'ext.)':>6} {'floor s':>8} {'metrics/floor':>13} "
          f"{'ext./metrics':>12}")
    for n_pairs in (int(s) for s in args.sizes.split(",")):
        cmd = [sys.executable, __file__, "--child", str(n_pairs), "--n-bootstrap", str(args.n_bootstrap),
               "--n-permutations", str(args.n_permutations), "--extended-max", str(args.extended_max)]
        if args.blas_threads is not None:
            cmd += ["--blas-threads", str(args.blas_threads)]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, check=True)
        except subprocess.TimeoutExpired:
            print(f"{n_pairs:>8} timed out after {args.timeout:.0f} s")
            continue
        except subprocess.CalledProcessError as exc:
            print(f"{n_pairs:>8} failed: {exc.stderr.strip().splitlines()[-1] if exc.stderr.strip() else exc}")
            continue
        row = json.loads(done.stdout.strip().splitlines()[-1])
        total = row["metrics_s"] + row["correlation_s"] + row.get("extended_s", 0.0)
        peak = max(v for k, v in row.items() if k.endswith("_mib"))
        print(f"{n_pairs:>8} {row['metrics_s']:>10.1f} {row['correlation_s']:>8.1f} "
              f"{_fmt(row, 'extended_s', '>10.1f'):>10} {total:>8.1f} {row['analysis_cpu_s']:>7.1f} {peak:>9.0f} "
              f"{row['metrics_mib']:>15.0f} {row['correlation_mib']:>6.0f} {_fmt(row, 'extended_mib', '>6.0f'):>6} "
              f"{row['floor_s']:>8.1f} {row['metrics_s'] / row['floor_s']:>13.2f} "
              f"{row['extended_s'] / row['metrics_s'] if 'extended_s' in row else float('nan'):>12.2f}",
              flush=True)


if __name__ == "__main__":
    main()
