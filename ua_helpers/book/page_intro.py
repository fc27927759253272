"""The landing page's abstract and key figure, the glossary's ladder, the study's citation, and run-derived phrases.

Everything here is generated from a run's ``results.json`` (and the shipped published results), so no number and
no direction of an effect is typed by hand:

- :func:`direction`: which way a metric goes with the preference, in plain words, from the metric's definition
  and the sign of r;
- :func:`abstract_sentences` / :func:`abstract_include`: four to six sentences and the key figure
  (:func:`ua_helpers.report.plots.plot_depth_overview`) for ``book/intro.md``;
- :func:`glossary_ladder`: the evidence ladder's rungs with their exact criteria for ``book/glossary.md``;
- :func:`references_include`: the original study's citation (``ua_helpers.inputs.published.STUDY``);
- :func:`substitutions`: run-derived phrases that static pages use as MyST substitutions (``{{ name }}``).
"""
from __future__ import annotations

import math
from typing import Any

from .._checks import excludes_zero
from .._io import atomic_write
from ..analysis import evidence
from ..inputs import published
from ..report import findings, results
from ..report._markdown import fmt_ci, fmt_r, is_missing, md_text
from ..report.blocks import Results
from ..runs.rundir import Run
from .compare import PUBLISHED_MODEL
from .context import FILES_DIR, BookContext, study_citation

#: For a metric defined as property(A) - property(B): the property of one statement, in words.
STATEMENT_PROPERTY = {
    "centroid_asymmetry": "closer (by cosine) to the centroid of its own side",
    "cross_centroid": "closer (by cosine) to the centroid of the other side",
    "knn_density_asymmetry": "in a denser neighbourhood of its own side's statements",
    "margin_asymmetry": "farther from the midpoint between the two side centroids",
}
#: For a symmetric metric of the pair: what a larger value means, in words.
PAIR_PROPERTY = {"within_pair_sim": "whose two statements have more similar hidden states (by cosine)"}
#: The key figure's files under the staged ``book/`` folder: two columns of panels for a desktop's page column
#: (6.4 in at 100 dpi: 640 px, shown at its own size at 1280 px), one column for a phone (3.6 in at 110 dpi:
#: 396 px, shown nearly at its own size at 420 px). The page's CSS shows one or the other by the window's width.
KEY_FIGURE = {2: (f"{FILES_DIR}/key-figure.png", 100), 1: (f"{FILES_DIR}/key-figure-narrow.png", 110)}
#: The evidence ladder's rung that needs the lexical controls (added with the ``controls`` block).
BEYOND_LEXICAL = "beyond lexical"


# --------------------------------------------------------------------------- the direction of an effect
def direction(metric: str, r: float) -> str:
    """Say which way ``metric`` goes with the preference when its correlation is ``r``, in plain words.

    The preference is NLL(B) - NLL(A): positive when the model finds A more likely. For a metric defined as
    property(A) - property(B) (:data:`STATEMENT_PROPERTY`), r > 0 means the statement with more of the property
    is the one the model finds more likely, r < 0 less likely. For a symmetric metric of the pair
    (:data:`PAIR_PROPERTY`) r > 0 means such pairs lean towards side A, r < 0 towards side B. Any other metric is
    read from its sign alone: larger values go with side A (r > 0) or side B (r < 0).

    Raises
    ------
    ValueError
        ``r`` is missing, not finite or exactly 0 (no direction).
    """
    if r is None or not math.isfinite(float(r)) or float(r) == 0:
        raise ValueError(f"no direction for r = {r!r}: it must be finite and non-zero")
    positive = float(r) > 0
    if metric in STATEMENT_PROPERTY:
        return (f"of the two statements of a pair, the one whose hidden state is {STATEMENT_PROPERTY[metric]} is "
                f"the one the model finds {'more' if positive else 'less'} likely")
    side = "A" if positive else "B"
    if metric in PAIR_PROPERTY:
        return (f"pairs {PAIR_PROPERTY[metric]} are the pairs where the model finds side {side}'s statement the "
                "more likely one")
    return (f"pairs with a larger {metric} are the pairs where the model finds side {side}'s statement the more "
            "likely one")


# --------------------------------------------------------------------------- reading results
def _num_layers(res: dict[str, Any]) -> int:
    """The run's number of blocks (``num_layers``; the published file lacks it: Pythia-6.9B's 32)."""
    n = res.get("num_layers") or (PUBLISHED_MODEL["num_layers"] if res.get("model") == PUBLISHED_MODEL["name"]
                                  else None)
    if not n:
        raise ValueError("the results record no num_layers, so layers cannot be put on a relative depth")
    return int(n)


def _tests(res: dict[str, Any]) -> list[dict[str, Any]]:
    """Every (layer, metric) test of the seed's schema, with layer and metric in the row."""
    return [{"layer": int(layer), "metric": metric, **t} for layer, tests in res["results"].items()
            for metric, t in tests.items()]


def _lead(res: dict[str, Any]) -> dict[str, Any] | None:
    """The run's strongest result: the highest evidence level, then the largest |r| (CI excluding 0 only)."""
    ev = res.get("evidence")
    if ev:
        pool = [t for t in ev["tests"] if t["level"] >= 1 and not is_missing(t["r"])]
        return max(pool, key=lambda t: (t["level"], abs(t["r"]), -t["layer"]), default=None)
    pool = [t for t in _tests(res) if excludes_zero(t.get("ci_lower"), t.get("ci_upper"))
            and not is_missing(t.get("r"))]
    return max(pool, key=lambda t: (abs(t["r"]), -t["layer"]), default=None)


def smallest_excluding_r(res: dict[str, Any]) -> float | None:
    """The smallest |r| among the run's tests whose CI excludes 0 (``None`` when none does)."""
    found = [abs(float(t["r"])) for t in _tests(res) if excludes_zero(t.get("ci_lower"), t.get("ci_upper"))
             and not is_missing(t.get("r"))]
    return min(found) if found else None


def _r_minus(x: float) -> str:
    """:func:`fmt_r` with a typographic minus, for prose."""
    return fmt_r(x).replace("-", "\u2212")


def _where(t: dict[str, Any], num_layers: int) -> str:
    return f"{t['metric']} at {findings.layer_label(t['layer'])} of {num_layers}"


def _ladder_sentence(res: dict[str, Any]) -> str:
    ev = res["evidence"]
    lv = ev["levels"]
    n = lv[0]["count"]
    pct = f"{100 * float(res.get('ci_level') or (res.get('parameters') or {}).get('ci_level') or 0.95):g}%"
    by_name = {level["name"]: level for level in lv}
    fw = by_name.get("family-wise")
    top = lv[-1]
    if top["name"] == BEYOND_LEXICAL and not res.get("controls"):  # that rung needs the controls
        top = lv[-2]
    text = f"Of its {n} (layer, metric) tests, {lv[1]['count']} have a {pct} CI that excludes zero without correction"
    if fw is not None and fw is not top:
        text += f", {fw['count']} remain significant after a family-wise correction"
    text += f", and {top['count']} reach rung {top['level']} (\"{top['name']}\"), "
    text += ("the top of the evidence ladder" if top is lv[-1] else
             "the highest rung of the evidence ladder that a run without controls can reach")
    return text + "."


def _controls_sentence(res: dict[str, Any], lead: dict[str, Any] | None) -> str:
    ctl = res.get("controls")
    if not ctl:
        return ("This run has no controls (random-token baseline, shuffled pairing, lexical covariates), so it "
                "cannot say whether its correlations go beyond what token identity and length alone would give.")
    tests = res["evidence"]["tests"] if res.get("evidence") else _tests(res)
    passing = [t for t in tests if (t["level"] >= 1 if "level" in t else
                                    excludes_zero(t.get("ci_lower"), t.get("ci_upper")))]
    rt = {(int(c["layer"]), c["metric"]): c for c in (ctl.get("random_tokens") or {}).get("tests", [])}
    sh = {(int(c["layer"]), c["metric"]): c for c in (ctl.get("shuffled_pairing") or {}).get("tests", [])}

    def outside(t, lo, hi):
        return not (is_missing(lo) or is_missing(hi)) and (t["r"] < lo or t["r"] > hi)

    beyond_rt = sum(outside(t, rt[k]["r_min"], rt[k]["r_max"]) for t in passing
                    if (k := (t["layer"], t["metric"])) in rt)
    beyond_sh = sum(outside(t, sh[k]["null_ci_lower"], sh[k]["null_ci_upper"]) for t in passing
                    if (k := (t["layer"], t["metric"])) in sh)
    parts = [f"{beyond_rt} lie outside the range of r that random token vectors give (no model)" if rt else
             "none was compared with random token vectors",
             f"{beyond_sh} outside the interval of r with the pairs shuffled" if sh else
             "none with shuffled pairs"]
    levels = {lv["name"]: lv for lv in (res.get("evidence") or {}).get("levels", [])}
    if BEYOND_LEXICAL in levels:
        lv = levels[BEYOND_LEXICAL]
        parts.append(f"{lv['count']} reach rung {lv['level']} (\"{BEYOND_LEXICAL}\": r keeps its sign once the "
                     "lexical covariates are accounted for)")
    else:
        parts.append(f"the evidence ladder of this run has no \"{BEYOND_LEXICAL}\" rung")
    text = (f"Against the controls, of the {len(passing)} tests whose CI excludes zero, " + ", ".join(parts[:-1])
            + f", and {parts[-1]}.")
    if lead is not None and (key := (lead["layer"], lead["metric"])) in rt:
        lo, hi = rt[key]["r_min"], rt[key]["r_max"]
        inside = not outside(lead, lo, hi)
        text += (f" The strongest result {'lies inside' if inside else 'lies outside'} the random-token range "
                 f"({_r_minus(lo)} to {_r_minus(hi)})"
                 + (", so token identity alone could give it." if inside else "."))
    return text


def _comparison_sentence(res: Results, reference: Results | None, is_published: bool) -> str:
    if reference is None:
        return ("No reference results were given to this build, so it is not compared with the published "
                "Pythia-6.9B result.")
    table = results.compare_results(res, reference)
    same = int(table["same_sign"].sum())
    both = int((table["same_sign"] & table["both_exclude_zero"]).sum())
    ref_lead = _lead(reference)
    name = (f"the published Pythia-6.9B result ({published.STUDY['author'].split()[-1]}, {published.STUDY['year']}; "
            "ua-230, float16)" if is_published else "the reference results given to this build")
    text = f"Compared with {name}"
    if ref_lead is not None:
        text += (f", whose strongest correlation is {_where(ref_lead, _num_layers(reference))} "
                 f"(r = {_r_minus(ref_lead['r'])})")
    return (text + f", this run's r has the same sign in {same} of {len(table)} tests matched by relative depth, "
            f"and both CIs exclude zero with the same sign in {both}.")


def abstract_sentences(res: Results, reference: Results | None = None, *,
                       reference_published: bool = False) -> list[str]:
    """The landing page's abstract: four to six plain sentences (plain text, not yet escaped).

    The question; what this run found and in which direction (:func:`direction`); how far the evidence ladder
    carries it; what survives the controls (or that the run has none); how it compares with the reference.
    """
    model = res.get("model")
    ds = (res.get("dataset") or {}).get("name") or "an unnamed dataset"
    layers = res.get("layers") or sorted(int(k) for k in res["results"])
    n_metrics = len(res.get("metrics_tested") or next(iter(res["results"].values())))
    out = [("Does where a statement's hidden state sits among the others predict which statement of a pair a "
            f"language model finds more likely? This run asks {model} about {ds} ({res['n_pairs']} pairs), at "
            f"{len(layers)} layers with {n_metrics} pair-level geometry metrics.")]
    lead = _lead(res)
    num_layers = _num_layers(res)
    if lead is None:
        out.append("No test has a CI that excludes zero: this run finds no link between the geometry and the "
                   "preference.")
    else:
        level = (f", evidence rung {lead['level']}, \"{lead['level_name']}\"" if "level" in lead else
                 ", uncorrected")
        out.append(f"Its strongest result is {_where(lead, num_layers)} (r = {_r_minus(lead['r'])}, CI "
                   f"[{_r_minus(lead['ci_lower'])}, {_r_minus(lead['ci_upper'])}]{level}): "
                   f"{direction(lead['metric'], lead['r'])}.")
    if res.get("evidence"):
        out.append(_ladder_sentence(res))
    out.append(_controls_sentence(res, lead))
    out.append(_comparison_sentence(res, reference, reference_published))
    return out


# --------------------------------------------------------------------------- the landing page's include
def write_key_figure(ctx: BookContext) -> dict[int, str]:
    """Draw the key figure of ``ctx``'s run into the staged book, in two and in one column; return the paths from
    a page, by column count."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..report import plots

    res = ctx.run.results
    ref = ctx.reference.results
    rt, sh = results.band_frames(res)
    table = results.results_table(res)
    order = {m: i for i, m in enumerate(res.get("metrics_tested") or [])}  # panels in the run's metric order
    table = table.sort_values(["metric", "layer"], key=lambda c: c.map(order).fillna(len(order)) if c.name == "metric"
                              else c, kind="stable")
    out = {}
    for columns, (name, dpi) in KEY_FIGURE.items():
        fig = plots.plot_depth_overview(
            table, _num_layers(res),
            reference=results.results_table(ref) if ref is not None else None,
            reference_num_layers=_num_layers(ref) if ref is not None else None, random_tokens=rt, shuffled=sh,
            reference_label="Pythia-6.9B (published)" if ctx.reference.published else "reference", columns=columns)
        path = ctx.book_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=dpi))
        plt.close(fig)
        out[columns] = name
    return out


def _figure_caption(ctx: BookContext) -> str:
    res = ctx.run.results
    bits = ["r with the preference by relative depth (layer / number of blocks): this run in blue with its 95% CI"]
    if ctx.reference.results is not None:
        bits.append("Pythia-6.9B (published) dashed grey" if ctx.reference.published else "the reference dashed grey")
    rt, sh = results.band_frames(res)
    if rt is not None:
        bits.append("orange: the random-token baseline's range of r")
    if sh is not None:
        bits.append("green: the shuffled-pairing null interval")
    if rt is None and sh is None:
        bits.append("no control bands (this run has no controls)")
    return "; ".join(bits) + "."


def abstract_include(ctx: BookContext) -> str:
    """``book/abstract.md``, included by ``book/intro.md``: the abstract, the key figure, the link to the findings."""
    ref = ctx.reference
    sentences = abstract_sentences(ctx.run.results, ref.results, reference_published=ref.published)
    figures = write_key_figure(ctx)
    caption = md_text(_figure_caption(ctx))
    return ("## Abstract\n\n" + " ".join(md_text(s) for s in sentences) + "\n\n"
            f"````{{figure}} {figures[2]}\n:name: key-figure\n:class: ua-key-wide\n:alt: {caption}\n\n{caption}\n\n"
            f"```{{image}} {figures[1]}\n:class: ua-key-narrow\n:alt: {caption}\n```\n````\n\n"
            "Every number here comes from this run's `results.json`. The full list of findings, with their "
            "evidence and limits, is on the [findings](findings.md) page; the terms are defined in the "
            "[glossary](glossary.md).\n")


# --------------------------------------------------------------------------- the glossary's ladder
def glossary_ladder(ctx: BookContext) -> str:
    """``book/glossary-ladder.md``: one glossary entry per rung, its criterion from :func:`evidence.criteria_text`.

    The criteria are filled with this run's alpha and partial-r adjustment where its results carry them, so the
    glossary states the criteria the run's ladder used.
    """
    ev = ctx.run.results.get("evidence") or {}
    alpha = ev.get("alpha", 0.05)
    adjust = ev.get("partial_adjust", "holm")
    names, criteria = evidence.level_names(), evidence.criteria_text(alpha, adjust)
    lines = ["```{glossary}"]
    for k, (name, criterion) in enumerate(zip(names, criteria)):
        if k == 0:
            continue
        lines += [f"rung {k}: {md_text(name)}", f"  {md_text(criterion)}; a test reaches rung {k} only if it also "
                  "reaches every rung below it.", ""]
    recorded = [lv for lv in ev.get("levels", [])[1:] if lv["name"] not in names]
    for lv in recorded:  # a run made with another version of the ladder: its rungs as it recorded them
        lines += [f"rung {lv['level']} (as this run recorded it): {md_text(lv['name'])}",
                  f"  {md_text(lv['criterion'])}.", ""]
    lines.append("```\n")
    note = ("The rungs of the evidence ladder, as the code that assigns them states their criteria "
            f"(alpha = {md_text(f'{alpha:g}')}). A test with no criterion met is at rung 0 (\"{names[0]}\").\n\n")
    rules = {**_default_rules(), **(ev.get("criteria") or {})}
    diag = ["The rules of the diagnostics, as the run's `results.json` states them (the package's defaults where "
            "it does not):\n", "```{glossary}"]
    for key, term in DIAGNOSTIC_TERMS.items():
        diag += [term, f"  {md_text(rules[key])}", ""]
    diag.append("```\n")
    return note + "\n".join(lines) + "\n" + "\n".join(diag)


#: The diagnostics' rules (``results["evidence"]["criteria"]`` keys) and their glossary terms.
DIAGNOSTIC_TERMS = {"leave_one_out": "leave-one-out", "disagreement": "Pearson-Spearman disagreement",
                    "massive_activation": "massive-activation rule", "coincide": "coincidence rule"}


def _default_rules() -> dict[str, str]:
    """The rules with the package's defaults, for a run whose results do not state them."""
    from ..analysis import robustness as rb
    from ..analysis.redundancy import COINCIDE_CORR

    return {"leave_one_out": rb.LOO_CRITERION, "disagreement": rb.DISAGREEMENT_CRITERION,
            "massive_activation": f"pooled hidden-state norm > {rb.MASSIVE_RATIO:g} x the layer's median over all "
                                  "2 * n_pairs statements",
            "coincide": f"|corr| > {COINCIDE_CORR:g} between two metrics' values across pairs at a layer"}


# --------------------------------------------------------------------------- citation
def references_include(ctx: BookContext) -> str:
    """``book/references.md``, included by the landing page: the study this book builds on."""
    return ("(references)=\n## References\n\n"
            f"- {study_citation()}\n"
            "- This software: see `CITATION.cff` in the repository, which cites the study above as well.\n")


# --------------------------------------------------------------------------- substitutions for static pages
def substitutions(run: Run) -> dict[str, str]:
    """Run-derived phrases that static pages use as ``{{ name }}`` (MyST substitutions), each Markdown.

    - ``smallest_excluding_r``: the smallest |r| whose CI excludes 0 in this run, as a phrase.
    - ``study_citation``: :func:`study_citation`; ``published_example``: :func:`published_example`;
    - ``n_layers``, ``n_tests``: the run's tested layers and (layer, metric) tests.
    """
    res = run.results
    return {"smallest_excluding_r": smallest_phrase(res), "study_citation": study_citation(),
            "published_example": published_example(), "n_layers": str(len(res["results"])),
            "n_tests": str(sum(len(tests) for tests in res["results"].values()))}


def published_example() -> str:
    """The published Pythia-6.9B result quoted as an example: its strongest test, "margin_asymmetry at layer 0 is
    $r = -0.677$ $[-0.765, -0.557]$" (Markdown with math)."""
    ref = published.load(published.PAIR_LEVEL)
    lead = _lead(ref)
    return (f"{lead['metric']} at {findings.layer_label(lead['layer'])} is $r = {fmt_r(lead['r']).lstrip('+')}$ "
            f"${fmt_ci(lead['ci_lower'], lead['ci_upper'])}$")


def smallest_phrase(res: dict[str, Any]) -> str:
    """"in this run the smallest |r| whose CI excludes zero is 0.178 (r² = 0.032)", or that none does."""
    r = smallest_excluding_r(res)
    if r is None:
        return "in this run no test's CI excludes zero"
    return f"in this run the smallest |r| whose CI excludes zero is {r:.3f} (r² = {r * r:.3f})"
