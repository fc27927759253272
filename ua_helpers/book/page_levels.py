"""The chapter "Three levels of one question": category-level UA, random bins (Option A) and pairs, side by side.

This run's levels come from ``results.json`` (``category_level`` and ``option_a_bins``, from
:mod:`ua_helpers.analysis.levels`, and the pair-level ``results``); Pythia's from the published files shipped in the
package (:mod:`ua_helpers.inputs.published`). A run made before the group levels existed renders with a note.
"""
from __future__ import annotations

from typing import Any

from .._checks import excludes_zero
from ..analysis import levels
from ..inputs import published
from ..report import levels_tables
from ..report._markdown import MISSING, fmt_ci, fmt_r, is_missing, md_text
from ._md import md_table
from .context import BookContext, run_banner, study_citation


def _test(entry: dict[str, Any] | None) -> str:
    """``r [lo, hi]`` with a mark where the CI excludes zero (uncorrected), or :data:`MISSING`."""
    if not entry or is_missing(entry.get("r")):
        return MISSING
    mark = " ◆" if excludes_zero(entry.get("ci_lower"), entry.get("ci_upper")) else ""
    return f"{fmt_r(entry['r'])} {fmt_ci(entry.get('ci_lower'), entry.get('ci_upper'))}{mark}"


def _pair_level(tests: dict[str, Any]) -> str:
    """The pair level at a layer: :data:`ua_helpers.report.levels_tables.PAIR_METRIC`'s r and CI (the figure's too)."""
    return _test(tests.get(levels_tables.PAIR_METRIC))


def _spread(entry: dict[str, Any] | None) -> str:
    """``r mean ± sd (share of binnings whose interval excludes 0)`` over random binnings, or :data:`MISSING`."""
    if not entry or is_missing(entry.get("r_mean")) or is_missing(entry.get("r_std")):
        return MISSING
    share = entry.get("share_ci_excludes_zero")
    return (f"{fmt_r(entry['r_mean'])} ± {float(entry['r_std']):.3f}"
            + ("" if is_missing(share) else f" ({float(share):.0%} excl. 0)"))


def levels_table(pair: dict[str, Any], category: dict[str, Any] | None, bins: dict[str, Any] | None,
                 num_layers: int, spread: dict[str, Any] | None = None, *,
                 spread_missing: str = "not in this run") -> str:
    """One row per layer: relative depth, then the three levels' r and CI (Markdown).

    ``spread`` (``option_a_bins.results_by_k[k]`` at the seeded binning's k) comes first among the random-bin
    columns: r over many binnings does not depend on one draw; ``spread_missing`` fills that column without it.
    """
    rows = []
    for layer in sorted(pair, key=int):
        rows.append([layer, f"{int(layer) / num_layers:.2f}",
                     _test((category or {}).get(layer)) if category is not None else "not in this run",
                     _spread(spread.get(layer)) if spread is not None else spread_missing,
                     _test((bins or {}).get(layer)) if bins is not None else "not in this run",
                     _pair_level(pair[layer])])
    return md_table(["layer", "depth", "category level (n = categories)",
                     "random bins over many binnings: r mean ± sd", "random bins: the study's one draw",
                     f"pair level: {md_text(levels_tables.PAIR_METRIC)}"], rows) + (
        f"\n{md_text(levels_tables.PAIR_METRIC_RULE)}\n")


def _n_of(block: dict[str, Any] | None, key: str) -> str:
    """The range of ``key`` (e.g. ``n_bins``) over a block's layers: "20", or "18–20" where it varies."""
    values = sorted({int(e[key]) for e in (block or {}).values() if isinstance(e, dict) and e.get(key) is not None})
    if not values:
        return MISSING
    return str(values[0]) if len(values) == 1 else f"{values[0]}–{values[-1]}"


def this_run_section(ctx: BookContext) -> list[str]:
    res = ctx.run.results
    cat, bins = res.get("category_level"), res.get("option_a_bins")
    cat_layers = (cat or {}).get("layer_results") if isinstance(cat, dict) else None
    bin_layers = (bins or {}).get("bootstrap_results") if isinstance(bins, dict) else None
    parts = ["## This run\n"]
    missing = [k for k, v in (("category_level", cat_layers), ("option_a_bins", bin_layers)) if v is None]
    if missing:
        parts.append(":::{admonition} This run has no group levels\n:class: warning\n\n"
                     f"Its `results.json` lacks {' and '.join(f'`{k}`' for k in missing)}: it was made before the "
                     "category level and the random bins were computed. The pair level is shown alone; run it "
                     "again with this version to fill the other columns.\n:::\n")
    by_k = (bins or {}).get("results_by_k") if isinstance(bins, dict) else None
    k_bins = str((bins or {}).get("k_bins")) if isinstance(bins, dict) else None
    spread = (by_k or {}).get(k_bins)
    if not missing:
        lead = (f"Random bins, first over {bins.get('n_binnings')} random binnings into {k_bins} bins: the mean and "
                "sd of r, and the share of binnings whose interval excludes zero. This answer does not depend on "
                "one draw, so it is the one to read. " if spread else "")
        seed = bins.get("seed")
        draw = (f"the study's own draw (`np.random.seed({int(seed)})`, then `np.random.randint(0, {int(k_bins)}, "
                f"{int(res['n_pairs'])})`)" if bins.get("seeded_binning") == levels.SEEDED_BINNING
                and isinstance(seed, int) else "a seeded draw of its own (this run predates drawing the study's binning)")
        parts.append(f"Category level over {_n_of(cat_layers, 'n_categories')} categories. {lead}Then the one "
                     f"seeded binning, as the study reported it: {draw}, with {_n_of(bin_layers, 'n_bins')} bins of "
                     "at least 2 pairs and a bootstrap CI over bins; it is one draw among many, so read it against "
                     f"the spread to its left. Pair level over {res.get('n_pairs')} pairs. "
                     "◆: the CI excludes zero (uncorrected).\n")
    parts.append(levels_table(res["results"], cat_layers, bin_layers, int(res.get("num_layers")
                                                                          or max(int(k) for k in res["results"])),
                              spread))
    if by_k:
        rows = [[k, layer, f"{fmt_r(e.get('r_mean'))} ± {float(e['r_std']):.3f}" if not is_missing(e.get("r_std"))
                 else MISSING, MISSING if is_missing(e.get("share_ci_excludes_zero"))
                 else f"{float(e['share_ci_excludes_zero']):.0%}"]
                for k, layers in by_k.items() for layer, e in layers.items()]
        parts += [f"Over {bins.get('n_binnings')} random binnings for each bin count k, the mean and sd of r, and "
                  "the share of binnings whose interval excludes zero: how much the random-bins answer depends on "
                  "one binning.\n",
                  "```{dropdown} r over random binnings, per k and layer\n" + md_table(
                      ["k", "layer", "r mean ± sd", "share excluding 0"], rows) + "```\n"]
    return parts


def pythia_section() -> list[str]:
    pair = published.load("pythia-6.9b_option_b_pair_level")
    cat = published.load("pythia-6.9b_category_level_bootstrap_ci")
    bins = published.load("pythia-6.9b_option_a_bins")
    parts = ["## Pythia-6.9B, published\n",
             f"The same three levels from the original study's published files (EleutherAI/pythia-6.9b, float16, "
             f"ua-230; 6 categories, 20 bins, 230 pairs; shipped with the package, see "
             f"`ua_helpers/published/PROVENANCE.md`). ◆: the CI excludes zero (uncorrected). The study: "
             f"{study_citation()}\n",
             "The study published its one seeded binning; the spread over many binnings was not published "
             "for Pythia.\n",
             levels_table(pair["results"], cat["layer_results"], bins["bootstrap_results"], 32, None,
                          spread_missing="not published")]
    scaling = published.load("pythia_scaling_category_level_layers")
    models = scaling["models"]
    depths = sorted({round(int(l) / m["n_layers"], 2) for m in models.values() for l in m["layer_results"]})
    rows = []
    for depth in depths:
        row = [f"{depth:.2f}"]
        for m in models.values():
            hit = [v for l, v in m["layer_results"].items() if round(int(l) / m["n_layers"], 2) == depth]
            row.append(fmt_r(hit[0].get("correlation")) if hit else MISSING)
        rows.append(row)
    parts += ["### Category level across Pythia sizes\n",
              "The study's scaling file: category-level r (no CI; n = 6 categories) by relative depth for four "
              "Pythia sizes, all on ua-230.\n",
              md_table(["depth", *(md_text(name) for name in models)], rows)]
    return parts


WHY = """## Why the three answers can differ

- **n.** The category level correlates 6 numbers (one per category), the random bins about 20, the pair level
  230. With 6 points a bootstrap resample often holds only 2 to 4 distinct categories, so its r sits near ±1 and
  the interval spans most of [−1, 1]: a large r at one layer is fragile, and a CI that excludes zero is rare.
  With {n_pairs} pairs a small |r| already excludes zero: {smallest}.
- **What is measured.** Category-level UA and the bins' UA are *group geometry*: how uniform the A statements of
  a group are, against how uniform its B statements are, compared with the group's mean preference. The pair
  metrics are *individual position*: where one statement sits relative to the side centroids or its
  neighbours, compared with that pair's own preference. A group can be tightly clustered while its members'
  positions say nothing about their own preferences, and the other way round.
- **Which variation.** Categories differ in kind (numeric facts, philosophy, business...), so the category level
  mostly compares kinds of text; random bins mix kinds, so their groups differ by chance; the pair level sees
  the variation within and between kinds at once (see the [caveats](caveats.md) on Simpson's paradox).
- **Side roles.** Category-level UA and the centroid metrics assume that each side holds one kind of statement
  within a category, as in ua-230. Where the sides alternate framings (replication-230 as given), the side
  centroids nearly coincide and these measures lose their meaning; the `orientation by-role` parameter
  restores one framing per side. Each design answers a different question. *As given*, which side is which
  carries no framing, so the side-level measures (category UA, the centroid metrics) say little, but a
  pair-level result cannot come from "side A is always the abstract one". *By role*, side A holds one framing
  throughout a category, so the group levels measure something again, and the preference becomes "the model
  prefers framing 0 over framing 1" — which is what ua-230's design measures, with its confound: a side effect
  and a framing effect can no longer be told apart. `make book-full` runs replication-230 both ways and shows
  them side by side in the [cross-run chapter](crossrun.md).

None of the three is corrected for the number of layers tested.
"""


def _why(ctx: BookContext) -> str:
    """:data:`WHY` with this run's number of pairs and smallest |r| whose CI excludes zero."""
    from .page_intro import smallest_phrase

    return WHY.replace("{n_pairs}", str(ctx.run.results["n_pairs"])).replace("{smallest}",
                                                                             smallest_phrase(ctx.run.results))


def levels_page(ctx: BookContext) -> str:
    """The "Three levels of one question" chapter."""
    return "\n".join(["# Three levels of one question\n", run_banner(ctx.run),
                      "The original study asked its question at three levels: across the 6 **categories** "
                      "(its main metric, {term}`category-level UA`), across about 20 **random bins** of "
                      "pairs ({term}`Option A`), and across the 230 **pairs** themselves ({term}`Option B`, the "
                      "original notebook and the rest of this book). All three come from one extraction. This chapter "
                      "puts them side by side per layer, for this run and for the published Pythia-6.9B "
                      "results.\n",
                      *this_run_section(ctx), *pythia_section(), _why(ctx)])
