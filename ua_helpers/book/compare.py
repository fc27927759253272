"""Pages that set two results side by side: this run and the published Pythia-6.9B results, and two datasets.

The comparison page always renders offline: the published file is shipped in the package
(:mod:`ua_helpers.inputs.published`), so no network error can reach it.
"""
from __future__ import annotations

import shlex
from typing import Any

from .._checks import excludes_zero
from ..inputs import data
from ..report import agreement, results
from ..report._markdown import MISSING, md_code, md_text, p_phrase
from ..runs.rundir import Run
from ._md import fmt_test, headline, md_table, sha_short
from .context import (
    BookContext,
    model_identity,
    repo_relative,
    run_banner,
    run_line,
    study_citation,
)

#: What the published pair-level file does not record about itself (its provenance does).
PUBLISHED_MODEL = {"name": "EleutherAI/pythia-6.9b", "dtype": "float16", "num_layers": 32, "d_model": 4096}


def _describe_results(res: dict[str, Any], run: Run | None = None) -> dict[str, Any]:
    """A run's identity for a "what was run" table; values are Markdown."""
    ds = (run.dataset if run else None) or res.get("dataset") or {}
    params = (run.parameters if run else None) or res.get("parameters") or {}
    model = run.model if run else results.model_record(res)
    ident = model_identity(model)
    layers = res.get("layers") or sorted(int(k) for k in res["results"])
    shape = ", ".join(f"{k} {model[k]}" for k in ("num_layers", "d_model") if model.get(k))
    return {
        "model": md_code(res.get("model")),
        "size and shape": md_text(", ".join(x for x in (ident["size"], shape) if x) or None),
        "training": md_text(ident["training"] or "not recorded"),
        "weights": md_text(ident["weights"] or "as published (no quantization recorded)"),
        "dtype": md_code(model.get("dtype") or params.get("dtype")),
        "dataset": md_code(ds.get("name")),
        "dataset SHA-256": md_code(sha_short(ds.get("sha256"))),
        "pairs": md_text(res.get("n_pairs")),
        "bootstrap resamples": md_text(res.get("n_bootstrap")),
        "layers": md_text(layers),
        "tests with CI excluding zero (uncorrected)":
            f"{res['summary']['significant_tests']} of {res['summary']['total_tests']}",
    }


def _published_identity(res: dict[str, Any]) -> dict[str, Any]:
    """The published file's identity, with what it does not record itself (its provenance: ua-230, float16)."""
    fake = Run(path=None, manifest={"model": PUBLISHED_MODEL,  # type: ignore[arg-type]
                                    "dataset": {"name": "ua-230", "sha256": data.UA230_SHA256}}, results=res)
    return _describe_results(res, fake)


def differences(run: Run, ref_model: dict[str, Any], ref_dataset: str) -> list[str]:
    """Name what differs between a run and a reference, in words: model, size, training, weights, dataset, dtype."""
    mine, theirs = model_identity(run.model), model_identity(ref_model)
    out = []
    if str(run.model.get("name")) != str(ref_model.get("name")):
        out.append(f"the model ({md_code(run.model.get('name'))} vs {md_code(ref_model.get('name'))})")
        if mine["size"] != theirs["size"]:
            out.append(f"its size ({md_text(mine['size'] or 'not recorded')} vs {md_text(theirs['size'])})")
        if mine["training"] != theirs["training"]:
            out.append(f"its training ({md_text(mine['training'] or 'not recorded')} vs "
                       f"{md_text(theirs['training'])})")
    if mine["weights"] != theirs["weights"]:
        out.append(f"the weights ({md_text(mine['weights'] or 'unquantized')} vs "
                   f"{md_text(theirs['weights'] or 'unquantized')})")
    if run.dataset_name != ref_dataset:
        out.append(f"the dataset ({md_code(run.dataset_name)} vs {md_code(ref_dataset)})")
    if run.model.get("dtype") != ref_model.get("dtype"):
        out.append(f"the dtype ({md_code(run.model.get('dtype'))} vs {md_code(ref_model.get('dtype'))})")
    return out


def _side_by_side(table, first: str, second: str, *, agree: str, metric_order: list[str]) -> list[str]:
    """Per-metric tables from a :func:`ua_helpers.report.results.compare_results` frame, metrics in ``metric_order``."""
    parts = []
    for metric in metric_order:
        rows = table[table["metric"] == metric]
        if rows.empty:
            continue
        body = []
        for row in rows.itertuples():
            a = excludes_zero(row.ci_lower, row.ci_upper)
            b = excludes_zero(row.ref_ci_lower, row.ref_ci_upper)
            excl = {(True, True): "both", (True, False): f"{first} only", (False, True): f"{second} only",
                    (False, False): "neither"}[(a, b)]
            body.append([f"{row.depth:.2f}", row.layer, fmt_test(row.r, row.ci_lower, row.ci_upper),
                         row.ref_layer, fmt_test(row.ref_r, row.ref_ci_lower, row.ref_ci_upper),
                         "yes" if row.same_sign else "no", excl])
        headers = ["depth", f"layer ({first})", f"r [CI] ({first})", f"layer ({second})",
                   f"r [CI] ({second})", agree, "CI excludes zero"]
        parts += [f"### {md_text(metric)}\n", md_table(headers, body)]
    return parts


def _agreement_counts(table) -> dict[str, int]:
    a = [excludes_zero(lo, hi) for lo, hi in zip(table["ci_lower"], table["ci_upper"])]
    b = [excludes_zero(lo, hi) for lo, hi in zip(table["ref_ci_lower"], table["ref_ci_upper"])]
    return {
        "tests": len(table),
        "same_sign": int(table["same_sign"].sum()),
        "both": sum(x and y for x, y in zip(a, b)),
        "first_only": sum(x and not y for x, y in zip(a, b)),
        "second_only": sum(y and not x for x, y in zip(a, b)),
        "neither": sum(not x and not y for x, y in zip(a, b)),
        "both_same_sign": int((table["same_sign"] & table["both_exclude_zero"]).sum()),
    }


def _sign_table(table, metric_order: list[str]) -> str:
    """Per metric: matched layers, same sign, and both CIs excluding zero with the same sign."""
    rows = []
    for metric in metric_order:
        t = table[table["metric"] == metric]
        if t.empty:
            continue
        both = int((t["same_sign"] & t["both_exclude_zero"]).sum())
        rows.append([md_text(metric), len(t), f"{int(t['same_sign'].sum())} of {len(t)}", f"{both} of {len(t)}"])
    return md_table(["metric", "matched layers", "same sign of r", "both CIs exclude 0, same sign"], rows)


def _chance_level(run: Run, table) -> str:
    """The sign-agreement count beside its permutation null (computed in the run), or why it is not shown."""
    block = (run.results.get("comparison") or {}).get("sign_agreement_null")
    if block is None:
        return ("*Chance level:* this run's `results.json` has no `comparison.sign_agreement_null` (the run predates "
                "it), so the count above stands without its permutation null. Run it again to add one.\n")
    ref = block["reference"]
    if not agreement.applies_to(block, table):
        return (f"*Chance level:* the run computed one against {md_code(ref['source'])} ({md_text(ref['model'])}), "
                "whose signs differ from this reference's, so it is not shown here; a run with "
                "`reference_results` naming this file computes the one that applies.\n")
    k, obs = block["n_tests"], block["observed"]
    where = "below" if obs < block["null_ci_lower"] else "above" if obs > block["null_ci_upper"] else "inside"
    rows = [["this run, observed", f"**{obs}**", MISSING],
            [f"permutation null ({block['n_permutations']:,} permutations of this run's preference)",
             f"{block['null_mean']:.1f}", f"{block['null_ci_lower']} to {block['null_ci_upper']}"],
            [f"binomial ({k} independent tests, p = 1/2)", f"{block['binomial_mean']:g}",
             f"{block['binomial_ci_lower']} to {block['binomial_ci_upper']}"]]
    return (f"**Chance level.** How many of the {k} signs would agree if this run's geometry had no link to its "
            "preference? The tests are strongly dependent (neighbouring layers and metrics move together), so "
            "the binomial's half of the tests is not the reference. The run permuted its own preference, "
            "recomputed all its r each time and counted the agreements with the reference's signs (fixed): "
            f"{obs} lies {where} the null's {block['null_interval']:.0%} interval (two-sided permutation "
            f"{p_phrase('p', block['p_value'])}).\n\n"
            + md_table(["agreeing signs", "mean", f"{block['null_interval']:.0%} interval"], rows))


def _separation_section(ctx: BookContext, ref: dict[str, Any]) -> list[str]:
    """With this model's runs on ua-230 and on another dataset, split the difference into model and dataset."""
    if ctx.replication is None:
        return ["## Model or dataset?\n",
                "This run differs from the published one in model and dataset at once, so a sign that differs "
                "cannot be put down to either. A run of the same model on ua-230, given to the build as "
                "`--replication-run-dir`, separates the two (see the [replication chapter](replication.md)).\n"]
    runs = {ctx.run.dataset_name: ctx.run, ctx.replication.dataset_name: ctx.replication}
    same_model = ctx.run.model.get("name") == ctx.replication.model.get("name")
    if "ua-230" not in runs or len(runs) != 2 or not same_model:
        return ["## Model or dataset?\n",
                "The second run given to this build is not this model on ua-230, so the difference from the "
                "published numbers cannot be split into a model part and a dataset part here.\n"]
    on_ua = runs["ua-230"]
    other = next(r for name, r in runs.items() if name != "ua-230")
    model_diff = results.compare_results(on_ua.results, ref)
    data_diff = results.compare_results(other.results, on_ua.results)
    rows = []
    for label, what, t in (
            (f"{md_code(on_ua.model.get('name'))} on `ua-230` vs Pythia-6.9B on `ua-230`",
             "model (with its dtype and weights), not dataset", model_diff),
            (f"{md_code(other.model.get('name'))} on {md_code(other.dataset_name)} vs the same model on `ua-230`",
             "dataset only", data_diff)):
        both = int((t["same_sign"] & t["both_exclude_zero"]).sum())
        rows.append([label, what, len(t), f"{int(t['same_sign'].sum())} of {len(t)}", f"{both} of {len(t)}"])
    return ["## Model or dataset?\n",
            "This build has the same model on ua-230 as well, so the difference from the published numbers splits "
            "in two: the same dataset with another model (which also brings its own dtype and weights), and the "
            "same model with another dataset. Where signs "
            "agree in the dataset row but not in the model row, the model is what changes the answer, and the "
            "other way round.\n",
            md_table(["comparison", "what differs", "matched tests", "same sign of r",
                      "both CIs exclude 0, same sign"], rows)]


def comparison_page(ctx: BookContext) -> str:
    """This run next to the published Pythia-6.9B results (or another reference file), offline."""
    run = ctx.run
    parts = ["# Comparison with the published results\n", run_banner(run)]
    if ctx.reference.results is None:
        parts.append(":::{admonition} No comparison in this build\n:class: note\n\n"
                     f"{ctx.reference.note} The published Pythia-6.9B results ship with the package; build with "
                     "`--reference published` (the default) to compare with them.\n:::\n")
        return "\n".join(parts)
    ref = ctx.reference.results
    ref_model = PUBLISHED_MODEL if ctx.reference.published else results.model_record(ref)
    ref_dataset = "ua-230" if ctx.reference.published else str((ref.get("dataset") or {}).get("name"))
    ours_id = _describe_results(run.results, run)
    ref_id = _published_identity(ref) if ctx.reference.published else _describe_results(ref)
    table = results.compare_results(run.results, ref)
    counts = _agreement_counts(table)
    differ = differences(run, ref_model, ref_dataset)
    ref_name = "Pythia-6.9B (published)" if ctx.reference.published else "the reference"
    parts += [
        "This page sets this run's pair-level correlations beside "
        + ("the published results of the original study: EleutherAI/pythia-6.9b in float16 on ua-230, 10,000 "
           "bootstrap resamples. The file ships inside the package and is checked against the SHA-256 of the "
           "original when it is read, so this page needs no network: " if ctx.reference.published
           else "another results file, **not** the published one: ")
        + ctx.reference.about + ".\n",
        *([f"The published numbers on this page are the study's: {study_citation()}\n"]
          if ctx.reference.published else []),
        "## What differs\n",
        (f"This run differs from {ref_name} in: {'; '.join(differ)}. Any of these can change a correlation, so the "
         "numbers below are not comparable one for one; what can be compared is the pattern: signs, which "
         "metrics, which depths.\n" if differ else
         f"This run matches {ref_name} in model, weights, dataset and dtype; the numbers should agree up to "
         "bootstrap noise and hardware rounding.\n"),
        md_table(["", "this run", ref_name], [[k, ours_id[k], ref_id.get(k, MISSING)] for k in ours_id]),
        "## Sign agreement\n",
        "Layers are matched by **relative depth** (layer / number of blocks), so a 30-block model lines up with "
        "a 32-block one; each row below pairs one layer of this run with the reference layer nearest in depth. "
        "Matching by depth is a convenience, not an equivalence.\n",
        f"Over the {counts['tests']} matched (layer, metric) tests the signs of r agree in "
        f"**{counts['same_sign']}**. Both CIs exclude zero in **{counts['both']}** (with the same sign in "
        f"{counts['both_same_sign']}), only this run's in {counts['first_only']}, only the reference's in "
        f"{counts['second_only']}, and neither in {counts['neither']}. None of these CIs is corrected for "
        "multiple comparisons (see {ref}`multiple-tests`).\n",
        _chance_level(run, table),
        _sign_table(table, run.results["metrics_tested"]),
        "## Headline counts\n",
        f"- This run: {headline(run.results, bold=True)} (uncorrected).\n"
        f"- {ref_name[0].upper() + ref_name[1:]}: {headline(ref, bold=True)} (uncorrected).\n",
    ]
    if ctx.reference.published:
        parts += _separation_section(ctx, ref)
    parts.append("## Per layer and metric\n")
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
            f"ua-book build --run-dir {shlex.quote(repo_relative(run.path))} --replication-run-dir runs/{other}\n"
            "```\n\n"
            "ua-230 is third-party data and is not stored in this repository. Offline, set `UA_230_PATH` to a "
            f"local copy of `{data.UA230_URL}` (SHA-256 `{data.UA230_SHA256}`). With network access, the run "
            "downloads it once from that pinned address.\n:::\n")
        return "\n".join(parts)
    first, second = _order_for_replication(run, ctx.replication)
    name1, name2 = md_text(first.dataset_name), md_text(second.dataset_name)
    if name1 == name2:
        name1, name2 = md_text(f"{first.dataset_name} ({first.path.name})"), md_text(
            f"{second.dataset_name} ({second.path.name})")
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
        md_table(["", name1, name2], [[k, ident1[k], ident2.get(k, MISSING)] for k in ident1]
                 + [["run directory", md_code(first.path.name), md_code(second.path.name)]]),
        f"The second run's results: {{download}}`replication-results.json <{link}>`.\n",
    ]
    if differ:
        parts.append(":::{admonition} The two runs differ in more than the dataset\n:class: warning\n\n"
                     f"They differ in: {', '.join(md_text(k) for k in differ)}. Differences below can come from these as well as "
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


#: The older extended analysis' counts (results.json "extended" summary): each criterion on its own.
SURVIVAL_ROWS = (
    ("n_excludes_zero", "bootstrap CI excludes 0 (uncorrected, the original notebook's criterion)"),
    ("n_survives_bh", "Benjamini-Hochberg q < 0.05"),
    ("n_survives_holm", "Holm p < 0.05"),
    ("n_survives_maxstat", "max-|r| permutation p < 0.05"),
    ("n_survives_confounds", "partial r's CI excludes 0 (tokens, length, category)"),
)


def _survival_section(first: Run, second: Run, name1: str, name2: str) -> list[str]:
    """Which findings survive on each dataset: the evidence ladder's counts where both runs carry it."""
    ev1, ev2 = first.results.get("evidence"), second.results.get("evidence")
    if ev1 and ev2:
        n1, n2 = len(ev1["tests"]), len(ev2["tests"])
        rows = [[f"{md_text(l1['level'])}. {md_text(l1['name'])}: {md_text(l1['criterion'])}",
                 f"{l1['count']} / {n1} ({l1['count_distinct']} distinct)",
                 f"{l2['count']} / {n2} ({l2['count_distinct']} distinct)"]
                for l1, l2 in zip(ev1["levels"][1:], ev2["levels"][1:])]
        return ["## Which findings survive?\n",
                "The number of (layer, metric) tests that reach each rung of the evidence ladder on each dataset. "
                "Each rung requires every rung above it in the table, so the counts can only shrink downwards; "
                "\"distinct\" counts metrics that coincide at a layer once (see the [findings](findings.md)).\n",
                md_table(["evidence level (and every level above)", name1, name2], rows)]
    ext1, ext2 = first.results.get("extended"), second.results.get("extended")
    if not ext1 or not ext2:
        return []
    s1, s2 = ext1["summary"], ext2["summary"]
    rows = [[label, f"{s1.get(key)} / {s1.get('n_tests')}", f"{s2.get(key)} / {s2.get('n_tests')}"]
            for key, label in SURVIVAL_ROWS]
    return ["## Which findings survive?\n",
            "These runs predate the evidence ladder. The number of (layer, metric) tests passing each criterion on "
            "each dataset, **each criterion on its own**: the criteria are not nested (the confound row has no "
            "multiplicity control), so a lower row can count tests that fail a higher one (see "
            "{ref}`multiple-tests`):\n",
            md_table(["criterion", name1, name2], rows)]
