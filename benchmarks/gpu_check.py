"""Run the paper's configuration stage by stage on a CUDA GPU; print each stage's time and peak GPU memory.

For whoever has a GPU and the weights (the Hugging Face hub, or its local cache). The default is the paper's
configuration: ``EleutherAI/pythia-6.9b`` in float16 on the ua-230 pairs, layers "paper" (0, 4, ..., 32),
10,000 bootstrap resamples. It calls the ``ua_helpers`` API directly, one stage at a time:

1. load     ``data.load_pairs`` and ``models.load_model`` (weights onto the GPU; several GPUs: device_map="auto")
2. extract  ``extraction.extract`` (the cache is bypassed unless ``--use-cache``: the forward passes are timed)
3. metrics  ``metrics.compute_all_layers``
4. stats    ``stats.correlation_table`` (bootstrap CIs)
5. results  ``results.build_results`` and ``results.write_results`` (``--out``)

Peak GPU memory is ``torch.cuda.max_memory_allocated``, reset before each stage, summed over the visible devices.
With ``--reference PATH`` (or ``published``, the seed's pinned file) it also prints the headline comparison:
per metric and layer (matched by normalized depth), our r and CI next to the reference's.

Usage::

    python benchmarks/gpu_check.py
    python benchmarks/gpu_check.py --model EleutherAI/pythia-1b --revision step143000 --dataset ua-230
    python benchmarks/gpu_check.py --reference ../shared/reference/pythia-6.9b_option_b_pair_level.json

ua-230 is downloaded from its pinned address (or read from ``$UA_230_PATH``). Exit codes: 0 done, 1 a stage
failed, 2 no CUDA GPU is visible (nothing is run).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

GIB = 1024 ** 3


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="EleutherAI/pythia-6.9b", help="hub id or local directory")
    p.add_argument("--revision", default=None, help="hub revision, e.g. step143000")
    p.add_argument("--dataset", default="ua-230", help="ua-230, replication-230, a path or a URL")
    p.add_argument("--dtype", default="float16", choices=("float16", "bfloat16", "float32"))
    p.add_argument("--layers", default="paper", help='"paper", "all" or a list like 0,8,16')
    p.add_argument("--n-bootstrap", type=int, default=10000)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--reference", default=None,
                   help="results file to compare with (a path, or 'published' for the seed's pinned file)")
    p.add_argument("--out", default="runs/gpu-check/results.json", help="where the results stage writes")
    p.add_argument("--json", default=None, help="also write the timings and memory as JSON here")
    p.add_argument("--use-cache", action="store_true", help="let extraction read and write the cache")
    return p.parse_args(argv)


def _peaks(torch) -> list[int]:
    return [torch.cuda.max_memory_allocated(d) for d in range(torch.cuda.device_count())]


def _reset(torch) -> None:
    for d in range(torch.cuda.device_count()):
        torch.cuda.synchronize(d)
        torch.cuda.reset_peak_memory_stats(d)


def headline_comparison(ours: dict, reference: dict) -> str:
    """Our r and CI next to the reference's, per metric and layer, and how often they agree."""
    from ua_helpers.report import results

    table = results.compare_results(ours, reference)
    lines = [f"{'metric':<22} {'depth':>5} {'layer':>5} {'r':>7} {'CI':<17} {'ref layer':>9} {'ref r':>7} "
             f"{'ref CI':<17} same sign  both exclude 0"]
    for row in table.itertuples():
        lines.append(
            f"{row.metric:<22} {row.depth:>5.2f} {row.layer:>5} {row.r:>+7.3f} "
            f"[{row.ci_lower:+.3f}, {row.ci_upper:+.3f}] {row.ref_layer:>9} {row.ref_r:>+7.3f} "
            f"[{row.ref_ci_lower:+.3f}, {row.ref_ci_upper:+.3f}] {'yes' if row.same_sign else 'NO':<10} "
            f"{'yes' if row.both_exclude_zero else 'no'}")
    diff = (table["r"] - table["ref_r"]).abs()
    s_ours, s_ref = ours["summary"], reference["summary"]
    lines += [
        "",
        f"same sign: {int(table['same_sign'].sum())} of {len(table)}; both CIs exclude zero: "
        f"{int(table['both_exclude_zero'].sum())}; |r - ref r|: max {diff.max():.3f}, median {diff.median():.3f}",
        f"CI excludes zero: ours {s_ours['significant_tests']} of {s_ours['total_tests']}, reference "
        f"{s_ref['significant_tests']} of {s_ref['total_tests']} (mid layers {s_ours['mid_layer_significant']} vs "
        f"{s_ref['mid_layer_significant']}, late layers {s_ours['late_layer_significant']} vs "
        f"{s_ref['late_layer_significant']})",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print("gpu_check: no CUDA GPU is visible here (torch.cuda.is_available() is False). This check times the "
              "paper's configuration on a GPU; run it on a machine with one (and a CUDA build of torch).",
              file=sys.stderr)
        return 2

    import transformers

    from ua_helpers.inputs import data, extraction, models
    from ua_helpers.analysis import metrics, stats
    from ua_helpers.report import results

    n_gpus = torch.cuda.device_count()
    print(f"GPUs: {n_gpus} x {torch.cuda.get_device_name(0)}; torch {torch.__version__}, "
          f"transformers {transformers.__version__}")
    print(f"model {args.model}" + (f"@{args.revision}" if args.revision else "")
          + f", {args.dtype}, dataset {args.dataset}, layers {args.layers}, n_bootstrap {args.n_bootstrap}, "
          f"batch_size {args.batch_size}\n")
    layers = args.layers if args.layers in ("paper", "all") else [int(x) for x in args.layers.split(",")]
    timings: list[dict] = []

    def stage(name: str, fn):
        _reset(torch)
        start = time.perf_counter()
        try:
            out = fn()
        except Exception as exc:
            print(f"stage {name} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            raise SystemExit(1) from None
        torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
        peaks = _peaks(torch)
        timings.append({"stage": name, "seconds": round(elapsed, 3), "peak_gpu_bytes": sum(peaks),
                        "peak_gpu_bytes_per_device": peaks})
        print(f"  {name:<8} {elapsed:9.2f} s   peak GPU memory {sum(peaks) / GIB:7.2f} GiB"
              + (f"  ({', '.join(f'{p / GIB:.2f}' for p in peaks)})" if n_gpus > 1 else ""), flush=True)
        return out

    def load():
        pairs = data.load_pairs(args.dataset)
        lm = models.load_model(args.model, revision=args.revision, dtype=args.dtype, device="cuda")
        return pairs, lm

    pairs, lm = stage("load", load)
    ext = stage("extract", lambda: extraction.extract(lm, pairs, layers, batch_size=args.batch_size,
                                                      cache=args.use_cache, progress=False))
    values = stage("metrics", lambda: metrics.compute_all_layers(ext.emb_a, ext.emb_b))
    table = stage("stats", lambda: stats.correlation_table(values, ext.preference, ext.layers,
                                                           metrics.METRIC_NAMES, n_bootstrap=args.n_bootstrap,
                                                           seed=args.seed))

    def write():
        res = results.build_results(
            table, model=args.model, n_pairs=pairs.n_pairs, n_bootstrap=args.n_bootstrap,
            num_layers=lm.num_layers,
            extra={"dataset": data.describe(pairs), "model_info": lm.describe(), "gpu_check": timings})
        results.write_results(args.out, res)
        return res

    ours = stage("results", write)
    total = sum(t["seconds"] for t in timings)
    weights = sum(torch.cuda.memory_allocated(d) for d in range(n_gpus))
    print(f"  {'total':<8} {total:9.2f} s   model weights resident: {weights / GIB:.2f} GiB; "
          f"{pairs.n_pairs} pairs, layers {ext.layers}, device {lm.device}")
    s = ours["summary"]
    print(f"\nCI excludes zero in {s['significant_tests']} of {s['total_tests']} tests; results: {args.out}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"args": vars(args), "gpu": torch.cuda.get_device_name(0),
                                               "n_gpus": n_gpus, "stages": timings}, indent=2) + "\n")
    if args.reference:
        print("\nHeadline comparison with", args.reference)
        print(headline_comparison(ours, results.load_results(args.reference)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
