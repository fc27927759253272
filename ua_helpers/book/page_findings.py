"""The findings of a run, in words generated from its ``results.json``: the one page that lists them.

The sentences come from :mod:`ua_helpers.report.findings` (``findings.markdown(results)``) as Markdown whose dataset
names and statement texts are escaped where they enter. A run without an ``evidence`` block (made before the evidence ladder) gets a page
that says so and shows what its results do hold: the original notebook's uncorrected counts and its strongest tests.
"""
from __future__ import annotations

from typing import Any

from ..report import findings
from ..report._markdown import fmt_ci, fmt_r, is_missing, md_text
from ..runs.rundir import Run
from ._md import headline, md_table
from .context import BookContext, model_identity, run_banner

#: Tests listed where a run has no generated findings.
TOP_TESTS = 5


def limits(run: Run) -> str:
    """What this run cannot say, from its model, dataset and dtype (Markdown)."""
    ident = model_identity(run.model)
    model = md_text(run.model.get("name"))
    lines = [f"- It is one model, {model}"
             + (f" ({md_text(ident['variant'])}, {md_text(ident['training'])})" if ident["variant"]
                and ident["training"] else "")
             + ": it says nothing about another model, Pythia-6.9B included (see the "
               "[comparison](comparison.md)).",
             f"- It is one dataset, {md_text(run.dataset_name)}"
             + (", whose sides alternate which framing they hold: the side centroids nearly coincide there, so "
                "the centroid metrics say little (see the [method](method.md))"
                if run.dataset_name == "replication-230" else "")
             + (", in which side A is almost always the abstract statement (see the [caveats](caveats.md))"
                if run.dataset_name == "ua-230" else "") + ".",
             f"- It ran in {md_text(run.model.get('dtype') or 'an unrecorded dtype')}"
             + (f" with weights {md_text(ident['weights'].split(' (')[0])}" if ident["weights"] else "")
             + "; results near a threshold can change with the dtype.",
             "- Correlation is not causation: no hidden state was edited (see the [caveats](caveats.md))."]
    return "\n".join(lines) + "\n"


def _strongest_uncorrected(res: dict[str, Any]) -> str:
    """The run's strongest tests by |r|, with CIs, labelled uncorrected (for runs without the evidence ladder)."""
    rows = []
    for layer, tests in res["results"].items():
        for metric, t in tests.items():
            if not is_missing(t.get("r")):
                rows.append((abs(float(t["r"])), int(layer), metric, t))
    rows.sort(key=lambda x: (-x[0], x[1], x[2]))
    body = [[layer, md_text(metric), fmt_r(t["r"]), fmt_ci(t.get("ci_lower"), t.get("ci_upper")),
             "no" if t.get("includes_zero") else "yes"] for _, layer, metric, t in rows[:TOP_TESTS]]
    return md_table(["layer", "metric", "r", "CI", "CI excludes 0 (uncorrected)"], body)


def findings_markdown(run: Run) -> str:
    """The findings section's body for ``run``: the generated findings, or what an older run allows.

    The generated findings end with their own "What this run cannot say" section; :func:`limits` adds the
    model's weights and the dataset's design to it.
    """
    res = run.results
    if "evidence" in res:
        return findings.markdown(res, heading_level=2) + "\n\n" + limits(run)  # Markup: dataset text escaped
    return (":::{admonition} No generated findings for this run\n:class: warning\n\n"
            "The findings and their evidence levels cannot be stated here: this run's `results.json` has no "
            "`evidence` block (it was made before the evidence ladder). Run it again with this version to get "
            "them. What its results do hold follows; no correction for multiple comparisons stands behind any of "
            "it.\n:::\n\n"
            f"{headline(res)} (uncorrected). The strongest tests by |r|:\n\n" + _strongest_uncorrected(res)
            + "\n## What this run cannot say\n\n" + limits(run))


def findings_page(ctx: BookContext) -> str:
    """The "Findings" page: what the run found, how far to trust it, and what it cannot say."""
    run = ctx.run
    return "\n".join(["# Findings\n", run_banner(run),
                      "Every sentence and number on this page is generated from the run's `results.json`; none is "
                      "typed by hand. \"Significant\" is used only where a multiple-comparison correction stands "
                      "behind it, and each finding names the highest rung of the evidence ladder it reaches.\n",
                      GLOSSARY_LINE, findings_markdown(run)])


#: The terms the generated findings use, each linked to its glossary entry.
GLOSSARY_LINE = ("Terms used below, in the [glossary](glossary.md): {term}`evidence ladder`, "
                 "{term}`CI excludes zero (uncorrected)`, {term}`BH`, {term}`max-statistic`, {term}`Spearman rho`, "
                 "{term}`t-test verdict`, {term}`leave-one-out`, {term}`partial r`, {term}`distinct findings`, "
                 "{term}`massive activations`.\n")
