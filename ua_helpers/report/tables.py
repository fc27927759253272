"""Tables for readers, built from a results dict (``results.json``): few columns, plain names, short.

The headline tables carry at most eight columns (r, its CI, Spearman's ρ, the adjusted r, the evidence rung);
every statistic of every test goes to ``tests.csv`` beside ``results.json`` (:func:`write_tests_csv`) and into a
collapsed section (:func:`ua_helpers.report.show.collapsed`). Rung names come from the run's evidence block, which
takes them from :func:`ua_helpers.analysis.evidence.level_names`.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Mapping

from .._io import atomic_write_text
from ..analysis.evidence import require_evidence
from ._markdown import R_DECIMALS, fmt_ci, fmt_r, is_missing

#: The per-test table's file name, beside ``results.json`` in a run folder.
TESTS_CSV = "tests.csv"


def _num(x: Any) -> float:
    """``x`` rounded to the printed precision (:data:`~ua_helpers.report._markdown.R_DECIMALS`); NaN where missing."""
    return float("nan") if is_missing(x) else round(float(x), R_DECIMALS)


def _ci_label(results: Mapping[str, Any]) -> str:
    return f"{100 * float(results.get('ci_level', 0.95)):g}% CI"


def tests_table(results: Mapping[str, Any], min_rung: int = 1):
    """Return the headline per-test table: the tests at rung ``min_rung`` or higher, seven plain columns.

    Columns: layer, metric, r, its CI, ρ (Spearman), adjusted r (partial r controlling for token count, length
    and category), rung (the highest evidence level the test reaches; see :func:`ladder_table`). Values are
    rounded to :data:`~ua_helpers.report._markdown.R_DECIMALS` decimals, as every sentence prints them.

    Parameters
    ----------
    results : dict
        A results dict with an ``"evidence"`` block.
    min_rung : int, default=1
        Show only the tests that reach this rung (0: all tests).
    """
    import pandas as pd

    ev = require_evidence(results)
    rows = [{"layer": t["layer"], "metric": t["metric"], "r": _num(t["r"]),
             _ci_label(results): fmt_ci(t["ci_lower"], t["ci_upper"]), "ρ": _num(t["spearman_rho"]),
             "adjusted r": _num(t["partial_all_r"]), "rung": t["level"]}
            for t in ev["tests"] if t["level"] >= min_rung]
    return pd.DataFrame(rows, columns=["layer", "metric", "r", _ci_label(results), "ρ", "adjusted r", "rung"])


def full_tests_table(results: Mapping[str, Any]):
    """Return every statistic of every (layer, metric) test: the evidence block's rows, one criterion per column.

    Columns as in ``results["evidence"]["tests"]`` (see :func:`ua_helpers.analysis.evidence.evidence_block`), with
    ``passes`` spread into one boolean ``passes_<criterion>`` column each; one row per test.
    """
    import pandas as pd

    ev = require_evidence(results)
    rows = []
    for t in ev["tests"]:
        row = {k: v for k, v in t.items() if k != "passes"}
        row.update({f"passes_{k}": v for k, v in t["passes"].items()})
        rows.append(row)
    return pd.DataFrame(rows)


def tests_csv_text(results: Mapping[str, Any]) -> str:
    """Return :func:`full_tests_table` as CSV text (missing values empty, floats at full precision)."""
    out = io.StringIO()
    full_tests_table(results).to_csv(out, index=False, quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
    return out.getvalue()


def write_tests_csv(run_path: str | Path, results: Mapping[str, Any]) -> Path:
    """Write :func:`full_tests_table` as ``tests.csv`` in the run folder ``run_path`` (atomically)."""
    return atomic_write_text(Path(run_path) / TESTS_CSV, tests_csv_text(results))


def ladder_table(results: Mapping[str, Any]):
    """Return the evidence ladder with rung names: one row per rung 1..top with its test and finding counts.

    Each rung requires all those below it, so the counts can only shrink down the table. "distinct findings"
    counts metrics that coincide at a layer once.
    """
    import pandas as pd

    ev = require_evidence(results)
    rows = [{"rung": lv["level"], "name": lv["name"], "tests": lv["count"],
             "distinct findings": lv["count_distinct"]} for lv in ev["levels"][1:]]
    return pd.DataFrame(rows).set_index("rung")


def comparison_counts(comparison):
    """Summarise :func:`ua_helpers.report.results.compare_results` per metric: matched layers and where they agree.

    Returns a DataFrame with one row per metric and a last row "all": matched layers, same sign, and CI excludes
    0 (uncorrected) in both runs.
    """
    import pandas as pd

    if comparison is None or len(comparison) == 0:
        raise ValueError("the comparison is empty: no test of this run could be matched with the reference")
    grouped = comparison.groupby("metric", sort=False)
    table = pd.DataFrame({"matched layers": grouped.size(), "same sign": grouped["same_sign"].sum(),
                          "CI excludes 0 in both": grouped["both_exclude_zero"].sum()}).astype(int)
    table.loc["all"] = table.sum()
    return table


def comparison_table(comparison):
    """Return the comparison, one row per matched test, with r and CI of each run in five plain columns."""
    import pandas as pd

    rows = [{"metric": c["metric"], "layer": int(c["layer"]), "r [CI]": f"{fmt_r(c['r'])} "
             + fmt_ci(c["ci_lower"], c["ci_upper"]), "reference layer": int(c["ref_layer"]),
             "reference r [CI]": f"{fmt_r(c['ref_r'])} {fmt_ci(c['ref_ci_lower'], c['ref_ci_upper'])}"}
            for c in comparison.to_dict(orient="records")]
    return pd.DataFrame(rows)
