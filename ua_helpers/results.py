"""The results file: a superset of the seed's JSON schema, plus readers for published results."""
from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ._io import atomic_write_json, cache_dir, sha256_bytes

METHOD = "Option B: Pair-Level Analysis (EXPERIMENTAL)"
CAVEAT = "Pair-level metrics are NOT the same as category-level UA. Different interpretation required."
SCHEMA_VERSION = 1
#: The published Pythia-6.9B results of the seed notebook (third-party, MIT): pinned address and checksum.
PUBLISHED_URL = (
    "https://raw.githubusercontent.com/buk81/uniformity-asymmetry/660747c27b7a34a3c1dc45412397339bba3a8fdb/"
    "Results/pythia/option_b_pair_level_20260102_142148.json"
)
PUBLISHED_SHA256 = "dcc543f4a71006c3b8fe8f78c64bfc32e5abcd4dd3dccc8917718ab941d8c0d6"
SEED_KEYS = ("timestamp", "model", "method", "n_pairs", "n_bootstrap", "metrics_tested", "results",
             "best_per_layer", "summary", "caveat")
TEST_KEYS = ("r", "ci_lower", "ci_upper", "p_value", "includes_zero")


def mid_late_layers(layers: Sequence[int], num_layers: int) -> tuple[list[int], list[int]]:
    """Return the seed's "mid" and "late" layers, generalised from Pythia-6.9B's 32 blocks.

    The seed names layers 8 and 12 (25% and 37.5% of depth) mid, and 28 and 32 (the last two tested) late.
    Here mid are the tested layers nearest to 25% and 37.5% of ``num_layers``, late the last two tested.
    """
    tested = sorted(layers)
    mid = sorted({min(tested, key=lambda l: (abs(l - f * num_layers), l)) for f in (0.25, 0.375)})
    return mid, tested[-2:]


def best_per_layer(table) -> list[dict[str, Any]]:
    """For each layer, the metric with the highest |r| (the seed's loop, including its tie rule)."""
    out = []
    for layer, rows in table.groupby("layer", sort=True):
        best_metric, best_r, best_excludes_zero = None, 0.0, False
        for row in rows.itertuples():
            if abs(row.r) > abs(best_r):  # NaN never wins, as in the seed
                best_metric, best_r, best_excludes_zero = row.metric, row.r, not row.includes_zero
        out.append({"layer": int(layer), "best_metric": best_metric, "r": float(best_r),
                    "excludes_zero": bool(best_excludes_zero)})
    return out


def summarize(table, mid_layers: Sequence[int], late_layers: Sequence[int]) -> dict[str, Any]:
    """The seed's summary counts: tests, tests whose CI excludes zero, and those among mid and late layers."""
    sig = table[~table["includes_zero"]]
    return {
        "total_tests": int(len(table)),
        "significant_tests": int(len(sig)),
        "mid_layer_significant": int(sig["layer"].isin(list(mid_layers)).sum()),
        "late_layer_significant": int(sig["layer"].isin(list(late_layers)).sum()),
    }


def build_results(table, *, model: str, n_pairs: int, n_bootstrap: int, num_layers: int,
                  extra: dict[str, Any] | None = None, timestamp: str | None = None) -> dict[str, Any]:
    """Assemble the results dict: every key of the seed's file, then this project's additions.

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`ua_helpers.stats.correlation_table`.
    model : str
    n_pairs, n_bootstrap, num_layers : int
    extra : dict, optional
        Added under their own keys (dataset, parameters, versions, ...); they may not replace a seed key.
    """
    layers = sorted(int(l) for l in table["layer"].unique())
    metrics = list(dict.fromkeys(table["metric"]))
    mid, late = mid_late_layers(layers, num_layers)
    results = {
        str(layer): {row.metric: {"r": row.r, "ci_lower": row.ci_lower, "ci_upper": row.ci_upper,
                                  "p_value": row.p_value, "includes_zero": bool(row.includes_zero),
                                  **({"note": row.note} if row.note else {})}
                     for row in rows.itertuples()}
        for layer, rows in table.groupby("layer", sort=True)
    }
    out = {
        "timestamp": timestamp or datetime.now().isoformat(),
        "model": model,
        "method": METHOD,
        "n_pairs": int(n_pairs),
        "n_bootstrap": int(n_bootstrap),
        "metrics_tested": metrics,
        "results": results,
        "best_per_layer": best_per_layer(table),
        "summary": summarize(table, mid, late),
        "caveat": CAVEAT,
        "schema_version": SCHEMA_VERSION,
        "layers": layers,
        "num_layers": int(num_layers),
        "mid_layers": mid,
        "late_layers": late,
    }
    for key, value in (extra or {}).items():
        if key in out:
            raise ValueError(f"extra key {key!r} would replace a results key")
        out[key] = value
    return out


def write_results(path: str | os.PathLike, results: dict[str, Any]) -> Path:
    """Write the results as strict JSON (NaN as null), atomically."""
    return atomic_write_json(path, results)


def check_schema(results: dict[str, Any]) -> None:
    """Raise ValueError unless ``results`` has the seed's schema (keys, per-test fields, summary fields)."""
    missing = [k for k in SEED_KEYS if k not in results]
    if missing:
        raise ValueError(f"results lack the seed's keys {missing}")
    for layer, tests in results["results"].items():
        for metric, test in tests.items():
            absent = [k for k in TEST_KEYS if k not in test]
            if absent:
                raise ValueError(f"results[{layer!r}][{metric!r}] lacks {absent}")
    for k in ("total_tests", "significant_tests", "mid_layer_significant", "late_layer_significant"):
        if k not in results["summary"]:
            raise ValueError(f"summary lacks {k!r}")


def load_results(source: str | os.PathLike) -> dict[str, Any]:
    """Read a results file in the seed's schema from a path or URL.

    The published Pythia-6.9B file (``"published"`` or its pinned URL) is downloaded once, SHA-256 checked and
    cached. A missing file or an unreachable URL raises ``FileNotFoundError`` saying which.
    """
    src = os.fspath(source)
    if src in ("published", PUBLISHED_URL):
        cached = cache_dir("reference") / f"published-{PUBLISHED_SHA256[:12]}.json"
        if cached.is_file():
            raw = cached.read_bytes()
        else:
            import urllib.request

            try:
                with urllib.request.urlopen(PUBLISHED_URL, timeout=30) as resp:
                    raw = resp.read()
            except OSError as exc:
                raise FileNotFoundError(f"the published results are not reachable ({exc}); "
                                        "pass a local copy's path instead") from None
            if sha256_bytes(raw) != PUBLISHED_SHA256:
                raise ValueError(f"{PUBLISHED_URL} did not match its pinned sha256 {PUBLISHED_SHA256}")
            from ._io import atomic_write_bytes

            atomic_write_bytes(cached, raw)
    elif src.startswith(("http://", "https://")):
        import urllib.request

        try:
            with urllib.request.urlopen(src, timeout=30) as resp:
                raw = resp.read()
        except OSError as exc:
            raise FileNotFoundError(f"results URL {src} is not reachable: {exc}") from None
    else:
        path = Path(src).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"results file {path} does not exist")
        raw = path.read_bytes()
    results = json.loads(raw)
    check_schema(results)
    return results


def results_table(results: dict[str, Any]):
    """Flatten a results dict (ours or the seed's) to one row per (layer, metric)."""
    import pandas as pd

    rows = [{"layer": int(layer), "metric": metric, **{k: test.get(k) for k in TEST_KEYS}}
            for layer, tests in results["results"].items() for metric, test in tests.items()]
    df = pd.DataFrame(rows)
    for k in ("r", "ci_lower", "ci_upper", "p_value"):
        df[k] = df[k].astype(float)
    return df.sort_values(["layer", "metric"], kind="stable").reset_index(drop=True)


def compare_results(ours: dict[str, Any], reference: dict[str, Any]):
    """Side-by-side table of two results files: per metric, layer at relative depth, r and CI of each.

    Layers are matched by relative depth (layer / num_layers) so a 30-block model lines up with a 32-block one;
    ``same_sign`` and ``both_exclude_zero`` say where the two agree.
    """
    a, b = results_table(ours), results_table(reference)
    depth_a = a["layer"] / (ours.get("num_layers") or max(a["layer"]))
    depth_b = b["layer"] / (reference.get("num_layers") or max(b["layer"]))
    a = a.assign(depth=depth_a.round(3))
    b = b.assign(depth=depth_b.round(3))
    rows = []
    for metric in dict.fromkeys(a["metric"]):
        bm = b[b["metric"] == metric]
        if bm.empty:
            continue
        for row in a[a["metric"] == metric].itertuples():
            ref = bm.iloc[int(np.argmin(np.abs(bm["depth"].to_numpy() - row.depth)))]
            rows.append({
                "metric": metric, "depth": row.depth, "layer": row.layer, "r": row.r,
                "ci_lower": row.ci_lower, "ci_upper": row.ci_upper,
                "ref_layer": int(ref["layer"]), "ref_r": ref["r"], "ref_ci_lower": ref["ci_lower"],
                "ref_ci_upper": ref["ci_upper"],
                "same_sign": bool(np.sign(row.r) == np.sign(ref["r"])),
                "both_exclude_zero": bool(not row.includes_zero and not ref["includes_zero"]),
            })
    import pandas as pd

    return pd.DataFrame(rows)
