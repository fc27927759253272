"""The results file: a superset of the seed's JSON schema, plus readers for published results."""
from __future__ import annotations

import functools
import json
import math
import os
import typing
from datetime import datetime
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .._io import atomic_write_json, to_jsonable
from ..inputs import published
from ._markdown import fmt_ci, fmt_r
from .blocks import Results

METHOD = "Option B: Pair-Level Analysis (EXPERIMENTAL)"
CAVEAT = "Pair-level metrics are NOT the same as category-level UA. Different interpretation required."
#: Version of a run's results.json (see ``results.schema.json``): 1 = every block optional; 2 = dataset,
#: parameters, model_info, extended, evidence, category_level and option_a_bins always written; 3 = 2 + controls.
SCHEMA_VERSION = 2
#: Results assembled by :func:`build_results` alone (the seed's keys and optional blocks, as in tests).
PARTIAL_SCHEMA_VERSION = 1
#: The version from which a block is always written (an older run lacks it; a newer one never does).
BLOCK_SINCE = {"extended": 2, "evidence": 2, "category_level": 2, "option_a_bins": 2, "controls": 3}
#: The published Pythia-6.9B results of the seed notebook (third-party, MIT), shipped in the package.
PUBLISHED_URL = published.FILES[published.PAIR_LEVEL].url
PUBLISHED_SHA256 = published.FILES[published.PAIR_LEVEL].sha256
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
                  extra: dict[str, Any] | None = None, timestamp: str | None = None,
                  schema_version: int = PARTIAL_SCHEMA_VERSION) -> dict[str, Any]:
    """Assemble the results dict: every key of the seed's file, then this project's additions.

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`ua_helpers.analysis.stats.correlation_table`.
    model : str
    n_pairs, n_bootstrap, num_layers : int
    extra : dict, optional
        Added under their own keys (dataset, parameters, versions, ...); they may not replace a seed key.
    schema_version : int, default=PARTIAL_SCHEMA_VERSION
        What the file promises to hold (``results.schema.json``); a run's results say :data:`SCHEMA_VERSION`.
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
        "schema_version": int(schema_version),
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


def build_run_results(table, *, pairs, ext, parameters: dict[str, Any], extended=None,
                      levels: dict[str, Any] | None = None, evidence: dict[str, Any] | None = None,
                      sign_agreement_null: dict[str, Any] | None = None,
                      controls: dict[str, Any] | None = None,
                      timestamp: str | None = None) -> dict[str, Any]:
    """Assemble a run's results: the seed's schema (:func:`build_results`), then the run's identity and analyses.

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`ua_helpers.analysis.stats.correlation_table`.
    pairs : PairSet
    ext : Extraction
    parameters : dict
        The run's parameters (``RunConfig.to_parameters()``); ``run_dir`` and ``repo_url`` are left out (where a
        run was written says nothing about its numbers).
    extended : ExtendedAnalysis, optional
        From :func:`ua_helpers.analysis.inference.extended_analysis`; stored under ``"extended"``.
    levels : dict, optional
        From :func:`ua_helpers.analysis.levels.analyse_levels`: its ``category_level`` and ``option_a_bins`` keys.
    evidence : dict, optional
        From :func:`ua_helpers.analysis.evidence.evidence_block`; stored under ``"evidence"``.
    sign_agreement_null : dict, optional
        From :func:`ua_helpers.report.agreement.sign_agreement_null`; stored under ``"comparison"``.
    controls : dict, optional
        From :meth:`ua_helpers.analysis.controls.Controls.to_json`; stored under ``"controls"`` (random-token baseline,
        shuffled-pairing null, lexical covariates).
    """
    model_meta = ext.meta.get("model", {})
    params = {k: v for k, v in parameters.items() if k not in ("run_dir", "repo_url")}
    params["knn_k_effective"] = min(int(params.get("knn_k", 10)), ext.n_pairs - 1)
    pref = np.asarray(ext.preference, dtype=np.float64)
    extra: dict[str, Any] = {
        "dataset": {"name": pairs.name, "source": pairs.source, "sha256": pairs.sha256, "n_pairs": pairs.n_pairs,
                    "categories": pairs.category_counts(), "orientation": params.get("orientation", "as-given")},
        "parameters": params,
        "model_info": model_meta,
        "extraction": {k: ext.meta.get(k) for k in ("pooling", "representation", "prefix", "prefix_token_id",
                                                    "layers_spec", "batch_size", "cache_key", "elapsed_s")},
        "versions": environment(),
        "ci_level": params.get("ci_level"), "seed": params.get("seed"), "knn_k": params.get("knn_k"),
        "preference": {"mean": float(pref.mean()), "sd": float(pref.std(ddof=1)),
                       "share_prefers_a": float((pref > 0).mean())},
    }
    if extended is not None:
        extra["extended"] = extended.to_json()
    if levels is not None:
        extra.update({k: levels[k] for k in ("category_level", "option_a_bins")})
    if evidence is not None:
        extra["evidence"] = evidence
    if sign_agreement_null is not None:
        extra["comparison"] = {"sign_agreement_null": sign_agreement_null}
    if controls is not None:
        extra["controls"] = controls
    # A run always writes its blocks (version 2); with controls it promises them too (version 3).
    version = 3 if "controls" in extra else SCHEMA_VERSION
    return build_results(table, model=str(params.get("model", model_meta.get("name"))), n_pairs=pairs.n_pairs,
                         n_bootstrap=int(params.get("n_bootstrap", 0)),
                         num_layers=int(model_meta.get("num_layers", max(ext.layers))), extra=extra,
                         timestamp=timestamp, schema_version=version)


def extended_table(results: Results):
    """The reviewer statistics of a results dict (its ``extended.tests``) as a DataFrame, one row per test."""
    import pandas as pd

    if "extended" not in results:
        raise ValueError("these results have no 'extended' block (reviewer statistics); re-run notebook 4")
    return pd.DataFrame(results["extended"]["tests"])


def environment() -> dict[str, str]:
    """Versions of every package that computes a number of a run, and the hardware it ran on."""
    import importlib.metadata as md
    import os
    import platform

    from .._version import __version__

    out = {"python": platform.python_version(), "ua_helpers": __version__}
    for dist in ("numpy", "scipy", "scikit-learn", "pandas", "torch", "transformers", "matplotlib"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            out[dist] = "not installed"
    try:
        import torch

        out["GPU"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
        out["torch threads"] = str(torch.get_num_threads())
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    out["CPU cores"] = str(os.cpu_count())
    out["platform"] = platform.platform(terse=True)
    return out


def headline_text(table) -> str:
    """The per-layer r and CI as fixed-width text (:func:`~ua_helpers.report._markdown.fmt_r`, ``fmt_ci``).

    The last column says whether the CI excludes 0 without correction for multiple tests (the notebook says so).
    """
    lines = [f"{'layer':>5}  {'metric':<22} {'r':>6}  {'CI':<16} excludes 0"]
    for row in table.itertuples():
        lines.append(f"{row.layer:>5}  {row.metric:<22} {fmt_r(row.r):>6}  {fmt_ci(row.ci_lower, row.ci_upper):<16} "
                     f"{'yes' if not row.includes_zero else 'no'}")
    return "\n".join(lines)


def best_per_layer_text(table) -> str:
    """The seed's "best metric by layer" as fixed-width text: highest |r| per layer, CI verdict uncorrected."""
    lines = [f"{'layer':>5}  {'best metric':<22} {'r':>6}  excludes 0"]
    for row in best_per_layer(table):
        lines.append(f"{row['layer']:>5}  {str(row['best_metric']):<22} {fmt_r(row['r']):>6}  "
                     f"{'yes' if row['excludes_zero'] else 'no'}")
    return "\n".join(lines)


def seed_summary_text(results: Results) -> str:
    """The seed's closing counts, line for line, each saying that its criterion is uncorrected."""
    s = results["summary"]
    rate = s["significant_tests"] / s["total_tests"] * 100 if s["total_tests"] else float("nan")
    return "\n".join([
        f"Total tests: {s['total_tests']}",
        f"CI excludes 0 (uncorrected): {s['significant_tests']}",
        f"Rate of CIs excluding 0 (uncorrected): {rate:.1f}%",
        f"Mid layers {results['mid_layers']}: {s['mid_layer_significant']} with CI excluding 0 (uncorrected)",
        f"Late layers {results['late_layers']}: {s['late_layer_significant']} with CI excluding 0 (uncorrected)",
    ])


def write_results(path: str | os.PathLike, results: Results | dict[str, Any]) -> Path:
    """Validate the results against the shipped schema (:func:`check_schema`), then write them as strict JSON
    (NaN as null), atomically."""
    plain = to_json(results)
    check_schema(plain, source=os.fspath(path))
    return atomic_write_json(path, plain)  # what was validated is what is written


def from_json(obj: Any, source: str = "results") -> Results:
    """Return ``obj`` (parsed JSON) typed as :class:`~ua_helpers.report.blocks.Results`, once it is valid against
    the shipped schema; ValueError naming ``source`` and the field otherwise (:func:`check_schema`)."""
    check_schema(obj, source=source)
    return typing.cast(Results, obj)


def to_json(results: Results | dict[str, Any]) -> dict[str, Any]:
    """Return ``results`` as plain JSON values (NaN as None, arrays as lists): what :func:`from_json` reads."""
    return to_jsonable(results)


#: The JSON Schema of results.json, shipped in the package (``ua_helpers/report/results.schema.json``).
SCHEMA_FILE = Path(__file__).with_name("results.schema.json")
#: Deepest nesting accepted in a results file (the deepest block written here is 6 levels deep).
MAX_DEPTH = 32
#: Longest value quoted in a validation error (hostile files can hold anything).
_QUOTE_CHARS = 60


@functools.lru_cache(maxsize=1)
def _validator():
    import jsonschema

    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def _field(path: Sequence[Any]) -> str:
    """A field's location as ``summary.significant_tests`` or ``results['8'].r``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if str(part).isidentifier() else f"[{part!r}]")
    return out.lstrip(".") or "(the top level)"


def _quote(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _QUOTE_CHARS else text[:_QUOTE_CHARS - 1] + "…"


def _walk_numbers(obj: Any, source: str) -> None:
    """Refuse nesting deeper than :data:`MAX_DEPTH` and non-finite numbers (NaN must be written as null)."""
    stack: list[tuple[Any, tuple, int]] = [(obj, (), 0)]
    while stack:
        node, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ValueError(f"{source}: {_field(path)} is nested deeper than {MAX_DEPTH} levels")
        if isinstance(node, dict):
            stack += [(v, (*path, k), depth + 1) for k, v in node.items()]
        elif isinstance(node, list):
            stack += [(v, (*path, i), depth + 1) for i, v in enumerate(node)]
        elif isinstance(node, float) and not math.isfinite(node):
            raise ValueError(f"{source}: {_field(path)} is {node!r}; numbers must be finite (null for missing)")


def _bounds_in_order(obj: Any, source: str, path: tuple = ()) -> None:
    """Every ``X_lower``/``X_upper`` pair of one object (CIs of every block) has lower <= upper."""
    if isinstance(obj, dict):
        for key, lo in obj.items():
            if isinstance(key, str) and key.endswith("_lower"):
                hi = obj.get(key[:-len("_lower")] + "_upper")
                if isinstance(lo, (int, float)) and isinstance(hi, (int, float)) and lo > hi:
                    raise ValueError(f"{source}: {_field((*path, key))} = {lo!r} exceeds its upper bound {hi!r}")
        for key, value in obj.items():
            _bounds_in_order(value, source, (*path, key))
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            _bounds_in_order(value, source, (*path, i))


def _seed_consistent(results: dict[str, Any], source: str) -> None:
    """The seed's summary counts what its tests say, and each test's ``includes_zero`` what its CI says."""
    tests = [(layer, metric, t) for layer, ts in results["results"].items() for metric, t in ts.items()]
    for layer, metric, t in tests:
        lo, hi = t["ci_lower"], t["ci_upper"]
        if lo is not None and hi is not None and t["includes_zero"] != bool(lo <= 0 <= hi):
            raise ValueError(f"{source}: {_field(('results', layer, metric, 'includes_zero'))} = "
                             f"{t['includes_zero']} contradicts its CI [{lo}, {hi}]")
    s = results["summary"]
    counted = {"total_tests": len(tests), "significant_tests": sum(not t["includes_zero"] for _, _, t in tests)}
    for key, count in counted.items():
        if s[key] != count:
            raise ValueError(f"{source}: summary.{key} = {s[key]} but the results hold {count}")
    for key in ("mid_layer_significant", "late_layer_significant"):
        if s[key] > s["significant_tests"]:
            raise ValueError(f"{source}: summary.{key} = {s[key]} exceeds summary.significant_tests")


def check_schema(results: Any, source: str = "results") -> None:
    """Raise ValueError naming ``source`` and the field unless ``results`` is valid against the shipped schema.

    The schema (:data:`SCHEMA_FILE`) types every seed key and this project's blocks, with ranges (correlations
    and CI bounds in [-1, 1], p-values in [0, 1], counts non-negative integers); here are added what JSON
    Schema cannot say: numbers are finite, nesting is at most :data:`MAX_DEPTH` deep, every lower bound is at
    most its upper bound, and the seed's summary counts its own tests. A block that a file's
    ``schema_version`` always writes but that is missing was removed; a block missing from an older version
    was never written (see :func:`require_block`).
    """
    import jsonschema

    if not isinstance(results, dict):
        raise ValueError(f"{source}: results must be a JSON object; got {type(results).__name__}")
    _walk_numbers(results, source)
    errors = list(_validator().iter_errors(results))
    if errors:
        error = jsonschema.exceptions.best_match(errors)
        where = _field(error.absolute_path)
        if error.validator == "required":
            missing = [k for k in error.validator_value if k not in error.instance]
            version = results.get("schema_version")
            why = (f" (results of schema version {version} always hold it: it was removed)"
                   if not error.absolute_path and version else "")
            raise ValueError(f"{source}: {where} lacks the required key{'s' if len(missing) > 1 else ''} "
                             f"{', '.join(repr(k) for k in missing)}{why}")
        raise ValueError(f"{source}: {where} = {_quote(error.instance)} is invalid: "
                         f"{_schema_reason(error)}")
    _bounds_in_order(results, source)
    _seed_consistent(results, source)


def _schema_reason(error) -> str:
    """A short reason for a schema error (without repeating the offending value)."""
    v, expected = error.validator, error.validator_value
    if v == "type":
        return f"expected {' or '.join(expected) if isinstance(expected, list) else expected}"
    if v in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        word = {"minimum": "at least", "maximum": "at most", "exclusiveMinimum": "above",
                "exclusiveMaximum": "below"}[v]
        return f"must be {word} {expected}"
    if v == "pattern":
        return f"must match {expected}"
    if v == "enum":
        return f"must be one of {expected}"
    return error.message if len(error.message) <= 200 else error.message[:199] + "…"


def require_block(results: Results, name: str) -> Any:
    """Return ``results[name]``, or raise ValueError saying the run predates the block.

    A valid file (:func:`check_schema`) whose ``schema_version`` always writes ``name`` has it; one without it
    was made before the block existed, and the message says so.
    """
    if name in results:
        return results[name]
    version = results.get("schema_version")
    if isinstance(version, int) and version >= BLOCK_SINCE.get(name, 10**9):
        raise ValueError(f"these results (schema version {version}) lack the {name!r} block that their version "
                         "always holds: it was removed")
    raise ValueError(f"these results (schema version {version or 'of the seed'}) were made before the {name!r} "
                     "block existed; run the analysis again with this version to get it")


def load_results(source: str | os.PathLike) -> Results:
    """Read a results file in the seed's schema from a path, a URL, or ``"published"``.

    ``"published"`` (or the published file's pinned URL) is the copy shipped in the package
    (:mod:`ua_helpers.inputs.published`, checked against its SHA-256 when read): nothing is downloaded. Other URLs are
    downloaded with a size cap and an overall deadline. A missing file or an unreachable URL raises
    ``FileNotFoundError`` saying which; a file that is not valid against the schema (:func:`check_schema`)
    raises ``ValueError`` naming it and the field.
    """
    src = os.fspath(source)
    if src in ("published", PUBLISHED_URL):
        raw = published.read_bytes(published.PAIR_LEVEL)
    elif src.startswith(("http://", "https://")):
        from .._io import download

        try:
            raw = download(src)
        except OSError as exc:
            raise FileNotFoundError(f"results URL {src} is not reachable: {exc}") from None
    else:
        path = Path(src).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"results file {path} does not exist")
        raw = path.read_bytes()
    try:
        results = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"results {src!r} are not valid JSON: {exc}") from None
    except RecursionError:
        raise ValueError(f"results {src!r} are nested deeper than {MAX_DEPTH} levels") from None
    if not isinstance(results, dict):
        raise ValueError(f"results {src!r} must be a JSON object; got {type(results).__name__}")
    return from_json(results, source=src)


def model_record(results: Results, manifest: dict[str, Any] | None = None) -> dict[str, Any]:
    """Return the model a run used: the manifest's record, else the results' ``model_info``, else its name.

    A run's manifest copies ``model_info`` when the run completes; the seed's own file has only ``model``.
    """
    return (manifest or {}).get("model") or results.get("model_info") or {"name": results.get("model")}


def results_table(results: Results):
    """Flatten a results dict (ours or the seed's) to one row per (layer, metric)."""
    import pandas as pd

    rows = [{"layer": int(layer), "metric": metric, **{k: test.get(k) for k in TEST_KEYS}}
            for layer, tests in results["results"].items() for metric, test in tests.items()]
    df = pd.DataFrame(rows)
    for k in ("r", "ci_lower", "ci_upper", "p_value"):
        df[k] = df[k].astype(float)
    return df.sort_values(["layer", "metric"], kind="stable").reset_index(drop=True)


def band_frames(results: Results):
    """Return the random-token and shuffled-pairing test rows of ``results["controls"]`` as DataFrames.

    Either is None where the run has no such rows (a run made before the controls, or an empty block); the
    figures draw their control bands from them.
    """
    import pandas as pd

    ctl = results.get("controls") or {}
    rt = (ctl.get("random_tokens") or {}).get("tests") or []
    sh = (ctl.get("shuffled_pairing") or {}).get("tests") or []
    return (pd.DataFrame(rt) if rt else None), (pd.DataFrame(sh) if sh else None)


def compare_results(ours: Results, reference: Results):
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

    columns = ["metric", "depth", "layer", "r", "ci_lower", "ci_upper", "ref_layer", "ref_r", "ref_ci_lower",
               "ref_ci_upper", "same_sign", "both_exclude_zero"]
    return pd.DataFrame(rows, columns=columns)


def read_comparison(comparison) -> str:
    """One sentence that reads :func:`compare_results`: sign agreement and shared CI verdicts, by metric."""
    if comparison is None or len(comparison) == 0:
        return "No test of this run could be matched with the reference."
    same = int(comparison["same_sign"].sum())
    both = int(comparison["both_exclude_zero"].sum())
    per_metric = comparison.groupby("metric", sort=False)["same_sign"].mean()
    agree = [m for m, share in per_metric.items() if share == 1.0]
    oppose = [m for m, share in per_metric.items() if share == 0.0]
    text = (f"Matched by relative depth, {same} of {len(comparison)} tests have the same sign as the reference, "
            f"and {both} have a CI that excludes 0 (uncorrected) in both.")
    if agree:
        text += f" The sign agrees at every matched layer for {', '.join(agree)}."
    if oppose:
        text += f" It is opposite at every matched layer for {', '.join(oppose)}."
    return text
