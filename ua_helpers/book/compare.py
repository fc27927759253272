"""Pages that set two results side by side: this run and the published results, and two datasets."""
from __future__ import annotations

from typing import Any

from .. import data, results
from ._md import _code, _excludes_zero, _fmt_test, _sha_short, headline, md_table
from .context import BookContext, Run, run_banner, run_line

def _describe_results(res: dict[str, Any], run: Run | None = None) -> dict[str, Any]:
    ds = (run.dataset if run else None) or res.get("dataset") or {}
    params = (run.parameters if run else None) or res.get("parameters") or {}
    layers = res.get("layers") or sorted(int(k) for k in res["results"])
    return {
        "model": res.get("model"),
        "dataset": ds.get("name"),
        "dataset SHA-256": _sha_short(ds.get("sha256")),
        "pairs": res.get("n_pairs"),
        "bootstrap resamples": res.get("n_bootstrap"),
        "dtype": (run.model.get("dtype") if run else None) or params.get("dtype"),
        "layers": layers,
        "tests with CI excluding zero": f"{res['summary']['significant_tests']} of {res['summary']['total_tests']}",
    }


def _published_identity(res: dict[str, Any]) -> dict[str, Any]:
    """The published file's identity, with what it does not record itself (its provenance says: ua-230, float16)."""
    return {**_describe_results(res), "dataset": "ua-230", "dataset SHA-256": _sha_short(data.UA230_SHA256),
            "dtype": "float16"}


def _side_by_side(table, first: str, second: str, *, agree: str, metric_order: list[str]) -> list[str]:
    """Per-metric tables from a :func:`ua_helpers.results.compare_results` frame, metrics in ``metric_order``."""
    parts = []
    for metric in metric_order:
        rows = table[table["metric"] == metric]
        if rows.empty:
            continue
        body = []
        for row in rows.itertuples():
            a = _excludes_zero(row.ci_lower, row.ci_upper)
            b = _excludes_zero(row.ref_ci_lower, row.ref_ci_upper)
            excl = {(True, True): "both", (True, False): f"{first} only", (False, True): f"{second} only",
                    (False, False): "neither"}[(a, b)]
            body.append([f"{row.depth:.2f}", row.layer, _fmt_test(row.r, row.ci_lower, row.ci_upper),
                         row.ref_layer, _fmt_test(row.ref_r, row.ref_ci_lower, row.ref_ci_upper),
                         "yes" if row.same_sign else "no", excl])
        headers = ["depth", f"layer ({first})", f"r [CI] ({first})", f"layer ({second})",
                   f"r [CI] ({second})", agree, "CI excludes zero"]
        parts += [f"### {metric}\n", md_table(headers, body)]
    return parts


def _agreement_counts(table) -> dict[str, int]:
    a = [_excludes_zero(lo, hi) for lo, hi in zip(table["ci_lower"], table["ci_upper"])]
    b = [_excludes_zero(lo, hi) for lo, hi in zip(table["ref_ci_lower"], table["ref_ci_upper"])]
    return {
        "tests": len(table),
        "same_sign": int(table["same_sign"].sum()),
        "both": sum(x and y for x, y in zip(a, b)),
        "first_only": sum(x and not y for x, y in zip(a, b)),
        "second_only": sum(y and not x for x, y in zip(a, b)),
        "neither": sum(not x and not y for x, y in zip(a, b)),
        "both_same_sign": int((table["same_sign"] & table["both_exclude_zero"]).sum()),
    }


def comparison_page(ctx: BookContext) -> str:
    """This run next to the published Pythia-6.9B results (or another reference file)."""
    run = ctx.run
    parts = ["# Comparison with the published results\n", run_banner(run),
             "This page sets this run's correlations next to the published results of the seed notebook: "
             "EleutherAI/pythia-6.9b in float16 on ua-230, 10,000 bootstrap resamples. The published file is "
             "third-party (MIT license). It is pinned to a commit of the original repository and checked "
             "against its SHA-256.\n"]
    if ctx.reference.results is None:
        parts.append(
            ":::{admonition} The reference results were not available when this book was built\n:class: warning\n\n"
            f"{ctx.reference.note}\n\n"
            "To include them, build once with network access (the file is then cached), or pass a local copy "
            "of the file:\n\n"
            "```bash\nua-book build --run-dir RUN_DIR --reference path/to/option_b_pair_level.json\n```\n\n"
            f"The published file's pinned address is `{results.PUBLISHED_URL}`, and its SHA-256 is "
            f"`{results.PUBLISHED_SHA256}`.\n:::\n")
        return "\n".join(parts)
    ref = ctx.reference.results
    ours_id = _describe_results(run.results, run)
    ref_id = _published_identity(ref) if ctx.reference.published else _describe_results(ref)
    table = results.compare_results(run.results, ref)
    counts = _agreement_counts(table)
    parts += [
        f"Reference file: {ctx.reference.about}."
        + ("" if ctx.reference.published else " It is **not** the published file, so the reference column "
           "below shows that file, not the published results.") + "\n",
        "## What was run\n",
        md_table(["", "this run", "reference"], [[k, _code(ours_id[k]), _code(ref_id.get(k))] for k in ours_id]),
        "## Headline counts\n",
        f"- This run: {headline(run.results, bold=True)}.\n"
        f"- Reference: {headline(ref, bold=True)}.\n",
        "Neither count is corrected for multiple comparisons (see {ref}`multiple-tests`).\n",
        "## Side by side\n",
        "Layers are matched by **relative depth** (layer / number of blocks), so a 30-block model lines up with "
        "a 32-block one. Each row is one layer of this run and the reference layer nearest to it in depth. "
        "Matching by depth is a convenience, not an equivalence. Unless this run is Pythia-6.9B on ua-230, the "
        "numbers are not comparable one for one, and only the pattern (signs, which metrics, which depths) "
        "is (see the [caveats](caveats.md)).\n",
        f"Over the {counts['tests']} matched rows, the signs of r agree in **{counts['same_sign']}**. Both CIs "
        f"exclude zero in **{counts['both']}** (with the same sign in {counts['both_same_sign']}), only this "
        f"run's in {counts['first_only']}, only the reference's in {counts['second_only']}, and neither in "
        f"{counts['neither']}.\n",
    ]
    parts += _side_by_side(table, "this run", "reference", agree="signs agree",
                           metric_order=run.results["metrics_tested"])
    return "\n".join(parts)


def _order_for_replication(run: Run, other: Run) -> tuple[Run, Run]:
    """The original study's ua-230 first, whichever run holds it; otherwise the main run first."""
    return (other, run) if other.dataset_name == "ua-230" and run.dataset_name != "ua-230" else (run, other)


#: Parameters that must agree for two runs to be "the same analysis on two datasets".
SAME_ANALYSIS = ("model", "revision", "dtype", "layers", "pooling", "n_bootstrap", "ci_level", "seed", "knn_k")


def replication_page(ctx: BookContext) -> str:
    """The same analysis on two datasets (ua-230 and replication-230) side by side."""
    run = ctx.run
    parts = ["# Replication on a second dataset\n",
             "In ua-230, side A is almost always the more abstract or named statement (see the "
             "[caveats](caveats.md)). A pair-level correlation found there could come from that. The bundled "
             "`replication-230` set has the same six categories and sizes, but alternates which side holds the "
             "abstract statement (see its [data card](data-card-replication-230.md)). This chapter runs the "
             "same analysis on both sets and compares them layer by layer and metric by metric.\n"]
    if ctx.replication is None:
        other = "ua-230" if run.dataset_name != "ua-230" else "replication-230"
        parts.append(
            ":::{admonition} The second run was not given to this build\n:class: warning\n\n"
            f"This book was built from one run ({run_line(run)}), so there is nothing to compare it with. "
            f"Make a run on `{other}` with the same parameters and pass it as `--replication-run-dir`:\n\n"
            "```bash\n"
            f"ua-book run -p dataset {other} --run-dir runs/{other}\n"
            f"ua-book build --run-dir {run.path} --replication-run-dir runs/{other}\n"
            "```\n\n"
            "ua-230 is third-party data and is not stored in this repository. Offline, set `UA_230_PATH` to a "
            f"local copy of `{data.UA230_URL}` (SHA-256 `{data.UA230_SHA256}`). With network access, the run "
            "downloads it once from that pinned address.\n:::\n")
        return "\n".join(parts)
    first, second = _order_for_replication(run, ctx.replication)
    name1, name2 = first.dataset_name, second.dataset_name
    if name1 == name2:
        name1, name2 = f"{name1} ({first.path.name})", f"{name2} ({second.path.name})"
    pa, pb = first.parameters, second.parameters
    differ = [k for k in SAME_ANALYSIS if k in pa and k in pb and pa[k] != pb[k]]
    if first.model.get("name") != second.model.get("name") and "model" not in differ:
        differ.insert(0, "model")
    table = results.compare_results(first.results, second.results)
    counts = _agreement_counts(table)
    ident1, ident2 = _describe_results(first.results, first), _describe_results(second.results, second)
    link = ctx.attach(ctx.replication.path / "results.json", "replication-results.json")
    parts += [
        "## The two runs\n",
        md_table(["", name1, name2], [[k, _code(ident1[k]), _code(ident2.get(k))] for k in ident1]
                 + [["run directory", _code(first.path.name), _code(second.path.name)]]),
        f"The second run's results: {{download}}`replication-results.json <{link}>`.\n",
    ]
    if differ:
        parts.append(":::{admonition} The two runs differ in more than the dataset\n:class: warning\n\n"
                     f"They differ in: {', '.join(differ)}. Differences below can come from these as well as "
                     "from the data. Layers are matched by relative depth.\n:::\n")
    parts += [
        "## Summary\n",
        f"- **{name1}**: {headline(first.results)}.\n"
        f"- **{name2}**: {headline(second.results)}.\n",
        f"Of the {counts['tests']} (layer, metric) tests, the signs of r agree in **{counts['same_sign']}**. The CI "
        f"excludes zero on **both** datasets in **{counts['both']}** (with the same sign in "
        f"{counts['both_same_sign']}), on {name1} only in **{counts['first_only']}**, on {name2} only in "
        f"**{counts['second_only']}**, and on neither in {counts['neither']}.\n",
    ]
    if {first.dataset_name, second.dataset_name} == {"ua-230", "replication-230"}:
        parts.append("A test whose CI excludes zero on ua-230 but not on replication-230 is the pattern the "
                     "side-abstraction confound predicts. A test that excludes zero on both with the same sign is "
                     "the better candidate for a real pair-level effect, though with no correction for multiple "
                     "comparisons either way (see {ref}`multiple-tests`).\n")
    parts += _survival_section(first, second, name1, name2)
    parts.append("## Per layer and metric\n")
    parts += _side_by_side(table, name1, name2, agree="same sign", metric_order=first.results["metrics_tested"])
    return "\n".join(parts)


#: The extended analysis' counts (results.json "extended" summary), from the seed's criterion to the strictest.
SURVIVAL_ROWS = (
    ("n_excludes_zero", "bootstrap CI excludes 0 (uncorrected, the seed's criterion)"),
    ("n_survives_bh", "Benjamini-Hochberg q < 0.05"),
    ("n_survives_holm", "Holm p < 0.05"),
    ("n_survives_maxstat", "max-|r| permutation p < 0.05"),
    ("n_survives_confounds", "partial r's CI excludes 0 (tokens, length, category)"),
)


def _survival_section(first: Run, second: Run, name1: str, name2: str) -> list[str]:
    """Which findings survive correction and confound control, on each dataset (where the runs have it)."""
    ext1, ext2 = first.results.get("extended"), second.results.get("extended")
    if not ext1 or not ext2:
        return []
    s1, s2 = ext1["summary"], ext2["summary"]
    rows = [[label, f"{s1.get(key)} / {s1.get('n_tests')}", f"{s2.get(key)} / {s2.get('n_tests')}"]
            for key, label in SURVIVAL_ROWS]
    return ["## Which findings survive?\n",
            "The number of (layer, metric) tests passing each criterion on each dataset, from the seed's "
            "uncorrected one to multiplicity correction and confound control (see {ref}`multiple-tests` and the "
            "correlation notebook):\n",
            md_table(["criterion", name1, name2], rows)]

